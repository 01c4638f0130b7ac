# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
LLaVA-OneVision (SigLIP + projector + 2x2 pooling + Qwen2) with our own LLM layer loop.

Weights, configs, tokenizer and image-processor settings are Hugging Face's, loaded from a
local directory (safetensors only, ``trust_remote_code=False``, nothing downloaded). The
vision path is HF's own ``get_video_features`` (SigLIP -> projector -> bilinear 2x2
pooling: 196 tokens per 384-px frame). The LLM runs through :meth:`layer_forward` over the
HF decoder modules (norms, q/k/v/o projections, MLP), but the attention is handed to the
caller: the KV cache, the RoPE positions and what each query attends to are the memory's.
A layer is two parts around that attention (:class:`DecoderParts`), the seam where the
compiled LLM backends (``ros2_livevlm.backends.llm``) replace the torch modules.

Reference: LLaVA-OneVision (Li et al. 2024, arXiv 2408.03326); HF
``transformers.models.llava_onevision`` and ``transformers.models.qwen2``.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
import json
import math
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F


INIT_TEMPLATE = '<|im_start|>system \n{system_prompt}<|im_end|><|im_start|>user '
QUESTION_PREFIX = '\n'
QUESTION_SUFFIX = '<|im_end|><|im_start|>assistant\n'
"""
LLaVA-OneVision's chat template as ReKV/LiveVLM stream it (spec A.3).

``[INIT_TEMPLATE | video: frames * P tokens, then HF's image_newline | QUESTION_PREFIX,
question, QUESTION_SUFFIX]``; the answer follows, ended by ``<|im_end|>``.
"""

REQUIRED_FILES = {
    'config.json': 'the model config (save_pretrained writes it)',
    'preprocessor_config.json': 'the image processor config (frame size, mean, std)',
}
TOKENIZER_FILES = ('tokenizer.json', 'vocab.json')
SUPPORTED_ROPE = ('default', 'linear', 'yarn', 'llama3')  # static inv_freq; dynamic NTK is not


class AttendFn(Protocol):
    """
    Attention of one decoder layer, supplied by the memory.

    Args:
        layer_idx: decoder layer index, 0-based.
        q: queries before RoPE, ``[H, T, d]``.
        k: keys before RoPE, ``[G, T, d]`` (``G`` KV heads, GQA).
        v: values, ``[G, T, d]``.

    Returns:
        attention output ``[H, T, d]`` (same dtype as ``q``).
    """

    def __call__(
        self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor: ...


def attention_inputs(
    layer: torch.nn.Module, hidden: torch.Tensor, num_heads: int, num_kv_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Input norm and q/k/v projections of one Qwen2 decoder layer (HF modules).

    Args:
        layer: a ``Qwen2DecoderLayer``.
        hidden: residual stream ``[T, D]``.
        num_heads: H; num_kv_heads: G (the head dim is ``q_proj`` width / H).

    Returns:
        ``q [H, T, d]``, ``k [G, T, d]``, ``v [G, T, d]``, before RoPE, in ``hidden``'s dtype.
    """
    attn = layer.self_attn
    num_tokens = hidden.shape[0]
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x).view(num_tokens, num_heads, -1).transpose(0, 1)  # [H, T, d]
    k = attn.k_proj(x).view(num_tokens, num_kv_heads, -1).transpose(0, 1)  # [G, T, d]
    v = attn.v_proj(x).view(num_tokens, num_kv_heads, -1).transpose(0, 1)  # [G, T, d]
    return q, k, v


def attention_output(
    layer: torch.nn.Module, hidden: torch.Tensor, attn_out: torch.Tensor
) -> torch.Tensor:
    """
    Output projection, residual, post-attention norm, MLP and residual of one decoder layer.

    Args:
        layer: a ``Qwen2DecoderLayer``.
        hidden: residual stream before the layer, ``[T, D]``.
        attn_out: the attention output ``[H, T, d]``.

    Returns:
        the residual stream after the layer, ``[T, D]``.
    """
    out = attn_out.transpose(0, 1).reshape(hidden.shape[0], -1)  # [T, H * d]
    hidden = hidden + layer.self_attn.o_proj(out)
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))


def lm_logits(
    norm: torch.nn.Module, lm_head: torch.nn.Module, hidden: torch.Tensor
) -> torch.Tensor:
    """Apply the final norm and LM head: ``[T, D]`` -> ``[T, V]`` logits in float32."""
    return lm_head(norm(hidden)).float()


class DecoderParts(ABC):
    """
    The LLM's dense compute split at the attention, as a backend runs it.

    A decoder layer is :meth:`attention_inputs` (norm, q/k/v), the attention (the
    memory's: it picks the keys, their RoPE positions and the kernel) and
    :meth:`attention_output` (o_proj, residual, norm, MLP); :meth:`logits` is the final
    norm and LM head. :class:`LlavaOnevision` runs them with the HF modules; compiled
    backends run exported graphs of the same parts.

    Attributes:
        name: the backend (``torch``, ``onnxruntime``, ``tensorrt``).
        attention: the backend's attention kernel with the memory's signature
            ``(q [H, T, d], k [G, S, d], v [G, S, d]) -> [H, T, d]`` (post-RoPE, causal
            over the last T keys), or ``None`` to keep the memory's own kernel.
    """

    name = 'torch'
    attention: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @abstractmethod
    def attention_inputs(
        self, layer_idx: int, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pre-RoPE ``q [H, T, d]``, ``k, v [G, T, d]`` of layer ``layer_idx`` from ``[T, D]``."""

    @abstractmethod
    def attention_output(
        self, layer_idx: int, hidden: torch.Tensor, attn_out: torch.Tensor
    ) -> torch.Tensor:
        """Residual stream ``[T, D]`` after layer ``layer_idx`` from attention ``[H, T, d]``."""

    @abstractmethod
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the final norm and LM head: ``[T, D]`` -> ``[T, V]`` logits in float32."""

    def layer_forward(
        self, layer_idx: int, hidden: torch.Tensor, attend: AttendFn
    ) -> torch.Tensor:
        """
        One Qwen2 decoder layer with the attention supplied by ``attend``.

        Args:
            layer_idx: 0-based layer index.
            hidden: residual stream ``[T, D]``.
            attend: receives pre-RoPE ``q [H, T, d]``, ``k, v [G, T, d]`` and returns the
                attention output ``[H, T, d]``.

        Returns:
            the residual stream after the layer, ``[T, D]``.
        """
        q, k, v = self.attention_inputs(layer_idx, hidden)
        return self.attention_output(layer_idx, hidden, attend(layer_idx, q, k, v))


@contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """Hide transformers' progress bars (weight loading/saving) inside the block, then restore."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class ModelDirectoryError(ValueError):
    """A model directory is missing, incomplete or of an unsupported architecture."""


def check_model_dir(path: str | Path) -> Path:
    """
    Check that ``path`` holds a loadable LLaVA-OneVision checkpoint.

    Raises:
        ModelDirectoryError: naming the missing file(s) or the unsupported model type.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        what = 'is a file, not a directory' if root.exists() else 'does not exist'
        raise ModelDirectoryError(
            f'model directory {root} {what}; pass a local Hugging Face LLaVA-OneVision '
            "directory, 'reference' (the project's trained tiny model) or 'tiny' (random)"
        )
    missing = [
        f'{name} ({why})' for name, why in REQUIRED_FILES.items() if not (root / name).is_file()
    ]
    if not any((root / name).is_file() for name in TOKENIZER_FILES):
        missing.append('tokenizer.json (the tokenizer; save it with tokenizer.save_pretrained)')
    if not list(root.glob('*.safetensors')):
        missing.append('*.safetensors (weights; .bin/pickle checkpoints are refused)')
    if missing:
        raise ModelDirectoryError(
            f'model directory {root} is incomplete, missing: ' + '; '.join(missing)
        )
    model_type = json.loads((root / 'config.json').read_text()).get('model_type')
    if model_type != 'llava_onevision':
        raise ModelDirectoryError(
            f'{root}/config.json has model_type={model_type!r}; '
            "only 'llava_onevision' is supported"
        )
    return root


class LlavaOnevision(DecoderParts):
    """
    A loaded LLaVA-OneVision whose LLM layers are driven one at a time.

    Shapes: ``D`` hidden size, ``H`` query heads, ``G`` KV heads, ``d`` head dim,
    ``V`` vocabulary, ``S`` frame side in pixels, ``P`` tokens per frame after pooling.
    Batch size is always 1 and left out of every shape.
    """

    def __init__(
        self, hf_model: torch.nn.Module, tokenizer, image_processor, path: Path | None = None
    ) -> None:
        config = hf_model.config
        text, vision = config.text_config, config.vision_config
        if getattr(text, 'use_sliding_window', False):
            raise ModelDirectoryError(
                'Qwen2 sliding-window attention is not supported; set use_sliding_window=false'
            )
        rope_type = (getattr(text, 'rope_parameters', None) or {}).get('rope_type', 'default')
        if rope_type not in SUPPORTED_ROPE:
            raise ModelDirectoryError(
                f'RoPE type {rope_type!r} is not supported (supported: {SUPPORTED_ROPE})'
            )
        self.hf = hf_model.eval()
        self.path = path
        self.tokenizer = tokenizer
        self.config = config
        self.layers = hf_model.model.language_model.layers
        self.num_layers = len(self.layers)
        self.num_heads = text.num_attention_heads
        self.num_kv_heads = text.num_key_value_heads
        self.head_dim = (
            getattr(text, 'head_dim', None) or text.hidden_size // text.num_attention_heads
        )
        self.hidden_size = text.hidden_size
        grid = vision.image_size // vision.patch_size
        self.tokens_per_frame = math.ceil(grid / 2) ** 2
        size = image_processor.size
        self.frame_size = (int(size['height']), int(size['width']))
        self.image_mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(
            3, 1, 1
        )
        self.image_std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(3, 1, 1)
        rotary = hf_model.model.language_model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float()
        self.attention_scaling = float(getattr(rotary, 'attention_scaling', 1.0))
        self.stop_token_ids = self._stop_token_ids()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = 'cpu',
        dtype: torch.dtype = torch.float32,
    ) -> LlavaOnevision:
        """
        Load a local HF LLaVA-OneVision directory.

        Args:
            path: directory with ``config.json``, ``*.safetensors``, tokenizer and
                ``preprocessor_config.json`` (as written by ``save_pretrained``).
            device: torch device for all weights.
            dtype: weight and activation dtype.

        Raises:
            ModelDirectoryError: the directory is missing, incomplete or not LLaVA-OneVision.
        """
        from transformers import AutoImageProcessor
        from transformers import AutoTokenizer
        from transformers import LlavaOnevisionForConditionalGeneration

        root = check_model_dir(path)
        common = {'local_files_only': True, 'trust_remote_code': False}
        with quiet_hf_progress():
            hf_model = LlavaOnevisionForConditionalGeneration.from_pretrained(
                root, dtype=dtype, use_safetensors=True, attn_implementation='sdpa', **common
            ).to(device)
        tokenizer = AutoTokenizer.from_pretrained(root, **common)
        image_processor = AutoImageProcessor.from_pretrained(root, **common)
        return cls(hf_model, tokenizer, image_processor, path=root)

    @property
    def device(self) -> torch.device:
        return self.hf.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.hf.lm_head.weight.dtype

    def _stop_token_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id}
        generation = getattr(self.hf, 'generation_config', None)
        eos = getattr(generation, 'eos_token_id', None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
        for token in ('<|im_end|>', '<|endoftext|>'):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return frozenset(i for i in ids if i is not None)

    # ---- vision -------------------------------------------------------------------

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """
        Resize, rescale and normalize frames as the checkpoint's image processor does.

        Bicubic resize with antialiasing to the processor's ``size`` (no aspect-ratio
        keeping, as LLaVA-OneVision's video path), rounding to uint8 levels like PIL,
        then ``(x / 255 - mean) / std``.

        Args:
            frames: uint8 RGB ``[N, H, W, 3]`` (any H, W), on any device.

        Returns:
            pixel values ``[N, 3, S, S]`` in the model dtype, on the model device.
        """
        x = frames.to(self.device).permute(0, 3, 1, 2).float()  # [N, 3, H, W]
        if tuple(x.shape[-2:]) != self.frame_size:
            x = F.interpolate(
                x, size=self.frame_size, mode='bicubic', antialias=True, align_corners=False
            )
            x = x.round().clamp(0, 255)
        x = (x / 255.0 - self.image_mean.to(x.device)) / self.image_std.to(x.device)
        return x.to(self.dtype)

    @torch.inference_mode()
    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """
        Vision tower -> projector -> 2x2 pooling, frame by frame (HF ``get_video_features``).

        Args:
            pixel_values: ``[N, 3, S, S]`` from :meth:`preprocess`.

        Returns:
            frame tokens ``[N, P, D]`` (P = 196 for 384-px SigLIP). HF's trailing
            ``image_newline`` embedding is dropped here; see :attr:`image_newline`.
        """
        out = self.hf.model.get_video_features(pixel_values[None], return_dict=True)
        tokens = out.pooler_output[0, :-1]  # [N * P, D], newline dropped
        return tokens.view(pixel_values.shape[0], self.tokens_per_frame, self.hidden_size)

    @property
    def image_newline(self) -> torch.Tensor:
        """Return the embedding HF appends after a video's last frame, ``[D]``."""
        return self.hf.model.image_newline.detach().to(self.dtype)

    # ---- language model -------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without added BOS/EOS."""
        return self.tokenizer(text, add_special_tokens=False)['input_ids']

    def init_ids(self, system_prompt: str) -> list[int]:
        """Return the token ids of the init segment (system prompt; :data:`INIT_TEMPLATE`)."""
        return self.tokenize(INIT_TEMPLATE.format(system_prompt=system_prompt))

    def question_ids(self, question: str) -> tuple[list[int], slice]:
        """
        Return the token ids of the answer prompt and the slice of the question's own tokens.

        The prompt is ``QUESTION_PREFIX + question + QUESTION_SUFFIX``, each part tokenized
        on its own so the question's tokens are known exactly (PaR scores pages with them).
        """
        prefix = self.tokenize(QUESTION_PREFIX)
        body = self.tokenize(question.strip())
        ids = prefix + body + self.tokenize(QUESTION_SUFFIX)
        return ids, slice(len(prefix), len(prefix) + len(body))

    @torch.inference_mode()
    def embed_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings ``[T, D]`` of token ids ``[T]`` (int64)."""
        return self.hf.model.language_model.embed_tokens(token_ids.to(self.device))

    @torch.inference_mode()
    def attention_inputs(
        self, layer_idx: int, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pre-RoPE ``q [H, T, d]``, ``k, v [G, T, d]`` of layer ``layer_idx`` (HF modules)."""
        return attention_inputs(self.layers[layer_idx], hidden, self.num_heads, self.num_kv_heads)

    @torch.inference_mode()
    def attention_output(
        self, layer_idx: int, hidden: torch.Tensor, attn_out: torch.Tensor
    ) -> torch.Tensor:
        """Residual stream ``[T, D]`` after layer ``layer_idx`` (HF modules)."""
        return attention_output(self.layers[layer_idx], hidden, attn_out)

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the final norm and LM head: ``[T, D]`` -> ``[T, V]`` logits in float32."""
        return lm_logits(self.hf.model.language_model.norm, self.hf.lm_head, hidden)

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The LLM's four graphs (:mod:`.llm`) as TensorRT engines: profiles, configure-time check, run.

One engine per part (``llm_qkv``, ``llm_attention``, ``llm_output``, ``llm_head``) in the
engine cache, keyed like the vision encoder's (model fingerprint, precision, TensorRT
version, compute capability; :mod:`.cache`) and built by ``build_engines`` beside it.
Each per-token part has two optimization profiles, decode first (one token, where the
products are matrix-vector and bandwidth-bound) then prefill (up to a clip of tokens);
the attention has a decode profile (one query) and a prefill one (a block of
:data:`~.llm.QUERY_BLOCK` queries), both over up to ``max_context`` keys. The layer
weights stay the model's torch parameters on the GPU and are bound by address.

A context longer than the engine's ``max_context`` (policy ``full`` grows without bound)
is attended by the memory's torch reference attention for that call, with a warning that
says how to rebuild; longer token inputs run in chunks (those parts are per token).
"""

from __future__ import annotations

from dataclasses import replace
import logging
from pathlib import Path

import torch

from .cache import AxisProfile
from .cache import engine_cache_root
from .cache import EngineEntry
from .cache import EngineKey
from .cache import find_engine
from .cache import precision_of
from .cache import Profile
from .llm import ATTENTION
from .llm import CompiledDecoder
from .llm import Part
from .llm import PARTS
from .llm import QUERY_BLOCK
from .tensorrt import cuda_device
from .tensorrt import engine_key
from .tensorrt import import_tensorrt
from .tensorrt import TensorRTEngine
from ..memory.attention import attention as reference_attention
from ..models import LlavaOnevision


log = logging.getLogger(__name__)

HEAD_TOKENS = 64
"""Most tokens per LM-head call (the engine computes the last token's logits only)."""


def engine_name(part: Part) -> str:
    """Return the engine cache name of an LLM part: ``llm_<part>``."""
    return f'llm_{part.name}'


def llm_profiles(max_tokens: int, max_context: int) -> dict[str, tuple[Profile, ...]]:
    """
    Optimization profiles of the LLM parts, by part name, decode first.

    Args:
        max_tokens: most tokens per call of ``qkv`` and ``output`` (a clip:
            ``frames_per_clip`` x tokens per frame).
        max_context: most keys an attention call sees (init + long-term budget +
            short-term + clip, or answer prompt and tokens).

    Raises:
        ValueError: a bound below 1.
    """
    one = AxisProfile(1, 1, 1)
    keys = AxisProfile(1, max_context, max_context)
    per_token = ({'tokens': one}, {'tokens': AxisProfile(1, max_tokens, max_tokens)})
    block = min(QUERY_BLOCK, max_tokens)
    return {
        'qkv': per_token,
        'attention': (
            {'queries': one, 'keys': keys},
            {'queries': AxisProfile(1, block, block), 'keys': keys},
        ),
        'output': per_token,
        'head': ({'tokens': AxisProfile(1, 1, HEAD_TOKENS)},),
    }


class TensorRTDecoder(CompiledDecoder):
    """
    The LLM parts on TensorRT engines (CUDA tensors in, CUDA tensors out, torch's stream).

    Args:
        model: the loaded model on the engines' GPU, in their precision.
        entries: the validated cache entry of each part, by part name.
        device: that GPU.

    Raises:
        EngineCacheError: an engine cannot be deserialized.
    """

    name = 'tensorrt'

    def __init__(
        self, model: LlavaOnevision, entries: dict[str, EngineEntry], device: torch.device
    ) -> None:
        super().__init__(model)
        self.engines = {name: TensorRTEngine(entry, device) for name, entry in entries.items()}
        attention = self.engines[ATTENTION.name]
        self.max_keys = attention.max_size('key', 1)
        self.query_block = min(QUERY_BLOCK, attention.max_size('query', 1))
        self._warned_context = False

    def token_limit(self, part: Part) -> int:
        """Return the most tokens (or queries) ``part``'s engine takes per call."""
        if part is ATTENTION:
            return self.query_block
        return self.engines[part.name].max_size('hidden', 0)

    def run(
        self, part: Part, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> None:
        """Enqueue ``part``'s engine with ``inputs`` and ``outputs`` bound by address."""
        self.engines[part.name].run(inputs, outputs)

    @torch.inference_mode()
    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if k.shape[1] <= self.max_keys:
            return super()._attention(q, k, v)
        if not self._warned_context:
            log.warning(
                'a context of %d keys exceeds the TensorRT attention engine (at most %d): '
                'attending with torch for such calls; rebuild with build_engines '
                '--max-context %d or more',
                k.shape[1],
                self.max_keys,
                k.shape[1],
            )
            self._warned_context = True
        return reference_attention(q, k, v)


def find_llm_engines(root: Path, key: EngineKey, model_path: str | Path) -> dict[str, EngineEntry]:
    """
    Find the cached engine of every LLM part, by part name.

    Args:
        root: the engine cache directory.
        key: what this process needs (model hash, precision, TensorRT, GPU); its ``engine``
            is replaced by each part's.
        model_path: the checkpoint directory.

    Raises:
        EngineCacheError: one is missing, stale or built for another precision, TensorRT or
            GPU (the message names which and gives the build command).
    """
    return {
        part.name: find_engine(root, replace(key, engine=engine_name(part)), model_path)
        for part in PARTS
    }


def tensorrt_decoder(model: LlavaOnevision, engine_cache_dir: str) -> TensorRTDecoder:
    """
    Return the TensorRT LLM of ``model``, validated against the engine cache (configure time).

    The engines must have been built by ``build_engines`` for this checkpoint's files, the
    model's dtype as precision, this TensorRT version and this GPU's compute capability.

    Raises:
        TensorRTUnavailable: TensorRT is not importable or there is no CUDA GPU.
        ValueError: the model is not on a CUDA device, not loaded from a directory, or
            ``engine_cache_dir`` is relative.
        EngineCacheError: as :func:`find_llm_engines`.
    """
    trt = import_tensorrt()
    device = cuda_device(model.device)
    if model.path is None:
        raise ValueError(
            'llm_backend=tensorrt needs a model loaded from a directory '
            '(LlavaOnevision.from_pretrained)'
        )
    root = engine_cache_root(engine_cache_dir)
    key = engine_key(model.path, precision_of(model.dtype), device, trt, engine_name(ATTENTION))
    entries = find_llm_engines(root, key, model.path)
    log.info('LLM: TensorRT engines %s', ', '.join(e.engine_path.name for e in entries.values()))
    return TensorRTDecoder(model, entries, device)


__all__ = [
    'HEAD_TOKENS',
    'TensorRTDecoder',
    'engine_name',
    'find_llm_engines',
    'llm_profiles',
    'tensorrt_decoder',
]

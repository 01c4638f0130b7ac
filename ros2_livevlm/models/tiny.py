# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Tiny LLaVA-OneVision checkpoints of the real architecture, made offline.

A randomly initialised ``LlavaOnevisionForConditionalGeneration`` (SigLIP vision tower,
2-layer MLP projector, Qwen2 LLM with GQA) with small widths, a byte-level BPE tokenizer
built with ``tokenizers`` and the image-processor config, all written with
``save_pretrained``. Tests, the demo and the benchmarks load it through the same loader
as real weights (:meth:`LlavaOnevision.from_pretrained`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path

from .llava_onevision import quiet_hf_progress
from ..config import staged_directory


SPECIAL_TOKENS = ('<|endoftext|>', '<|im_start|>', '<|im_end|>', '<image>', '<video>')
"""Qwen2 chat specials plus LLaVA's image/video placeholders, in id order after the bytes."""


@dataclass(frozen=True)
class TinySpec:
    """
    Widths of a tiny checkpoint. Defaults: 16 tokens per frame, 2 LLM layers, GQA 4:2.

    Attributes:
        image_size: frame side in pixels (SigLIP input; real: 384).
        patch_size: SigLIP patch side in pixels (real: 14). Tokens per frame after the
            2x2 pooling: ``ceil(image_size / patch_size / 2) ** 2``.
        vision_hidden: SigLIP width.
        vision_layers: SigLIP depth.
        vision_heads: SigLIP attention heads.
        hidden: Qwen2 width D.
        layers: Qwen2 decoder layers.
        heads: query heads H.
        kv_heads: KV heads G (< H: grouped-query attention).
        intermediate: Qwen2 MLP width.
        rope_theta: RoPE base.
        max_positions: Qwen2 ``max_position_embeddings``.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    rope_theta: float = 1_000_000.0
    max_positions: int = 32768


BENCH_VISION_SPEC = TinySpec(
    image_size=108, patch_size=4, vision_hidden=64, vision_layers=2, vision_heads=2
)
"""Small SigLIP: 27x27 patches (an odd grid, like so400m at 384 px), pooled to 196 tokens."""

QWEN2_05B_SPEC = replace(
    BENCH_VISION_SPEC, hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864
)
"""
Qwen2-0.5B's LLM shapes (width 896, 24 layers, 14 query / 2 KV heads of 64, MLP 4864)
behind :data:`BENCH_VISION_SPEC` (196 tokens per frame), with random weights: the benchmark
checkpoint of the speed measurements (``replace(QWEN2_05B_SPEC, layers=4)`` on CPU).
"""


def make_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512):
    """
    Build a byte-level BPE tokenizer with the Qwen2 chat specials, offline.

    Args:
        corpus: texts to learn BPE merges from (deterministic); ``None`` gives a pure
            byte-level vocabulary (256 bytes + specials, no merges).
        vocab_size: target vocabulary size when ``corpus`` is given.

    Returns:
        a ``transformers`` fast tokenizer with ``eos_token="<|im_end|>"``.
    """
    from tokenizers import decoders
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from tokenizers import Tokenizer
    from tokenizers import trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if corpus is None:
        backend = Tokenizer(
            models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[])
        )
    else:
        backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if corpus is not None:
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False
        )
        backend.train_from_iterator(corpus, trainer=trainer)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token='<|im_end|>',
        pad_token='<|endoftext|>',
        extra_special_tokens={'image_token': '<image>', 'video_token': '<video>'},
    )


def make_tiny_model(spec: TinySpec, tokenizer, seed: int = 0):
    """Build a randomly initialised ``LlavaOnevisionForConditionalGeneration`` of ``spec``."""
    import torch
    from transformers import LlavaOnevisionConfig
    from transformers import LlavaOnevisionForConditionalGeneration
    from transformers import Qwen2Config
    from transformers import SiglipVisionConfig

    if spec.heads % spec.kv_heads:
        raise ValueError(f'heads={spec.heads} must be a multiple of kv_heads={spec.kv_heads}')
    vision = SiglipVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=2 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        vision_use_head=False,
    )
    text = Qwen2Config(
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=spec.max_positions,
        rope_theta=spec.rope_theta,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids('<image>'),
        video_token_index=tokenizer.convert_tokens_to_ids('<video>'),
        image_grid_pinpoints=[[spec.image_size, spec.image_size]],
        vision_feature_layer=-1,
        vision_feature_select_strategy='full',
    )
    torch.manual_seed(seed)
    return LlavaOnevisionForConditionalGeneration(config)


def save_checkpoint(path: str | Path, model, tokenizer, image_size: int) -> Path:
    """
    Write ``model``, ``tokenizer`` and the image-processor config to ``path`` atomically.

    Everything goes to a temporary sibling directory first and is renamed into place, so
    a concurrent reader never sees half a checkpoint.
    """
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    with staged_directory(path) as staging:
        with quiet_hf_progress():
            model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        LlavaOnevisionImageProcessorPil(
            size={'height': image_size, 'width': image_size},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
            image_grid_pinpoints=[[image_size, image_size]],
        ).save_pretrained(staging)
    return Path(path)


def make_tiny_checkpoint(path: str | Path, spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """
    Write a random tiny LLaVA-OneVision checkpoint (weights, tokenizer, processor) to ``path``.

    Deterministic for a given ``spec`` and ``seed``. Returns ``path``.
    """
    tokenizer = make_tokenizer()
    model = make_tiny_model(spec, tokenizer, seed=seed)
    return save_checkpoint(path, model, tokenizer, spec.image_size)


def spec_tag(spec: TinySpec, seed: int) -> str:
    """Return a short, stable directory name for a spec and seed (the model cache's key)."""
    import hashlib

    digest = hashlib.sha1(repr((sorted(asdict(spec).items()), seed)).encode()).hexdigest()[:10]
    return f'tiny-{digest}'

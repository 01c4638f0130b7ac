# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The memory kernels at real model shapes: inputs, torch vs Triton, parity and timing.

Used by :mod:`.gpu_check`. One :class:`KernelCase` per (kernel, model shape, dtype) holds
the torch reference, the Triton kernel, the bytes each call must move and the useful
floating-point operations, so a timing becomes a roofline fraction:
``max(flops / peak_flops, bytes_moved / peak_bandwidth) / time``.

Shapes follow LiveVLM's defaults (spec A.5): long-term budget 12,000 tokens, 2 short-term
frames of 196 tokens, 32-frame clips, observation window r = 392, pages of 16, retrieval
ratio 0.4, an init segment of 20 tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import time

import torch

from ..memory.attention import attention
from ..memory.attention import paged_attention
from ..memory.attention import PagedKV
from ..memory.par import page_keys
from ..memory.par import page_scores
from ..memory.rope import Rope
from ..memory.vsb import vsb_scores


@dataclass(frozen=True)
class ModelShape:
    """Attention widths and memory sizes of one model (tokens per layer)."""

    name: str
    heads: int
    kv_heads: int
    head_dim: int
    init_tokens: int = 20
    budget_tokens: int = 12000
    short_term_tokens: int = 392
    clip_tokens: int = 6272
    observation_tokens: int = 392
    question_tokens: int = 16
    prompt_tokens: int = 24
    page_size: int = 16
    retrieval_ratio: float = 0.4


QWEN2_05B = ModelShape('qwen2-0.5b', heads=14, kv_heads=2, head_dim=64)
QWEN2_7B = ModelShape('qwen2-7b', heads=28, kv_heads=4, head_dim=128)
SMOKE = ModelShape(
    'smoke',
    heads=4,
    kv_heads=2,
    head_dim=16,
    init_tokens=5,
    budget_tokens=96,
    short_term_tokens=32,
    clip_tokens=48,
    observation_tokens=20,
    question_tokens=5,
    prompt_tokens=6,
    page_size=8,
)
"""Tiny shapes for ``--smoke`` on CPU (Triton interpreter)."""


@dataclass
class KernelCase:
    """
    One kernel at one shape: ``run[impl]()`` for each implementation, and its cost.

    Attributes:
        kernel: ``vsb_scores``, ``page_scores``, ``decode_attention`` or ``prompt_attention``.
        shape: model shape name.
        dtype: dtype of the queries and keys.
        run: implementation name -> zero-argument call; ``torch`` is the reference.
        bytes_moved: bytes a call must read and write at least (inputs and outputs once).
        flops: useful floating-point operations of a call (one pass of the logits).
        tolerance: largest max-abs difference to the reference, relative to the
            reference's largest magnitude, that counts as parity.
    """

    kernel: str
    shape: str
    dtype: torch.dtype
    run: dict[str, Callable[[], torch.Tensor]]
    bytes_moved: int
    flops: int
    tolerance: float


def make_rope(head_dim: int, device: torch.device) -> Rope:
    """Qwen2's default RoPE (theta 1e6) for ``head_dim``."""
    return Rope(
        1.0 / 1e6 ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    )


def kernel_cases(
    shape: ModelShape, dtype: torch.dtype, device: torch.device, seed: int = 0
) -> list[KernelCase]:
    """
    Make the four kernel cases at ``shape`` with random inputs on ``device``.

    Triton is imported here.

    VSB scores the last ``r`` clip queries over ``[init | budget | short-term | clip]``;
    PaR scores the question over the budget's pages with a quarter of them masked (a time
    window); the answer attends to ``[init | retrieved pages | short-term]`` plus its own
    tail, decoding one token and prefilling the prompt.
    """
    from ..backends import triton_attention
    from ..backends import triton_scores

    gen = torch.Generator(device=device).manual_seed(seed)
    elsize = torch.finfo(dtype).bits // 8
    H, G, d = shape.heads, shape.kv_heads, shape.head_dim  # noqa: N806 (the spec's letters)

    def randn(*size: int, scale: float = 1.0, dt: torch.dtype = dtype) -> torch.Tensor:
        return (torch.randn(*size, generator=gen, device=device) * scale).to(dt)

    cases = []
    # VSB (spec A.4 step 4)
    context = shape.init_tokens + shape.budget_tokens + shape.short_term_tokens + shape.clip_tokens
    r = shape.observation_tokens
    q_obs, k = randn(H, r, d, scale=2.0), randn(G, context, d)
    cases.append(
        KernelCase(
            'vsb_scores',
            shape.name,
            dtype,
            {
                'torch': lambda: vsb_scores(q_obs, k),
                'triton': lambda: triton_scores.vsb_scores(q_obs, k),
            },
            bytes_moved=(q_obs.numel() + k.numel()) * elsize + 4 * context,
            flops=2 * H * r * context * d,
            tolerance=1e-3,
        )
    )
    # PaR page scores (spec A.4 step 6.4)
    q_question = randn(H, shape.question_tokens, d)
    pages = page_keys(
        randn(G, shape.budget_tokens, d, scale=3.0), shape.page_size
    )  # [G, P, d] float32
    num_pages = pages.shape[1]
    allowed = torch.arange(num_pages, device=device) >= num_pages // 4
    cases.append(
        KernelCase(
            'page_scores',
            shape.name,
            dtype,
            {
                'torch': lambda: page_scores(q_question, pages, allowed),
                'triton': lambda: triton_scores.page_scores(q_question, pages, allowed),
            },
            bytes_moved=q_question.numel() * elsize + pages.numel() * 4 + 5 * num_pages,
            flops=2 * H * shape.question_tokens * num_pages * d,
            tolerance=1e-3,
        )
    )
    # Answer attention over [init | retrieved pages | short-term] (spec A.4 step 6.6)
    memory_tokens = shape.init_tokens + shape.budget_tokens + shape.short_term_tokens
    k_memory, v_memory = randn(G, memory_tokens, d), randn(G, memory_tokens, d)
    lt_pages = math.ceil(shape.budget_tokens / shape.page_size)
    num_chosen = math.ceil(shape.retrieval_ratio * lt_pages)
    chosen = torch.randperm(lt_pages, generator=gen, device=device)[:num_chosen].sort().values
    lt_tokens = (
        chosen[:, None] * shape.page_size + torch.arange(shape.page_size, device=device)
    ).flatten()
    lt_tokens = lt_tokens[lt_tokens < shape.budget_tokens] + shape.init_tokens
    index = torch.cat(
        (
            torch.arange(shape.init_tokens, device=device),
            lt_tokens,
            torch.arange(memory_tokens - shape.short_term_tokens, memory_tokens, device=device),
        )
    )
    positions = torch.zeros(memory_tokens, dtype=torch.int64, device=device)
    positions[index] = torch.arange(index.numel(), device=device)  # compacted (spec A.4.8)
    paged = PagedKV.from_index(k_memory, v_memory, positions, index, shape.page_size)
    rope = make_rope(d, device)
    kv_token_bytes = 2 * G * d * elsize
    for kernel, num_queries in (
        ('decode_attention', 1),
        ('prompt_attention', shape.prompt_tokens),
    ):
        num_tail = shape.prompt_tokens + (8 if num_queries == 1 else 0)
        q, k_tail, v_tail = randn(H, num_queries, d), randn(G, num_tail, d), randn(G, num_tail, d)
        gathered_k = torch.cat(
            (rope.apply(k_memory[:, index], positions[index]), k_tail), dim=1
        )  # the torch engine path,
        gathered_v = torch.cat(
            (v_memory[:, index], v_tail), dim=1
        )  # gathered once per answer and layer
        run = {
            'torch': lambda q=q, k_tail=k_tail, v_tail=v_tail: paged_attention(
                q, paged, k_tail, v_tail, rope
            ),
            'torch_gathered': lambda q=q, gk=gathered_k, gv=gathered_v: attention(q, gk, gv),
            'triton': lambda q=q, k_tail=k_tail, v_tail=v_tail: triton_attention.paged_attention(
                q, paged, k_tail, v_tail, rope
            ),
        }
        tolerance = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 4e-2}[dtype]
        attended = paged.num_tokens + num_tail
        cases.append(
            KernelCase(
                kernel,
                shape.name,
                dtype,
                run,
                bytes_moved=(
                    attended * kv_token_bytes + 2 * q.numel() * elsize + 8 * paged.num_tokens
                ),
                flops=4 * H * num_queries * attended * d,
                tolerance=tolerance,
            )
        )
    return cases


def parity(case: KernelCase) -> dict[str, object]:
    """Triton vs the torch reference: max abs difference, relative to the reference's magnitude."""
    expected = case.run['torch']().float()
    got = case.run['triton']().float()
    error = (got - expected).abs().max().item()
    relative = error / max(expected.abs().max().item(), 1e-30)
    return {
        'kernel': case.kernel,
        'shape': case.shape,
        'dtype': str(case.dtype).removeprefix('torch.'),
        'max_abs_diff': error,
        'relative': relative,
        'tolerance': case.tolerance,
        'pass': bool(relative <= case.tolerance and torch.isfinite(got).all()),
    }


def timings(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 3
) -> list[float]:
    """Seconds per call of ``fn``: CUDA events on a GPU (kernel time), wall clock on CPU."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        else:
            start_s = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start_s)
    return samples

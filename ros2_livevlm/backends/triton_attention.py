# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Triton decode attention over the memory's selected pages, read in place (GQA, split-K).

The answer context of one layer is ``[paged context | tail]``:

* the paged context is the memory's ``[init | retrieved long-term pages | short-term]``
  tokens, read straight from :attr:`VideoMemory.k` / ``v`` through a page table
  (:class:`ros2_livevlm.memory.attention.PagedKV`: a start and a length per page of at
  most C tokens), so the selected pages are never gathered or copied;
* the tail is the answer's own small buffer of prompt and generated tokens, keys already
  rotated; the last ``T`` tail tokens are the queries' own (causal among them).

RoPE: the memory stores keys *before* RoPE and the positions a key takes depend on the
answer (compacted positions number the retrieved tokens contiguously, spec A.4.8), so a
rotated copy could not be shared between answers. The kernel rotates each key tile as it
loads it, ``k1 cos - k2 sin | k2 cos + k1 sin`` (HF ``rotate_half`` layout), with
``cos``/``sin`` of ``position * inv_freq`` in float32, the position read per token from
``PagedKV.positions`` through the same page table. This costs ``d / 2`` sines and cosines
per key in every program that reads the key; the GPU check's roofline fraction of
``decode_attention`` shows what that costs against the memory traffic.

Flash-decoding layout: one program per (KV head, block of query tokens, split of the
keys). The ``H / G`` query heads of a KV head and up to ``64 / (H / G)`` query tokens (1
when decoding, more for the answer prompt) share each key tile as the rows of one
``tl.dot`` (padded to 16). Each split writes its running max, sum and unnormalised output;
a second kernel merges the splits. Reference:
:func:`ros2_livevlm.memory.attention.paged_attention`.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .triton_common import check_tensor
from .triton_common import interpreted
from ..memory.attention import PagedKV
from ..memory.rope import Rope


MIN_LOGIT = tl.constexpr(-1.0e30)
"""Finite start of running maxima: an empty split contributes ``exp(-1e30 - max) = 0``."""

TARGET_PROGRAMS = 264
"""Programs per launch to aim for when splitting long contexts (2 per SM of an H100/H200)."""


@triton.jit
def _split_kernel(
    q_ptr, k_ptr, v_ptr, pos_ptr, starts_ptr, lengths_ptr, inv_freq_ptr,
    max_ptr, sum_ptr, out_ptr,
    num_slots, visible_base, slots_per_split, split_offset, num_queries, num_splits,
    scale_log2, rope_scale,
    stride_qh, stride_qt, stride_kg, stride_kn, stride_vg, stride_vn,
    GROUP: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr, PAGED: tl.constexpr,
    PAGE_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, HALF: tl.constexpr,
    BLOCK_HALF: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """
    Attend over one split of the slots: partial results of one KV head's query heads.

    The GROUP query heads of the KV head for BLOCK_T query tokens are the rows
    ``t * GROUP + h`` of one ``tl.dot``. Slot ``s`` is visible to query token ``t`` iff
    ``s < visible_base + t``. PAGED: slots index the page table (``page = s // PAGE_SIZE``)
    and keys are rotated here; otherwise slots index the buffer directly and keys are
    already rotated.
    """
    kv_head = tl.program_id(0)
    t_block = tl.program_id(1)
    split = tl.program_id(2)
    rows = tl.arange(0, BLOCK_M)
    t = t_block * BLOCK_T + rows // GROUP  # [BLOCK_M] query token of each row
    heads = kv_head * GROUP + rows % GROUP
    row_ok = (rows < GROUP * BLOCK_T) & (t < num_queries)
    half = tl.arange(0, BLOCK_HALF)
    half_ok = half < HALF
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < HEAD_DIM
    q_rows = q_ptr + heads[:, None] * stride_qh + t[:, None] * stride_qt
    q_mask = row_ok[:, None] & half_ok[None, :]
    q1 = tl.load(q_rows + half[None, :], mask=q_mask, other=0.0)  # [BLOCK_M, BLOCK_HALF]
    q2 = tl.load(q_rows + HALF + half[None, :], mask=q_mask, other=0.0)
    if PAGED:
        inv_freq = tl.load(inv_freq_ptr + half, mask=half_ok, other=0.0)
    k_head = k_ptr + kv_head * stride_kg
    v_head = v_ptr + kv_head * stride_vg
    limit = visible_base + t  # [BLOCK_M] slots visible to each row
    run_max = tl.full((BLOCK_M,), MIN_LOGIT, tl.float32)
    run_sum = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    lo = split * slots_per_split
    last_t = tl.minimum(t_block * BLOCK_T + BLOCK_T, num_queries) - 1
    hi = tl.minimum(tl.minimum(lo + slots_per_split, num_slots), visible_base + last_t)
    for start in range(lo, hi, BLOCK_N):
        slots = start + tl.arange(0, BLOCK_N)
        ok = slots < hi
        if PAGED:
            page = slots // PAGE_SIZE
            offset = slots % PAGE_SIZE
            ok = ok & (offset < tl.load(lengths_ptr + page, mask=ok, other=0))
            src = tl.load(starts_ptr + page, mask=ok, other=0) + offset
        else:
            src = slots
        k_mask = ok[:, None] & half_ok[None, :]
        k1 = tl.load(k_head + src[:, None] * stride_kn + half[None, :], mask=k_mask, other=0.0).to(
            tl.float32
        )
        k2 = tl.load(
            k_head + src[:, None] * stride_kn + HALF + half[None, :], mask=k_mask, other=0.0
        ).to(tl.float32)
        if PAGED:  # RoPE from each token's position
            position = tl.load(pos_ptr + src, mask=ok, other=0).to(tl.float32)
            angle = position[:, None] * inv_freq[None, :]  # [BLOCK_N, BLOCK_HALF]
            cos = tl.cos(angle) * rope_scale
            sin = tl.sin(angle) * rope_scale
            k1, k2 = k1 * cos - k2 * sin, k2 * cos + k1 * sin
        logits = tl.dot(
            q1, tl.trans(k1.to(q1.dtype)), input_precision='ieee'
        )  # keys rounded to the model dtype
        logits += tl.dot(
            q2, tl.trans(k2.to(q1.dtype)), input_precision='ieee'
        )  # [BLOCK_M, BLOCK_N]
        visible = ok[None, :] & (slots[None, :] < limit[:, None])
        logits = tl.where(visible, logits * scale_log2, float('-inf'))
        new_max = tl.maximum(run_max, tl.max(logits, axis=1))
        p = tl.exp2(logits - new_max[:, None])
        alpha = tl.exp2(run_max - new_max)
        run_sum = run_sum * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_head + src[:, None] * stride_vn + dims[None, :],
            mask=ok[:, None] & dim_ok[None, :],
            other=0.0,
        )
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision='ieee')
        run_max = new_max
    out_row = (heads * num_queries + t) * num_splits + split_offset + split  # [BLOCK_M]
    tl.store(max_ptr + out_row, run_max, mask=row_ok)
    tl.store(sum_ptr + out_row, run_sum, mask=row_ok)
    tl.store(
        out_ptr + out_row[:, None] * HEAD_DIM + dims[None, :],
        acc,
        mask=row_ok[:, None] & dim_ok[None, :],
    )


@triton.jit
def _merge_kernel(
    max_ptr, sum_ptr, part_ptr, o_ptr, num_rows, num_splits,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_SPLITS: tl.constexpr,
):
    """
    Merge the splits of BLOCK_ROWS (query head, query token) rows.

    ``o = sum_s w_s acc_s / sum_s w_s l_s`` with ``w_s = 2^(m_s - max_s m_s)``; ``o`` is
    ``[H * T, d]`` contiguous.
    """
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < num_rows
    splits = tl.arange(0, BLOCK_SPLITS)
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < HEAD_DIM
    ok = row_ok[:, None] & (splits < num_splits)[None, :]
    index = rows[:, None] * num_splits + splits[None, :]  # [BLOCK_ROWS, BLOCK_SPLITS]
    split_max = tl.load(max_ptr + index, mask=ok, other=MIN_LOGIT)
    weight = tl.where(ok, tl.exp2(split_max - tl.max(split_max, axis=1)[:, None]), 0.0)
    total = tl.sum(weight * tl.load(sum_ptr + index, mask=ok, other=0.0), axis=1)
    part = tl.load(
        part_ptr + index[:, :, None] * HEAD_DIM + dims[None, None, :],
        mask=ok[:, :, None] & dim_ok[None, None, :],
        other=0.0,
    )  # [BLOCK_ROWS, BLOCK_SPLITS, BLOCK_D]
    out = tl.sum(part * weight[:, :, None], axis=1) / tl.where(row_ok, total, 1.0)[:, None]
    out_mask = row_ok[:, None] & dim_ok[None, :]
    tl.store(
        o_ptr + rows[:, None] * HEAD_DIM + dims[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=out_mask,
    )


def _split(num_slots: int, block: int, programs: int, interpreted: bool) -> tuple[int, int]:
    """
    Split the slots: return ``(slots_per_split, num_splits)``.

    Whole blocks per split, enough splits to reach :data:`TARGET_PROGRAMS` programs with
    ``programs`` programs per split (one split in the interpreter, where programs run one
    after the other).
    """
    blocks = triton.cdiv(num_slots, block)
    wanted = 1 if interpreted else max(1, min(blocks, TARGET_PROGRAMS // programs))
    slots_per_split = triton.cdiv(blocks, wanted) * block
    return slots_per_split, triton.cdiv(num_slots, slots_per_split)


def _check_inputs(
    q: torch.Tensor, context: PagedKV, k_tail: torch.Tensor, v_tail: torch.Tensor
) -> None:
    check_tensor('q', q, ndim=3)
    device, dtype = q.device, (q.dtype,)
    for name, tensor in (
        ('context.k', context.k),
        ('context.v', context.v),
        ('k_tail', k_tail),
        ('v_tail', v_tail),
    ):
        check_tensor(name, tensor, ndim=3, device=device, dtypes=dtype)
    check_tensor(
        'context.positions',
        context.positions,
        ndim=1,
        device=device,
        dtypes=(torch.int64, torch.int32),
    )
    for name, tensor in (('context.starts', context.starts), ('context.lengths', context.lengths)):
        check_tensor(name, tensor, ndim=1, device=device, dtypes=(torch.int32,))
    num_heads, num_queries, head_dim = q.shape
    num_kv_heads = k_tail.shape[0]
    shapes = {context.k.shape, context.v.shape}
    if (
        len(shapes) != 1
        or context.k.shape[::2] != (num_kv_heads, head_dim)
        or k_tail.shape != v_tail.shape
        or k_tail.shape[2] != head_dim
        or num_heads % num_kv_heads
        or head_dim % 2
    ):
        raise ValueError(
            f'shapes: q {tuple(q.shape)} [H, T, d], '
            f'context.k/v {[tuple(s) for s in shapes]} [G, n, d], '
            f'k_tail {tuple(k_tail.shape)} v_tail {tuple(v_tail.shape)} [G, T_tail, d]; '
            'need H % G == 0 and even d'
        )
    if not 1 <= num_queries <= k_tail.shape[1]:
        raise ValueError(
            "need 1 <= T <= T_tail (the queries' own tokens end the tail), "
            f'got T={num_queries}, T_tail={k_tail.shape[1]}'
        )
    if (
        context.positions.shape[0] != context.k.shape[1]
        or context.starts.shape != context.lengths.shape
    ):
        raise ValueError(
            'context.positions must have one entry per buffer token, '
            'starts and lengths one per page'
        )


def paged_attention(
    q: torch.Tensor,
    context: PagedKV,
    k_tail: torch.Tensor,
    v_tail: torch.Tensor,
    rope: Rope,
    *,
    block_n: int = 64,
    num_splits: int | None = None,
) -> torch.Tensor:
    """
    Attention of ``T`` new tokens over ``[paged context | tail]``, reading the pages in place.

    Same contract as :func:`ros2_livevlm.memory.attention.paged_attention`.

    Args:
        q: queries after RoPE, ``[H, T, d]`` (float32, float16 or bfloat16).
        context: memory tokens attended, keys before RoPE (:class:`PagedKV`); page starts
            and lengths must lie inside the buffers (not checked: it would cost a sync).
        k_tail: keys after RoPE of the prompt and answer tokens, ``[G, T_tail, d]``.
        v_tail: their values, ``[G, T_tail, d]``.
        rope: the model's RoPE (``inv_freq``, ``attention_scaling``).
        block_n: key tile (power of two, at least 16).
        num_splits: splits of the paged context (default: enough for the GPU).

    Returns:
        ``[H, T, d]`` in ``q``'s dtype.

    Raises:
        ValueError: shapes, dtypes, devices or strides the kernels cannot take.
    """
    _check_inputs(q, context, k_tail, v_tail)
    num_heads, num_queries, head_dim = q.shape
    num_kv_heads, num_tail, _ = k_tail.shape
    group = num_heads // num_kv_heads
    block_t = min(max(1, 64 // triton.next_power_of_2(group)), triton.next_power_of_2(num_queries))
    num_t_blocks = triton.cdiv(num_queries, block_t)
    num_pages = context.starts.shape[0]
    context_slots = num_pages * context.page_size
    if num_pages == 0:
        context_split = (block_n, 0)
    elif num_splits is None:
        context_split = _split(context_slots, block_n, num_kv_heads * num_t_blocks, interpreted())
    else:
        per_split = triton.cdiv(triton.cdiv(context_slots, num_splits), block_n) * block_n
        context_split = (per_split, triton.cdiv(context_slots, per_split))
    tail_split = (triton.cdiv(num_tail, block_n) * block_n, 1)
    total_splits = context_split[1] + tail_split[1]
    run_max = torch.empty(
        num_heads, num_queries, total_splits, dtype=torch.float32, device=q.device
    )
    run_sum = torch.empty_like(run_max)
    partial = torch.empty(
        num_heads, num_queries, total_splits, head_dim, dtype=torch.float32, device=q.device
    )
    half = head_dim // 2
    block_d = max(16, triton.next_power_of_2(head_dim))
    meta = {
        'GROUP': group,
        'BLOCK_T': block_t,
        'BLOCK_M': max(16, triton.next_power_of_2(group * block_t)),
        'HEAD_DIM': head_dim,
        'HALF': half,
        'BLOCK_HALF': max(16, triton.next_power_of_2(half)),
        'BLOCK_D': block_d,
        'BLOCK_N': block_n,
        'PAGE_SIZE': context.page_size,
    }
    inv_freq = rope.inv_freq.to(device=q.device, dtype=torch.float32)
    scale_log2 = math.log2(math.e) / math.sqrt(head_dim)
    common = (run_max, run_sum, partial)
    segments = (  # (k, v, slots, visible_base, (slots_per_split, splits), split_offset, PAGED)
        (context.k, context.v, context_slots, context_slots, context_split, 0, True),
        (
            k_tail,
            v_tail,
            num_tail,
            num_tail - num_queries + 1,
            tail_split,
            context_split[1],
            False,
        ),
    )
    for k, v, slots, visible_base, (per_split, splits), offset, paged in segments:
        if splits == 0:
            continue
        _split_kernel[(num_kv_heads, num_t_blocks, splits)](
            q, k, v, context.positions, context.starts, context.lengths, inv_freq, *common,
            slots, visible_base, per_split, offset, num_queries, total_splits,
            scale_log2, rope.attention_scaling,
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
            PAGED=paged, **meta, num_warps=4 if block_d <= 64 else 8,
        )
    out = torch.empty(num_heads, num_queries, head_dim, dtype=q.dtype, device=q.device)
    block_splits = max(2, triton.next_power_of_2(total_splits))
    block_rows = max(1, min(16, 4096 // (block_splits * block_d)))
    _merge_kernel[(triton.cdiv(num_heads * num_queries, block_rows),)](
        *common, out, num_heads * num_queries, total_splits,
        HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_ROWS=block_rows, BLOCK_SPLITS=block_splits,
    )
    return out

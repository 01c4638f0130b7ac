# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Triton kernels for the memory's attention-pooled scores: VSB and PaR.

Both scores are the same reduction: ``softmax(q kᵀ / sqrt(d))`` over every key a query
sees, then the mean over all query heads and query rows, one float32 score per key.

* VSB (spec A.4 step 4): the last ``r`` vision queries of a clip over the full context,
  causal (the queries are the last ``r`` keys). Reference
  :func:`ros2_livevlm.memory.vsb.vsb_scores`.
* PaR (spec A.4 step 6.4): the question queries over the page-mean keys, optionally
  restricted to allowed pages. Reference :func:`ros2_livevlm.memory.par.page_scores`.

The ``[H, r, S]`` score matrix is never materialised (7B: 0.8 GB per layer). Two passes:

1. :func:`_row_stats_kernel`, one program per (query head, block of rows): online max and
   sum of ``exp`` over the visible keys, stored as the base-2 log-sum-exp ``[H, r]``.
2. :func:`_column_sums_kernel`, one program per (query head, block of keys): recompute the
   logits of every row against the block, ``p = 2^(logit - lse)``, summed over rows
   ``[H, S]``; the sum over heads divided by ``H r`` is the score.

Extra memory ``O(H (r + S))`` floats; compute ``2 H r S d`` multiply-adds (the logits twice).
Logits are computed in the inputs' dtype (float16/bfloat16 products are exact in the
float32 accumulator); queries and keys of different dtypes (PaR: model-dtype queries,
float32 page means) are both taken in float32. Softmax and sums are float32.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .triton_common import check_tensor


MIN_LOGIT = tl.constexpr(-1.0e30)
"""Finite start of running maxima, so fully masked blocks give ``exp(-inf) = 0``, never NaN."""


@triton.jit
def _visible(
    rows, keys, num_keys, causal_offset, mask_ptr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr
):
    """``[BLOCK_R, BLOCK_S]`` True where row ``rows[i]`` sees key ``keys[j]``."""
    visible = (keys < num_keys)[None, :] & (rows >= 0)[:, None]
    if CAUSAL:
        visible = visible & (keys[None, :] <= rows[:, None] + causal_offset)
    if HAS_MASK:
        allowed = tl.load(mask_ptr + keys, mask=keys < num_keys, other=0) != 0
        visible = visible & allowed[None, :]
    return visible


@triton.jit
def _row_stats_kernel(
    q_ptr, k_ptr, mask_ptr, lse_ptr,
    num_rows, num_keys, causal_offset, scale_log2,
    stride_qh, stride_qr, stride_kg, stride_ks,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Pass 1: base-2 log-sum-exp of each query row over its visible keys, ``lse [H, r]``."""
    head = tl.program_id(0)
    row_block = tl.program_id(1)
    rows = row_block * BLOCK_R + tl.arange(0, BLOCK_R)
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < HEAD_DIM
    q = tl.load(
        q_ptr + head * stride_qh + rows[:, None] * stride_qr + dims[None, :],
        mask=(rows < num_rows)[:, None] & dim_ok[None, :],
        other=0.0,
    )
    k_head = k_ptr + (head // GROUP) * stride_kg
    row_max = tl.full((BLOCK_R,), MIN_LOGIT, tl.float32)
    row_sum = tl.zeros((BLOCK_R,), tl.float32)
    end = num_keys
    if CAUSAL:  # the block's last row sees keys up to its own index + offset
        end = tl.minimum(num_keys, (row_block + 1) * BLOCK_R + causal_offset)
    for start in range(0, end, BLOCK_S):
        keys = start + tl.arange(0, BLOCK_S)
        k = tl.load(
            k_head + keys[:, None] * stride_ks + dims[None, :],
            mask=(keys < num_keys)[:, None] & dim_ok[None, :],
            other=0.0,
        )
        logits = tl.dot(q, tl.trans(k), input_precision='ieee') * scale_log2  # [BLOCK_R, BLOCK_S]
        visible = _visible(rows, keys, num_keys, causal_offset, mask_ptr, CAUSAL, HAS_MASK)
        logits = tl.where(visible, logits, float('-inf'))
        new_max = tl.maximum(row_max, tl.max(logits, axis=1))
        row_sum = row_sum * tl.exp2(row_max - new_max) + tl.sum(
            tl.exp2(logits - new_max[:, None]), axis=1
        )
        row_max = new_max
    row_sum = tl.maximum(
        row_sum, 1e-30
    )  # a row with no visible key (all pages masked): finite lse, scores 0
    tl.store(lse_ptr + head * num_rows + rows, row_max + tl.log2(row_sum), mask=rows < num_rows)


@triton.jit
def _column_sums_kernel(
    q_ptr, k_ptr, mask_ptr, lse_ptr, sums_ptr,
    num_rows, num_keys, causal_offset, scale_log2,
    stride_qh, stride_qr, stride_kg, stride_ks,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Pass 2: softmax probability summed over the rows for each key, ``sums [H, S]``."""
    head = tl.program_id(0)
    key_block = tl.program_id(1)
    keys = key_block * BLOCK_S + tl.arange(0, BLOCK_S)
    dims = tl.arange(0, BLOCK_D)
    dim_ok = dims < HEAD_DIM
    k = tl.load(
        k_ptr + (head // GROUP) * stride_kg + keys[:, None] * stride_ks + dims[None, :],
        mask=(keys < num_keys)[:, None] & dim_ok[None, :],
        other=0.0,
    )
    q_head = q_ptr + head * stride_qh
    sums = tl.zeros((BLOCK_S,), tl.float32)
    first = 0
    if CAUSAL:  # rows before this one cannot see the block's first key
        first = tl.maximum(key_block * BLOCK_S - causal_offset, 0) // BLOCK_R * BLOCK_R
    for start in range(first, num_rows, BLOCK_R):
        rows = start + tl.arange(0, BLOCK_R)
        row_ok = rows < num_rows
        q = tl.load(
            q_head + rows[:, None] * stride_qr + dims[None, :],
            mask=row_ok[:, None] & dim_ok[None, :],
            other=0.0,
        )
        lse = tl.load(lse_ptr + head * num_rows + rows, mask=row_ok, other=0.0)
        logits = tl.dot(q, tl.trans(k), input_precision='ieee') * scale_log2  # [BLOCK_R, BLOCK_S]
        visible = (
            _visible(rows, keys, num_keys, causal_offset, mask_ptr, CAUSAL, HAS_MASK)
            & row_ok[:, None]
        )
        sums += tl.sum(tl.exp2(tl.where(visible, logits - lse[:, None], float('-inf'))), axis=0)
    tl.store(sums_ptr + head * num_keys + keys, sums, mask=keys < num_keys)


def _block(size: int, cap: int) -> int:
    """Return a power-of-two block of at least 16 (``tl.dot``'s minimum) and at most ``cap``."""
    return max(16, min(cap, triton.next_power_of_2(size)))


def pooled_scores(
    q: torch.Tensor,
    k: torch.Tensor,
    allowed: torch.Tensor | None,
    *,
    causal: bool,
    block_rows: int = 64,
    block_keys: int = 64,
) -> torch.Tensor:
    """
    Mean over heads and rows of ``softmax(q kᵀ / sqrt(d))`` per key, ``[S]`` float32.

    Args:
        q: queries ``[H, R, d]`` (float32, float16 or bfloat16; last dim contiguous).
        k: keys ``[G, S, d]`` with ``H % G == 0`` (GQA: head ``h`` reads KV head ``h // (H / G)``).
        allowed: optional ``[S]`` bool; disallowed keys get 0 (all disallowed: all 0).
        causal: the R queries are the last R keys (row ``i`` sees keys ``<= i + S - R``).
        block_rows / block_keys: tile sizes (powers of two, at least 16).

    Raises:
        ValueError: shapes, dtypes, devices or strides the kernels cannot take (the
            message names the argument).
    """
    check_tensor('q', q, ndim=3)
    check_tensor('k', k, ndim=3, device=q.device)
    num_heads, num_rows, head_dim = q.shape
    num_kv_heads, num_keys, _ = k.shape
    if k.shape[2] != head_dim or num_heads % num_kv_heads:
        raise ValueError(
            f'q {tuple(q.shape)} and k {tuple(k.shape)}: need [H, R, d], [G, S, d] with H % G == 0'
        )
    if num_rows < 1 or num_keys < 1 or (causal and num_keys < num_rows):
        raise ValueError(
            f'need 1 <= R and 1 <= S (S >= R when causal), got R={num_rows}, S={num_keys}'
        )
    if allowed is not None and (
        allowed.shape != (num_keys,) or allowed.dtype != torch.bool or allowed.device != q.device
    ):
        raise ValueError(
            f'allowed must be bool [{num_keys}] on {q.device}, '
            f'got {allowed.dtype} {tuple(allowed.shape)}'
        )
    if q.dtype != k.dtype:  # PaR: small model-dtype queries against float32 page means
        q, k = q.float(), k.float()
    lse = torch.empty(num_heads, num_rows, dtype=torch.float32, device=q.device)
    sums = torch.empty(num_heads, num_keys, dtype=torch.float32, device=q.device)
    meta = {
        'GROUP': num_heads // num_kv_heads,
        'CAUSAL': causal,
        'HAS_MASK': allowed is not None,
        'HEAD_DIM': head_dim,
        'BLOCK_D': _block(head_dim, 1 << 16),
        'BLOCK_R': _block(num_rows, block_rows),
        'BLOCK_S': _block(num_keys, block_keys),
    }
    args = (
        num_rows, num_keys, num_keys - num_rows, math.log2(math.e) / math.sqrt(head_dim),
        q.stride(0), q.stride(1), k.stride(0), k.stride(1),
    )
    mask = allowed if allowed is not None else lse  # placeholder pointer when HAS_MASK is off
    meta['num_warps'] = 4 if meta['BLOCK_D'] <= 64 else 8
    _row_stats_kernel[(num_heads, triton.cdiv(num_rows, meta['BLOCK_R']))](
        q, k, mask, lse, *args, **meta
    )
    _column_sums_kernel[(num_heads, triton.cdiv(num_keys, meta['BLOCK_S']))](
        q, k, mask, lse, sums, *args, **meta
    )
    return sums.sum(dim=0) / (num_heads * num_rows)


def vsb_scores(q_obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """
    Compute VSB scores (spec A.4 step 4).

    Same contract as :func:`ros2_livevlm.memory.vsb.vsb_scores`.

    Args:
        q_obs: the last ``r`` queries after RoPE, ``[H, r, d]``.
        k: every key they attend to after RoPE, ``[G, S, d]``; the last ``r`` are their own.

    Returns:
        ``[S]`` float32, summing to 1.
    """
    return pooled_scores(q_obs, k, None, causal=True)


def page_scores(
    q: torch.Tensor, pages: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Compute PaR page scores (spec A.4 step 6.4).

    Same contract as :func:`ros2_livevlm.memory.par.page_scores`.

    Args:
        q: question queries without RoPE, ``[H, n_q, d]``.
        pages: page-mean keys, ``[G, P, d]`` (float32 from ``page_keys``).
        allowed: optional ``[P]`` bool; disallowed pages score 0.

    Returns:
        ``[P]`` float32.
    """
    return pooled_scores(q, pages, allowed, causal=False)

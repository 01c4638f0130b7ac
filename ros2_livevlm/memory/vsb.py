# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Vision Sink Bucketing (LiveVLM v2, arXiv 2505.15269v2; spec A.4 steps 4-5).

Step 4 scores every cached token by the attention the last ``r`` *vision* queries of the
newest clip pay it (vision-to-vision attention exposes "sink" tokens that text queries
miss). Step 5 keeps a fixed budget: the top-scored share first, then temporal coverage
through buckets.
"""

from __future__ import annotations

import math

import torch


def vsb_scores(q_obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """
    Mean attention each key receives from the observation queries (spec A.4 step 4).

    ``W = softmax(q_obs kᵀ / sqrt(d))`` over the *full* context the queries see (causal:
    the ``r`` queries are the last ``r`` tokens of the keys), then the mean over the ``r``
    rows and over all ``H`` query heads. GQA choice (spec A.4 step 4, not stated by the
    paper): one ranking per layer, averaged over all query heads, so every KV head keeps
    the same tokens and PaR pages stay aligned across heads.

    Computed in float32, one query head at a time, so at most ``[r, S]`` scores exist at
    once (the 7B case would need 0.8 GB per layer materialised at once).

    Args:
        q_obs: the last ``r`` queries after RoPE, ``[H, r, d]``.
        k: every key the queries attend to after RoPE, ``[G, S, d]``, ``S >= r``; the
            last ``r`` keys are the queries' own tokens.

    Returns:
        scores ``[S]`` float32; each row of ``W`` sums to 1, so the scores sum to 1.
    """
    num_heads, num_obs, head_dim = q_obs.shape
    num_kv_heads, num_keys, _ = k.shape
    group = num_heads // num_kv_heads
    offset = num_keys - num_obs
    causal = torch.arange(num_keys, device=k.device)[None, :] > (
        torch.arange(num_obs, device=k.device)[:, None] + offset
    )  # [r, S], True = masked
    total = torch.zeros(num_keys, dtype=torch.float32, device=k.device)
    scale = 1.0 / math.sqrt(head_dim)
    for head in range(num_heads):
        logits = (q_obs[head].float() @ k[head // group].float().T) * scale  # [r, S]
        logits.masked_fill_(causal, float('-inf'))
        total += logits.softmax(dim=-1).sum(dim=0)
    return total / (num_heads * num_obs)


def bucket_ids(positions: torch.Tensor, num_buckets: int, span: tuple[int, int]) -> torch.Tensor:
    """
    Bucket of each candidate: ``b(p) = floor((p - lo) * N / (hi - lo))`` (spec A.4 step 5).

    Args:
        positions: ``[n]`` int64, the index each candidate is bucketed by.
        num_buckets: N.
        span: ``(lo, hi)``, the half-open range of ``positions`` the N buckets divide.
    """
    lo, hi = span
    return ((positions - lo) * num_buckets // max(hi - lo, 1)).clamp_(0, num_buckets - 1)


def bucketed_select(
    scores: torch.Tensor, buckets: torch.Tensor, budget: int, top_share: float, capacity: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Keep exactly ``budget`` candidates per row: saliency, then bucket coverage (spec A.4 step 5).

    Phase 1 keeps the ``floor(top_share * budget)`` highest scores regardless of bucket
    capacity (ambiguity 1: the reading under which the top-score share is a real knob;
    with ``capacity=1`` the other reading collapses both phases into one). Phase 2 goes on
    by descending score, keeping a token only while its bucket has room: in each bucket
    the best ``capacity - occupancy`` remaining tokens qualify, and the best of those
    qualify first overall (the greedy loop of the spec). Overfull buckets from phase 1 can
    leave phase 2 short of the budget (ambiguity 2): we top up with the best remaining
    scores, ignoring capacity, so the budget is always met exactly; the tokens topped up
    are counted so callers can log it.

    All three phases are one ranking: every candidate gets a key (phase 1 first, then
    the qualifying phase 2 tokens by score, then the rest by score) and the ``budget``
    smallest keys are kept. Rows (layers) are independent and computed at once, with no
    host synchronisation.

    Args:
        scores: ``[L, n]`` float32 importance of each candidate (``n > budget``).
        buckets: ``[L, n]`` int64 bucket of each candidate (:func:`bucket_ids`), ``< n``.
        budget: M, tokens to keep per row.
        top_share: R in [0, 1].
        capacity: B, tokens per bucket.

    Returns:
        ``(keep, topped_up)``: ``keep`` ``[L, budget]`` int64 candidate indices in ascending
        (temporal) order per row; ``topped_up`` a 0-d int64 tensor, the tokens added by the
        top-up over all rows.
    """
    rows, num = scores.shape
    device = scores.device
    order = torch.argsort(scores, dim=1, descending=True, stable=True)  # [L, n]
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(num, device=device).expand(rows, -1)
    )  # [L, n] 0 = best score
    num_top = int(top_share * budget)
    top = rank < num_top
    occupancy = torch.zeros(rows, num, dtype=torch.int64, device=device).scatter_add_(
        1, buckets, top.long()
    )  # [L, buckets]
    # Phase 2: the rank of each remaining token inside its bucket, by descending score.
    key = torch.where(top, num * num, buckets * num + rank)  # bucket-major, score within
    by_bucket = torch.argsort(key, dim=1)  # [L, n]
    bucket_sorted = key.gather(1, by_bucket) // num
    first = torch.searchsorted(bucket_sorted, bucket_sorted, side='left')
    within = torch.arange(num, device=device) - first  # [L, n] rank inside its bucket
    room = capacity - occupancy.gather(1, bucket_sorted.clamp(max=num - 1))
    qualifies = torch.zeros_like(top).scatter_(1, by_bucket, within < room) & ~top
    final = torch.where(top, rank - num, torch.where(qualifies, rank, rank + num))
    keep = torch.topk(final, budget, dim=1, largest=False).indices
    topped_up = (final.gather(1, keep) >= num).sum()
    return keep.sort(dim=1).values, topped_up

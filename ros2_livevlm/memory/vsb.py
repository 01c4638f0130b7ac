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
) -> tuple[torch.Tensor, int]:
    """
    Keep exactly ``budget`` candidates: saliency first, then bucket coverage (spec A.4 step 5).

    Phase 1 keeps the ``floor(top_share * budget)`` highest scores regardless of bucket
    capacity (ambiguity 1: the reading under which the top-score share is a real knob;
    with ``capacity=1`` the other reading collapses both phases into one). Phase 2 goes on
    by descending score, keeping a token only while its bucket has room. Phase 2 equals
    the greedy loop of the spec: in each bucket the best ``capacity - occupancy`` remaining
    tokens qualify, and the best of those qualify first overall.
    Overfull buckets from phase 1 can leave phase 2 short of the budget (ambiguity 2): we
    top up with the best remaining scores, ignoring capacity, so the budget is always met
    exactly; the number of tokens topped up is returned so callers can log it.

    Args:
        scores: ``[n]`` float32 importance of each candidate (``n > budget``).
        buckets: ``[n]`` int64 bucket of each candidate (:func:`bucket_ids`).
        budget: M, tokens to keep.
        top_share: R in [0, 1].
        capacity: B, tokens per bucket.

    Returns:
        ``(keep, topped_up)``: ``keep`` ``[budget]`` int64 candidate indices in ascending
        (temporal) order; ``topped_up`` the tokens added by the top-up.
    """
    num = scores.numel()
    order = torch.argsort(scores, descending=True, stable=True)
    num_top = int(top_share * budget)
    kept = torch.zeros(num, dtype=torch.bool, device=scores.device)
    kept[order[:num_top]] = True
    num_buckets = int(buckets.max().item()) + 1 if num else 0
    occupancy = torch.bincount(buckets[kept], minlength=num_buckets)
    # Phase 2: rank each remaining token within its bucket by descending score.
    rest = order[num_top:]
    by_bucket = rest[torch.argsort(buckets[rest], stable=True)]  # bucket-major, score-desc within
    bucket_of = buckets[by_bucket]
    first = torch.searchsorted(bucket_of, bucket_of, side='left')
    rank = torch.arange(by_bucket.numel(), device=scores.device) - first
    eligible = by_bucket[rank < (capacity - occupancy[bucket_of])]
    eligible = eligible[torch.argsort(scores[eligible], descending=True, stable=True)]
    kept[eligible[: budget - num_top]] = True
    topped_up = budget - int(kept.sum().item())
    if topped_up > 0:
        remaining = order[~kept[order]]
        kept[remaining[:topped_up]] = True
    return kept.nonzero().squeeze(1), topped_up

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Position-agnostic page Retrieval, PaR (LiveVLM v2, arXiv 2505.15269v2; spec A.4 step 6).

At answer time each layer splits its long-term keys, in temporal order, into pages of
``C`` tokens, represents a page by the mean of its keys *without RoPE* (after token-level
eviction, rotated keys of a page point in position-dependent directions and their mean is
noise; LiveVLM Table 1), scores the pages with that layer's question queries (also without
RoPE), and keeps the top ``retrieval_ratio`` of them, re-sorted by time.
"""

from __future__ import annotations

import math

import torch


def page_keys(k: torch.Tensor, page_size: int) -> torch.Tensor:
    """
    Mean key of each page, in float32 (spec A.4 step 6.3; spec C.5: sums in fp32).

    Args:
        k: long-term keys of one layer, ``[G, n, d]``, in temporal order.
        page_size: C; the last page may be shorter and is averaged over its own tokens.

    Returns:
        ``[G, P, d]`` float32 with ``P = ceil(n / C)``.
    """
    num_kv_heads, num_tokens, head_dim = k.shape
    num_pages = math.ceil(num_tokens / page_size)
    padded = torch.zeros(
        num_kv_heads, num_pages * page_size, head_dim, dtype=torch.float32, device=k.device
    )
    padded[:, :num_tokens] = k.float()
    sums = padded.view(num_kv_heads, num_pages, page_size, head_dim).sum(dim=2)  # [G, P, d]
    counts = torch.full((num_pages,), page_size, dtype=torch.float32, device=k.device)
    counts[-1] = num_tokens - (num_pages - 1) * page_size
    return sums / counts[None, :, None]


def page_scores(
    q: torch.Tensor, pages: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Pooled attention of the question queries over pages (spec A.4 step 6.4).

    ``softmax(q K̄ᵀ / sqrt(d))`` over the (allowed) pages, per query head and question token,
    then the mean over heads and tokens: the same pooling VSB uses. Ranks pages within one
    layer only (spec C.5).

    Args:
        q: question queries, ``[H, n_q, d]``.
        pages: page keys, ``[G, P, d]`` (:func:`page_keys`).
        allowed: optional ``[P]`` bool; disallowed pages get score 0.

    Returns:
        ``[P]`` float32 scores.
    """
    num_heads, _, head_dim = q.shape
    group = num_heads // pages.shape[0]
    keys = pages.repeat_interleave(group, dim=0)  # [H, P, d]
    logits = (q.float() @ keys.transpose(1, 2)) / math.sqrt(head_dim)  # [H, n_q, P]
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float('-inf'))
    return logits.softmax(dim=-1).nan_to_num_(0.0).mean(dim=(0, 1))


def select_pages(
    scores: torch.Tensor, ratio: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """
    Select the top ``ceil(ratio * P_allowed)`` pages, in temporal order (spec A.4 step 6.5).

    Args:
        scores: ``[P]`` page scores.
        ratio: retrieval ratio in (0, 1].
        allowed: optional ``[P]`` bool mask of pages that may be retrieved.

    Returns:
        ``[k]`` int64 page indices, ascending.
    """
    if allowed is None:
        allowed = torch.ones_like(scores, dtype=torch.bool)
    candidates = allowed.nonzero().squeeze(1)
    num_keep = math.ceil(ratio * candidates.numel())
    best = torch.topk(scores[candidates], num_keep).indices
    return candidates[best].sort().values

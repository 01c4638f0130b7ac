"""Reference attention over a memory context (torch); the oracle for compiled kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention of new tokens over ``[context | new tokens]``, causal.

    The last ``T`` keys belong to the queries themselves (causal among them); all earlier
    keys are context every query sees. ``softmax(q kᵀ / sqrt(d)) v``.

    Args:
        q: queries after RoPE, ``[H, T, d]``.
        k: keys after RoPE, ``[G, S, d]`` with ``S >= T`` and ``H % G == 0``.
        v: values, ``[G, S, d]``.

    Returns:
        ``[H, T, d]`` in ``q``'s dtype.
    """
    num_queries, num_keys = q.shape[1], k.shape[1]
    mask = None
    if num_queries > 1:
        offset = num_keys - num_queries
        rows = torch.arange(num_queries, device=q.device)[:, None]
        cols = torch.arange(num_keys, device=q.device)[None, :]
        mask = cols <= rows + offset  # [T, S], True = attend
    return F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask, enable_gqa=True)[0]

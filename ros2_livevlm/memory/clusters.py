# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
ClusterKV: recall by semantic clusters of keys (arXiv 2412.03213; spec Part B).

Per layer and KV head, the long-term keys are grouped by cosine k-means; a question scores
the centroids with its queries (per query head, inner product, spec B.2 decode step 1),
takes whole clusters by descending score until a token budget is met, truncating the last
one (step 2), and attends to the selected tokens in time order.

Streaming adaptation: the paper clusters a prompt once (``C0 = L / 80``) and appends
``C+`` clusters per ``m`` generated tokens. Here every clip's tokens are clustered on
their own as they enter the long-term segment (``ceil(m / cluster_tokens)`` clusters for
``m`` new tokens, the paper's incremental scheme), never re-clustered over the whole
memory. When a policy evicts tokens (VSB), each cluster's centroid becomes the mean of its
surviving keys and clusters left empty are dropped.

Tensors per layer ``L``, KV head ``G``, head dim ``d``, ``C`` clusters (padded to the
most in any (layer, head); a padded or empty cluster has size 0 and is never selected):

=================  ===============  =============================================
``label``          ``[L, G, n]``     cluster of each memory token, -1 = none
``centroids``      ``[L, G, C, d]``  float32 mean key of each cluster
``cluster_size``   ``[L, G, C]``     int64 tokens in each cluster
=================  ===============  =============================================
"""

from __future__ import annotations

import math

import torch

KMEANS_ITERATIONS = 20
"""Assignment/update rounds, then one final assignment (ClusterKV code: ``niter = 20``)."""

EPS = 1e-8
"""Added to norms before the cosine (ClusterKV code)."""


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return x / (x.norm(dim=-1, keepdim=True) + EPS)


def cosine_kmeans(
    keys: torch.Tensor, num_clusters: int, iterations: int = KMEANS_ITERATIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Cosine k-means of each row of keys (spec B.2 prefill step 3), batched.

    Assignment by the largest cosine to a centroid; a centroid is the arithmetic mean of
    its cluster's *unnormalized* keys; an empty cluster keeps its centroid. Initial
    centroids: the first key, then greedily the key least similar to those chosen
    (farthest-point, a deterministic k-means++; the ClusterKV code samples keys at random,
    with replacement, which can start two centroids in one cluster). Computed in float32.

    Args:
        keys: ``[B, m, d]`` (B = layers x KV heads), ``m >= num_clusters``.
        num_clusters: k.
        iterations: update rounds.

    Returns:
        ``(centroids [B, k, d] float32, labels [B, m] int64)``.
    """
    x = keys.float()
    batch, num, dim = x.shape
    unit = _normalized(x)
    rows = torch.arange(batch, device=x.device)
    chosen = [torch.zeros(batch, dtype=torch.int64, device=x.device)]
    closest = (unit * unit[:, :1]).sum(dim=-1)  # [B, m] cosine to the nearest chosen key
    for _ in range(num_clusters - 1):
        chosen.append(closest.argmin(dim=1))
        closest = torch.maximum(closest, (unit * unit[rows, chosen[-1]][:, None]).sum(dim=-1))
    centroids = x[rows[:, None], torch.stack(chosen, dim=1)]  # [B, k, d]
    for _ in range(iterations):
        labels = (unit @ _normalized(centroids).transpose(1, 2)).argmax(dim=-1)  # [B, m]
        sums = torch.zeros_like(centroids).scatter_add_(
            1, labels[..., None].expand(-1, -1, dim), x
        )
        counts = torch.zeros(batch, num_clusters, device=x.device).scatter_add_(
            1, labels, torch.ones_like(labels, dtype=x.dtype)
        )
        centroids = torch.where(counts[..., None] > 0, sums / counts.clamp(min=1)[..., None],
                                centroids)
    labels = (unit @ _normalized(centroids).transpose(1, 2)).argmax(dim=-1)
    return centroids, labels


def num_new_clusters(num_tokens: int, cluster_tokens: int) -> int:
    """Clusters for ``num_tokens`` new tokens: ``ceil(num_tokens / cluster_tokens)``."""
    return math.ceil(num_tokens / cluster_tokens)


def cluster_stats(
    keys: torch.Tensor, label: torch.Tensor, num_clusters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Mean key and size of every cluster from its members.

    Args:
        keys: ``[L, G, n, d]`` (before or after RoPE, as clustered).
        label: ``[L, G, n]`` int64 cluster of each token, -1 = none.
        num_clusters: C.

    Returns:
        ``(sums / sizes [L, G, C, d] float32 (0 where empty), sizes [L, G, C] int64)``.
    """
    num_layers, num_kv_heads, _, dim = keys.shape
    member = label >= 0
    index = label.clamp(min=0)
    sizes = torch.zeros(num_layers, num_kv_heads, num_clusters, dtype=torch.int64,
                        device=keys.device).scatter_add_(2, index, member.long())
    sums = torch.zeros(num_layers, num_kv_heads, num_clusters, dim, device=keys.device)
    sums.scatter_add_(2, index[..., None].expand(-1, -1, -1, dim),
                      keys.float() * member[..., None])
    return sums / sizes.clamp(min=1)[..., None], sizes


def drop_empty(
    label: torch.Tensor, centroids: torch.Tensor, sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Renumber the clusters of each (layer, head) so live ones come first; trim dead columns.

    Returns ``(label, centroids, sizes)`` with ``C'`` = the most live clusters of any
    (layer, head); the one host read is that count, once per commit.
    """
    alive = sizes > 0  # [L, G, C]
    order = torch.argsort((~alive).to(torch.int8), dim=2, stable=True)  # live first
    new_id = torch.empty_like(order).scatter_(
        2, order, torch.arange(order.shape[2], device=order.device).expand_as(order)
    )
    kept = int(alive.sum(dim=2).max()) if alive.numel() else 0
    order = order[..., :kept]
    centroids = centroids.gather(2, order[..., None].expand(-1, -1, -1, centroids.shape[-1]))
    sizes = sizes.gather(2, order)
    label = torch.where(label >= 0, new_id.gather(2, label.clamp(min=0)), label)
    return label, centroids, sizes


def select_clusters(
    q: torch.Tensor, centroids: torch.Tensor, sizes: torch.Tensor, label: torch.Tensor,
    budget: int,
) -> torch.Tensor:
    """
    Tokens of the best clusters per query head, exactly ``budget`` of them (spec B.2 decode).

    Each query head scores its KV head's centroids by the inner product with its mean
    question query (no scaling, no softmax: the attention logit), takes clusters in
    descending score while the cumulative size stays within the budget and truncates the
    last one (its earliest tokens first).

    Args:
        q: question queries ``[H, n_q, d]`` (before RoPE, or after, as the keys were).
        centroids: ``[G, C, d]`` of one layer.
        sizes: ``[G, C]`` int64; size 0 = never selected.
        label: ``[G, n]`` int64 cluster of each long-term token.
        budget: B tokens per query head, ``<= n``.

    Returns:
        ``[H, B]`` int64 long-term token indices, ascending per head.
    """
    num_heads = q.shape[0]
    group = num_heads // centroids.shape[0]
    num = label.shape[1]
    scores = torch.einsum('hd,hcd->hc', q.float().mean(dim=1),
                          centroids.repeat_interleave(group, dim=0))  # [H, C]
    scores = scores.masked_fill(sizes.repeat_interleave(group, dim=0) == 0, float('-inf'))
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=q.device).expand_as(order)
    )  # [H, C] 0 = best cluster
    token_rank = rank.gather(1, label.repeat_interleave(group, dim=0))  # [H, n]
    key = token_rank * num + torch.arange(num, device=q.device)  # cluster rank, then time
    chosen = torch.topk(key, budget, dim=1, largest=False).indices
    return chosen.sort(dim=1).values

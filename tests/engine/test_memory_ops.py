# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the memory's building blocks: RoPE, attention, VSB scores and selection, PaR."""

from __future__ import annotations

import math

import pytest
from ros2_livevlm.memory.attention import attention
from ros2_livevlm.memory.clusters import cluster_stats
from ros2_livevlm.memory.clusters import cosine_kmeans
from ros2_livevlm.memory.clusters import drop_empty
from ros2_livevlm.memory.clusters import select_clusters
from ros2_livevlm.memory.par import page_keys
from ros2_livevlm.memory.par import page_scores
from ros2_livevlm.memory.par import select_pages
from ros2_livevlm.memory.rope import Rope
from ros2_livevlm.memory.vsb import bucket_ids
from ros2_livevlm.memory.vsb import bucketed_select
from ros2_livevlm.memory.vsb import vsb_scores
import torch


def make_rope(head_dim: int = 16, theta: float = 1e6, scaling: float = 1.0) -> Rope:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    return Rope(inv_freq, scaling)


@pytest.mark.parametrize('scaling', [1.0, 1.3])
def test_rope_invert_undoes_apply(scaling: float) -> None:
    rope = make_rope(scaling=scaling)
    k = torch.randn(2, 50, 16)
    positions = torch.randint(0, 40_000, (50,))
    torch.testing.assert_close(
        rope.invert(rope.apply(k, positions), positions), k, atol=1e-5, rtol=1e-5
    )


def test_rope_dot_product_depends_only_on_relative_position() -> None:
    rope = make_rope()
    q, k = torch.randn(1, 1, 16), torch.randn(1, 1, 16)
    a = (rope.apply(q, torch.tensor([107])) * rope.apply(k, torch.tensor([100]))).sum()
    b = (rope.apply(q, torch.tensor([7])) * rope.apply(k, torch.tensor([0]))).sum()
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    num_q, num_k = q.shape[1], k.shape[1]
    logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    mask = torch.arange(num_k)[None, :] > torch.arange(num_q)[:, None] + (num_k - num_q)
    return logits.masked_fill(mask, float('-inf')).softmax(-1) @ v


@pytest.mark.parametrize('num_queries', [1, 7])
def test_attention_matches_naive_gqa_causal(num_queries: int) -> None:
    q, k, v = torch.randn(4, num_queries, 16), torch.randn(2, 30, 16), torch.randn(2, 30, 16)
    torch.testing.assert_close(attention(q, k, v), naive_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_vsb_scores_equal_mean_of_full_softmax() -> None:
    q_obs, k = torch.randn(4, 5, 16), torch.randn(2, 40, 16)
    group = 2
    logits = q_obs @ k.repeat_interleave(group, 0).transpose(1, 2) / 4.0  # [H, r, S]
    mask = torch.arange(40)[None, :] > torch.arange(5)[:, None] + 35
    expected = logits.masked_fill(mask, float('-inf')).softmax(-1).mean(dim=(0, 1))
    scores = vsb_scores(q_obs, k)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)
    assert scores[-4:].gt(0).all() and scores.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert vsb_scores(q_obs.half(), k.half()).dtype == torch.float32


def test_bucketed_select_with_full_top_share_is_top_k() -> None:
    scores = torch.rand(1, 500)
    buckets = bucket_ids(torch.arange(500), 100, (0, 500))[None]
    keep, topped_up = bucketed_select(scores, buckets, budget=100, top_share=1.0, capacity=1)
    assert torch.equal(keep[0], torch.topk(scores[0], 100).indices.sort().values)
    assert topped_up.item() == 0


def test_bucketed_select_covers_time_and_keeps_exact_budget() -> None:
    # All the salient tokens sit in the first tenth of the candidates.
    scores = torch.rand(1000) * 0.01
    scores[:100] += 1.0
    buckets = bucket_ids(torch.arange(1000), 200, (0, 1000))
    keep, topped_up = bucketed_select(scores[None], buckets[None], budget=200, top_share=0.5,
                                      capacity=1)
    keep = keep[0]
    assert keep.numel() == 200 and torch.equal(keep, keep.sort().values)
    assert set(torch.topk(scores, 100).indices.tolist()) <= set(keep.tolist())  # phase 1: saliency
    later_buckets = set(buckets[keep[keep >= 100]].tolist())
    assert len(later_buckets) == 100  # phase 2: one token in every later bucket (capacity 1)
    assert topped_up.item() == 0


def test_bucketed_select_tops_up_when_buckets_run_dry() -> None:
    # Phase 1 puts both of its tokens in bucket 0 and bucket 2 holds no candidate (possible
    # with stream-position buckets), so phase 2 reaches only 4 of the 5 budget slots.
    scores = torch.tensor([[9.0, 8.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    buckets = torch.tensor([[0, 0, 0, 0, 1, 1, 3, 3]])
    keep, topped_up = bucketed_select(scores, buckets, budget=4, top_share=0.5, capacity=1)
    assert keep.tolist() == [[0, 1, 5, 7]] and topped_up.item() == 0  # best of buckets 1, 3
    keep, topped_up = bucketed_select(scores, buckets, budget=5, top_share=0.5, capacity=1)
    assert keep.tolist() == [[0, 1, 5, 6, 7]] and topped_up.item() == 1  # the top-up


def test_bucketed_select_rows_are_independent_layers() -> None:
    torch.manual_seed(3)
    scores = torch.rand(3, 300)
    buckets = torch.sort(torch.randint(0, 40, (3, 300)), dim=1).values  # stream buckets
    keep, topped_up = bucketed_select(scores, buckets, budget=60, top_share=0.3, capacity=2)
    rows = [bucketed_select(scores[i:i + 1], buckets[i:i + 1], 60, 0.3, 2) for i in range(3)]
    assert torch.equal(keep, torch.cat([row for row, _ in rows]))
    assert topped_up.item() == sum(count.item() for _, count in rows)


def planted_keys(num_clusters: int, per_cluster: int, dim: int = 16, seed: int = 0):
    """Keys around ``num_clusters`` random directions, interleaved in time: keys, truth."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_clusters, dim, generator=generator)
    truth = torch.randperm(num_clusters * per_cluster, generator=generator) % num_clusters
    scale = 1.0 + torch.rand(truth.numel(), 1, generator=generator)  # norms vary: cosine
    keys = centres[truth] * scale + 0.05 * torch.randn(truth.numel(), dim, generator=generator)
    return keys, truth


def test_cosine_kmeans_recovers_planted_clusters() -> None:
    keys, truth = planted_keys(num_clusters=6, per_cluster=30)
    centroids, labels = cosine_kmeans(keys[None], 6)
    assert centroids.shape == (1, 6, 16) and labels.shape == (1, 180)
    pairs = set(zip(truth.tolist(), labels[0].tolist()))
    assert len(pairs) == 6  # the same partition, up to renumbering


def reference_cluster_selection(q, centroids, sizes, label, budget):
    """Brute force (spec B.2 decode step 2): per head, whole clusters by score, then truncate."""
    group = q.shape[0] // centroids.shape[0]
    chosen = []
    for head in range(q.shape[0]):
        kv = head // group
        scores = [(float(q[head].mean(0) @ centroids[kv, c]), c)
                  for c in range(centroids.shape[1]) if sizes[kv, c] > 0]
        tokens: list[int] = []
        for _, c in sorted(scores, key=lambda sc: -sc[0]):
            members = (label[kv] == c).nonzero().flatten().tolist()  # in time order
            tokens += members[: budget - len(tokens)]
            if len(tokens) == budget:
                break
        chosen.append(sorted(tokens))
    return torch.tensor(chosen)


@pytest.mark.parametrize('budget', [1, 45, 100, 180])
def test_cluster_selection_equals_brute_force_on_planted_clusters(budget: int) -> None:
    keys, _ = planted_keys(num_clusters=6, per_cluster=30)
    other, _ = planted_keys(num_clusters=6, per_cluster=30, seed=1)
    centroids, labels = cosine_kmeans(torch.stack((keys, other)), 8)  # G = 2 KV heads
    centroids, sizes = cluster_stats(torch.stack((keys, other))[None], labels[None], 8)
    label, centroids, sizes = drop_empty(labels[None], centroids, sizes)
    q = torch.randn(4, 3, 16)  # H = 4 query heads, 3 question tokens
    got = select_clusters(q, centroids[0], sizes[0], label[0], budget)
    assert got.shape == (4, budget)
    assert torch.equal(got, reference_cluster_selection(q, centroids[0], sizes[0], label[0],
                                                        budget))


def test_cluster_stats_and_dropping_empty_clusters() -> None:
    keys = torch.tensor([[[[1.0], [3.0], [5.0], [7.0]]]])  # [L=1, G=1, n=4, d=1]
    label = torch.tensor([[[2, 2, 0, -1]]])
    centroids, sizes = cluster_stats(keys, label, 3)
    assert centroids[0, 0, :, 0].tolist() == [5.0, 0.0, 2.0] and sizes.tolist() == [[[1, 0, 2]]]
    label, centroids, sizes = drop_empty(label, centroids, sizes)
    assert label.tolist() == [[[1, 1, 0, -1]]] and sizes.tolist() == [[[1, 2]]]
    assert centroids[0, 0, :, 0].tolist() == [5.0, 2.0]


def test_page_keys_average_full_and_partial_pages() -> None:
    k = torch.arange(2 * 5 * 1, dtype=torch.float32).view(2, 5, 1)
    pages = page_keys(k, page_size=2)
    assert pages.shape == (2, 3, 1)
    assert pages[0, :, 0].tolist() == [0.5, 2.5, 4.0]


def test_planted_page_is_retrieved() -> None:
    torch.manual_seed(0)
    q = torch.randn(4, 6, 16)  # [H, n_q, d]
    k = torch.randn(2, 160, 16) * 0.1  # 10 pages of 16
    k[:, 96:112] = q.mean(dim=(0, 1)) * 3.0  # page 6 aligned with the question
    scores = page_scores(q, page_keys(k, 16))
    assert int(scores.argmax()) == 6
    assert 6 in select_pages(scores, 0.2).tolist()


def test_select_pages_ratio_time_order_and_mask() -> None:
    scores = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 0.7])
    assert select_pages(scores, 0.5).tolist() == [1, 3, 5]
    assert select_pages(scores, 1.0).tolist() == list(range(6))
    allowed = torch.tensor([True, False, True, False, True, False])
    assert select_pages(scores, 0.4, allowed).tolist() == [2, 4]
    masked = page_scores(torch.randn(2, 3, 4), torch.randn(1, 6, 4), allowed)
    assert masked[~allowed].eq(0).all() and masked.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_rope_table_lookup_equals_direct_computation() -> None:
    rope = make_rope(scaling=1.1)
    small = torch.tensor([0, 5, 3000, 17])
    large = torch.tensor([5, Rope.TABLE_POSITIONS + 10])
    for positions in (small, large, torch.tensor([40])):
        cos, sin = rope.cos_sin(positions)
        ref_cos, ref_sin = rope._compute(positions)
        assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)

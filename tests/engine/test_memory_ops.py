# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the memory's building blocks: RoPE, attention, VSB scores and selection, PaR."""

from __future__ import annotations

import math

import pytest
from ros2_livevlm.memory.attention import attention
from ros2_livevlm.memory.par import page_keys
from ros2_livevlm.memory.par import page_scores
from ros2_livevlm.memory.par import page_spans
from ros2_livevlm.memory.par import page_tokens
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
    scores = torch.rand(500)
    buckets = bucket_ids(torch.arange(500), 100, (0, 500))
    keep, topped_up = bucketed_select(scores, buckets, budget=100, top_share=1.0, capacity=1)
    assert torch.equal(keep, torch.topk(scores, 100).indices.sort().values)
    assert topped_up == 0


def test_bucketed_select_covers_time_and_keeps_exact_budget() -> None:
    # All the salient tokens sit in the first tenth of the candidates.
    scores = torch.rand(1000) * 0.01
    scores[:100] += 1.0
    buckets = bucket_ids(torch.arange(1000), 200, (0, 1000))
    keep, topped_up = bucketed_select(scores, buckets, budget=200, top_share=0.5, capacity=1)
    assert keep.numel() == 200 and torch.equal(keep, keep.sort().values)
    assert set(torch.topk(scores, 100).indices.tolist()) <= set(keep.tolist())  # phase 1: saliency
    later_buckets = set(buckets[keep[keep >= 100]].tolist())
    assert len(later_buckets) == 100  # phase 2: one token in every later bucket (capacity 1)
    assert topped_up == 0


def test_bucketed_select_tops_up_when_buckets_run_dry() -> None:
    # Phase 1 puts both of its tokens in bucket 0 and bucket 2 holds no candidate (possible
    # with stream-position buckets), so phase 2 reaches only 4 of the 5 budget slots.
    scores = torch.tensor([9.0, 8.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    buckets = torch.tensor([0, 0, 0, 0, 1, 1, 3, 3])
    keep, topped_up = bucketed_select(scores, buckets, budget=4, top_share=0.5, capacity=1)
    assert keep.tolist() == [0, 1, 5, 7] and topped_up == 0  # the best of buckets 1 and 3
    keep, topped_up = bucketed_select(scores, buckets, budget=5, top_share=0.5, capacity=1)
    assert keep.tolist() == [0, 1, 5, 6, 7] and topped_up == 1  # the top-up meets the budget


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


def test_page_spans_and_tokens() -> None:
    stamps = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    first, last = page_spans(stamps, 2)
    assert first.tolist() == [0.0, 0.2, 0.4] and last.tolist() == [0.1, 0.3, 0.4]
    assert page_tokens(torch.tensor([0, 2]), 2, 5).tolist() == [0, 1, 4]


def test_rope_table_lookup_equals_direct_computation() -> None:
    rope = make_rope(scaling=1.1)
    small = torch.tensor([0, 5, 3000, 17])
    large = torch.tensor([5, Rope.TABLE_POSITIONS + 10])
    for positions in (small, large, torch.tensor([40])):
        cos, sin = rope.cos_sin(positions)
        ref_cos, ref_sin = rope._compute(positions)
        assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)

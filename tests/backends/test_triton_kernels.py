# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Triton kernels against their torch references, in Triton's CPU interpreter.

float32 and float16 only: the interpreter's bfloat16 matrix products are wrong. Shapes are
odd on purpose (lengths that are not multiples of the 64-wide tiles, head dims that are
not powers of two, GQA groups 1, 2 and 7, masked pages, short pages) and small: every
program runs in numpy.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys


# Triton reads it when the kernels are defined, so before importing them
os.environ['TRITON_INTERPRET'] = '1'

import pytest  # noqa: E402
from ros2_livevlm.backends import triton_attention  # noqa: E402
from ros2_livevlm.backends import triton_scores  # noqa: E402
from ros2_livevlm.memory.attention import paged_attention  # noqa: E402
from ros2_livevlm.memory.attention import PagedKV  # noqa: E402
from ros2_livevlm.memory.par import page_keys  # noqa: E402
from ros2_livevlm.memory.par import page_scores  # noqa: E402
from ros2_livevlm.memory.rope import Rope  # noqa: E402
from ros2_livevlm.memory.vsb import vsb_scores  # noqa: E402
import torch  # noqa: E402


DTYPES = [torch.float32, torch.float16]
# (H, G, d): GQA groups 1, 2 and 7; a head dim that is not a power of two.
HEADS = [(3, 3, 16), (4, 2, 32), (14, 2, 24)]


def make_rope(head_dim: int, scaling: float = 1.0) -> Rope:
    return Rope(
        1.0 / 1e6 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim), scaling
    )


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('heads', HEADS, ids=lambda h: f'H{h[0]}G{h[1]}d{h[2]}')
@pytest.mark.parametrize('num_obs, num_keys', [(5, 40), (70, 131)])
def test_vsb_scores_match_reference(
    dtype: torch.dtype, heads: tuple[int, int, int], num_obs: int, num_keys: int
) -> None:
    num_heads, num_kv_heads, head_dim = heads
    torch.manual_seed(num_heads * num_keys)
    q = (torch.randn(num_heads, num_obs, head_dim) * 2).to(dtype)  # peaked softmax rows
    k = torch.randn(num_kv_heads, num_keys, head_dim).to(dtype)
    scores = triton_scores.vsb_scores(q, k)
    assert scores.dtype == torch.float32 and scores.shape == (num_keys,)
    torch.testing.assert_close(scores, vsb_scores(q, k), atol=1e-6, rtol=1e-4)
    assert scores.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize('q_dtype', DTYPES, ids=str)
@pytest.mark.parametrize('heads', HEADS, ids=lambda h: f'H{h[0]}G{h[1]}d{h[2]}')
def test_page_scores_match_reference_with_masks(
    q_dtype: torch.dtype, heads: tuple[int, int, int]
) -> None:
    num_heads, num_kv_heads, head_dim = heads
    torch.manual_seed(num_heads)
    q = torch.randn(num_heads, 9, head_dim).to(q_dtype)
    pages = page_keys(
        torch.randn(num_kv_heads, 1203, head_dim) * 3, page_size=16
    )  # [G, 76, d], last page short
    allowed = torch.rand(pages.shape[1]) > 0.4
    for mask in (None, allowed, torch.zeros_like(allowed)):
        scores = triton_scores.page_scores(q, pages, mask)
        torch.testing.assert_close(scores, page_scores(q, pages, mask), atol=1e-6, rtol=1e-4)
    assert triton_scores.page_scores(q, pages, allowed)[~allowed].eq(0).all()


def test_score_kernels_reject_what_they_cannot_take() -> None:
    q, k = torch.randn(4, 5, 16), torch.randn(2, 40, 16)
    with pytest.raises(ValueError, match='H % G'):
        triton_scores.vsb_scores(q, torch.randn(3, 40, 16))
    with pytest.raises(ValueError, match='contiguous'):
        triton_scores.vsb_scores(torch.randn(4, 16, 5).transpose(1, 2), k)
    with pytest.raises(ValueError, match='dtype'):
        triton_scores.vsb_scores(q.double(), k)
    with pytest.raises(ValueError, match='allowed'):
        triton_scores.page_scores(q, k, torch.ones(39, dtype=torch.bool))


def test_page_table_cuts_runs_into_pages() -> None:
    index = torch.tensor([0, 1, 2, 3, 4, *range(10, 12), *range(20, 40)])
    k = torch.zeros(1, 40, 2)
    table = PagedKV.from_index(k, k, torch.arange(40), index, page_size=8)
    assert table.starts.tolist() == [0, 10, 20, 28, 36] and table.lengths.tolist() == [
        5,
        2,
        8,
        8,
        4,
    ]
    assert table.num_tokens == 27 and torch.equal(table.token_index(), index)
    empty = PagedKV.from_index(k, k, torch.arange(40), index[:0], page_size=8)
    assert empty.starts.numel() == 0 and empty.token_index().numel() == 0


def paged_case(
    heads: tuple[int, int, int],
    dtype: torch.dtype,
    *,
    num_queries: int,
    page_size: int,
    seed: int,
    keep: float = 0.7,
) -> tuple[torch.Tensor, PagedKV, torch.Tensor, torch.Tensor]:
    """
    Make a paged memory of 203 tokens and a tail of prompt tokens.

    About ``keep`` of the tokens are attended (runs with gaps), with positions like an
    original-position stream (increasing, with gaps).
    """
    num_heads, num_kv_heads, head_dim = heads
    torch.manual_seed(seed)
    k = torch.randn(num_kv_heads, 203, head_dim).to(dtype)
    v = torch.randn(num_kv_heads, 203, head_dim).to(dtype)
    index = (torch.rand(203) < keep).nonzero().squeeze(1)
    positions = torch.zeros(203, dtype=torch.int64)
    positions[index] = torch.randint(1, 40, (index.numel(),)).cumsum(0)
    context = PagedKV.from_index(k, v, positions, index, page_size)
    num_tail = num_queries + 4
    k_tail = torch.randn(num_kv_heads, num_tail, head_dim).to(dtype)
    v_tail = torch.randn(num_kv_heads, num_tail, head_dim).to(dtype)
    return torch.randn(num_heads, num_queries, head_dim).to(dtype), context, k_tail, v_tail


@pytest.mark.parametrize('dtype', DTYPES, ids=str)
@pytest.mark.parametrize('heads', HEADS, ids=lambda h: f'H{h[0]}G{h[1]}d{h[2]}')
@pytest.mark.parametrize(
    'num_queries, page_size, num_splits',
    [(1, 16, None), (1, 5, 3), (6, 16, 2)],
    ids=['decode', 'short-pages-split', 'prompt'],
)
def test_paged_attention_matches_reference(
    dtype: torch.dtype,
    heads: tuple[int, int, int],
    num_queries: int,
    page_size: int,
    num_splits: int | None,
) -> None:
    q, context, k_tail, v_tail = paged_case(
        heads, dtype, num_queries=num_queries, page_size=page_size, seed=heads[0]
    )
    rope = make_rope(heads[2], scaling=1.2)
    out = triton_attention.paged_attention(q, context, k_tail, v_tail, rope, num_splits=num_splits)
    assert out.dtype == dtype and out.shape == q.shape
    expected = paged_attention(q, context, k_tail, v_tail, rope)
    # float16: the reference rotates keys in float16 arithmetic, the kernel in float32
    tolerance = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(out, expected, atol=tolerance, rtol=tolerance)


def test_paged_attention_with_nothing_paged_is_attention_over_the_tail() -> None:
    q, context, k_tail, v_tail = paged_case(
        (4, 2, 16), torch.float32, num_queries=3, page_size=16, seed=1, keep=0.0
    )
    assert context.starts.numel() == 0
    out = triton_attention.paged_attention(q, context, k_tail, v_tail, make_rope(16))
    torch.testing.assert_close(
        out, paged_attention(q, context, k_tail, v_tail, make_rope(16)), atol=1e-5, rtol=1e-5
    )


def test_paged_attention_rejects_what_it_cannot_take() -> None:
    q, context, k_tail, v_tail = paged_case(
        (4, 2, 16), torch.float32, num_queries=1, page_size=16, seed=2
    )
    rope = make_rope(16)
    with pytest.raises(ValueError, match='dtype'):
        triton_attention.paged_attention(q.half(), context, k_tail, v_tail, rope)
    with pytest.raises(ValueError, match='T_tail'):
        triton_attention.paged_attention(q, context, k_tail[:, :0], v_tail[:, :0], rope)
    with pytest.raises(ValueError, match='contiguous'):
        triton_attention.paged_attention(
            q, context, k_tail.transpose(1, 2).contiguous().transpose(1, 2), v_tail, rope
        )


def test_kernels_compile_for_orin_and_hopper(tmp_path: Path) -> None:
    """
    Triton's compiler (not the interpreter) builds every kernel down to a cubin.

    For sm_87 (Jetson Orin) and sm_90 (H100/H200); no GPU needed
    (tests/backends/triton_aot.py).
    """
    here = Path(__file__).resolve()
    env = {
        **os.environ,
        'TRITON_INTERPRET': '0',
        'PYTHONPATH': str(here.parents[2]),
        'TRITON_CACHE_DIR': str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(here.parent / 'triton_aot.py'), '87', '90'],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('sm_87 ') == result.stdout.count('sm_90 ') == 8

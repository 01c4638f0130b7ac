# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Reference attention over a memory context (torch); the oracle for compiled kernels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.attention.bias import causal_lower_right
import torch.nn.functional as F

from .rope import Rope


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """
    Grouped-query attention of new tokens over ``[context | new tokens]``, causal.

    The last ``T`` keys belong to the queries themselves (causal among them); all earlier
    keys are context every query sees. ``softmax(q kᵀ / sqrt(d)) v``.

    Args:
        q: queries after RoPE, ``[H, T, d]``.
        k: keys after RoPE, ``[G, S, d]`` with ``S >= T`` and ``H % G == 0``.
        v: values, ``[G, S, d]``.

    Returns:
        ``[H, T, d]`` in ``q``'s dtype.

    The mask is torch's lower-right causal bias, not a materialised ``[T, S]`` boolean
    mask, so SDPA can dispatch to its flash / memory-efficient kernels on CUDA.
    """
    num_queries, num_keys = q.shape[1], k.shape[1]
    mask = causal_lower_right(num_queries, num_keys) if num_queries > 1 else None
    return F.scaled_dot_product_attention(
        q[None], k[None], v[None], attn_mask=mask, enable_gqa=True
    )[0]


@dataclass(frozen=True)
class PagedKV:
    """
    Keys and values of one layer, read in place through a page table (no gather, no copy).

    A page is a run of at most ``page_size`` consecutive tokens of the ``k``/``v`` buffers
    (e.g. :attr:`VideoMemory.k` ``[layer]``, a view); the attended context is the
    concatenation of the pages in table order. Keys are stored *before* RoPE and rotated
    at use by ``positions`` (spec A.4, "store keys before RoPE").

    Attributes:
        k: keys before RoPE, ``[G, n, d]``.
        v: values, ``[G, n, d]``.
        positions: RoPE position of each buffer token as attended, ``[n]`` int64 (only
            tokens inside the table are read).
        starts: first buffer token of each page, ``[P]`` int32.
        lengths: tokens in each page, ``[P]`` int32, each in ``1..page_size``.
        page_size: C, the longest page.
        num_tokens: N, tokens in the table (``lengths.sum()``).
    """

    k: torch.Tensor
    v: torch.Tensor
    positions: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    page_size: int
    num_tokens: int

    @classmethod
    def from_index(
        cls,
        k: torch.Tensor,
        v: torch.Tensor,
        positions: torch.Tensor,
        index: torch.Tensor,
        page_size: int,
    ) -> PagedKV:
        """
        Page table of the buffer tokens ``index`` ``[N]`` (ascending int64).

        Each run of consecutive indices is cut into pages of ``page_size`` tokens (the last
        page of a run may be shorter), so ``[init | retrieved pages | short-term]`` becomes
        about ``N / C`` table entries.
        """
        num = index.numel()
        new_run = torch.ones(num, dtype=torch.bool, device=index.device)
        new_run[1:] = index[1:] != index[:-1] + 1
        run_first = new_run.nonzero().squeeze(1)  # [R] where each run starts in index
        offset = (
            torch.arange(num, device=index.device) - run_first[new_run.cumsum(0) - 1]
        )  # [N] offset in its run
        page_first = (new_run | (offset % page_size == 0)).nonzero().squeeze(1)  # [P]
        lengths = torch.diff(page_first, append=torch.tensor([num], device=index.device))
        return cls(
            k,
            v,
            positions,
            index[page_first].to(torch.int32),
            lengths.to(torch.int32),
            page_size,
            num,
        )

    def token_index(self) -> torch.Tensor:
        """Buffer token indices ``[N]`` int64 of the table, in order."""
        offsets = torch.arange(self.page_size, device=self.starts.device)
        tokens = self.starts[:, None].long() + offsets[None, :]  # [P, C]
        return tokens[offsets[None, :] < self.lengths[:, None]]


def paged_attention(
    q: torch.Tensor, context: PagedKV, k_tail: torch.Tensor, v_tail: torch.Tensor, rope: Rope
) -> torch.Tensor:
    """
    Attention of new tokens over ``[paged context | tail]``: the reference of the paged kernel.

    The context is gathered through the page table and rotated by its positions, then
    :func:`attention` runs over ``[context | tail]``; the last ``T`` tail tokens are the
    queries' own (causal among them). A compiled kernel reads the pages in place instead.

    Args:
        q: queries after RoPE, ``[H, T, d]``.
        context: the memory tokens attended (keys before RoPE), :class:`PagedKV`.
        k_tail: keys after RoPE of the tokens not in the memory (prompt, answer),
            ``[G, T_tail, d]`` with ``T_tail >= T``.
        v_tail: their values, ``[G, T_tail, d]``.
        rope: the model's RoPE.

    Returns:
        ``[H, T, d]`` in ``q``'s dtype.
    """
    index = context.token_index()
    keys = torch.cat(
        (rope.apply(context.k[:, index], context.positions[index]), k_tail), dim=1
    )  # [G, N + T_tail, d]
    values = torch.cat((context.v[:, index], v_tail), dim=1)
    return attention(q, keys, values)

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
What an answer retrieves from the long-term segment, per layer: one interface, four units.

A :class:`Retriever` gets one layer's question queries (before RoPE) and returns the
long-term tokens the answer attends to in that layer, ascending (time order):

==============  ===========================================  ===================  ==========
retriever       ranks                                        by                   shape
==============  ===========================================  ===================  ==========
:class:`All`    nothing (every long-term token)              -                    -
:class:`Pages`  pages of C tokens (PaR, spec A.4 step 6)     pooled softmax over  ``[N]``
                                                             page-mean keys
:class:`Clusters`  key clusters (ClusterKV, spec B.2)        mean query .         ``[H, N]``
                                                             centroid, per head
:class:`Frames`   whole frames (ReKV, spec Part E)           mean query . mean    ``[N]``
                                                             frame key, all heads
==============  ===========================================  ===================  ==========

``[N]``: the same tokens for every KV head; ``[H, N]``: per query head. Token counts
depend only on sizes the host knows (no host synchronisation), except with a time window
(the allowed tokens are counted on the host).
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
import math

import torch

from .clusters import select_clusters
from .kernels import MemoryKernels
from .par import page_keys
from .par import select_pages
from .rope import Rope
from .store import VideoMemory
from ..config import MemoryConfig


@dataclass
class Query:
    """
    The question of one answer in one layer.

    Attributes:
        q: question queries before RoPE, ``[H, n_q, d]``.
        positions: their original RoPE positions ``[n_q]`` (after the newest video token),
            for keys ranked with positions (``retrieval_keys: positional``).
        allowed: ``[n_lt]`` bool long-term tokens inside the time window, or None.
    """

    q: torch.Tensor
    positions: torch.Tensor
    allowed: torch.Tensor | None


class Retriever(ABC):
    """The long-term tokens one layer of an answer attends to."""

    @abstractmethod
    def select(self, layer: int, query: Query) -> torch.Tensor | None:
        """Long-term token indices ``[N]`` or ``[H, N]``, ascending; None = all of them."""


class All(Retriever):
    """Every long-term token (inside the time window, if any)."""

    def __init__(self, memory: VideoMemory) -> None:
        self.memory = memory

    def select(self, layer: int, query: Query) -> torch.Tensor | None:
        if query.allowed is None:
            return None
        return query.allowed.nonzero().squeeze(1)


class Pages(Retriever):
    """
    PaR: the top ``ratio`` of the long-term pages by pooled attention of the question.

    Pages of ``C`` tokens in time order, scored by :func:`.par.page_scores` over their mean
    keys (without RoPE, or rotated by their own positions with ``positional`` keys). A
    last, partial page (fewer than C tokens: the newest long-term tokens, next to the
    short-term window) is always retrieved and counts as one of the ``ceil(ratio * P)``
    pages, so the token count is known without a host synchronisation.
    """

    def __init__(self, memory: VideoMemory, rope: Rope, config: MemoryConfig,
                 kernels: MemoryKernels, ratio: float | None = None) -> None:
        self.memory, self.rope, self.kernels = memory, rope, kernels
        self.page_size = config.page_size
        self.ratio = config.retrieval_ratio if ratio is None else ratio
        self.positional = config.retrieval_keys == 'positional'

    def scores(self, layer: int, query: Query) -> torch.Tensor:
        """Page scores ``[P]`` float32 of ``layer`` (disallowed pages 0)."""
        memory = self.memory
        keys = memory.k[layer, :, memory.resident(memory.long_term)]  # [G, n_lt, d]
        q = query.q
        if self.positional:  # LiveVLM Table 1 ablation: rotated by original positions
            keys = self.rope.apply(keys, memory.pos[layer, memory.long_term])
            q = self.rope.apply(q, query.positions)
        return self.kernels.page_scores(q, page_keys(keys, self.page_size),
                                        self.allowed_pages(query))

    def allowed_pages(self, query: Query) -> torch.Tensor | None:
        """``[P]`` bool pages with a token inside the time window, or None."""
        if query.allowed is None:
            return None
        num = query.allowed.numel()
        padded = query.allowed.new_zeros(math.ceil(num / self.page_size) * self.page_size)
        padded[:num] = query.allowed
        return padded.view(-1, self.page_size).any(dim=1)

    def select(self, layer: int, query: Query) -> torch.Tensor:
        num = self.memory.num_long_term
        scores = self.scores(layer, query)
        allowed = self.allowed_pages(query)
        if allowed is not None:
            pages = select_pages(scores, self.ratio, allowed)
        else:
            pages = self._select_static(scores, num)
        offsets = torch.arange(self.page_size, device=scores.device)
        tokens = (pages[:, None] * self.page_size + offsets).flatten()
        if num % self.page_size and allowed is None:  # the partial page is the last one
            return tokens[: tokens.numel() - self.page_size + num % self.page_size]
        return tokens[tokens < num]

    def _select_static(self, scores: torch.Tensor, num: int) -> torch.Tensor:
        num_pages = scores.numel()
        num_keep = math.ceil(self.ratio * num_pages)
        if num % self.page_size == 0:
            return torch.topk(scores, num_keep).indices.sort().values
        full = torch.topk(scores[:-1], num_keep - 1).indices.sort().values
        return torch.cat((full, full.new_tensor([num_pages - 1])))


class Clusters(Retriever):
    """ClusterKV: per query head, the tokens of its best key clusters up to a token budget."""

    def __init__(self, memory: VideoMemory, rope: Rope, config: MemoryConfig,
                 budget: int | None = None) -> None:
        self.memory, self.rope = memory, rope
        self.budget = budget
        self.ratio = config.retrieval_ratio
        self.positional = config.retrieval_keys == 'positional'

    def select(self, layer: int, query: Query) -> torch.Tensor:
        memory = self.memory
        num = memory.num_long_term
        budget = math.ceil(self.ratio * num) if self.budget is None else min(self.budget, num)
        q = self.rope.apply(query.q, query.positions) if self.positional else query.q
        label = memory.label[layer, :, memory.long_term]  # [G, n_lt]
        sizes = memory.cluster_size[layer]
        if query.allowed is not None:  # tokens outside the window: a cluster never chosen
            label = torch.where(query.allowed, label, sizes.shape[1])
            sizes = torch.cat((sizes, sizes.new_zeros(sizes.shape[0], 1)), dim=1)
            budget = min(budget, int(query.allowed.sum()))
        centroids = memory.centroids[layer]
        if centroids.shape[1] < sizes.shape[1]:
            centroids = torch.cat((centroids, centroids.new_zeros(centroids.shape[0], 1,
                                                                  centroids.shape[2])), dim=1)
        return select_clusters(q, centroids, sizes, label, budget)


class Frames(Retriever):
    """
    ReKV: the ``k`` long-term frames of the highest mean question query . mean frame key.

    Both pre-RoPE and summed over all query heads (ReKV's head-concatenated dot product,
    in float32); the frames' mean keys are :attr:`VideoMemory.frame_keys`. Every
    long-term frame has ``P`` tokens (ReKV keeps everything).
    """

    def __init__(self, memory: VideoMemory, tokens_per_frame: int, budget: int) -> None:
        self.memory = memory
        self.tokens_per_frame = tokens_per_frame
        self.num_frames = max(1, budget // tokens_per_frame)

    def select(self, layer: int, query: Query) -> torch.Tensor:
        frame_keys = self.memory.frame_keys[layer]  # [G, F, d]
        group = query.q.shape[0] // frame_keys.shape[0]
        scores = torch.einsum('hd,hfd->f', query.q.float().mean(dim=1),
                              frame_keys.repeat_interleave(group, dim=0))  # [F]
        num_keep = min(self.num_frames, scores.numel())
        if query.allowed is not None:
            allowed = query.allowed.view(-1, self.tokens_per_frame).any(dim=1)
            scores = scores.masked_fill(~allowed, float('-inf'))
            num_keep = min(num_keep, int(allowed.sum()))
        frames = torch.topk(scores, num_keep).indices.sort().values
        offsets = torch.arange(self.tokens_per_frame, device=frames.device)
        return (frames[:, None] * self.tokens_per_frame + offsets).flatten()


def make_retriever(kind: str, memory: VideoMemory, rope: Rope, config: MemoryConfig,
                   kernels: MemoryKernels, tokens_per_frame: int) -> Retriever:
    """
    Return the retriever of ``kind`` (``all``, ``pages``, ``clusters`` or ``frames``).

    ``clusters`` retrieve ``retrieval_ratio`` of the long-term tokens for ``livevlm`` (as
    many as its pages would) and ``budget_tokens`` for ``clusterkv``; ``frames`` retrieve
    ``budget_tokens`` of whole frames (:class:`Frames`).
    """
    if kind == 'pages':
        return Pages(memory, rope, config, kernels)
    if kind == 'clusters':
        budget = config.budget_tokens if config.policy == 'clusterkv' else None
        return Clusters(memory, rope, config, budget)
    if kind == 'frames':
        return Frames(memory, tokens_per_frame, config.budget_tokens)
    return All(memory)

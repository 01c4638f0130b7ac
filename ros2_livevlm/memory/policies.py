# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Memory policies behind one interface, so every comparison runs in one process.

A policy decides two things: which long-term candidates survive when the long-term
segment exceeds its budget (:meth:`MemoryPolicy.select`), and whether answers retrieve
pages (PaR) or attend to the whole long-term segment (:attr:`MemoryPolicy.retrieves`).

| policy          | keeps                                          | stands for            |
|-----------------|------------------------------------------------|-----------------------|
| ``full``        | everything                                     | plain streaming       |
| ``recent_frames`` | the newest whole frames that fit the budget  | SimpleStream          |
| ``window``      | first ``sink_tokens`` video tokens + newest     | StreamingLLM          |
| ``vsb``         | Vision Sink Bucketing                          | LiveVLM without PaR   |
| ``livevlm``     | Vision Sink Bucketing, answers retrieve pages  | LiveVLM v2            |
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any
from typing import ClassVar

import torch

from .vsb import bucket_ids
from .vsb import bucketed_select
from ..config import MemoryConfig


@dataclass
class Candidates:
    """
    The long-term candidates of one compaction, ``[long-term | overflow]`` in time order.

    Attributes:
        scores: VSB scores ``[L, n]`` float32 (only for policies with ``needs_scores``).
        positions: original stream positions ``[L, n]`` int64.
        frames: frame indices ``[L, n]`` int64.
        video_span: ``(first, end)`` original positions of the whole video so far
            (half-open), for stream-position bucketing.
    """

    scores: torch.Tensor | None
    positions: torch.Tensor
    frames: torch.Tensor
    video_span: tuple[int, int]

    @property
    def num(self) -> int:
        return self.positions.shape[1]


class MemoryPolicy(ABC):
    """Base class: the long-term budget and the eviction rule of one policy."""

    name: ClassVar[str]
    needs_scores: ClassVar[bool] = False
    retrieves: ClassVar[bool] = False

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.topped_up_tokens = (
            0  # VSB only: tokens added past bucket capacity (spec A.4 step 5, item 2)
        )

    @property
    def budget_tokens(self) -> int | None:
        """Long-term budget M in tokens per layer; ``None`` = unlimited."""
        return self.config.budget_tokens

    def state(self) -> dict[str, Any]:
        """
        Return the policy's own state beyond the memory's tokens.

        The protocol of :meth:`~ros2_livevlm.memory.VideoMemory.state`: tensors and JSON
        values, nested dicts and lists allowed, saved with the memory and passed back to
        :meth:`load_state`. A policy that keeps more (cluster centroids,
        offloaded blocks, running statistics) extends both methods and calls ``super()``;
        the memory file stores whatever is returned without a format change. The base
        class keeps only its counter of VSB top-ups.
        """
        return {'topped_up_tokens': self.topped_up_tokens}

    def load_state(self, state: dict[str, Any]) -> None:
        """
        Restore what :meth:`state` returned (by a policy of the same name and settings).

        Raises:
            ValueError: a missing or mistyped entry (nothing is changed).
        """
        topped_up = state.get('topped_up_tokens')
        if not isinstance(topped_up, int) or isinstance(topped_up, bool) or topped_up < 0:
            raise ValueError(
                f'policy state topped_up_tokens must be a non-negative int, got {topped_up!r}'
            )
        self.topped_up_tokens = topped_up

    @abstractmethod
    def select(self, candidates: Candidates) -> torch.Tensor:
        """
        Return the candidates to keep, ``[L, k]`` int64, ascending per layer, ``k <= M``.

        Called only when ``candidates.num > budget_tokens``.
        """


class FullPolicy(MemoryPolicy):
    """No eviction: the long-term segment grows with the stream."""

    name = 'full'

    @property
    def budget_tokens(self) -> int | None:
        return None

    def select(self, candidates: Candidates) -> torch.Tensor:
        keep = torch.arange(candidates.num, device=candidates.positions.device)
        return keep.expand(candidates.positions.shape[0], -1)


class RecentFramesPolicy(MemoryPolicy):
    """Keep the newest whole frames whose tokens fit the budget (FIFO of frames)."""

    name = 'recent_frames'

    def select(self, candidates: Candidates) -> torch.Tensor:
        frames = candidates.frames[0]  # every layer holds the same tokens under this policy
        _, counts = torch.unique_consecutive(frames, return_counts=True)
        newest_first = counts.flip(0).cumsum(0)
        num_frames = int((newest_first <= self.config.budget_tokens).sum().item())
        num_keep = int(newest_first[num_frames - 1].item()) if num_frames else 0
        keep = torch.arange(candidates.num - num_keep, candidates.num, device=frames.device)
        return keep.expand(candidates.positions.shape[0], -1)


class WindowPolicy(MemoryPolicy):
    """StreamingLLM: the first ``sink_tokens`` video tokens (attention sinks) and the newest."""

    name = 'window'

    def select(self, candidates: Candidates) -> torch.Tensor:
        sinks, budget = self.config.sink_tokens, self.config.budget_tokens
        device = candidates.positions.device
        keep = torch.cat(
            (
                torch.arange(sinks, device=device),
                torch.arange(candidates.num - (budget - sinks), candidates.num, device=device),
            )
        )
        return keep.expand(candidates.positions.shape[0], -1)


class VSBPolicy(MemoryPolicy):
    """Vision Sink Bucketing per layer (spec A.4 steps 4-5); answers attend to all of long-term."""

    name = 'vsb'
    needs_scores = True

    def select(self, candidates: Candidates) -> torch.Tensor:
        assert candidates.scores is not None, 'VSB needs scores from the clip prefill'
        cfg = self.config
        num_buckets = -(-cfg.budget_tokens // cfg.bucket_capacity)  # N = ceil(M / B)
        keep = []
        for layer in range(candidates.positions.shape[0]):
            if cfg.bucket_by == 'candidate':
                index = torch.arange(candidates.num, device=candidates.positions.device)
                buckets = bucket_ids(index, num_buckets, (0, candidates.num))
            else:  # original stream position: buckets spread over the whole video timeline
                buckets = bucket_ids(
                    candidates.positions[layer], num_buckets, candidates.video_span
                )
            kept, topped_up = bucketed_select(
                candidates.scores[layer],
                buckets,
                cfg.budget_tokens,
                cfg.top_score_share,
                cfg.bucket_capacity,
            )
            self.topped_up_tokens += topped_up
            keep.append(kept)
        return torch.stack(keep)


class LiveVLMPolicy(VSBPolicy):
    """VSB while streaming, position-agnostic page retrieval (PaR) when answering."""

    name = 'livevlm'
    retrieves = True


POLICY_CLASSES: dict[str, type[MemoryPolicy]] = {
    cls.name: cls
    for cls in (FullPolicy, RecentFramesPolicy, WindowPolicy, VSBPolicy, LiveVLMPolicy)
}


def make_policy(config: MemoryConfig) -> MemoryPolicy:
    """Return the policy named by ``config.policy`` (validated by :class:`MemoryConfig`)."""
    return POLICY_CLASSES[config.policy](config)

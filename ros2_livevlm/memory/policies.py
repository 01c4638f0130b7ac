# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Memory policies: three separate pieces per policy, behind one interface.

Each policy answers three questions, each by one piece:

* what is **stored**: which long-term candidates survive when the long-term segment
  exceeds its budget (:meth:`MemoryPolicy.select`, the eviction rule);
* what a clip **attends to while streaming**: every stored token, or the init segment and
  a local window of the newest tokens (:attr:`MemoryPolicy.stream_window`);
* what an answer **retrieves** from the long-term segment: all of it, pages (PaR),
  clusters (ClusterKV) or frames (ReKV) (:attr:`MemoryPolicy.retrieval`, served by
  :mod:`.retrieval`).

=================  ==========================  ===================  ===========  =============
policy             stored long-term            clip attends to      answer       stands for
                                                                    retrieves
=================  ==========================  ===================  ===========  =============
``full``           everything                  everything           all          plain streaming
``recent_frames``  newest frames in budget     everything stored    all          FIFO of frames
``simplestream``   the last 4 frames in all    everything stored    all          SimpleStream
``window``         newest tokens in budget     everything stored    all          StreamingLLM
``vsb``            Vision Sink Bucketing       everything stored    all          LiveVLM w/o PaR
``livevlm``        Vision Sink Bucketing       everything stored    pages or     LiveVLM v2
                                                                    clusters
``clusterkv``      everything                  everything           clusters     ClusterKV
``rekv``           everything (off the GPU     init + the newest    frames       ReKV
                   beyond the local window)    ``budget`` tokens
=================  ==========================  ===================  ===========  =============

The init segment (system prompt) is every policy's attention sink, so ``window`` keeps no
video sink tokens (a sink of one frame would answer "what did you see first?" by
construction). The budget is one number for every policy: the long-term tokens kept
(bounded policies) or attended (``clusterkv``, ``rekv``; also ``rekv``'s local window).

Policies hold no state: everything that changes while streaming lives in
:class:`~.store.VideoMemory` (so :meth:`~.store.VideoMemory.state` covers every policy).
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


SIMPLESTREAM_FRAMES = 4
"""Frames SimpleStream keeps (arXiv 2604.02317: the last 4 frames, no other memory)."""


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
    """
    Base class: the long-term budget, the eviction rule, the stream view and the retrieval.

    Args:
        config: memory settings.
        tokens_per_frame: P, video tokens per frame of the model.
    """

    name: ClassVar[str]
    needs_scores: ClassVar[bool] = False
    retrieval: ClassVar[str] = 'all'
    """``all``, ``pages``, ``clusters`` or ``frames`` (:func:`.retrieval.make_retriever`)."""

    def __init__(self, config: MemoryConfig, tokens_per_frame: int) -> None:
        self.config = config
        self.tokens_per_frame = tokens_per_frame

    @property
    def budget_tokens(self) -> int | None:
        """Long-term tokens kept per layer; ``None`` = unlimited (nothing is evicted)."""
        return self.config.budget_tokens

    @property
    def stream_window(self) -> int | None:
        """Newest stored tokens a clip attends to besides the init segment; None = all."""
        return None

    def state(self) -> dict[str, Any]:
        """
        Return the policy's own state beyond the memory: nothing.

        The protocol of :meth:`~ros2_livevlm.memory.VideoMemory.state` (tensors and JSON
        values, nested). Policies hold no state: key clusters, ReKV's frame keys,
        offloaded K/V and the VSB top-up counter live in the memory, so
        :meth:`VideoMemory.state` covers every policy. A policy that keeps something of
        its own extends both methods.
        """
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """
        Restore what :meth:`state` returned (nothing for the built-in policies).

        Raises:
            ValueError: ``state`` is not a dict.
        """
        if not isinstance(state, dict):
            raise ValueError(f'policy state must be a dict, got {type(state).__name__}')

    @property
    def clusters(self) -> bool:
        """Whether the memory keeps key clusters of its long-term tokens (ClusterKV)."""
        return self.retrieval == 'clusters'

    @abstractmethod
    def select(self, candidates: Candidates) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Choose the candidates to keep: ``([L, k] int64 ascending per layer, topped_up)``.

        Called only when ``candidates.num > budget_tokens``; ``k <= budget_tokens``.
        ``topped_up`` is VSB's 0-d count of tokens kept past bucket capacity (else None).
        """


def _newest(candidates: Candidates, num_keep: int) -> torch.Tensor:
    keep = torch.arange(candidates.num - num_keep, candidates.num, device=candidates.frames.device)
    return keep.expand(candidates.frames.shape[0], -1)


class FullPolicy(MemoryPolicy):
    """No eviction: the long-term segment grows with the stream."""

    name = 'full'

    @property
    def budget_tokens(self) -> int | None:
        return None

    def select(self, candidates: Candidates) -> tuple[torch.Tensor, None]:
        return _newest(candidates, candidates.num), None


class RecentFramesPolicy(MemoryPolicy):
    """Keep the newest whole frames whose tokens fit the budget (FIFO of frames)."""

    name = 'recent_frames'

    def select(self, candidates: Candidates) -> tuple[torch.Tensor, None]:
        # Every layer holds the same whole frames of P tokens under this policy.
        num_frames = min(self.budget_tokens // self.tokens_per_frame,
                         candidates.num // self.tokens_per_frame)
        return _newest(candidates, num_frames * self.tokens_per_frame), None


class SimpleStreamPolicy(RecentFramesPolicy):
    """SimpleStream: the last :data:`SIMPLESTREAM_FRAMES` frames, short-term included."""

    name = 'simplestream'

    @property
    def budget_tokens(self) -> int:
        frames = max(0, SIMPLESTREAM_FRAMES - self.config.short_term_frames)
        return frames * self.tokens_per_frame


class WindowPolicy(MemoryPolicy):
    """StreamingLLM: the newest tokens; the init segment is the attention sink."""

    name = 'window'

    def select(self, candidates: Candidates) -> tuple[torch.Tensor, None]:
        return _newest(candidates, self.budget_tokens), None


class VSBPolicy(MemoryPolicy):
    """Vision Sink Bucketing per layer (spec A.4 steps 4-5); answers attend to all of long-term."""

    name = 'vsb'
    needs_scores = True

    def select(self, candidates: Candidates) -> tuple[torch.Tensor, torch.Tensor]:
        if candidates.scores is None:
            raise RuntimeError('VSB needs scores from the clip prefill')
        cfg = self.config
        num_buckets = -(-cfg.budget_tokens // cfg.bucket_capacity)  # N = ceil(M / B)
        if cfg.bucket_by == 'candidate':
            index = torch.arange(candidates.num, device=candidates.positions.device)
            buckets = bucket_ids(index, num_buckets, (0, candidates.num))
            buckets = buckets.expand_as(candidates.positions)
        else:  # original stream position: buckets spread over the whole video timeline
            buckets = bucket_ids(candidates.positions, num_buckets, candidates.video_span)
        return bucketed_select(
            candidates.scores, buckets, cfg.budget_tokens, cfg.top_score_share,
            cfg.bucket_capacity,
        )


class LiveVLMPolicy(VSBPolicy):
    """VSB while streaming; answers retrieve pages (PaR) or clusters (``retrieval``)."""

    name = 'livevlm'

    @property
    def retrieval(self) -> str:  # type: ignore[override]
        return self.config.retrieval


class ClusterKVPolicy(FullPolicy):
    """ClusterKV: every token kept, answers recall clusters of keys up to the budget."""

    name = 'clusterkv'
    retrieval = 'clusters'


class ReKVPolicy(FullPolicy):
    """
    ReKV: every frame kept; clips attend to a local window; answers retrieve whole frames.

    The local window and the retrieved frames are both ``budget_tokens`` (ReKV's paper
    setting, 64 frames of 196 tokens = 12,544, is about LiveVLM's budget M = 12,000).
    On a GPU the tokens beyond the local window live in host memory
    (:meth:`~.store.VideoMemory.offload`).
    """

    name = 'rekv'
    retrieval = 'frames'

    @property
    def stream_window(self) -> int:
        return self.config.budget_tokens


POLICY_CLASSES: dict[str, type[MemoryPolicy]] = {
    cls.name: cls
    for cls in (FullPolicy, RecentFramesPolicy, SimpleStreamPolicy, WindowPolicy, VSBPolicy,
                LiveVLMPolicy, ClusterKVPolicy, ReKVPolicy)
}


def make_policy(config: MemoryConfig, tokens_per_frame: int) -> MemoryPolicy:
    """Return the policy named by ``config.policy`` (validated by :class:`MemoryConfig`)."""
    return POLICY_CLASSES[config.policy](config, tokens_per_frame)

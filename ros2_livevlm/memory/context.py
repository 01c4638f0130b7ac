# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The two ways the LLM's layers use the memory: writing a clip, and answering.

Both are :class:`~ros2_livevlm.models.AttendFn` providers: the backbone's layer loop
hands each layer's pre-RoPE ``q, k, v`` to ``attend(layer, q, k, v)``; the provider picks
the keys to attend to, their RoPE positions and computes the attention.

* :class:`ClipPrefill` (spec A.4 steps 2, 4): a clip's queries attend to
  ``[init | long-term | short-term | clip]`` (causal within the clip); VSB scores of the
  last ``r`` queries are taken from the same rotated keys; :meth:`ClipPrefill.commit`
  hands the clip to :meth:`VideoMemory.commit`.
* :class:`AnswerContext` (spec A.4 step 6): per layer, PaR picks long-term pages with that
  layer's own question queries, the answer prompt attends to
  ``[init | retrieved pages | short-term | prompt]``, and the context is then extended
  token by token for greedy decoding. The memory is read, never written. With a kernel
  set that has ``paged_attention`` (Triton), the attended memory tokens are not copied:
  the kernel reads them in place through a page table (:class:`.attention.PagedKV`) and
  rotates each key by its position; only the prompt and answer keys are stored.

RoPE positions (spec A.4.8): ``compacted`` numbers whatever is attended contiguously from
0 (the ReKV convention, bounded positions); ``original`` uses each token's stream
position, and the prompt continues after the newest video token.
"""

from __future__ import annotations

import torch

from .attention import PagedKV
from .kernels import MemoryKernels
from .kernels import TORCH_KERNELS
from .par import page_keys
from .par import page_spans
from .par import page_tokens
from .par import select_pages
from .policies import MemoryPolicy
from .rope import Rope
from .store import VideoMemory
from ..config import MemoryConfig


class ClipPrefill:
    """
    Attention provider for prefilling one clip (or the init prompt) into ``memory``.

    Args:
        memory: the memory the clip attends to and is committed into.
        rope: the model's RoPE.
        policy: the memory policy (asks for VSB scores when it will compress).
        config: memory settings (``positions``, ``observation_tokens``).
        num_tokens: T, tokens of the clip.
        kernels: attention and VSB-score implementations (torch reference by default).
    """

    def __init__(
        self,
        memory: VideoMemory,
        rope: Rope,
        policy: MemoryPolicy,
        config: MemoryConfig,
        num_tokens: int,
        kernels: MemoryKernels = TORCH_KERNELS,
    ) -> None:
        self.memory, self.rope, self.policy, self.kernels = memory, rope, policy, kernels
        self.num_tokens = num_tokens
        self.num_obs = min(config.observation_tokens, num_tokens)
        self.original_positions = config.positions == 'original'
        total = memory.num_tokens + num_tokens
        self.compacted_positions = torch.arange(total, device=memory.k.device)
        self.clip_positions = memory.next_position + torch.arange(
            num_tokens, device=memory.k.device
        )
        num_candidates = (
            total
            - memory.num_init
            - min(memory.short_term_tokens, memory.num_short_term + num_tokens)
        )
        budget = policy.budget_tokens
        self.want_scores = policy.needs_scores and budget is not None and num_candidates > budget
        self.new_k: list[torch.Tensor] = []
        self.new_v: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []

    def _positions(self, layer: int) -> torch.Tensor:
        if self.original_positions:
            return torch.cat((self.memory.pos[layer], self.clip_positions))
        return self.compacted_positions

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Clip queries ``[H, T, d]`` over ``[memory | clip]``; records K/V and VSB scores."""
        positions = self._positions(layer)  # [n + T]
        keys = self.rope.apply(
            torch.cat((self.memory.k[layer], k), dim=1), positions
        )  # [G, n + T, d]
        values = torch.cat((self.memory.v[layer], v), dim=1)
        queries = self.rope.apply(q, positions[-self.num_tokens:])  # [H, T, d]
        if self.want_scores:
            self.scores.append(
                self.kernels.vsb_scores(queries[:, -self.num_obs:], keys)
            )  # [n + T]
        self.new_k.append(k)
        self.new_v.append(v)
        return self.kernels.attention(queries, keys, values)

    def commit(self, frames: torch.Tensor, stamps: torch.Tensor) -> None:
        """Commit the clip after the last layer: ``frames [T]`` int64, ``stamps [T]`` float64 s."""
        scores = torch.stack(self.scores) if self.scores else None
        self.memory.commit(
            torch.stack(self.new_k), torch.stack(self.new_v), frames, stamps, scores, self.policy
        )

    def commit_init(self) -> None:
        """Store the prefilled tokens as the memory's init segment (system prompt)."""
        self.memory.set_init(torch.stack(self.new_k), torch.stack(self.new_v))


class AnswerContext:
    """
    Attention provider for one answer: prompt prefill with per-layer retrieval, then decode.

    Args:
        memory: the memory to answer from (read only).
        rope: the model's RoPE.
        policy: ``retrieves`` decides between PaR and the whole long-term segment.
        config: memory settings (``page_size``, ``retrieval_ratio``, ``retrieval_keys``,
            ``positions``).
        question: token slice of the question text inside the prompt; its queries score
            the pages (the chat-template tokens around it do not).
        num_prompt_tokens: T_p, tokens of the answer prompt.
        max_new_tokens: decode steps to reserve room for.
        time_window: ``(t0, t1)`` seconds; only long-term pages whose stamps overlap it
            may be attended. The short-term window (the present) is always attended.
        kernels: attention and page-score implementations (torch reference by default).
    """

    def __init__(
        self,
        memory: VideoMemory,
        rope: Rope,
        policy: MemoryPolicy,
        config: MemoryConfig,
        question: slice,
        num_prompt_tokens: int,
        max_new_tokens: int,
        time_window: tuple[float, float] | None = None,
        kernels: MemoryKernels = TORCH_KERNELS,
    ) -> None:
        self.memory, self.rope, self.policy, self.config = memory, rope, policy, config
        self.kernels = kernels
        self.question = question
        self.num_prompt_tokens = num_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.time_window = time_window
        num_layers = memory.k.shape[0]
        # Keys after RoPE and values per layer, [G, capacity, d]: [context | prompt | answer]
        # when gathered; [prompt | answer] with kernels.paged_attention, whose context stays
        # in the memory and is read through the page table in self.pages.
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.pages: list[PagedKV | None] = [None] * num_layers
        self.length = [0] * num_layers  # filled slots per layer
        self.next_position = [0] * num_layers  # RoPE position of the next token per layer
        self.retrieved_frames: list[
            torch.Tensor
        ] = []  # frame index of each retrieved token, per layer
        self.retrieved_stamps: list[torch.Tensor] = []
        self.context_tokens = [0] * num_layers  # memory tokens attended per layer

    # ---- retrieval (spec A.4 step 6) ------------------------------------------------

    def _allowed_pages(self, layer: int) -> torch.Tensor | None:
        if self.time_window is None:
            return None
        first, last = page_spans(
            self.memory.stamp[layer, self.memory.long_term], self.config.page_size
        )
        t0, t1 = self.time_window
        return (last >= t0) & (first <= t1)

    def _long_term_tokens(self, layer: int, q: torch.Tensor) -> torch.Tensor | None:
        """Long-term token indices this layer attends to (``None`` = all), recording evidence."""
        memory, cfg = self.memory, self.config
        lt = memory.long_term
        num_lt = memory.num_long_term
        if num_lt == 0:
            return None
        keys = memory.k[layer, :, lt]  # [G, n_lt, d], before RoPE
        queries = q[:, self.question]  # [H, n_q, d], before RoPE
        if cfg.retrieval_keys == 'positional':
            # LiveVLM Table 1 ablation: keys rotated by their original positions (as a cache
            # of post-RoPE keys holds them), queries by the prompt's original positions.
            keys = self.rope.apply(keys, memory.pos[layer, lt])
            positions = memory.next_position + torch.arange(q.shape[1], device=q.device)
            queries = self.rope.apply(q, positions)[:, self.question]
        allowed = self._allowed_pages(layer)
        if allowed is not None and not bool(allowed.any()):
            return torch.empty(0, dtype=torch.int64, device=keys.device)
        scores = self.kernels.page_scores(queries, page_keys(keys, cfg.page_size), allowed)
        pages = select_pages(scores, cfg.retrieval_ratio, allowed)
        retrieved = page_tokens(pages, cfg.page_size, num_lt)
        self.retrieved_frames.append(memory.frame[layer, lt][retrieved])
        self.retrieved_stamps.append(memory.stamp[layer, lt][retrieved])
        if self.policy.retrieves:
            return retrieved
        if allowed is not None:
            return page_tokens(allowed.nonzero().squeeze(1), cfg.page_size, num_lt)
        return None

    # ---- attention ------------------------------------------------------------------

    def _prefill(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        memory = self.memory
        num_prompt = q.shape[1]
        selected = self._long_term_tokens(layer, q)
        index = torch.arange(memory.num_tokens, device=q.device)
        if selected is not None:
            lt = memory.long_term
            index = torch.cat((index[: lt.start], index[lt][selected], index[memory.short_term]))
        num_ctx = index.numel()
        self.context_tokens[layer] = num_ctx
        if self.config.positions == 'original':
            context_positions = memory.pos[layer, index]
            prompt_positions = memory.next_position + torch.arange(num_prompt, device=q.device)
        else:
            context_positions = torch.arange(num_ctx, device=q.device)
            prompt_positions = num_ctx + torch.arange(num_prompt, device=q.device)
        self.next_position[layer] = int(prompt_positions[-1].item()) + 1
        if self.kernels.paged_attention is None:  # gather the context once, rotated
            stored = num_ctx
        else:  # read the context in place through a page table
            stored = 0
            self.pages[layer] = self._page_table(layer, index, context_positions)
        capacity = stored + num_prompt + self.max_new_tokens
        keys = torch.empty(k.shape[0], capacity, k.shape[2], dtype=k.dtype, device=k.device)
        values = torch.empty_like(keys)
        if stored:
            keys[:, :num_ctx] = self.rope.apply(memory.k[layer][:, index], context_positions)
            values[:, :num_ctx] = memory.v[layer][:, index]
        keys[:, stored:stored + num_prompt] = self.rope.apply(k, prompt_positions)
        values[:, stored:stored + num_prompt] = v
        self.keys[layer], self.values[layer] = keys, values
        self.length[layer] = stored + num_prompt
        return self._attention(layer, self.rope.apply(q, prompt_positions))

    def _page_table(
        self, layer: int, index: torch.Tensor, context_positions: torch.Tensor
    ) -> PagedKV:
        """
        Describe memory tokens ``index [N]`` of ``layer`` as pages read in place.

        Each token is rotated by its ``context_positions`` entry inside the kernel.
        """
        memory = self.memory
        positions = torch.zeros(memory.num_tokens, dtype=torch.int64, device=index.device)  # [n]
        positions[index] = context_positions
        return PagedKV.from_index(
            memory.k[layer], memory.v[layer], positions, index, self.config.page_size
        )

    def _decode(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        keys, values = self.keys[layer], self.values[layer]
        slot, num_new = self.length[layer], q.shape[1]
        if slot + num_new > keys.shape[1]:
            raise RuntimeError(
                f'answer context full: {keys.shape[1]} slots, max_new_tokens={self.max_new_tokens}'
            )
        positions = self.next_position[layer] + torch.arange(num_new, device=q.device)
        keys[:, slot:slot + num_new] = self.rope.apply(k, positions)
        values[:, slot:slot + num_new] = v
        self.length[layer] = slot + num_new
        self.next_position[layer] += num_new
        return self._attention(layer, self.rope.apply(q, positions))

    def _attention(self, layer: int, queries: torch.Tensor) -> torch.Tensor:
        """Attend queries ``[H, T, d]`` (after RoPE) to the layer's context (last T: their own)."""
        filled = self.length[layer]
        keys, values = self.keys[layer][:, :filled], self.values[layer][:, :filled]
        pages = self.pages[layer]
        if pages is None:
            return self.kernels.attention(queries, keys, values)
        return self.kernels.paged_attention(queries, pages, keys, values, self.rope)

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """First call per layer: the prompt (retrieval + prefill); later calls: decode steps."""
        if self.keys[layer] is None:
            return self._prefill(layer, q, k, v)
        return self._decode(layer, q, k, v)

    # ---- results --------------------------------------------------------------------

    @property
    def tokens_attended(self) -> int:
        """Memory tokens + prompt tokens attended, averaged over layers."""
        return round(sum(self.context_tokens) / len(self.context_tokens)) + self.num_prompt_tokens

    def evidence(self, max_spans: int = 4) -> list[tuple[float, float]]:
        """
        Camera time spans of the frames whose pages were retrieved most, most relevant first.

        A frame's weight is the number of its tokens retrieved, summed over layers (for
        policies without retrieval: the pages PaR ranks highest, though all are attended).
        Frames weighing at least half the heaviest are grouped into runs of consecutive
        frames; runs are ranked by total weight. Without long-term memory (or when nothing
        was retrieved) the evidence is the short-term window.
        """
        if not self.retrieved_frames or not torch.cat(self.retrieved_frames).numel():
            stamps = self.memory.stamp[0, self.memory.short_term]
            return [(float(stamps.min()), float(stamps.max()))] if stamps.numel() else []
        frames = torch.cat(self.retrieved_frames)
        stamps = torch.cat(self.retrieved_stamps)
        unique, inverse, counts = torch.unique(frames, return_inverse=True, return_counts=True)
        frame_stamps = torch.empty(
            unique.numel(), dtype=stamps.dtype, device=stamps.device
        ).scatter_(0, inverse, stamps)
        strong = counts >= counts.max() / 2
        unique, counts, frame_stamps = (
            unique[strong].tolist(),
            counts[strong].tolist(),
            frame_stamps[strong].tolist(),
        )
        runs: list[list[float]] = []  # [weight, t_start, t_end]
        for i, frame in enumerate(unique):
            if runs and frame == unique[i - 1] + 1:
                runs[-1][0] += counts[i]
                runs[-1][2] = frame_stamps[i]
            else:
                runs.append([counts[i], frame_stamps[i], frame_stamps[i]])
        runs.sort(key=lambda run: -run[0])
        return [(start, end) for _, start, end in runs[:max_spans]]

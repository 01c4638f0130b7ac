# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The two ways the LLM's layers use the memory: writing a clip, and answering.

Both are :class:`~ros2_livevlm.models.AttendFn` providers: the backbone's layer loop
hands each layer's pre-RoPE ``q, k, v`` to ``attend(layer, q, k, v)``; the provider picks
the keys to attend to, their RoPE positions and computes the attention.

* :class:`ClipPrefill` (spec A.4 steps 2, 4): a clip's queries attend to what the policy's
  stream view shows (``[init | long-term | short-term]``, or ``[init | newest tokens]``
  for ReKV) and, causally, to the clip; VSB scores of the last ``r`` queries are taken
  from the same rotated keys; :meth:`ClipPrefill.commit` hands the clip to
  :meth:`VideoMemory.commit`.
* :class:`AnswerContext` (spec A.4 step 6): per layer, the policy's retriever
  (:mod:`.retrieval`: all, pages, clusters or frames) picks the long-term tokens with
  that layer's own question queries, the answer prompt attends to
  ``[init | retrieved | short-term | prompt]``, and the context is then extended token by
  token for greedy decoding. The memory is read, never written. With a kernel set that
  has ``paged_attention`` (Triton) and tokens shared by all heads, the attended memory
  tokens are not copied: the kernel reads them in place through a page table
  (:class:`.attention.PagedKV`) and rotates each key by its position; only the prompt and
  answer keys are stored.

RoPE positions (spec A.4.8): ``compacted`` numbers whatever is attended contiguously from
0 (the ReKV convention, bounded positions); ``original`` uses each token's stream
position, and the prompt continues after the newest video token.

Host synchronisation: none per layer, except with a ``time_window`` (the allowed tokens
are counted on the host) and for offloaded memory (the recalled tokens are copied from
host memory by index).
"""

from __future__ import annotations

import torch

from .attention import PagedKV
from .evidence import evidence_spans
from .kernels import MemoryKernels
from .kernels import TORCH_KERNELS
from .policies import MemoryPolicy
from .retrieval import make_retriever
from .retrieval import Query
from .rope import Rope
from .store import VideoMemory
from ..config import MemoryConfig


class ClipPrefill:
    """
    Attention provider for prefilling one clip (or the init prompt) into ``memory``.

    Args:
        memory: the memory the clip attends to and is committed into.
        rope: the model's RoPE.
        policy: the memory policy (its stream view; asks for VSB scores when it will
            compress).
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
        device = memory.k.device
        # Stream view: [init | stored tokens from `start`]; all of them without a window.
        window = policy.stream_window
        self.start = memory.num_init
        if window is not None:
            self.start = max(memory.num_init, memory.num_tokens - memory.num_short_term - window)
        self.resident = memory.resident(slice(self.start, memory.num_tokens))
        attended = memory.num_init + memory.num_tokens - self.start + num_tokens
        self.compacted_positions = torch.arange(attended, device=device)
        self.clip_positions = memory.next_position + torch.arange(num_tokens, device=device)
        self.max_position = max(attended, memory.next_position + num_tokens)  # RoPE table
        num_candidates = (
            memory.num_tokens + num_tokens
            - memory.num_init
            - min(memory.short_term_tokens, memory.num_short_term + num_tokens)
        )
        budget = policy.budget_tokens
        self.want_scores = policy.needs_scores and budget is not None and num_candidates > budget
        if self.want_scores and window is not None:
            raise ValueError(f'policy {policy.name!r}: VSB needs the whole memory in view')
        self.new_k: list[torch.Tensor] = []
        self.new_v: list[torch.Tensor] = []
        self.scores: list[torch.Tensor] = []

    def _positions(self, layer: int) -> torch.Tensor:
        if self.original_positions:
            memory = self.memory
            return torch.cat((memory.pos[layer, :memory.num_init],
                              memory.pos[layer, self.start:], self.clip_positions))
        return self.compacted_positions

    def attend(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Clip queries ``[H, T, d]`` over ``[stream view | clip]``; records K/V and VSB scores."""
        memory = self.memory
        positions = self._positions(layer)  # [n_view + T]
        init = slice(0, memory.num_init)
        keys = torch.cat((memory.k[layer, :, init], memory.k[layer, :, self.resident], k), dim=1)
        values = torch.cat((memory.v[layer, :, init], memory.v[layer, :, self.resident], v), dim=1)
        keys = self.rope.apply(keys, positions, self.max_position)  # [G, n_view + T, d]
        queries = self.rope.apply(q, positions[-self.num_tokens:], self.max_position)  # [H, T, d]
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
            torch.stack(self.new_k), torch.stack(self.new_v), frames, stamps, scores,
            self.policy, self.rope,
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
        policy: its ``retrieval`` names the retriever (:mod:`.retrieval`).
        config: memory settings (``page_size``, ``retrieval_ratio``, ``retrieval_keys``,
            ``positions``).
        question: token slice of the question text inside the prompt; its queries rank
            the long-term memory (the chat-template tokens around it do not).
        num_prompt_tokens: T_p, tokens of the answer prompt.
        max_new_tokens: decode steps to reserve room for.
        time_window: ``(t0, t1)`` seconds; only long-term tokens whose stamps lie in it
            (for pages: pages with such a token) may be attended. The short-term window
            (the present) is always attended.
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
        self.memory, self.rope, self.config, self.kernels = memory, rope, config, kernels
        self.question = question
        self.num_prompt_tokens = num_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.retriever = make_retriever(policy.retrieval, memory, rope, config, kernels,
                                        policy.tokens_per_frame)
        # Policies that attend everything still rank pages (PaR), for the evidence.
        self.ranker = (self.retriever if policy.retrieval != 'all' else
                       make_retriever('pages', memory, rope, config, kernels,
                                      policy.tokens_per_frame))
        self.allowed = None  # [n_lt] bool long-term tokens inside the time window
        if time_window is not None:
            stamps = memory.stamp[0, memory.long_term]
            self.allowed = (stamps >= time_window[0]) & (stamps <= time_window[1])
        self.max_position = max(memory.num_tokens, memory.next_position) + (
            num_prompt_tokens + max_new_tokens)  # RoPE table size
        num_layers = memory.k.shape[0]
        # Keys after RoPE and values per layer, [G or H, capacity, d]: [context | prompt |
        # answer] when gathered; [prompt | answer] with kernels.paged_attention, whose
        # context stays in the memory and is read through the page table in self.pages.
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.pages: list[PagedKV | None] = [None] * num_layers
        self.length = [0] * num_layers  # filled slots per layer
        self.next_position = [0] * num_layers  # RoPE position of the next token per layer
        self.ranked: list[torch.Tensor | None] = [None] * num_layers  # for the evidence
        self.context_tokens = [0] * num_layers  # memory tokens attended per layer

    # ---- retrieval (spec A.4 step 6) ------------------------------------------------

    def _context_index(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """Memory tokens this layer attends to, ``[N]`` or ``[H, N]`` ascending."""
        memory = self.memory
        device = q.device
        if not memory.num_long_term:
            return torch.arange(memory.num_tokens, device=device)
        prompt_positions = memory.next_position + torch.arange(q.shape[1], device=device)
        query = Query(q[:, self.question], prompt_positions[self.question], self.allowed)
        selected = self.retriever.select(layer, query)
        self.ranked[layer] = (selected if self.ranker is self.retriever
                              else self.ranker.select(layer, query))
        if selected is None:
            return torch.arange(memory.num_tokens, device=device)
        init = torch.arange(memory.num_init, device=device)
        short = torch.arange(memory.short_term.start, memory.num_tokens, device=device)
        if selected.ndim == 2:
            heads = selected.shape[0]
            init, short = init.expand(heads, -1), short.expand(heads, -1)
        return torch.cat((init, selected + memory.num_init, short), dim=-1)

    # ---- attention ------------------------------------------------------------------

    def _prefill(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        memory = self.memory
        num_prompt = q.shape[1]
        index = self._context_index(layer, q)
        num_ctx = index.shape[-1]
        self.context_tokens[layer] = num_ctx
        if self.config.positions == 'original':
            context_positions = memory.pos[layer][index]  # [N] or [H, N]
            first_prompt = memory.next_position
        else:
            context_positions = torch.arange(num_ctx, device=q.device)
            first_prompt = num_ctx
        prompt_positions = first_prompt + torch.arange(num_prompt, device=q.device)
        self.next_position[layer] = first_prompt + num_prompt
        heads = index.shape[0] if index.ndim == 2 else k.shape[0]
        paged = (self.kernels.paged_attention is not None and index.ndim == 1
                 and not memory.num_offloaded)
        stored = 0 if paged else num_ctx
        if paged:  # read the context in place through a page table
            self.pages[layer] = self._page_table(layer, index, context_positions)
        capacity = stored + num_prompt + self.max_new_tokens
        keys = k.new_empty(heads, capacity, k.shape[2])
        values = torch.empty_like(keys)
        if stored:  # gather the context once, rotated
            context_k, values[:, :num_ctx] = memory.gather(layer, index)
            keys[:, :num_ctx] = self.rope.apply(context_k, context_positions, self.max_position)
        self.keys[layer], self.values[layer] = keys, values
        self.length[layer] = stored
        return self._append(layer, q, k, v, prompt_positions)

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

    def _append(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                positions: torch.Tensor) -> torch.Tensor:
        """Store new keys ``[G, T, d]`` (rotated) and values, then attend their queries."""
        keys, values = self.keys[layer], self.values[layer]
        slot, num_new = self.length[layer], q.shape[1]
        if slot + num_new > keys.shape[1]:
            raise RuntimeError(
                f'answer context full: {keys.shape[1]} slots, max_new_tokens={self.max_new_tokens}'
            )
        group = keys.shape[0] // k.shape[0]  # per-query-head context: expand the KV heads
        if group > 1:
            k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
        keys[:, slot:slot + num_new] = self.rope.apply(k, positions, self.max_position)
        values[:, slot:slot + num_new] = v
        self.length[layer] = slot + num_new
        return self._attention(layer, self.rope.apply(q, positions, self.max_position))

    def _decode(
        self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        positions = self.next_position[layer] + torch.arange(q.shape[1], device=q.device)
        self.next_position[layer] += q.shape[1]
        return self._append(layer, q, k, v, positions)

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
        Camera time spans of the frames retrieved most, most relevant first.

        Frames weigh their share of tokens retrieved, per layer (for policies without
        retrieval: the pages PaR ranks highest, though all are attended); see
        :func:`.evidence.evidence_spans`.
        """
        return evidence_spans(self.memory, self.ranked, max_spans)

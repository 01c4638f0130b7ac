# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The streaming KV memory of one camera.

Per layer ``l`` (``G`` KV heads, head dim ``d``), one contiguous buffer of keys (stored
*before* RoPE) and values, in three segments::

    token index: 0 ........ n_init ................ n - n_st ............... n
                 |   init    |       long-term        |      short-term       |
                 | system    | <= M tokens, chosen by | last short_term_frames|
                 | prompt,   | the policy (VSB, FIFO, | frames, exact; FIFO   |
                 | never     | window); per-layer     | overflow becomes      |
                 | evicted   | token sets             | long-term candidates  |

Every token carries its original stream position, frame index and camera stamp
(seconds). Init and short-term tokens are the same in every layer; the long-term segment
has the same *length* in every layer but, under VSB, different tokens.

Answering reads this memory and never writes it (spec C.9); only :meth:`commit` (a
finished clip prefill) and :meth:`clear` change it.
"""

from __future__ import annotations

import torch

from .policies import Candidates
from .policies import MemoryPolicy


class VideoMemory:
    """
    Keys/values ``[L, G, n, d]`` with per-token metadata ``[L, n]``.

    Args:
        num_layers: L.
        num_kv_heads: G.
        head_dim: d.
        short_term_tokens: W_s, tokens of the short-term window.
        dtype: K/V dtype.
        device: K/V device (metadata lives beside it).
    """

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        short_term_tokens: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.short_term_tokens = short_term_tokens
        self.k = torch.empty(num_layers, num_kv_heads, 0, head_dim, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.pos = torch.empty(
            num_layers, 0, dtype=torch.int64, device=device
        )  # original stream position
        self.frame = torch.empty_like(self.pos)  # frame index, -1 for init tokens
        self.stamp = torch.empty(
            num_layers, 0, dtype=torch.float64, device=device
        )  # seconds, NaN for init
        self.num_init = 0
        self.num_short_term = 0
        self.next_position = 0  # original position of the next video token

    # ---- sizes ----------------------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        """n, tokens per layer (all segments)."""
        return self.k.shape[2]

    @property
    def num_long_term(self) -> int:
        return self.num_tokens - self.num_init - self.num_short_term

    @property
    def long_term(self) -> slice:
        """Token slice of the long-term segment."""
        return slice(self.num_init, self.num_tokens - self.num_short_term)

    @property
    def short_term(self) -> slice:
        """Token slice of the short-term segment."""
        return slice(self.num_tokens - self.num_short_term, self.num_tokens)

    @property
    def kv_bytes(self) -> int:
        """Bytes of K and V resident, all layers."""
        return 2 * self.k.numel() * self.k.element_size()

    @property
    def newest_stamp(self) -> float | None:
        """Stamp of the newest frame in the memory, s (None while it holds no video)."""
        if self.num_tokens == self.num_init:
            return None
        return float(self.stamp[0, -1])

    def frames_in_memory(self) -> int:
        """Distinct frames with at least one token in some layer."""
        video = self.frame[:, self.num_init:]
        return int(torch.unique(video).numel())

    def frame_ids(self) -> set[int]:
        """Return the indices of the frames with at least one token in some layer."""
        return set(torch.unique(self.frame[:, self.num_init:]).tolist())

    # ---- writes ---------------------------------------------------------------------

    def set_init(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the init (system prompt) segment, ``[L, G, n_init, d]``; clears the video."""
        num_layers, _, num_init, _ = k.shape
        self.k, self.v = k.clone(), v.clone()
        self.pos = torch.arange(num_init, device=k.device).expand(num_layers, -1).clone()
        self.frame = torch.full_like(self.pos, -1)
        self.stamp = torch.full(self.pos.shape, float('nan'), dtype=torch.float64, device=k.device)
        self.num_init = num_init
        self.num_short_term = 0
        self.next_position = num_init

    def clear(self) -> None:
        """Drop every video token; keep the init segment."""
        init = slice(0, self.num_init)
        self.set_init(self.k[:, :, init], self.v[:, :, init])

    def commit(
        self,
        k_new: torch.Tensor,
        v_new: torch.Tensor,
        frames: torch.Tensor,
        stamps: torch.Tensor,
        scores: torch.Tensor | None,
        policy: MemoryPolicy,
    ) -> None:
        """
        Append a prefilled clip and bring the long-term segment back within budget.

        FIFO (spec A.4 step 3): the clip joins the short-term window; its oldest tokens
        beyond ``W_s`` become long-term candidates ``[long-term | overflow]``; if they
        exceed the budget M the policy chooses which survive, per layer, in time order.

        Args:
            k_new: clip keys before RoPE, ``[L, G, T, d]``.
            v_new: clip values, ``[L, G, T, d]``.
            frames: frame index of each clip token, ``[T]`` int64.
            stamps: camera stamp of each clip token, ``[T]`` float64 seconds.
            scores: VSB scores over ``[memory | clip]``, ``[L, n + T]`` float32, or None.
            policy: decides the long-term budget and the survivors.
        """
        num_layers, _, num_new, _ = k_new.shape
        positions = self.next_position + torch.arange(num_new, device=self.pos.device)
        k = torch.cat((self.k, k_new), dim=2)
        v = torch.cat((self.v, v_new), dim=2)
        pos = torch.cat((self.pos, positions.expand(num_layers, -1)), dim=1)
        frame = torch.cat((self.frame, frames.to(self.frame.device).expand(num_layers, -1)), dim=1)
        stamp = torch.cat((self.stamp, stamps.to(self.stamp.device).expand(num_layers, -1)), dim=1)
        total = k.shape[2]
        num_short_term = min(self.short_term_tokens, self.num_short_term + num_new)
        cand = slice(self.num_init, total - num_short_term)  # [long-term | overflow]
        budget = policy.budget_tokens
        if budget is not None and cand.stop - cand.start > budget:
            keep = policy.select(
                Candidates(
                    scores=None if scores is None else scores[:, cand],
                    positions=pos[:, cand],
                    frames=frame[:, cand],
                    video_span=(self.num_init, int(positions[-1].item()) + 1),
                )
            )
            index = torch.cat(
                (
                    torch.arange(self.num_init, device=k.device).expand(num_layers, -1),
                    keep.to(k.device) + self.num_init,
                    torch.arange(cand.stop, total, device=k.device).expand(num_layers, -1),
                ),
                dim=1,
            )  # [L, n'] token indices to keep, ascending
            gather = index[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[3])
            k, v = k.gather(2, gather), v.gather(2, gather)
            pos, frame, stamp = (
                pos.gather(1, index),
                frame.gather(1, index),
                stamp.gather(1, index.to(stamp.device)),
            )
        self.k, self.v, self.pos, self.frame, self.stamp = k, v, pos, frame, stamp
        self.num_short_term = num_short_term
        self.next_position += num_new

    # ---- reads ----------------------------------------------------------------------

    def state(self) -> dict[str, torch.Tensor | int]:
        """
        Every tensor and counter of the memory (snapshots, equality checks, memory files).

        The state protocol, shared with :meth:`MemoryPolicy.state`: a dict of names to
        tensors or JSON values (None, bool, int, float, str, and lists/dicts of them),
        nested dicts and lists allowed. It holds references, not copies; pass it back to
        :meth:`load_state` of a memory of the same shape to continue from it. The memory
        file (:mod:`ros2_livevlm.persistence`) stores tensors in safetensors and the rest
        as JSON without knowing the names, so new state needs no change to the format.

        Returns:
            ``k, v``: ``[L, G, n, d]`` keys (before RoPE) and values in the model dtype;
            ``pos, frame``: ``[L, n]`` int64; ``stamp``: ``[L, n]`` float64 s (NaN for
            init); ``num_init``, ``num_short_term``, ``next_position``: ints.
        """
        return {
            'k': self.k,
            'v': self.v,
            'pos': self.pos,
            'frame': self.frame,
            'stamp': self.stamp,
            'num_init': self.num_init,
            'num_short_term': self.num_short_term,
            'next_position': self.next_position,
        }

    def load_state(self, state: dict[str, torch.Tensor | int]) -> None:
        """
        Replace the whole memory with ``state`` (as :meth:`state` returns it).

        Everything is checked before anything is replaced, so a refused state leaves the
        memory as it was. Tensors are copied to this memory's device.

        Raises:
            ValueError: a missing entry, or a tensor whose dtype or shape does not fit this
                memory (other L, G or d, segments that do not add up, a short-term segment
                longer than ``W_s``); the message names the entry.
        """
        num_layers, num_kv_heads, _, head_dim = self.k.shape
        k = _checked(state, 'k', self.k.dtype, 4)
        num_tokens = k.shape[2]
        if (k.shape[0], k.shape[1], k.shape[3]) != (num_layers, num_kv_heads, head_dim):
            raise ValueError(
                f'memory state k has shape {tuple(k.shape)}, this memory needs '
                f'[{num_layers}, {num_kv_heads}, n, {head_dim}]'
            )
        v = _checked(state, 'v', self.v.dtype, 4, tuple(k.shape))
        rows = (num_layers, num_tokens)
        pos = _checked(state, 'pos', torch.int64, 2, rows)
        frame = _checked(state, 'frame', torch.int64, 2, rows)
        stamp = _checked(state, 'stamp', torch.float64, 2, rows)
        counts = [state.get(name) for name in ('num_init', 'num_short_term', 'next_position')]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(
                'memory state needs non-negative ints num_init, num_short_term, '
                f'next_position, got {counts}'
            )
        num_init, num_short_term, next_position = counts
        if num_init + num_short_term > num_tokens or num_short_term > self.short_term_tokens:
            raise ValueError(
                f'memory state segments do not fit: {num_init} init + {num_short_term} '
                f'short-term tokens of {num_tokens}, short-term window {self.short_term_tokens}'
            )
        device = self.k.device
        self.k, self.v = k.to(device), v.to(device)
        self.pos, self.frame, self.stamp = pos.to(device), frame.to(device), stamp.to(device)
        self.num_init, self.num_short_term = num_init, num_short_term
        self.next_position = next_position


def _checked(
    state: dict, name: str, dtype: torch.dtype, ndim: int, shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Return ``state[name]`` if it is a tensor of ``dtype`` and ``ndim`` (and ``shape``)."""
    value = state.get(name)
    if (
        not isinstance(value, torch.Tensor)
        or value.dtype != dtype
        or value.ndim != ndim
        or (shape is not None and tuple(value.shape) != shape)
    ):
        got = (
            f'{value.dtype} {tuple(value.shape)}'
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        want = f'{dtype} with {ndim} dims' + (f' {shape}' if shape is not None else '')
        raise ValueError(f'memory state {name} must be a {want} tensor, got {got}')
    return value

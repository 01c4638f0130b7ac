# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The streaming KV memory of one camera: what is stored.

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

Beside the tokens the memory keeps what its policy's retrieval needs, updated as tokens
enter the long-term segment: key clusters (:mod:`.clusters`) and per-frame mean keys
(ReKV). With :meth:`offload`, the oldest long-term tokens' K/V move to another device
(host memory, ReKV on a GPU); their metadata stays.

Everything that changes while streaming is here, so :meth:`VideoMemory.state` /
:meth:`VideoMemory.load_state` save and restore the memory of every policy. Answering
reads this memory and never writes it (spec C.9); only :meth:`commit` (a finished clip
prefill), :meth:`clear` and :meth:`load_state` change it.
"""

from __future__ import annotations

import torch

from .clusters import cluster_stats
from .clusters import cosine_kmeans
from .clusters import drop_empty
from .clusters import num_new_clusters
from .policies import Candidates
from .policies import MemoryPolicy
from .rope import Rope


class VideoMemory:
    """
    Keys/values ``[L, G, n, d]`` with per-token metadata ``[L, n]`` and retrieval indexes.

    Args:
        num_layers: L.
        num_kv_heads: G.
        head_dim: d.
        short_term_tokens: W_s, tokens of the short-term window.
        dtype: K/V dtype.
        device: K/V device (metadata and indexes live beside it).
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
        self._empty(num_layers, num_kv_heads, head_dim, dtype, device)

    def _empty(self, num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
               device: torch.device) -> None:
        self.k = torch.empty(num_layers, num_kv_heads, 0, head_dim, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.pos = torch.empty(num_layers, 0, dtype=torch.int64, device=device)  # stream pos.
        self.frame = torch.empty_like(self.pos)  # frame index, -1 for init tokens
        self.stamp = torch.empty(num_layers, 0, dtype=torch.float64, device=device)  # s
        self.label = torch.empty(num_layers, num_kv_heads, 0, dtype=torch.int64, device=device)
        self.centroids = torch.empty(num_layers, num_kv_heads, 0, head_dim, device=device)
        self.cluster_size = torch.empty(num_layers, num_kv_heads, 0, dtype=torch.int64,
                                        device=device)
        self.frame_keys = torch.empty(num_layers, num_kv_heads, 0, head_dim, device=device)
        self.k_offloaded = self.k[:, :, :0]  # oldest long-term K/V moved off the device
        self.v_offloaded = self.v[:, :, :0]
        self.topped_up = torch.zeros((), dtype=torch.int64, device=device)
        self.num_init = 0
        self.num_short_term = 0
        self.next_position = 0  # original position of the next video token

    # ---- sizes ----------------------------------------------------------------------

    @property
    def num_offloaded(self) -> int:
        """Long-term tokens whose K/V live in :attr:`k_offloaded` (the oldest ones)."""
        return self.k_offloaded.shape[2]

    @property
    def num_tokens(self) -> int:
        """n, tokens per layer (all segments, offloaded included)."""
        return self.pos.shape[1]

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
        """Bytes of K and V resident, all layers, offloaded ones included."""
        return 2 * (self.k.numel() + self.k_offloaded.numel()) * self.k.element_size()

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
        return set(self.frame_tokens())

    def frame_tokens(self) -> dict[int, int]:
        """Return the tokens each frame holds, summed over layers, for the frames with any."""
        frames, counts = torch.unique(self.frame[:, self.num_init:], return_counts=True)
        return dict(zip(frames.tolist(), counts.tolist()))

    def resident(self, tokens: slice) -> slice:
        """Buffer slice of :attr:`k` holding memory tokens ``tokens`` (none offloaded)."""
        return slice(tokens.start - self.num_offloaded, tokens.stop - self.num_offloaded)

    def gather(self, layer: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        K/V of memory tokens ``index`` of ``layer``: ``([G, N, d], [G, N, d])``, on the device.

        ``index`` ``[N]`` (or ``[G, N]``) is ascending. Offloaded tokens are copied in from
        their device (ReKV's recall from host memory); that needs their count on the host,
        the one synchronisation of an offloaded answer per layer.
        """
        k, v = self.k[layer], self.v[layer]
        if not self.num_offloaded:
            return _take(k, index), _take(v, index)
        start, stop = self.num_init, self.num_init + self.num_offloaded
        host = (index >= start) & (index < stop)
        buffer = torch.where(index >= stop, index - self.num_offloaded, index)
        if not bool(host.any()):
            return _take(k, buffer), _take(v, buffer)
        picked = (index - start).clamp(0, self.num_offloaded - 1).to(self.k_offloaded.device)
        k_host = _take(self.k_offloaded[layer], picked).to(k.device, non_blocking=True)
        v_host = _take(self.v_offloaded[layer], picked).to(k.device, non_blocking=True)
        mask = host[..., None] if host.ndim == 2 else host[None, :, None]
        return (torch.where(mask, k_host, _take(k, buffer.clamp(max=k.shape[1] - 1))),
                torch.where(mask, v_host, _take(v, buffer.clamp(max=k.shape[1] - 1))))

    # ---- writes ---------------------------------------------------------------------

    def set_init(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the init (system prompt) segment, ``[L, G, n_init, d]``; clears the video."""
        num_layers, num_kv_heads, num_init, head_dim = k.shape
        self._empty(num_layers, num_kv_heads, head_dim, k.dtype, k.device)
        self.k, self.v = k.clone(), v.clone()
        self.pos = torch.arange(num_init, device=k.device).expand(num_layers, -1).clone()
        self.frame = torch.full_like(self.pos, -1)
        self.stamp = torch.full(self.pos.shape, float('nan'), dtype=torch.float64, device=k.device)
        self.label = torch.full((num_layers, num_kv_heads, num_init), -1, device=k.device)
        self.num_init = num_init
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
        rope: Rope,
    ) -> None:
        """
        Append a prefilled clip and bring the long-term segment back within budget.

        FIFO (spec A.4 step 3): the clip joins the short-term window; its oldest tokens
        beyond ``W_s`` become long-term candidates ``[long-term | overflow]``; the
        retrieval indexes take in the overflow (clusters, frame keys); if the candidates
        exceed the budget M the policy chooses which survive, per layer, in time order.

        Args:
            k_new: clip keys before RoPE, ``[L, G, T, d]``.
            v_new: clip values, ``[L, G, T, d]``.
            frames: frame index of each clip token, ``[T]`` int64.
            stamps: camera stamp of each clip token, ``[T]`` float64 seconds.
            scores: VSB scores over ``[resident memory | clip]``, ``[L, n + T]`` float32,
                or None.
            policy: decides the long-term budget, the survivors and the indexes kept.
            rope: RoPE, for clusters of keys with positions (``retrieval_keys``).
        """
        num_layers, num_kv_heads, num_new, _ = k_new.shape
        old_lt = self.num_long_term
        positions = self.next_position + torch.arange(num_new, device=self.pos.device)
        self.k = torch.cat((self.k, k_new), dim=2)
        self.v = torch.cat((self.v, v_new), dim=2)
        self.pos = torch.cat((self.pos, positions.expand(num_layers, -1)), dim=1)
        self.frame = torch.cat((self.frame, frames.to(self.frame.device).expand(num_layers, -1)),
                               dim=1)
        self.stamp = torch.cat((self.stamp, stamps.to(self.stamp.device).expand(num_layers, -1)),
                               dim=1)
        self.label = torch.cat(
            (self.label, self.label.new_full((num_layers, num_kv_heads, num_new), -1)), dim=2
        )
        self.num_short_term = min(self.short_term_tokens, self.num_short_term + num_new)
        self.next_position += num_new
        entering = slice(self.num_init + old_lt, self.num_tokens - self.num_short_term)
        if entering.stop > entering.start:
            self._index(entering, policy, rope)
        budget = policy.budget_tokens
        lt = self.long_term
        if budget is not None and lt.stop - lt.start > budget:
            keep, topped_up = policy.select(
                Candidates(
                    scores=None if scores is None else scores[:, lt],
                    positions=self.pos[:, lt],
                    frames=self.frame[:, lt],
                    video_span=(self.num_init, self.next_position),
                )
            )
            if topped_up is not None:
                self.topped_up = self.topped_up + topped_up  # never in place: see load_state
            self._keep(keep.to(self.pos.device) + self.num_init)

    def _index(self, entering: slice, policy: MemoryPolicy, rope: Rope) -> None:
        """Take the tokens ``entering`` the long-term segment into the retrieval indexes."""
        if policy.clusters:
            keys = self.k[:, :, self.resident(entering)]
            if policy.config.retrieval_keys == 'positional':
                keys = torch.stack([rope.apply(keys[layer], self.pos[layer, entering])
                                    for layer in range(keys.shape[0])])
            num_layers, num_kv_heads, num, dim = keys.shape
            count = num_new_clusters(num, policy.config.cluster_tokens)
            centroids, labels = cosine_kmeans(keys.reshape(-1, num, dim), count)
            self.label[:, :, entering] = labels.view(num_layers, num_kv_heads, num) + (
                self.centroids.shape[2])
            self.centroids = torch.cat(
                (self.centroids, centroids.view(num_layers, num_kv_heads, count, dim)), dim=2)
            self.cluster_size = torch.cat(
                (self.cluster_size,
                 torch.zeros(num_layers, num_kv_heads, count, dtype=torch.int64,
                             device=self.label.device).scatter_add_(
                     2, labels.view(num_layers, num_kv_heads, num),
                     torch.ones_like(labels.view(num_layers, num_kv_heads, num)))),
                dim=2)
        if policy.retrieval == 'frames':  # whole frames of P tokens enter (nothing evicted)
            keys = self.k[:, :, self.resident(entering)]
            num_layers, num_kv_heads, num, dim = keys.shape
            per_frame = policy.tokens_per_frame
            means = keys.float().view(num_layers, num_kv_heads, num // per_frame, per_frame,
                                      dim).mean(dim=3)
            self.frame_keys = torch.cat((self.frame_keys, means), dim=2)

    def _keep(self, index: torch.Tensor) -> None:
        """Keep the long-term tokens ``index`` ``[L, k]`` (memory indices, ascending)."""
        num_layers = index.shape[0]
        lt = self.long_term
        device = self.pos.device
        index = torch.cat((
            torch.arange(self.num_init, device=device).expand(num_layers, -1),
            index,
            torch.arange(lt.stop, self.num_tokens, device=device).expand(num_layers, -1),
        ), dim=1)  # [L, n'] token indices to keep, ascending
        gather = index[:, None, :, None].expand(-1, self.k.shape[1], -1, self.k.shape[3])
        self.k, self.v = self.k.gather(2, gather), self.v.gather(2, gather)
        self.pos, self.frame = self.pos.gather(1, index), self.frame.gather(1, index)
        self.stamp = self.stamp.gather(1, index)
        self.label = self.label.gather(2, index[:, None].expand(-1, self.label.shape[1], -1))
        if self.centroids.shape[2]:  # centroids of the survivors, empty clusters dropped
            lt = self.long_term
            centroids, sizes = cluster_stats(self.k[:, :, lt], self.label[:, :, lt],
                                             self.centroids.shape[2])
            self.label, self.centroids, self.cluster_size = drop_empty(
                self.label, centroids, sizes)

    def offload(self, keep_resident: int, device: torch.device) -> None:
        """
        Move the K/V of all but the newest ``keep_resident`` long-term tokens to ``device``.

        ReKV on a GPU: tokens beyond the local window go to (pinned) host memory, where
        answers recall the frames they retrieve from (:meth:`gather`).
        """
        move = self.num_long_term - keep_resident - self.num_offloaded
        if move <= 0:
            return
        start = self.num_init
        k_out, v_out = self.k[:, :, start:start + move], self.v[:, :, start:start + move]
        pin = device.type == 'cpu' and self.k.device.type == 'cuda'
        k_out, v_out = (x.to(device) for x in (k_out, v_out))
        if pin:
            k_out, v_out = k_out.pin_memory(), v_out.pin_memory()
        self.k_offloaded = torch.cat((self.k_offloaded.to(device), k_out), dim=2)
        self.v_offloaded = torch.cat((self.v_offloaded.to(device), v_out), dim=2)
        keep = torch.cat((torch.arange(start, device=self.k.device),
                          torch.arange(start + move, self.k.shape[2], device=self.k.device)))
        self.k, self.v = self.k[:, :, keep], self.v[:, :, keep]

    # ---- state ----------------------------------------------------------------------

    STATE_INTS = ('num_init', 'num_short_term', 'next_position')

    def state(self) -> dict[str, torch.Tensor | int]:
        """
        Every tensor and counter of the memory, whatever the policy (references, not copies).

        The state protocol, shared with :meth:`MemoryPolicy.state`: a dict of names to
        tensors or JSON values, nested dicts and lists allowed; pass it back to
        :meth:`load_state` of a memory of the same shape to continue from it. The memory
        file (:mod:`ros2_livevlm.persistence`) stores tensors in safetensors and the rest
        as JSON without knowing the names.

        Returns:
            ``k``, ``v``: ``[L, G, n_resident, d]`` keys (before RoPE) and values in the
            model dtype; ``pos``, ``frame``: ``[L, n]`` int64; ``stamp``: ``[L, n]``
            float64 s (NaN for init); ``label`` ``[L, G, n]`` int64, ``centroids``
            ``[L, G, C, d]`` float32, ``cluster_size`` ``[L, G, C]`` int64 (key clusters,
            empty without them); ``frame_keys`` ``[L, G, F, d]`` float32 (ReKV's per-frame
            mean keys); ``k_offloaded``, ``v_offloaded`` ``[L, G, n_off, d]`` (on their
            own device); ``topped_up``: 0-d int64, VSB's top-up count; ``num_init``,
            ``num_short_term``, ``next_position``: ints.
        """
        names = ('k', 'v', 'pos', 'frame', 'stamp', 'label', 'centroids', 'cluster_size',
                 'frame_keys', 'k_offloaded', 'v_offloaded', 'topped_up') + self.STATE_INTS
        return {name: getattr(self, name) for name in names}

    def load_state(self, state: dict[str, torch.Tensor | int]) -> None:
        """
        Replace the whole memory with ``state`` (as :meth:`state` returns it).

        Everything is checked before anything is replaced, so a refused state leaves the
        memory as it was. Tensors are moved to this memory's device (offloaded K/V stay on
        theirs), not copied: the memory never writes into its tensors in place, so the
        source is left unchanged.

        Raises:
            ValueError: a missing entry, or a tensor whose dtype or shape does not fit this
                memory (other L, G or d, segments or indexes that do not add up, a
                short-term segment longer than ``W_s``); the message names the entry.
        """
        names = [name for name in self.state() if name not in state]
        if names:
            raise ValueError(f'memory state lacks {", ".join(names)}')
        num_layers, num_kv_heads, _, head_dim = self.k.shape
        k = _checked(state, 'k', self.k.dtype, 4)
        if (k.shape[0], k.shape[1], k.shape[3]) != (num_layers, num_kv_heads, head_dim):
            raise ValueError(
                f'memory state k has shape {tuple(k.shape)}, this memory needs '
                f'[{num_layers}, {num_kv_heads}, n, {head_dim}]'
            )
        offloaded = _checked(state, 'k_offloaded', self.k.dtype, 4)
        num_tokens = k.shape[2] + offloaded.shape[2]
        heads = (num_layers, num_kv_heads)
        rows = (num_layers, num_tokens)
        label = _checked(state, 'label', torch.int64, 3, heads + (num_tokens,))
        sizes = _checked(state, 'cluster_size', torch.int64, 3)
        tensors = {
            'k': k,
            'v': _checked(state, 'v', self.v.dtype, 4, tuple(k.shape)),
            'pos': _checked(state, 'pos', torch.int64, 2, rows),
            'frame': _checked(state, 'frame', torch.int64, 2, rows),
            'stamp': _checked(state, 'stamp', torch.float64, 2, rows),
            'label': label,
            'centroids': _checked(state, 'centroids', torch.float32, 4,
                                  tuple(sizes.shape) + (head_dim,)),
            'cluster_size': sizes,
            'frame_keys': _checked(state, 'frame_keys', torch.float32, 4),
            'k_offloaded': offloaded,
            'v_offloaded': _checked(state, 'v_offloaded', self.v.dtype, 4,
                                    tuple(offloaded.shape)),
            'topped_up': _checked(state, 'topped_up', torch.int64, 0),
        }
        if sizes.shape[:2] != heads or tensors['frame_keys'].shape[:2] != heads:
            raise ValueError(f'memory state key clusters or frame keys are not per layer and '
                             f'KV head {list(heads)}')
        counts = [state[name] for name in self.STATE_INTS]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(
                'memory state needs non-negative ints num_init, num_short_term, '
                f'next_position, got {counts}'
            )
        num_init, num_short_term, _ = counts
        if num_init + num_short_term > num_tokens or num_short_term > self.short_term_tokens:
            raise ValueError(
                f'memory state segments do not fit: {num_init} init + {num_short_term} '
                f'short-term tokens of {num_tokens}, short-term window {self.short_term_tokens}'
            )
        device = self.k.device
        for name, value in tensors.items():
            setattr(self, name, value if name in ('k_offloaded', 'v_offloaded')
                    else value.to(device))
        for name, value in zip(self.STATE_INTS, counts):
            setattr(self, name, value)


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


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x [G, n, d]`` at ``index [N]`` (all heads) or ``[G', N]`` (per head, G' >= G)."""
    if index.ndim == 1:
        return x[:, index]
    group = index.shape[0] // x.shape[0]
    return x.repeat_interleave(group, dim=0).gather(
        1, index[..., None].expand(-1, -1, x.shape[2]))

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Rotary position embedding: the one place keys and queries are rotated or un-rotated.

The memory stores keys *before* RoPE (spec A.4, "store keys before RoPE"), so positions
are chosen at use time: compacted or original for attention (spec A.4.8), none at all for
PaR's page means (spec A.4 step 6). Layout and numerics follow HF Qwen2
(``rotate_half`` convention; angles in float32; ``attention_scaling`` folded into cos/sin).

Reference: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding",
arXiv 2104.09864.
"""

from __future__ import annotations

import torch


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Rope:
    """
    RoPE for one model: ``R(p) x = x * cos(p w) + rotate_half(x) * sin(p w)``, times a scale.

    Args:
        inv_freq: per-pair angular frequencies ``w``, ``[d / 2]`` float32 (HF
            ``rotary_emb.inv_freq``, which already holds any static RoPE scaling).
        attention_scaling: the factor HF multiplies cos and sin by (1.0 for default RoPE,
            the YaRN mscale otherwise).
    """

    TABLE_POSITIONS = 1 << 15
    """Positions below this are looked up in a cached table (compacted positions always are)."""

    def __init__(self, inv_freq: torch.Tensor, attention_scaling: float = 1.0) -> None:
        self.inv_freq = inv_freq.float()
        self.attention_scaling = attention_scaling
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin [positions, d]

    def _compute(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[..., None] * self.inv_freq.to(positions.device)  # [..., d/2]
        angles = torch.cat((freqs, freqs), dim=-1)  # [..., d]
        return angles.cos() * self.attention_scaling, angles.sin() * self.attention_scaling

    def cos_sin(
        self, positions: torch.Tensor, limit: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Return the cos and sin tables ``[..., d]`` (float32) of integer positions ``[...]``.

        Positions below :attr:`TABLE_POSITIONS` come from a table grown on demand (the
        same float32 values, computed once); larger ones (original positions of a long
        stream) are computed directly. ``limit``: a bound the caller knows (all positions
        ``< limit``), so no host synchronisation is needed to size the table; None reads
        ``positions.max()`` (one synchronisation).
        """
        if limit is None:
            limit = int(positions.max()) + 1 if positions.numel() else 0
        if limit > self.TABLE_POSITIONS:
            return self._compute(positions)
        table = self._table
        if table is None or table[0].shape[0] < limit or table[0].device != positions.device:
            size = min(max(1024, 1 << (limit - 1).bit_length()), self.TABLE_POSITIONS)
            table = self._table = self._compute(torch.arange(size, device=positions.device))
        return table[0][positions], table[1][positions]

    def apply(
        self, x: torch.Tensor, positions: torch.Tensor, limit: int | None = None
    ) -> torch.Tensor:
        """
        Rotate ``x [..., T, d]`` to ``positions`` ``[T]`` (or ``[..., T]``); same shape and dtype.

        ``limit``: an upper bound of the positions known on the host (:meth:`cos_sin`).
        """
        cos, sin = self.cos_sin(positions, limit)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return x * cos + _rotate_half(x) * sin

    def invert(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """
        Undo :meth:`apply`: rotate by ``-positions`` and divide by the scale squared.

        For backends that hand back post-RoPE keys (e.g. a fused-RoPE attention kernel):
        always invert with each token's *own* position, never its slot index (spec C.1).
        Computed in float32, returned in ``x``'s dtype.
        """
        cos, sin = self.cos_sin(positions)
        y = x.float()
        scale = self.attention_scaling**2
        return ((y * cos - _rotate_half(y) * sin) / scale).to(x.dtype)

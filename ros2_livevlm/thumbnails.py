# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Small JPEG thumbnails of the frames a memory holds: the evidence an answer can show.

One :class:`ThumbnailStore` per memory, owned by its engine
(:class:`~ros2_livevlm.engine.StreamingVLM`): a thumbnail is added per ingested frame and
dropped when its frame leaves the memory or when more than ``max_thumbnails`` frames hold
tokens (:meth:`ThumbnailStore.keep`). Part of the engine's state, so memory files keep it:
the JPEG bytes are one ``uint8`` tensor with offsets (:meth:`ThumbnailStore.state`). No
rclpy here; JPEG through Pillow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import io
from typing import Any

from PIL import Image
import torch

JPEG_QUALITY = 80
"""JPEG quality of the thumbnails (Pillow's scale, 1-95)."""


@dataclass(frozen=True)
class Thumbnail:
    """One frame's thumbnail: frame index in its memory, camera stamp (s), JPEG bytes."""

    frame: int
    stamp: float
    jpeg: bytes


def encode_jpeg(rgb: torch.Tensor, size: int) -> bytes:
    """
    Encode a frame as a JPEG whose longest side is at most ``size`` px (aspect kept).

    Args:
        rgb: uint8 ``[H, W, 3]`` (CPU or GPU).
        size: longest side, px (>= 1); a smaller frame keeps its size.
    """
    image = Image.fromarray(rgb.cpu().numpy())
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=JPEG_QUALITY)
    return buffer.getvalue()


class ThumbnailStore:
    """
    Thumbnails of one memory's frames, by frame index, in stream order.

    Args:
        size: longest side of a thumbnail, px; 0: keep none (:meth:`add` does nothing).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._thumbnails: dict[int, Thumbnail] = {}

    def __len__(self) -> int:
        """Return the number of thumbnails held."""
        return len(self._thumbnails)

    @property
    def num_bytes(self) -> int:
        """JPEG bytes held, all thumbnails."""
        return sum(len(t.jpeg) for t in self._thumbnails.values())

    def add(self, frame: int, stamp: float, rgb: torch.Tensor) -> None:
        """Keep a thumbnail of frame ``frame`` (uint8 ``[H, W, 3]``, stamp in s)."""
        if self.size > 0:
            self._thumbnails[frame] = Thumbnail(frame, stamp, encode_jpeg(rgb, self.size))

    def keep(self, tokens: dict[int, int], limit: int, pending: Iterable[int] = ()) -> None:
        """
        Drop the thumbnails of frames that left the memory, and those beyond ``limit``.

        Args:
            tokens: frame index -> tokens the frame holds in the memory (all layers).
            limit: most thumbnails of memory frames kept: those of the frames holding the
                most tokens, the newest on ties.
            pending: frames buffered for the next clip; their thumbnails always stay.
        """
        kept = set(sorted(tokens, key=lambda f: (tokens[f], f), reverse=True)[:limit])
        kept.update(pending)
        self._thumbnails = {i: t for i, t in self._thumbnails.items() if i in kept}

    def clear(self) -> None:
        """Drop every thumbnail."""
        self._thumbnails = {}

    def within(self, spans: list[tuple[float, float]], limit: int) -> list[Thumbnail]:
        """
        Return the thumbnails whose stamps lie in ``spans``, span by span, at most ``limit``.

        Args:
            spans: ``(t_start, t_end)`` in s, most relevant first (an answer's evidence).
            limit: most thumbnails returned; a long span gives its frames evenly spread.
        """
        chosen: list[Thumbnail] = []
        per_span = max(1, limit // max(1, len(spans)))
        for start, end in spans:
            inside = [t for t in self._thumbnails.values() if start <= t.stamp <= end]
            step = max(1, -(-len(inside) // per_span))  # ceil: spread over the span
            chosen += [t for t in inside[::step] if t not in chosen]
        return chosen[:limit]

    def state(self) -> dict[str, Any]:
        """
        Return the thumbnails as tensors (the engine's state protocol).

        ``frames`` int64 ``[N]``, ``stamps`` float64 ``[N]`` (s), ``offsets`` int64
        ``[N + 1]`` into ``jpeg``, uint8 ``[bytes]`` (all JPEGs one after another).
        """
        items = list(self._thumbnails.values())
        lengths = torch.tensor([len(t.jpeg) for t in items], dtype=torch.int64)
        offsets = torch.zeros(len(items) + 1, dtype=torch.int64)
        offsets[1:] = torch.cumsum(lengths, 0)
        data = b''.join(t.jpeg for t in items)
        return {
            'frames': torch.tensor([t.frame for t in items], dtype=torch.int64),
            'stamps': torch.tensor([t.stamp for t in items], dtype=torch.float64),
            'offsets': offsets,
            'jpeg': torch.frombuffer(bytearray(data), dtype=torch.uint8) if data
            else torch.zeros(0, dtype=torch.uint8),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """
        Replace the thumbnails with those of :meth:`state` (an empty dict: none).

        Raises:
            ValueError: tensors of the wrong dtype or lengths that do not fit together.
        """
        if not state:
            self.clear()
            return
        frames, stamps = state.get('frames'), state.get('stamps')
        offsets, data = state.get('offsets'), state.get('jpeg')
        expected = ((frames, torch.int64), (stamps, torch.float64), (offsets, torch.int64),
                    (data, torch.uint8))
        if not all(isinstance(t, torch.Tensor) and t.dtype == d and t.ndim == 1
                   for t, d in expected):
            raise ValueError('thumbnail state must be 1-D tensors frames (int64), stamps '
                             '(float64), offsets (int64) and jpeg (uint8)')
        count = frames.numel()
        bounds = offsets.tolist()
        if (stamps.numel() != count or len(bounds) != count + 1 or bounds[0] != 0
                or bounds[-1] != data.numel() or bounds != sorted(bounds)):
            raise ValueError(f'thumbnail state lists {count} frames but its stamps, offsets '
                             'and bytes do not fit together')
        raw = data.numpy().tobytes()
        self._thumbnails = {
            frame: Thumbnail(frame, stamp, raw[bounds[i]:bounds[i + 1]])
            for i, (frame, stamp) in enumerate(zip(frames.tolist(), stamps.tolist()))}

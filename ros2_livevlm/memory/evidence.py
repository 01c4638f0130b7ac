# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The camera time spans an answer drew on, from what each layer retrieved."""

from __future__ import annotations

import torch

from .store import VideoMemory


def frame_weights(
    memory: VideoMemory, selections: list[torch.Tensor | None]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Weight of every long-term frame: its share of tokens retrieved, summed over layers.

    A frame's share in a layer is (its tokens retrieved) / (its tokens stored in that
    layer), averaged over query heads for per-head selections, so a frame that kept one
    token after VSB weighs as much when it is retrieved as a frame that kept all.

    Args:
        memory: the memory answered from.
        selections: per layer, long-term token indices ``[N]`` or ``[H, N]`` (None: the
            layer ranked nothing).

    Returns:
        ``(frames [F] int64 ascending, weights [F] float32, stamps [F] float64)`` over the
        frames present in the long-term segment of any layer.
    """
    lt = memory.long_term
    frames_lt = memory.frame[:, lt]  # [L, n_lt]
    frames, inverse = torch.unique(frames_lt, return_inverse=True)  # [F], [L, n_lt]
    stamps = torch.empty(frames.numel(), dtype=torch.float64, device=frames.device).scatter_(
        0, inverse.flatten(), memory.stamp[:, lt].flatten())
    weights = torch.zeros(frames.numel(), device=frames.device)
    for layer, selected in enumerate(selections):
        if selected is None:
            continue
        stored = torch.bincount(inverse[layer], minlength=frames.numel()).float()
        heads = selected.shape[0] if selected.ndim == 2 else 1
        hits = torch.bincount(inverse[layer][selected.flatten()],
                              minlength=frames.numel()).float() / heads
        weights += hits / stored.clamp(min=1)
    return frames, weights, stamps


def evidence_spans(
    memory: VideoMemory, selections: list[torch.Tensor | None], max_spans: int = 4
) -> list[tuple[float, float]]:
    """
    Camera time spans ``(t_start, t_end)`` s of the frames retrieved most, most relevant first.

    Frames weighing (:func:`frame_weights`) at least half the heaviest are grouped into
    runs of frames adjacent in the memory (no other long-term frame between them); runs
    are ranked by total weight. Without long-term memory, or when nothing was ranked, the
    evidence is the short-term window.
    """
    if memory.num_long_term and any(s is not None for s in selections):
        frames, weights, stamps = frame_weights(memory, selections)
        if float(weights.max()) > 0:
            strong = (weights >= weights.max() / 2).nonzero().squeeze(1).tolist()
            weights, stamps = weights.tolist(), stamps.tolist()
            runs: list[list[float]] = []  # [weight, t_start, t_end, last index]
            for i in strong:
                if runs and i == runs[-1][3] + 1:
                    runs[-1][0] += weights[i]
                    runs[-1][2:] = [stamps[i], i]
                else:
                    runs.append([weights[i], stamps[i], stamps[i], i])
            runs.sort(key=lambda run: -run[0])
            return [(start, end) for _, start, end, _ in runs[:max_spans]]
    stamps = memory.stamp[0, memory.short_term]
    return [(float(stamps.min()), float(stamps.max()))] if stamps.numel() else []

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Watch benchmark: event delay on the sample tour and cost per evaluation, in one run.

    python -m ros2_livevlm.bench.watch [--scene SCENE] [--clips 1,2,4,8] [--holds 1,2]

The sample tour (:class:`~ros2_livevlm.eval.sample.Tour`: the frames the node samples
from the sample bag, one every ``frame_period_s`` = 10 s) streams into the reference
model for each clip size in ``--clips``; after every clip a watch asks "Did you see
<scene>?" (by default the first scene that comes into view after the start) about the
present (``window_s=0``: the short-term frames) with each hysteresis ``hold`` in
``--holds``. For every event: the stamp of the newest frame it saw and its
delay after the true scene start (yes) or end (no), in camera seconds; an event no scene
boundary explains is a false event. Cost: median evaluation time (one prompt prefill over
the memory) against the median clip time (encode + prefill), in the same run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from itertools import islice
import statistics
from typing import Any

import numpy as np

from ..checkpoints import default_settings
from ..checkpoints import REFERENCE
from ..engine import StreamingVLM
from ..eval.sample import camera_frames
from ..eval.sample import plan_runs
from ..eval.sample import scene_spans
from ..eval.sample import Tour
from ..eval.sample import watch_question
from ..eval.sample import watched_scene
from ..reference.task import Run
from ..watch import Watch


def tour_frames(tour: Tour) -> tuple[np.ndarray, np.ndarray, list[Run]]:
    """Return the frames the node samples from the tour (uint8 ``[N, H, W, 3]``), stamps, runs."""
    runs = plan_runs(tour)
    step = round(tour.frame_period_s * tour.rate_hz)  # camera frames per sampled frame
    sampled = list(islice(camera_frames(tour, runs), 0, None, step))
    stamps = np.array([(ns - sampled[0][0]) / 1e9 for ns, _ in sampled])
    return np.stack([rgb for _, rgb in sampled]), stamps, runs


def delay(event_stamp: float, answer: bool, spans: Sequence[tuple[float, float]]) -> float | None:
    """Seconds since the latest scene start (yes) or end (no) at or before ``event_stamp``."""
    edges = [start if answer else end for start, end in spans]
    passed = [event_stamp - edge for edge in edges if edge <= event_stamp]
    return min(passed) if passed else None


def measure(engine: StreamingVLM, frames: np.ndarray, stamps: np.ndarray, question: str,
            holds: Sequence[int], spans: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """Stream the tour clip by clip, evaluating one watch per hold; return a row per hold."""
    watches = {hold: Watch(question, window_s=0.0, hold=hold) for hold in holds}
    events: dict[int, list[str]] = {hold: [] for hold in holds}
    false_events = dict.fromkeys(holds, 0)
    costs, clips = [], []
    clip = engine.engine_config.frames_per_clip
    for start in range(0, len(frames), clip):
        engine.ingest(frames[start:start + clip], stamps[start:start + clip])
        engine.flush()  # the tour's last, partial clip
        clips.append(engine.stats().last_encode_s + engine.stats().last_prefill_s)
        for hold, watch in watches.items():
            reading, event = watch.evaluate(engine)
            costs.append(reading.cost_s)
            if event is None:
                continue
            late = delay(reading.newest_stamp, event.answer, spans)
            false_events[hold] += late is None
            label = 'yes' if event.answer else 'no'
            events[hold].append(f'{label}@{reading.newest_stamp:.0f}s'
                                + (f' (+{late:.0f}s)' if late is not None else ' (false)'))
    cost, clip_s = statistics.median(costs), statistics.median(clips)
    return [
        {
            'frames_per_clip': clip,
            'hold': hold,
            'events': ', '.join(events[hold]) or 'none',
            'false_events': false_events[hold],
            'evaluations': watches[hold].evaluations,
            'cost_s': cost,
            'clip_s': clip_s,
        }
        for hold in holds
    ]


def main(argv: list[str] | None = None) -> None:
    """Measure every clip size and hold on the sample tour; print one table."""
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.bench.watch',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--scene', default=None,
                        help='scene the watch asks about (default: the first scene that comes '
                             'into view after the start)')
    parser.add_argument('--clips', default='1,2,4,8',
                        help='frames per clip, comma separated (default: %(default)s)')
    parser.add_argument('--holds', default='1,2',
                        help='hysteresis holds, comma separated (default: %(default)s)')
    args = parser.parse_args(argv)
    tour = Tour()
    frames, stamps, runs = tour_frames(tour)
    args.scene = args.scene or watched_scene(runs)
    spans = scene_spans(tour, runs, args.scene)
    if not spans:
        parser.error(f'the sample tour never shows {args.scene!r}: '
                     f'{", ".join(r.scene for r in runs)}')
    question = watch_question(args.scene)
    holds = [int(h) for h in args.holds.split(',')]
    rows = []
    for clip in (int(c) for c in args.clips.split(',')):
        settings = {**default_settings(REFERENCE), 'frames_per_clip': clip}
        engine = StreamingVLM.from_pretrained(REFERENCE, **settings)
        rows += measure(engine, frames, stamps, question, holds, spans)
    shown = ', '.join(f'{start:.0f}-{end:.0f} s' for start, end in spans)
    print(f'"{question}" on the sample tour ({len(frames)} frames, one per '
          f'{tour.frame_period_s:.0f} s); {args.scene} in view {shown}\n')
    print('| frames/clip | hold | events (newest frame, delay) | false | evaluations '
          '| eval ms p50 | clip ms p50 | eval/clip |')
    print('|---:|---:|---|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f'| {r["frames_per_clip"]} | {r["hold"]} | {r["events"]} | {r["false_events"]} '
              f'| {r["evaluations"]} | {r["cost_s"] * 1e3:.1f} | {r["clip_s"] * 1e3:.1f} '
              f'| {r["cost_s"] / r["clip_s"]:.2f} |')


if __name__ == '__main__':
    main()

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The short camera tour, settings and readers shared by the evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

from ros2_livevlm.eval.sample import Tour


SHORT_TOUR = Tour(
    num_frames=8,
    frame_period_s=1.0,
    rate_hz=5.0,
    checkpoints=(3, 5),
    questions_per_checkpoint=2,
    final_questions=4,
)
"""8 s at 5 Hz (40 frames of 640 x 480), questions after model frames 3, 5, 7; sampled at 1 Hz."""


EVAL_ARGS = ('--budget-tokens', '32', '--frames-per-clip', '4', '--sample-fps', '1', '--quiet')
"""
Settings shared by the offline and live runs: a budget of 2 frames (16 tokens each), clips of
4 frames, one frame per second."""


def read_records(out: Path) -> list[dict]:
    """Read the lines of ``out/records.jsonl``."""
    return [json.loads(line) for line in (out / 'records.jsonl').read_text().splitlines()]

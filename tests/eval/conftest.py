"""Fixtures for the evaluation tests: short real camera bags from the photo tour, a model cache."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path

import pytest

from ros2_livevlm.eval import evaluate
from ros2_livevlm.eval.sample import make_sample
from ros2_livevlm.eval.sample import Tour

SHORT_TOUR = Tour(
    num_frames=8,
    frame_period_s=1.0,
    rate_hz=5.0,
    checkpoints=(3, 5),
    questions_per_checkpoint=2,
    final_questions=4,
)
"""8 s at 5 Hz (40 frames of 96 x 128), questions after model frames 3, 5, 7; sampled at 1 Hz."""


@pytest.fixture(scope='session', autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Use a fresh model cache for this session (tiny checkpoint built once; nodes inherit it)."""
    path = tmp_path_factory.mktemp('cache')
    previous = os.environ.get('ROS2_LIVEVLM_CACHE')
    os.environ['ROS2_LIVEVLM_CACHE'] = str(path)
    yield path
    if previous is None:
        os.environ.pop('ROS2_LIVEVLM_CACHE', None)
    else:
        os.environ['ROS2_LIVEVLM_CACHE'] = previous


@pytest.fixture(scope='session')
def short_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the short tour as a sample directory (MCAP bag, questions.jsonl, tour.json)."""
    return make_sample(tmp_path_factory.mktemp('sample') / 'short', SHORT_TOUR)


EVAL_ARGS = ('--budget-tokens', '32', '--frames-per-clip', '4', '--sample-fps', '1', '--quiet')
"""
Settings shared by the offline and live runs: a budget of 2 frames (16 tokens each), clips of
4 frames, one frame per second."""


def read_records(out: Path) -> list[dict]:
    """Read the lines of ``out/records.jsonl``."""
    return [json.loads(line) for line in (out / 'records.jsonl').read_text().splitlines()]


@pytest.fixture(scope='session')
def offline_report(short_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``evaluate`` offline on the short tour (full, livevlm; tiny model); its report dir."""
    out = tmp_path_factory.mktemp('offline')
    code = evaluate.main(
        [
            '--bag',
            str(short_sample / 'bag'),
            '--questions',
            str(short_sample / 'questions.jsonl'),
            '--policies',
            'full,livevlm',
            '--out',
            str(out),
            *EVAL_ARGS,
        ]
    )
    assert code == 0
    return out

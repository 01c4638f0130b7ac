# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the evaluation tests: short real camera bags from the photo tour, a model cache."""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path

from eval_cases import EVAL_ARGS
from eval_cases import SHORT_TOUR
import pytest
from ros2_livevlm.eval import evaluate
from ros2_livevlm.eval.sample import make_sample


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
            '--model-path',
            'tiny',
            '--out',
            str(out),
            *EVAL_ARGS,
        ]
    )
    assert code == 0
    return out

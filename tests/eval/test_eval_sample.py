# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The sample tour: deterministic for a seed, and its questions agree with what the bag shows."""

from __future__ import annotations

from pathlib import Path

from eval_cases import SHORT_TOUR
import pytest
from ros2_livevlm.eval.bag import bag_info
from ros2_livevlm.eval.bag import read_camera
from ros2_livevlm.eval.questions import load_questions
from ros2_livevlm.eval.sample import make_sample
from ros2_livevlm.eval.sample import plan_runs
from ros2_livevlm.eval.sample import read_tour
from ros2_livevlm.eval.sample import START_NS
from ros2_livevlm.eval.sample import Tour
from ros2_livevlm.eval.sample import watched_scene
from ros2_livevlm.reference.scenes import SCENE_NAMES
from ros2_livevlm.reference.task import Run
from ros2_livevlm.reference.task import TEMPLATES


def scene_at(runs: list[dict], t: float) -> str:
    return next(r['scene'] for r in runs if r['start_s'] <= t < r['end_s'])


def test_bag_and_questions_match_the_tour(short_sample: Path) -> None:
    tour = read_tour(short_sample)
    runs = tour['runs']
    assert runs[0]['start_s'] == 0 and runs[-1]['end_s'] == SHORT_TOUR.duration_s
    assert all(
        a['end_s'] == b['start_s'] and a['scene'] != b['scene'] for a, b in zip(runs, runs[1:])
    )

    info = bag_info(short_sample / 'bag')
    (camera,) = info.cameras
    assert (camera.topic, camera.count, info.start_ns) == (SHORT_TOUR.topic, 40, START_NS)
    first = next(read_camera(short_sample / 'bag', camera.topic)).decode()
    assert (first.height, first.width, first.encoding, first.header.frame_id) == (
        480,
        640,
        'rgb8',
        SHORT_TOUR.frame_id,
    )

    questions = load_questions(short_sample / 'questions.jsonl')
    assert len(questions) == 2 * SHORT_TOUR.questions_per_checkpoint + SHORT_TOUR.final_questions
    wordings = {w for kind in TEMPLATES.values() for w in kind}
    for q in questions:
        asked, evidence = q.time.relative_s, q.evidence_time.relative_s
        assert evidence <= asked and q.camera == SHORT_TOUR.topic
        seen = {r['scene'] for r in runs if r['start_s'] <= asked}
        assert any(w.split('{')[0] == q.question[: len(w.split('{')[0])] for w in wordings)
        if q.kind == 'now':
            assert q.answer == scene_at(runs, asked) == scene_at(runs, evidence)
        elif q.kind == 'first':
            assert q.answer == runs[0]['scene'] and evidence == 0
        elif q.kind == 'presence':
            (scene,) = [s for s in SCENE_NAMES if s in q.question.rstrip('?').split()]
            assert q.answer == ('yes' if scene in seen else 'no') and q.options == ('yes', 'no')


def test_deterministic_for_a_seed(tmp_path: Path, short_sample: Path) -> None:
    again = make_sample(tmp_path / 'again', SHORT_TOUR)
    assert (again / 'questions.jsonl').read_text() == (
        short_sample / 'questions.jsonl'
    ).read_text()
    raw = [m.raw for m in read_camera(again / 'bag', SHORT_TOUR.topic)]
    assert raw == [m.raw for m in read_camera(short_sample / 'bag', SHORT_TOUR.topic)]

    other = make_sample(
        tmp_path / 'other',
        type(SHORT_TOUR)(**{**SHORT_TOUR.__dict__, 'seed': 1}),
        storage='sqlite3',
    )
    assert [m.raw for m in read_camera(other / 'bag', SHORT_TOUR.topic)] != raw
    assert (again / 'tour.json').stat().st_mtime == make_sample(again, SHORT_TOUR).joinpath(
        'tour.json'
    ).stat().st_mtime


def test_the_watched_scene_comes_into_view_after_the_start() -> None:
    runs = plan_runs(Tour())
    scene = watched_scene(runs)
    first = next(run for run in runs if run.scene == scene)
    assert scene != runs[0].scene and first.start > 0
    assert watched_scene([Run('cat', 0, 3), Run('cat', 3, 2), Run('moon', 5, 4)]) == 'moon'
    with pytest.raises(ValueError, match="only 'cat'"):
        watched_scene([Run('cat', 0, 3)])

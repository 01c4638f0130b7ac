# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The streaming recall task: runs cover the stream, answers and evidence distances are right."""

from __future__ import annotations

import numpy as np
import pytest
from ros2_livevlm.reference.scenes import SCENE_NAMES
from ros2_livevlm.reference.task import all_questions
from ros2_livevlm.reference.task import ANSWERS
from ros2_livevlm.reference.task import held_out_seed
from ros2_livevlm.reference.task import make_episode
from ros2_livevlm.reference.task import make_runs
from ros2_livevlm.reference.task import Run
from ros2_livevlm.reference.task import run_frames
from ros2_livevlm.reference.task import sample_questions
from ros2_livevlm.reference.task import TRAIN_SEED_TAG


@pytest.mark.parametrize('seed', range(20))
def test_runs_cover_the_stream_without_immediate_repeats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    runs = make_runs(rng, 40, (3, 6))
    assert runs[0].start == 0 and runs[-1].end == 40
    assert all(a.end == b.start for a, b in zip(runs, runs[1:]))
    assert all(3 <= r.num_frames <= 6 for r in runs[:-1]) and 1 <= runs[-1].num_frames <= 6
    assert all(a.scene != b.scene for a, b in zip(runs, runs[1:]))
    assert {r.scene for r in runs} <= set(SCENE_NAMES)


def test_questions_answers_and_evidence_distances() -> None:
    runs = [Run('cat', 0, 3), Run('rocket', 3, 4), Run('cat', 7, 2), Run('moon', 9, 3)]
    questions = all_questions(np.random.default_rng(0), runs)
    presence = {q.text: q for q in questions['presence']}
    assert len(presence) == len(SCENE_NAMES)
    cat = next(q for text, q in presence.items() if 'cat' in text)
    assert (cat.answer, cat.evidence_frames_ago) == ('yes', 11 - 8)  # its last frame, 8
    rocket = next(q for text, q in presence.items() if 'rocket' in text)
    assert (rocket.answer, rocket.evidence_frames_ago) == ('yes', 11 - 6)
    clock = next(q for text, q in presence.items() if 'clock' in text)
    assert (clock.answer, clock.evidence_frames_ago) == ('no', 11)  # the whole stream
    (first,) = questions['first']
    assert (first.answer, first.evidence_frames_ago, first.evidence_s) == ('cat', 11, 11.0)
    (now,) = questions['now']
    assert (now.answer, now.evidence_frames_ago) == ('moon', 0)
    # order: only rocket and moon are shown once; one yes and one no, evidence the rocket's
    order = {(q.scene, q.other): q for q in questions['order']}
    assert set(order) == {('rocket', 'moon'), ('moon', 'rocket')}
    assert order[('rocket', 'moon')].answer == 'yes' and order[('moon', 'rocket')].answer == 'no'
    assert order[('rocket', 'moon')].text.count('rocket') == 1
    assert {q.evidence_frames_ago for q in order.values()} == {11 - 6}


def test_sampled_questions_are_distinct_and_balanced() -> None:
    rng = np.random.default_rng(1)
    runs = make_runs(rng, 40, (3, 6))
    questions = sample_questions(rng, runs, 10)
    assert len({q.text for q in questions}) == 10
    assert {q.kind for q in questions} == {'presence', 'first', 'now', 'order'}
    for kind in ('presence', 'order'):  # half 'yes', as far as the stream allows
        answers = [q.answer for q in questions if q.kind == kind]
        assert abs(answers.count('yes') - answers.count('no')) <= 1, kind
    assert all(q.answer in ANSWERS for q in questions)
    for seed in range(20):  # yes/no kinds come in pairs: 'always yes' scores half on them
        rng = np.random.default_rng(seed)
        runs = make_runs(rng, 16, (3, 6))
        shown = [run.scene for run in runs]
        if sum(shown.count(scene) == 1 for scene in shown) < 3:
            continue  # too few scenes for 3 presence 'yes' and 4 order questions
        answers = [q.answer for q in sample_questions(rng, runs, 8) if q.answer in ('yes', 'no')]
        assert len(answers) == 6 and answers.count('yes') == 3, seed


def test_episode_is_deterministic_and_real_frames() -> None:
    a = make_episode(5, 12, 6)
    b = make_episode(5, 12, 6)
    assert a.frames.shape == (12, 96, 128, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and a.questions == b.questions
    assert a.stamps.tolist() == [float(i) for i in range(12)]
    assert a.frames.std() > 10  # photos, not blank frames


def test_runs_grow_with_the_stream_and_seeds_stay_apart() -> None:
    assert run_frames(16) == (3, 6) and run_frames(64) == (12, 24) and run_frames(256) == (48, 96)
    assert run_frames(1) == (1, 1)
    assert held_out_seed(0, 64, 0)[0] != TRAIN_SEED_TAG  # held-out streams: another family

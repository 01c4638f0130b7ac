# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Watches: yes/no readings from the first answer token, hysteresis, events on a real stream."""

from __future__ import annotations

import numpy as np
import pytest
from ros2_livevlm.checkpoints import default_settings
from ros2_livevlm.checkpoints import REFERENCE
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.reference.task import render_run
from ros2_livevlm.watch import Hysteresis
from ros2_livevlm.watch import Watch
from ros2_livevlm.watch import WatchEvent
from ros2_livevlm.watch import yes_no_token_ids


def test_hysteresis_fires_once_per_change_and_not_while_it_holds() -> None:
    hysteresis = Hysteresis(hold=2)
    answers = [False, True, False, True, True, True, True, False, True, False, False, False]
    fired = [i for i, answer in enumerate(answers) if hysteresis.update(answer)]
    assert fired == [4, 10]  # yes held twice at 3-4, no held twice at 9-10; blips ignored
    assert hysteresis.state is False
    immediate = Hysteresis(hold=1, state=True)
    assert [immediate.update(a) for a in (True, False, False, True)] == [False, True, False, True]
    with pytest.raises(ValueError, match='hold'):
        Hysteresis(hold=0)


@pytest.fixture(scope='module')
def reference() -> StreamingVLM:
    """Load the reference model with its memory settings, two frames per clip."""
    return StreamingVLM.from_pretrained(
        REFERENCE, **{**default_settings(REFERENCE), 'frames_per_clip': 2}
    )


def scene_stream(runs: list[tuple[str, int]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames of consecutive scene runs ``(scene, frames)``, one frame per second."""
    rng = np.random.default_rng(seed)
    frames = np.concatenate([render_run(rng, scene, count, (96, 128)) for scene, count in runs])
    return frames, np.arange(len(frames), dtype=np.float64)


def run_watch(engine: StreamingVLM, watch: Watch, frames: np.ndarray,
              stamps: np.ndarray) -> tuple[list[WatchEvent], list[float]]:
    """Evaluate ``watch`` after every clip; return its events and every reading's p_yes."""
    events, p_yes = [], []
    clip = engine.engine_config.frames_per_clip
    for start in range(0, len(frames), clip):
        engine.ingest(frames[start:start + clip], stamps[start:start + clip])
        reading, event = watch.evaluate(engine)
        assert reading.newest_stamp == stamps[start + clip - 1]
        assert reading.yes_no_mass > 0.9 and reading.cost_s > 0.0
        p_yes.append(reading.p_yes)
        if event is not None:
            events.append(event)
    return events, p_yes


def test_a_present_tense_watch_fires_when_the_scene_starts_and_ends(
    reference: StreamingVLM
) -> None:
    frames, stamps = scene_stream([('grass', 6), ('motorcycle', 8), ('cat', 8)])
    watch = Watch('Did you see a motorcycle?', window_s=0.0, hold=2)
    events, p_yes = run_watch(reference.new_stream(), watch, frames, stamps)
    assert [e.answer for e in events] == [True, False]
    appeared, gone = (e.reading.newest_stamp for e in events)
    assert 6.0 <= appeared <= 6.0 + 3 * 2  # within hold + 1 clips of the scene start
    assert 14.0 <= gone <= 14.0 + 3 * 2
    assert all(0.5 <= e.confidence <= 1.0 for e in events)
    assert events[0].evaluations == int(appeared) // 2 + 1
    assert max(p_yes[:3]) < 0.5 < min(p_yes[4:7])


def test_a_whole_memory_watch_stays_yes_after_the_first_sighting(
    reference: StreamingVLM
) -> None:
    frames, stamps = scene_stream([('grass', 6), ('motorcycle', 8), ('cat', 8)], seed=1)
    watch = Watch('Did you see a motorcycle?', window_s=None, hold=2)
    events, _ = run_watch(reference.new_stream(), watch, frames, stamps)
    assert [e.answer for e in events] == [True]
    assert watch.answer is True


def test_yes_no_tokens_and_bad_watches(reference: StreamingVLM) -> None:
    yes, no = yes_no_token_ids(reference.model.tokenizer)
    assert yes and no and not set(yes) & set(no)
    for bad in ({'question': ' '}, {'question': 'Did you see it?', 'window_s': -1.0},
                {'question': 'Did you see it?', 'hold': 0}):
        with pytest.raises(ValueError):
            Watch(**bad)

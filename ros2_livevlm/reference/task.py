# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The streaming recall task: real-photo camera streams and one-word questions about them.

A stream shows the scenes of :mod:`ros2_livevlm.reference.scenes` one after another, each for a
*run* of frames seen through a moving camera (:func:`~ros2_livevlm.reference.scenes.dwell`:
pan, zoom, brightness drift, plus sensor noise), in random order, some scenes more than
once, never the same scene twice in a row. Questions are natural language with one-word
answers (a scene name, ``yes`` or ``no``):

============  ==================================  =========================================
kind          example                             evidence (newest frame that decides it)
============  ==================================  =========================================
``presence``  "Did you see the cat?" -> yes / no  the scene's last frame; for "no" the
                                                  first frame (the whole stream)
``first``     "What did you see first?"           the first frame
``now``       "What are you looking at now?"      the newest frame
============  ==================================  =========================================

Each question records how far back its evidence lies, in frames and in seconds
(``evidence_frames_ago``: newest frame index minus evidence frame index).

Order questions about the middle of a stream ("What came right before the rocket?") were
tried and left out: the reference model reached only 60-80 % on them within a few minutes
of CPU training (see :mod:`ros2_livevlm.reference`).

No torch and no rclpy here: the training script and the quality benchmark build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import dwell
from .scenes import render
from .scenes import scene_image
from .scenes import SCENE_NAMES

FPS = 1.0
"""Frames per second of every stream: frame ``i`` has stamp ``i / FPS`` seconds."""

MAX_ZOOM = 1.5
"""Largest camera zoom of a dwell: a frame shows at least 1 / 1.5^2 = 44 % of the photo."""

KINDS = ('presence', 'first', 'now')

TEMPLATES: dict[str, tuple[str, ...]] = {
    'presence': ('Did you see {a_scene}?', 'Did you see the {scene}?', 'Was the {scene} shown?',
                 'Have you seen the {scene}?'),
    'first': ('What did you see first?', 'What was the first thing you saw?'),
    'now': ('What are you looking at now?', 'What do you see now?'),
}
"""Question wordings per kind; ``{scene}`` is a scene name, ``{a_scene}`` with its article."""

ARTICLES: dict[str, str] = {
    'astronaut': 'an astronaut', 'cat': 'a cat', 'rocket': 'a rocket',
    'motorcycle': 'a motorcycle', 'galaxy': 'a galaxy', 'clock': 'a clock',
    'newspaper': 'a newspaper', 'moon': 'the moon',
}
"""Scene names with the article "Did you see ...?" takes; mass and plural nouns go without."""

ANSWERS: tuple[str, ...] = (*SCENE_NAMES, 'yes', 'no')
"""Every answer word (the reference tokenizer makes each one a single token)."""


@dataclass(frozen=True)
class Run:
    """One scene shown for consecutive frames ``[start, start + num_frames)``."""

    scene: str
    start: int
    num_frames: int

    @property
    def end(self) -> int:
        """One past the last frame index."""
        return self.start + self.num_frames


@dataclass(frozen=True)
class Question:
    """
    A question about a stream.

    Attributes:
        text: the question, e.g. "Did you see the rocket?".
        answer: the one-word answer (:data:`ANSWERS`).
        kind: one of :data:`KINDS`.
        evidence_frames_ago: newest frame index minus the index of the newest frame
            that decides the answer (0 = the present), frames.
        evidence_s: the same distance in seconds (``evidence_frames_ago / FPS``).
        scene: the scene the question names ('' when it names none).
    """

    text: str
    answer: str
    kind: str
    evidence_frames_ago: int
    evidence_s: float
    scene: str = ''


@dataclass
class Episode:
    """
    A rendered stream with its questions.

    Attributes:
        frames: RGB uint8 ``[N, H, W, 3]``.
        stamps: ``[N]`` float64 seconds.
        runs: the scene runs, in time order, covering every frame.
        questions: questions about the whole stream (asked after its last frame).
    """

    frames: np.ndarray
    stamps: np.ndarray
    runs: list[Run]
    questions: list[Question]


def make_runs(rng: np.random.Generator, num_frames: int, run_frames: tuple[int, int],
              repeat_prob: float = 0.25) -> list[Run]:
    """
    Split ``num_frames`` into scene runs of ``run_frames`` (inclusive) frames each.

    Each run shows a new scene, or with probability ``repeat_prob`` one shown before; never
    the scene of the run just before it. The last run is cut to fit ``num_frames``.

    Raises:
        ValueError: ``num_frames < 1`` or a bad ``run_frames`` range.
    """
    low, high = run_frames
    if num_frames < 1 or not 1 <= low <= high:
        raise ValueError('need num_frames >= 1 and 1 <= run_frames[0] <= run_frames[1], '
                         f'got {num_frames} and {run_frames}')
    runs: list[Run] = []
    start = 0
    while start < num_frames:
        seen = {r.scene for r in runs}
        shown = sorted(seen - {runs[-1].scene}) if runs else []
        unseen = [s for s in SCENE_NAMES if s not in seen]
        pool = shown if shown and (rng.random() < repeat_prob or not unseen) else unseen
        scene = pool[rng.integers(len(pool))]
        length = min(int(rng.integers(low, high + 1)), num_frames - start)
        runs.append(Run(scene, start, length))
        start += length
    return runs


def _question(rng: np.random.Generator, kind: str, answer: str, frame: int, num_frames: int,
              scene: str = '') -> Question:
    wording = TEMPLATES[kind][rng.integers(len(TEMPLATES[kind]))]
    ago = num_frames - 1 - frame
    text = wording.format(scene=scene, a_scene=ARTICLES.get(scene, scene))
    return Question(text, answer, kind, ago, ago / FPS, scene)


def all_questions(rng: np.random.Generator, runs: list[Run]) -> dict[str, list[Question]]:
    """Return every question about ``runs`` by kind (wordings drawn from ``rng``)."""
    num_frames = runs[-1].end
    last_frame = {run.scene: run.end - 1 for run in runs}
    questions: dict[str, list[Question]] = {kind: [] for kind in KINDS}
    for scene in SCENE_NAMES:
        if scene in last_frame:
            questions['presence'].append(
                _question(rng, 'presence', 'yes', last_frame[scene], num_frames, scene))
        else:
            questions['presence'].append(_question(rng, 'presence', 'no', 0, num_frames, scene))
    questions['first'].append(_question(rng, 'first', runs[0].scene, 0, num_frames))
    questions['now'].append(_question(rng, 'now', runs[-1].scene, num_frames - 1, num_frames))
    return questions


def sample_questions(rng: np.random.Generator, runs: list[Run],
                     num_questions: int) -> list[Question]:
    """
    Draw up to ``num_questions`` distinct questions, kinds as even as the stream allows.

    Presence questions alternate "yes" and "no" while both exist. Kinds are visited in
    random order, round robin, one question per visit.
    """
    pools = all_questions(rng, runs)
    yes = [q for q in pools['presence'] if q.answer == 'yes']
    no = [q for q in pools['presence'] if q.answer == 'no']
    rng.shuffle(yes)
    rng.shuffle(no)
    presence = [q for pair in zip(yes, no) for q in pair] + yes[len(no):] + no[len(yes):]
    pools['presence'] = presence[::-1]  # pop() takes from the end
    chosen: list[Question] = []
    kinds = [k for k in KINDS if pools[k]]
    while len(chosen) < num_questions and kinds:
        for kind in rng.permutation(kinds):
            if len(chosen) < num_questions and pools[kind]:
                chosen.append(pools[kind].pop())
        kinds = [k for k in kinds if pools[k]]
    return chosen


def render_run(rng: np.random.Generator, scene: str, num_frames: int,
               size: tuple[int, int]) -> np.ndarray:
    """
    Render ``num_frames`` camera frames dwelling on ``scene``: RGB uint8 ``[n, H, W, 3]``.

    A smooth pan/zoom/brightness path (:func:`~ros2_livevlm.reference.scenes.dwell`, zoom up to
    :data:`MAX_ZOOM`) at ``size = (H, W)`` pixels, with Gaussian sensor noise of a standard
    deviation drawn in [0, 6] uint8 levels.
    """
    image = scene_image(scene)
    noise = float(rng.uniform(0.0, 6.0))
    views = dwell(rng, num_frames, MAX_ZOOM)
    return np.stack([render(image, view, size, rng, noise) for view in views])


def make_episode(seed: int, num_frames: int, run_frames: tuple[int, int], num_questions: int,
                 size: tuple[int, int] = (96, 128)) -> Episode:
    """
    Render a stream and draw its questions, deterministic for ``seed``.

    Args:
        seed: random seed (runs, camera paths, noise, question choice and wording).
        num_frames: frames in the stream.
        run_frames: ``(min, max)`` frames per scene run.
        num_questions: questions to ask (:func:`sample_questions`).
        size: camera frame ``(height, width)`` in pixels.
    """
    rng = np.random.default_rng(seed)
    runs = make_runs(rng, num_frames, run_frames)
    frames = np.concatenate([render_run(rng, run.scene, run.num_frames, size) for run in runs])
    stamps = np.arange(num_frames, dtype=np.float64) / FPS
    return Episode(frames, stamps, runs, sample_questions(rng, runs, num_questions))


def tokenizer_corpus() -> list[str]:
    """
    Return the texts the reference tokenizer learns its BPE merges from.

    Every question wording with every scene, and every answer word (often, so each answer
    becomes one token).
    """
    texts = [wording.format(scene=scene, a_scene=ARTICLES.get(scene, scene))
             for wordings in TEMPLATES.values() for wording in wordings for scene in SCENE_NAMES]
    return texts + list(ANSWERS) * 50

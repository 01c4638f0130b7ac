# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The streaming recall task: real-photo camera streams and one-word questions about them.

A stream shows the scenes of :mod:`ros2_livevlm.reference.scenes` one after another, each for a
*run* of frames seen through a moving camera (:func:`~ros2_livevlm.reference.scenes.dwell`:
pan, zoom, brightness drift, a colour cast per run, plus sensor noise), in random order,
some scenes more than once, never the same scene twice in a row. Longer streams have more
and longer runs (:func:`run_frames`). Questions are natural language with one-word
answers (a scene name, ``yes`` or ``no``):

============  ==========================================  =================================
kind          example                                     evidence (newest frame that
                                                          decides it)
============  ==========================================  =================================
``presence``  "Did you see the cat?" -> yes / no          the scene's last frame; for "no"
                                                          the first frame (the whole stream)
``first``     "What did you see first?"                   the first frame
``now``       "What are you looking at now?"              the newest frame
``order``     "Did you see the cat before the rocket?"    the last frame of the earlier of
              -> yes / no (both shown exactly once)       the two runs
============  ==========================================  =================================

Each question records how far back its evidence lies, in frames and in seconds
(``evidence_frames_ago``: newest frame index minus evidence frame index). ``presence``,
``first`` and ``order`` are the long-range kinds: their evidence lies anywhere in the stream.

Seeds: training streams draw from ``numpy.random.default_rng([TRAIN_SEED_TAG, seed])``,
held-out streams from ``[HELD_OUT_SEED_TAG, ...]`` (:func:`held_out_seed`), so no
evaluation stream is ever a training stream.

No torch and no rclpy here: the training script and the quality benchmark build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
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

COLOUR = 0.15
"""Colour change of a run: channel gains within +-15 %, saturation within +-30 %."""

KINDS = ('presence', 'first', 'now', 'order')
LONG_RANGE_KINDS = ('presence', 'first', 'order')
"""Kinds whose evidence may lie anywhere in the stream (``now`` asks about the present)."""

YES_NO_KINDS = ('presence', 'order')
"""Kinds answered "yes" or "no"."""

TEMPLATES: dict[str, tuple[str, ...]] = {
    'presence': ('Did you see {a_scene}?', 'Did you see the {scene}?', 'Was the {scene} shown?',
                 'Have you seen the {scene}?'),
    'first': ('What did you see first?', 'What was the first thing you saw?'),
    'now': ('What are you looking at now?', 'What do you see now?'),
    'order': ('Did you see the {scene} before the {other}?',
              'Was the {scene} shown before the {other}?',
              'Did the {scene} come before the {other}?'),
}
"""Question wordings per kind; ``{scene}``/``{other}`` are scene names, ``{a_scene}`` with
its article."""

ARTICLES: dict[str, str] = {
    'astronaut': 'an astronaut', 'cat': 'a cat', 'rocket': 'a rocket',
    'motorcycle': 'a motorcycle', 'galaxy': 'a galaxy', 'clock': 'a clock',
    'newspaper': 'a newspaper', 'moon': 'the moon', 'photographer': 'a photographer',
    'retina': 'a retina', 'horse': 'a horse', 'logo': 'a logo', 'colorwheel': 'a colorwheel',
    'phantom': 'a phantom',
}
"""Scene names with the article "Did you see ...?" takes; mass and plural nouns go without."""

ANSWERS: tuple[str, ...] = (*SCENE_NAMES, 'yes', 'no')
"""Every answer word (the reference tokenizer makes each one a single token)."""

NOMINAL_FRAMES = 16
"""The stream length whose scene runs last :data:`NOMINAL_RUN_FRAMES` frames."""

NOMINAL_RUN_FRAMES = (3, 6)
"""``(min, max)`` frames per scene run in a stream of :data:`NOMINAL_FRAMES` frames."""

TRAIN_SEED_TAG = 0
HELD_OUT_SEED_TAG = 1


def run_frames(num_frames: int) -> tuple[int, int]:
    """
    Return the ``(min, max)`` frames per scene run of a stream of ``num_frames`` frames.

    Runs scale with the length: 3-6 frames at 16 frames, 12-24 at 64, 48-96 at 256, so
    every stream shows about 4 runs (3-4 of the 24 scenes) and a long stream is a slower
    one, its oldest scenes hundreds of frames back. (With runs growing as the square root
    of the length, 14 runs in 256 frames, the reference model learned neither presence nor
    order within its training budget, even on short streams once long ones came in.)
    """
    scale = max(num_frames, 1) / NOMINAL_FRAMES
    low, high = NOMINAL_RUN_FRAMES
    return max(1, round(low * scale)), max(1, round(high * scale))


def held_out_seed(seed: int, num_frames: int, index: int) -> list[int]:
    """Return the seed of held-out stream ``index`` of ``num_frames`` frames (never trained on)."""
    return [HELD_OUT_SEED_TAG, seed, num_frames, index]


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
        other: the second scene of an ``order`` question ('' otherwise).
    """

    text: str
    answer: str
    kind: str
    evidence_frames_ago: int
    evidence_s: float
    scene: str = ''
    other: str = ''


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


def word_question(wording: str, scene: str = '', other: str = '') -> str:
    """Fill a wording of :data:`TEMPLATES` with scene names (``{a_scene}``: with its article)."""
    return wording.format(scene=scene, other=other, a_scene=ARTICLES.get(scene, scene))


def _question(rng: np.random.Generator, kind: str, answer: str, frame: int, num_frames: int,
              scene: str = '', other: str = '') -> Question:
    wording = TEMPLATES[kind][rng.integers(len(TEMPLATES[kind]))]
    ago = num_frames - 1 - frame
    return Question(word_question(wording, scene, other), answer, kind, ago, ago / FPS, scene,
                    other)


def all_questions(rng: np.random.Generator, runs: list[Run]) -> dict[str, list[Question]]:
    """
    Return every question about ``runs`` by kind (wordings drawn from ``rng``).

    ``order`` questions pair scenes shown in exactly one run each (so "before" has one
    meaning), both ways round: one "yes" and one "no" per pair.
    """
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
    shown = [run.scene for run in runs]
    once = [run for run in runs if shown.count(run.scene) == 1]
    for i, earlier in enumerate(once):
        for later in once[i + 1:]:
            evidence = earlier.end - 1
            questions['order'] += [
                _question(rng, 'order', 'yes', evidence, num_frames, earlier.scene, later.scene),
                _question(rng, 'order', 'no', evidence, num_frames, later.scene, earlier.scene),
            ]
    return questions


def _yes_no_balanced(rng: np.random.Generator, questions: list[Question]) -> list[Question]:
    """
    Shuffle, then alternate "yes" and "no" answers while both last, one more at most.

    The longer side is cut to the shorter plus one, so a stream that shows 4 of 24 scenes
    does not ask "no" 20 times (the first pick is the end of the list).
    """
    yes = [q for q in questions if q.answer == 'yes']
    no = [q for q in questions if q.answer == 'no']
    rng.shuffle(yes)
    rng.shuffle(no)
    extra = (yes[len(no):] + no[len(yes):])[:1]
    return ([q for pair in zip(yes, no) for q in pair] + extra)[::-1]


def sample_questions(rng: np.random.Generator, runs: list[Run], num_questions: int,
                     kinds: Sequence[str] = KINDS) -> list[Question]:
    """
    Draw up to ``num_questions`` distinct questions of ``kinds``, as even as the stream allows.

    Presence and order questions alternate "yes" and "no" while both exist (at most one
    more of either) and are drawn two at a time, a "yes" and a "no", so every stream asks
    as many of each (drawn one at a time, 8 questions asked 2 "yes" to 1 "no" per kind and
    a model could score 67 % by always answering "yes"). Kinds are visited in random order,
    round robin, one draw per visit.
    """
    pools = all_questions(rng, runs)
    for kind in YES_NO_KINDS:
        pools[kind] = _yes_no_balanced(rng, pools[kind])
    chosen: list[Question] = []
    kinds = [k for k in kinds if pools[k]]
    while len(chosen) < num_questions and kinds:
        for kind in rng.permutation(kinds):
            draws = 2 if kind in YES_NO_KINDS else 1
            while draws and len(chosen) < num_questions and pools[kind]:
                chosen.append(pools[kind].pop())
                draws -= 1
        kinds = [k for k in kinds if pools[k]]
    return chosen


def render_run(rng: np.random.Generator, scene: str, num_frames: int,
               size: tuple[int, int]) -> np.ndarray:
    """
    Render ``num_frames`` camera frames dwelling on ``scene``: RGB uint8 ``[n, H, W, 3]``.

    A smooth pan/zoom/brightness path with one colour change
    (:func:`~ros2_livevlm.reference.scenes.dwell`, zoom up to :data:`MAX_ZOOM`, colour
    :data:`COLOUR`) at ``size = (H, W)`` pixels, with Gaussian sensor noise of a standard
    deviation drawn in [0, 6] uint8 levels.
    """
    image = scene_image(scene)
    noise = float(rng.uniform(0.0, 6.0))
    views = dwell(rng, num_frames, MAX_ZOOM, COLOUR)
    return np.stack([render(image, view, size, rng, noise) for view in views])


def make_episode(seed: int | Sequence[int], num_frames: int, num_questions: int,
                 size: tuple[int, int] = (96, 128)) -> Episode:
    """
    Render a stream and draw its questions, deterministic for ``seed``.

    Args:
        seed: random seed or seed sequence (runs, camera paths, noise, question choice
            and wording); held-out streams use :func:`held_out_seed`.
        num_frames: frames in the stream (scene runs of :func:`run_frames`).
        num_questions: questions to ask (:func:`sample_questions`).
        size: camera frame ``(height, width)`` in pixels.
    """
    rng = np.random.default_rng(seed)
    runs = make_runs(rng, num_frames, run_frames(num_frames))
    frames = np.concatenate([render_run(rng, run.scene, run.num_frames, size) for run in runs])
    stamps = np.arange(num_frames, dtype=np.float64) / FPS
    return Episode(frames, stamps, runs, sample_questions(rng, runs, num_questions))


def tokenizer_corpus() -> list[str]:
    """
    Return the texts the reference tokenizer learns its BPE merges from.

    Every question wording with every scene, and every answer word (often, so each answer
    becomes one token).
    """
    texts = [word_question(wording, scene, other)
             for wordings in TEMPLATES.values() for wording in wordings
             for scene, other in zip(SCENE_NAMES, SCENE_NAMES[1:] + SCENE_NAMES[:1])]
    return texts + list(ANSWERS) * 50

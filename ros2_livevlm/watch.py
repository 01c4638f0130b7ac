# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Watches: standing yes/no questions on one camera's memory that turn answers into events.

    watch = Watch('Did you see a motorcycle?', window_s=0.0, hold=2)
    for clip in stream:                          # after every clip (or at a rate)
        engine.ingest(clip.frames, clip.stamps)
        reading, event = watch.evaluate(engine)
        if event: print(event.answer, event.confidence, event.reading.newest_stamp)

No rclpy: the node's ``~/watch`` interface drives this, the same way it drives ``ask``.

Reading (:func:`read_watch`): one prompt prefill, no decoding
(:meth:`StreamingVLM.first_token`). The answer is read from the first answer token:
``p_yes = P(yes) / (P(yes) + P(no))``, the softmax restricted to the yes and no tokens
(``yes``/``Yes`` and ``no``/``No`` where the tokenizer has them as single tokens), and
``yes_no_mass = P(yes) + P(no)`` under the full softmax says whether the model answers
yes/no at all. Evidence spans and the stamp of the newest frame the memory held come with it.

Present or ever: a memory question ("Did you see a motorcycle?") asks about everything
the memory holds, so once the motorcycle was seen the answer stays yes, and a watch on it
fires once, at the first sighting. "When the motorcycle scene starts" (and ends) is a
question about the present: the watch restricts the answer's long-term retrieval to the
newest ``window_s`` seconds (``time_window = (newest - window_s, newest)``); with
``window_s = 0`` only the short-term window (the last ``short_term_frames`` frames,
always attended) is left, so the same question asks "is it in view now?". The reference
model knows the wordings of :data:`~ros2_livevlm.reference.task.TEMPLATES` ("Did you see
the cat?", "Was the cat shown?") and answers them from whatever context it is given, so a
present-tense watch uses those wordings on a window rather than an untrained "Do you see
...?"; a real VLM takes either. ``window_s=None`` keeps the whole memory (presence ever).

Hysteresis (:class:`Hysteresis`): a raw answer must hold for ``hold`` consecutive
evaluations before the debounced answer takes it; an event fires when the debounced
answer changes. It starts at "no", so a watch added while the thing is in view fires
after ``hold`` evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import time
from typing import Any
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # torch-heavy; a watch is evaluated on an engine the caller owns
    from .engine import StreamingVLM


YES_WORDS = ('yes', 'Yes')
NO_WORDS = ('no', 'No')


@lru_cache(maxsize=8)
def yes_no_token_ids(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """
    Return the token ids of the single-token spellings of "yes" and of "no".

    Raises:
        ValueError: the tokenizer has no single-token "yes" or no single-token "no".
    """
    found = []
    for words in (YES_WORDS, NO_WORDS):
        ids = {ids[0] for ids in (tokenizer.encode(w, add_special_tokens=False) for w in words)
               if len(ids) == 1}
        if not ids:
            raise ValueError(
                f'the tokenizer has none of {", ".join(words)} as one token; a yes/no watch '
                'reads the first answer token'
            )
        found.append(tuple(sorted(ids)))
    return found[0], found[1]


@dataclass(frozen=True)
class WatchReading:
    """
    One evaluation of a watch question.

    Attributes:
        answer: ``p_yes >= 0.5``.
        p_yes: P(yes) / (P(yes) + P(no)) of the first answer token, in [0, 1].
        yes_no_mass: P(yes) + P(no) under the full softmax over the vocabulary, in [0, 1].
        newest_stamp: stamp of the newest frame in the memory, s (None before any clip).
        evidence: ``(t_start, t_end)`` spans in seconds the answer drew on most.
        tokens_attended: context length attended (memory + prompt), tokens.
        cost_s: wall time of the evaluation (retrieval + prompt prefill + head), s.
    """

    answer: bool
    p_yes: float
    yes_no_mass: float
    newest_stamp: float | None
    evidence: list[tuple[float, float]]
    tokens_attended: int
    cost_s: float


def _check_window(window_s: float | None) -> None:
    if window_s is not None and not window_s >= 0.0:  # NaN fails too
        raise ValueError(f'window_s must be >= 0 seconds or None, got {window_s!r}')


def read_watch(
    engine: StreamingVLM, question: str, *, window_s: float | None = None
) -> WatchReading:
    """
    Ask ``question`` of ``engine``'s memory and read the yes/no answer from the first token.

    Args:
        engine: the memory to read (not changed).
        question: a yes/no question.
        window_s: long-term retrieval limited to the newest ``window_s`` seconds (0: the
            short-term window only, i.e. "now"); None: the whole memory.

    Raises:
        ValueError: an empty question, a negative ``window_s``, or a tokenizer without
            single-token yes/no.
    """
    _check_window(window_s)
    start = time.perf_counter()
    yes_ids, no_ids = yes_no_token_ids(engine.model.tokenizer)
    newest = engine.memory.newest_stamp
    window = None if window_s is None or newest is None else (newest - window_s, newest)
    first = engine.first_token(question, window)
    log_probs = torch.log_softmax(first.logits, dim=-1)  # [V]
    log_yes = torch.logsumexp(log_probs[list(yes_ids)], dim=0)
    log_no = torch.logsumexp(log_probs[list(no_ids)], dim=0)
    p_yes = float(torch.sigmoid(log_yes - log_no))
    return WatchReading(
        answer=p_yes >= 0.5,
        p_yes=p_yes,
        yes_no_mass=float(torch.logaddexp(log_yes, log_no).exp()),
        newest_stamp=first.newest_stamp,
        evidence=first.evidence,
        tokens_attended=first.tokens_attended,
        cost_s=time.perf_counter() - start,
    )


class Hysteresis:
    """
    Debounce a stream of yes/no answers: a new answer must hold ``hold`` times in a row.

    Pure Python, no clock: one :meth:`update` per evaluation.

    Args:
        hold: consecutive equal answers needed to change the debounced answer (>= 1;
            1 = no debouncing).
        state: the debounced answer before the first update.

    Raises:
        ValueError: ``hold < 1``.
    """

    def __init__(self, hold: int, state: bool = False) -> None:
        if not isinstance(hold, int) or hold < 1:
            raise ValueError(f'hold must be an integer >= 1 evaluations, got {hold!r}')
        self.hold = hold
        self.state = state
        self._streak = 0  # consecutive answers that differ from state

    def update(self, answer: bool) -> bool:
        """Feed one answer; return True when the debounced answer changed (an event)."""
        if answer == self.state:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak < self.hold:
            return False
        self.state, self._streak = answer, 0
        return True


@dataclass(frozen=True)
class WatchEvent:
    """
    The debounced answer of a watch changed.

    Attributes:
        question: the watch's question.
        answer: the new debounced answer.
        confidence: the probability of ``answer`` in the evaluation that changed it
            (``p_yes`` or ``1 - p_yes``).
        reading: that evaluation (newest frame stamp, evidence, cost).
        evaluations: evaluations of this watch so far, this one included.
    """

    question: str
    answer: bool
    confidence: float
    reading: WatchReading
    evaluations: int


class Watch:
    """
    A standing yes/no question on one memory, with hysteresis.

    Args:
        question: a yes/no question the model knows (see the module docstring).
        window_s: as :func:`read_watch` (0: "now", None: the whole memory).
        hold: evaluations an answer must hold before it becomes an event.

    Raises:
        ValueError: an empty question, a negative window or ``hold < 1``.
    """

    def __init__(self, question: str, *, window_s: float | None = 0.0, hold: int = 2) -> None:
        if not isinstance(question, str) or not question.strip():
            raise ValueError('a watch needs a non-empty yes/no question')
        _check_window(window_s)
        self.question = question
        self.window_s = window_s
        self.hysteresis = Hysteresis(hold)
        self.evaluations = 0

    @property
    def answer(self) -> bool:
        """Return the debounced answer."""
        return self.hysteresis.state

    def evaluate(self, engine: StreamingVLM) -> tuple[WatchReading, WatchEvent | None]:
        """Read the watch on ``engine``'s memory; return the reading and the event, if any."""
        reading = read_watch(engine, self.question, window_s=self.window_s)
        self.evaluations += 1
        if not self.hysteresis.update(reading.answer):
            return reading, None
        confidence = reading.p_yes if reading.answer else 1.0 - reading.p_yes
        event = WatchEvent(self.question, reading.answer, confidence, reading, self.evaluations)
        return reading, event


__all__ = [
    'Hysteresis',
    'Watch',
    'WatchEvent',
    'WatchReading',
    'read_watch',
    'yes_no_token_ids',
]

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Question files: timed questions about a bag, one JSON object per line (JSONL).

Each line is one question, asked when the bag clock reaches ``time``::

    {"time": 42.5, "question": "Did you see a cat?", "options": ["yes", "no"], "answer": "yes",
     "camera": "/camera/image_raw", "kind": "presence", "evidence_time": 30.0}

=================  ========  ==============================================================
field              required  meaning
=================  ========  ==============================================================
``time``           yes       when the question is asked (see below)
``question``       yes       the text sent to the model, as is
``answer``         yes       the expected answer (one of ``options`` when they are given)
``options``        no        multiple choice: the allowed answers, used for scoring only (not
                             added to the prompt: write them into ``question`` if the model
                             should see them)
``camera``         no        camera topic the question is about; default: the replayed topic
``kind``           no        a label for grouping results (e.g. ``presence``, ``recent``,
                             ``long_range``); default ``unspecified``
``evidence_time``  no        when the deciding frame was seen (same two forms as ``time``);
                             gives the question's evidence age
=================  ========  ==============================================================

Times come in two forms, told apart by their JSON type: a **number** is seconds from the
bag start (the earliest log time in the bag, as ``ros2 bag info`` shows it); an
**object** ``{"sec": S, "nanosec": N}`` (a ``builtin_interfaces/Time``, e.g. a
``header.stamp``) is an absolute time on the bag clock. A question asked at time ``t``
sees every message whose log time is ``<= t``. Blank lines are skipped; unknown fields
are errors (they are usually typos).

Scoring: the answer text and ``answer`` are compared after lower-casing and dropping
punctuation; the prediction is correct when it starts with the answer's words (so
"Cat." and "cat, on a sofa" match "cat"). With ``options``, the option the prediction
starts with (the longest such) must be ``answer``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
from typing import Any

REQUIRED = ('time', 'question', 'answer')
OPTIONAL = ('options', 'camera', 'kind', 'evidence_time')
DEFAULT_KIND = 'unspecified'


class QuestionFileError(ValueError):
    """A question file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class BagTime:
    """A time on the bag clock: seconds from the bag start, or an absolute stamp in ns."""

    relative_s: float | None = None
    absolute_ns: int | None = None

    def resolve(self, start_ns: int) -> int:
        """Absolute bag-clock time in ns, for a bag whose earliest log time is ``start_ns``."""
        if self.absolute_ns is not None:
            return self.absolute_ns
        return start_ns + round(self.relative_s * 1e9)

    def to_json(self) -> float | dict[str, int]:
        """Return the JSON form this time was given in."""
        if self.absolute_ns is not None:
            sec, nanosec = divmod(self.absolute_ns, 1_000_000_000)
            return {'sec': sec, 'nanosec': nanosec}
        return self.relative_s


@dataclass(frozen=True)
class Question:
    """
    One timed question of a question file.

    Attributes:
        line: 1-based line number in its file (0 for questions made in code).
        time: when it is asked.
        question: the prompt text.
        answer: the expected answer.
        options: allowed answers (multiple choice), or None.
        camera: camera topic ("" = the replayed topic).
        kind: grouping label.
        evidence_time: when the deciding frame was seen, or None.
    """

    line: int
    time: BagTime
    question: str
    answer: str
    options: tuple[str, ...] | None = None
    camera: str = ''
    kind: str = DEFAULT_KIND
    evidence_time: BagTime | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the question as a JSON object of the file format (optional fields when set)."""
        obj: dict[str, Any] = {'time': self.time.to_json(), 'question': self.question}
        if self.options is not None:
            obj['options'] = list(self.options)
        obj['answer'] = self.answer
        if self.camera:
            obj['camera'] = self.camera
        obj['kind'] = self.kind
        if self.evidence_time is not None:
            obj['evidence_time'] = self.evidence_time.to_json()
        return obj


def _parse_time(where: str, name: str, value: Any) -> BagTime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value >= 0:
            return BagTime(relative_s=float(value))
        raise QuestionFileError(
            f"{where}: field '{name}': seconds from the bag start must be finite and >= 0, "
            f'got {value}'
        )
    elif isinstance(value, dict):
        sec, nanosec = value.get('sec'), value.get('nanosec', 0)
        valid = (
            set(value) <= {'sec', 'nanosec'}
            and all(isinstance(x, int) and not isinstance(x, bool) for x in (sec, nanosec))
            and sec >= 0
            and 0 <= nanosec < 1_000_000_000
        )
        if valid:
            return BagTime(absolute_ns=sec * 1_000_000_000 + nanosec)
        raise QuestionFileError(
            f"{where}: field '{name}': an absolute stamp is "
            f'{{"sec": int >= 0, "nanosec": int in [0, 1e9)}}, got {value}'
        )
    raise QuestionFileError(
        f"{where}: field '{name}': give seconds from the bag start (a number) or an absolute "
        f'stamp {{"sec": S, "nanosec": N}}, got {value!r}'
    )


def _text(where: str, name: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        kind = 'string' if allow_empty else 'non-empty string'
        raise QuestionFileError(f"{where}: field '{name}' must be a {kind}, got {value!r}")
    return value


def parse_question(obj: Any, where: str, line: int = 0) -> Question:
    """
    Check one decoded JSON value and build its :class:`Question`.

    Args:
        obj: the decoded line.
        where: ``file:line`` for messages.
        line: the line number stored in the question.

    Raises:
        QuestionFileError: naming the field and what is wrong.
    """
    if not isinstance(obj, dict):
        raise QuestionFileError(f'{where}: expected a JSON object, got {type(obj).__name__}')
    unknown = sorted(set(obj) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise QuestionFileError(
            f'{where}: unknown field(s) {", ".join(repr(u) for u in unknown)}; '
            f'known: {", ".join(REQUIRED + OPTIONAL)}'
        )
    missing = [name for name in REQUIRED if name not in obj]
    if missing:
        raise QuestionFileError(f'{where}: missing field(s) {", ".join(repr(m) for m in missing)}')
    options = obj.get('options')
    answer = _text(where, 'answer', obj['answer'])
    if options is not None:
        if not isinstance(options, list) or len(options) < 2:
            raise QuestionFileError(
                f"{where}: field 'options' must be a list of at least two strings, got {options!r}"
            )
        options = tuple(_text(where, 'options', option) for option in options)
        if normalize(answer) not in {normalize(option) for option in options}:
            raise QuestionFileError(
                f"{where}: field 'answer': {answer!r} is not one of the options {list(options)}"
            )
    evidence = obj.get('evidence_time')
    return Question(
        line=line,
        time=_parse_time(where, 'time', obj['time']),
        question=_text(where, 'question', obj['question']),
        answer=answer,
        options=options,
        camera=_text(where, 'camera', obj.get('camera', ''), allow_empty=True),
        kind=_text(where, 'kind', obj.get('kind', DEFAULT_KIND)),
        evidence_time=None if evidence is None else _parse_time(where, 'evidence_time', evidence),
    )


def load_questions(path: str | Path) -> list[Question]:
    """
    Read and check a question file.

    Raises:
        QuestionFileError: the file is missing or empty, a line is not JSON, or a field is
            missing, unknown or malformed (the message names the line and the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as err:
        raise QuestionFileError(f'cannot read question file {path}: {err.strerror}') from err
    questions = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f'{path}:{number}'
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise QuestionFileError(
                f'{where}: not valid JSON ({err.msg} at column {err.colno})'
            ) from err
        questions.append(parse_question(obj, where, number))
    if not questions:
        raise QuestionFileError(
            f'question file {path} has no questions (one JSON object per line)'
        )
    return questions


def write_questions(questions: Iterable[Question], path: str | Path) -> Path:
    """Write questions as a question file (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(q.to_json()) + '\n' for q in questions), encoding='utf-8')
    return path


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: ``" Cat! "`` -> ``"cat"``."""
    return ' '.join(re.sub(r'[^\w\s]', ' ', text.lower()).split())


def _starts_with(prediction: str, answer: str) -> bool:
    words, target = prediction.split(), answer.split()
    return bool(target) and words[: len(target)] == target


def is_correct(prediction: str, question: Question) -> bool:
    """Score an answer text against ``question`` (see the module docstring for the rule)."""
    said = normalize(prediction)
    if question.options is None:
        return _starts_with(said, normalize(question.answer))
    matching = [normalize(o) for o in question.options if _starts_with(said, normalize(o))]
    return bool(matching) and max(matching, key=len) == normalize(question.answer)

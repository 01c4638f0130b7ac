# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Question files: the format, its errors (naming line and field) and the scoring rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ros2_livevlm.eval.questions import BagTime
from ros2_livevlm.eval.questions import is_correct
from ros2_livevlm.eval.questions import load_questions
from ros2_livevlm.eval.questions import Question
from ros2_livevlm.eval.questions import QuestionFileError
from ros2_livevlm.eval.questions import write_questions


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / 'q.jsonl'
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_both_time_forms_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                'time': 12.5,
                'question': 'Did you see a cat?',
                'options': ['yes', 'no'],
                'answer': 'yes',
                'kind': 'presence',
            }
        ),
        '',
        json.dumps(
            {
                'time': {'sec': 1700000100, 'nanosec': 5},
                'question': 'What do you see now?',
                'answer': 'rocket',
                'camera': '/cam',
                'evidence_time': {'sec': 1700000090, 'nanosec': 0},
            }
        ),
    )
    first, second = load_questions(path)
    assert (first.line, first.options, first.camera, first.kind) == (
        1,
        ('yes', 'no'),
        '',
        'presence',
    )
    assert first.time.resolve(1_700_000_000_000_000_000) == 1_700_000_012_500_000_000
    assert (second.line, second.kind, second.camera) == (3, 'unspecified', '/cam')
    assert (
        second.time.resolve(0) == 1_700_000_100_000_000_005
    )  # absolute: independent of the bag start
    assert second.evidence_time == BagTime(absolute_ns=1_700_000_090_000_000_000)
    copy = write_questions([first, second], tmp_path / 'copy.jsonl')
    assert [(q.time, q.question, q.answer, q.options) for q in load_questions(copy)] == [
        (q.time, q.question, q.answer, q.options) for q in (first, second)
    ]


GOOD = {'time': 1.0, 'question': 'What did you see first?', 'answer': 'cat'}


@pytest.mark.parametrize(
    'line, message',
    [
        ('{not json', r'q.jsonl:2: not valid JSON'),
        ('[1, 2]', r'q.jsonl:2: expected a JSON object, got list'),
        (json.dumps({'time': 1.0, 'answer': 'cat'}), r"q.jsonl:2: missing field\(s\) 'question'"),
        (json.dumps({**GOOD, 'answr': 'dog'}), r"q.jsonl:2: unknown field\(s\) 'answr'"),
        (
            json.dumps({**GOOD, 'time': -3}),
            r"q.jsonl:2: field 'time': seconds from the bag start must be finite and >= 0",
        ),
        (
            json.dumps({**GOOD, 'time': '10 s'}),
            r"q.jsonl:2: field 'time': give seconds from the bag start",
        ),
        (json.dumps({**GOOD, 'time': True}), r"q.jsonl:2: field 'time': give seconds"),
        (
            json.dumps({**GOOD, 'time': {'sec': 5, 'nanosec': 2_000_000_000}}),
            r"q.jsonl:2: field 'time': an absolute stamp",
        ),
        (
            json.dumps({**GOOD, 'question': '  '}),
            r"q.jsonl:2: field 'question' must be a non-empty string",
        ),
        (
            json.dumps({**GOOD, 'options': ['dog', 'rocket']}),
            r"q.jsonl:2: field 'answer': 'cat' is not one of the options",
        ),
        (json.dumps({**GOOD, 'options': 'cat'}), r"q.jsonl:2: field 'options' must be a list"),
        (
            json.dumps({**GOOD, 'evidence_time': None, 'kind': 3}),
            r"q.jsonl:2: field 'kind' must be a non-empty string",
        ),
        (json.dumps({**GOOD, 'evidence_time': 'early'}), r"q.jsonl:2: field 'evidence_time'"),
    ],
)
def test_errors_name_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(QuestionFileError, match=message):
        load_questions(write(tmp_path, json.dumps(GOOD), line))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(QuestionFileError, match='has no questions'):
        load_questions(write(tmp_path, '', '  '))
    with pytest.raises(QuestionFileError, match='cannot read question file'):
        load_questions(tmp_path / 'missing.jsonl')


def question(answer: str, options: tuple[str, ...] | None = None) -> Question:
    return Question(
        line=0, time=BagTime(relative_s=0.0), question='?', answer=answer, options=options
    )


def test_scoring() -> None:
    assert is_correct('Cat.', question('cat'))
    assert is_correct('cat, on a sofa', question('cat'))
    assert not is_correct('category', question('cat'))
    assert not is_correct('a cat', question('cat'))
    assert is_correct('the moon', question('the moon'))
    assert is_correct('yes', question('yes', ('yes', 'no')))
    assert not is_correct('no', question('yes', ('yes', 'no')))
    assert not is_correct('maybe', question('yes', ('yes', 'no')))
    assert is_correct(
        'red car', question('red car', ('red', 'red car'))
    )  # the longest matching option
    assert not is_correct('red', question('red car', ('red', 'red car')))

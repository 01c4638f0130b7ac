# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""``evaluate`` offline on real camera bags: report, determinism, topic selection, bad input."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from eval_cases import EVAL_ARGS
from eval_cases import read_records
from eval_cases import SHORT_TOUR
import pytest
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.eval import evaluate
from ros2_livevlm.eval.bag import bag_info
from ros2_livevlm.eval.bag import select_camera
from ros2_livevlm.eval.bag import write_camera_bag
from ros2_livevlm.eval.questions import load_questions
from ros2_livevlm.eval.replay import replay_offline
from ros2_livevlm.eval.sample import camera_frames
from ros2_livevlm.eval.sample import plan_runs
from ros2_livevlm.eval.sample import START_NS


RECORD_KEYS = {
    'git_sha',
    'device',
    'model',
    'policy',
    'memory',
    'frames',
    'kv_tokens',
    'kv_bytes',
    'peak_bytes',
    'ttft_s',
    'answer_s',
    'tpot_s',
    'ingest_fps',
    'tokens_attended',
    'accuracy',
}  # BENCHMARKS.md


def test_report(offline_report: Path, short_sample: Path) -> None:
    records = read_records(offline_report)
    questions = load_questions(short_sample / 'questions.jsonl')
    assert [r['policy'] for r in records] == ['full'] * len(questions) + ['livevlm'] * len(
        questions
    )
    for record in records:
        assert RECORD_KEYS <= set(record)
        assert (
            record['ttft_s']['p50'] > 0
            and record['peak_bytes'] > 0
            and record['accuracy'] in (0.0, 1.0)
        )
        assert (
            record['model']['tokens_per_frame'] == 16 and record['memory']['frames_per_clip'] == 4
        )
    # questions after model frames 3, 5 and 7 see 4, 6 and 8 frames (sampled at 1 Hz from 5 Hz)
    assert [r['frames'] for r in records[: len(questions)]] == [4, 4, 6, 6, 8, 8, 8, 8]
    assert [r['time_s'] for r in records[: len(questions)]] == [
        q.time.relative_s for q in questions
    ]
    full, live = records[len(questions) - 1], records[-1]
    init = full['kv_tokens'] - 8 * 16
    assert full['memory']['budget_tokens'] is None and live['memory']['budget_tokens'] == 32
    assert (
        live['kv_tokens'] == init + 32 + 2 * 16 < full['kv_tokens']
    )  # init + budget + 2 short-term frames
    assert live['kv_bytes'] / live['kv_tokens'] == full['kv_bytes'] / full['kv_tokens']
    assert all(0 <= t0 <= t1 <= SHORT_TOUR.duration_s for r in records for t0, t1 in r['evidence'])

    summary = (offline_report / 'summary.md').read_text()
    assert (
        'Accuracy is meaningless here' in summary
        and 'kv_bytes(full) / kv_bytes(livevlm) at 8 frames' in summary
        and 'No memory policy evicted' not in summary
    )
    for name in ('ttft_vs_frames.png', 'kv_bytes_vs_frames.png', 'accuracy.png'):
        assert (offline_report / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    trace = [
        json.loads(line)
        for line in (offline_report / 'memory_trace.jsonl').read_text().splitlines()
    ]
    assert [t['frames'] for t in trace if t['policy'] == 'livevlm'] == list(range(1, 9))


def test_deterministic(short_sample: Path) -> None:
    base = StreamingVLM.from_pretrained(
        'tiny', budget_tokens=32, frames_per_clip=4, max_new_tokens=4
    )
    camera = select_camera(bag_info(short_sample / 'bag'), None)
    timed = evaluate.schedule(
        load_questions(short_sample / 'questions.jsonl'), bag_info(short_sample / 'bag'), camera
    )
    runs = [
        replay_offline(base, 'livevlm', short_sample / 'bag', camera, timed, sample_fps=1.0)
        for _ in range(2)
    ]
    first, second = (
        [(r.text, r.evidence, r.kv_bytes, r.tokens_attended) for r in run.results] for run in runs
    )
    assert first == second and len(first) == len(timed)


def test_topic_selected_by_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = tmp_path / 'front'
    frames = camera_frames(SHORT_TOUR, plan_runs(SHORT_TOUR))
    write_camera_bag(
        bag,
        frames,
        topic='/robot/front/image_color',
        frame_id='front',
        storage='sqlite3',
        compressed=True,
    )
    questions = tmp_path / 'q.jsonl'
    lines = [
        {
            'time': {'sec': START_NS // 10**9 + 5, 'nanosec': 500_000_000},
            'question': 'What do you see now?',
            'answer': 'x',
        },
        {
            'time': 7.5,
            'question': 'Did you see a cat?',
            'options': ['yes', 'no'],
            'answer': 'no',
            'camera': '/robot/front/image_color/compressed',
            'kind': 'presence',
        },
    ]
    questions.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    common = ['--bag', str(bag), '--questions', str(questions), '--policies', 'vsb', *EVAL_ARGS]

    assert evaluate.main([*common, '--out', str(tmp_path / 'none')]) == 2
    assert 'several camera topics; choose one with --topic' in capsys.readouterr().err

    out = tmp_path / 'report'
    assert (
        evaluate.main(
            [*common, '--topic', '/robot/front/image_color/compressed', '--out', str(out)]
        )
        == 0
    )
    records = read_records(out)
    assert [(r['topic'], r['time_s'], r['frames']) for r in records] == [
        ('/robot/front/image_color/compressed', 5.5, 6),
        ('/robot/front/image_color/compressed', 7.5, 8),
    ]

    assert evaluate.main([*common, '--topic', '/robot/front/image_color', '--out', str(out)]) == 2
    assert "q.jsonl:2: field 'camera'" in capsys.readouterr().err


def test_reference_model_answers_the_sample_questions(short_sample: Path, tmp_path: Path) -> None:
    """Ask the tour's questions (the reference model's own wordings) of that model, policy full."""
    out = tmp_path / 'reference'
    code = evaluate.main([
        '--bag', str(short_sample), '--model-path', 'reference', '--policies', 'full',
        '--out', str(out), *EVAL_ARGS])
    assert code == 0
    records = read_records(out)
    accuracy = sum(r['correct'] for r in records) / len(records)
    assert accuracy >= 0.75, [(r['question'], r['expected'], r['prediction']) for r in records]
    assert 'Accuracy is meaningless' not in (out / 'summary.md').read_text()


def test_a_budget_above_the_stream_is_pointed_out(short_sample: Path, tmp_path: Path) -> None:
    out = tmp_path / 'report'
    args = ['--bag', str(short_sample), '--policies', 'vsb', '--out', str(out), *EVAL_ARGS]
    assert evaluate.main([*args, '--budget-tokens', '4096']) == 0
    assert 'No memory policy evicted anything' in (out / 'summary.md').read_text()


def test_a_sample_directory_brings_its_questions_and_rate(
    short_sample: Path, tmp_path: Path
) -> None:
    """``--bag`` naming a sample (or its ``bag/``) takes its questions and ``sample_fps``."""
    sample = tmp_path / 'sample'
    sample.mkdir()
    (sample / 'bag').symlink_to(short_sample / 'bag')
    shutil.copy(short_sample / 'questions.jsonl', sample)
    tour = json.loads((short_sample / 'tour.json').read_text())
    (sample / 'tour.json').write_text(json.dumps({**tour, 'sample_fps': 0.5}))

    for bag in (sample, sample / 'bag'):
        args = evaluate.parse_args(['--bag', str(bag)])
        assert evaluate.inputs(args) == (sample / 'bag', sample / 'questions.jsonl', 0.5)
    args = evaluate.parse_args(['--bag', str(sample), '--sample-fps', '2'])
    assert evaluate.inputs(args)[2] == 2.0
    with pytest.raises(SystemExit):  # a plain bag brings no questions
        evaluate.parse_args(['--bag', str(tmp_path / 'plain')])

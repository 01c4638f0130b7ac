# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``evaluate --live``: the short tour (640 x 480 frames) played over DDS into a node.

The live answers must equal the offline ones (same frames sampled by header.stamp, same
clips, same memory), which only holds if the node sampled by the bag's stamps, followed the
bag's ``/clock`` for its idle-clip rule, and lost nothing in transport. ``--attach`` works
against a node started with its default parameters (wall time, camera ``image``, QoS
``auto``, depth 5, state every second): every frame arrives and every question is answered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eval_cases import EVAL_ARGS
from eval_cases import read_records
import pytest
from ros2_livevlm.eval import evaluate
from ros2_livevlm.ros.process import NodeProcess


COMPARED = (
    'policy',
    'time_s',
    'question',
    'prediction',
    'evidence',
    'frames',
    'frames_in_memory',
    'kv_tokens',
    'kv_bytes',
    'tokens_attended',
    'tokens_generated',
)


@pytest.fixture
def own_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put this test and the nodes it starts on a ROS domain of their own."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(201 + os.getpid() % 30))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def test_live_equals_offline(
    short_sample: Path, offline_report: Path, tmp_path: Path, own_domain: None
) -> None:
    out = tmp_path / 'live'
    code = evaluate.main(
        [
            '--bag',
            str(short_sample / 'bag'),
            '--questions',
            str(short_sample / 'questions.jsonl'),
            '--live',
            '--rate',
            '4',
            '--policies',
            'livevlm',
            '--model-path',
            'tiny',
            '--out',
            str(out),
            *EVAL_ARGS,
        ]
    )
    assert code == 0
    live = read_records(out)
    offline = [r for r in read_records(offline_report) if r['policy'] == 'livevlm']
    assert [{k: r[k] for k in COMPARED} for r in live] == [
        {k: r[k] for k in COMPARED} for r in offline
    ]
    assert all(
        r['mode'] == 'live' and r['playback_rate'] == 4 and r['peak_bytes'] > 0 for r in live
    )
    summary = (out / 'summary.md').read_text()
    assert (
        '| livevlm | 40 | 8 | 0 | 8 | 0 |' in summary
    )  # received, sampled, dropped, questions, errors
    params = json.loads((out / 'node-livevlm.params.yaml').read_text())['/**'][
        'ros__parameters'
    ]  # YAML 1.2 = JSON
    assert (
        params['use_sim_time'] is True
        and params['cameras'] == ['/camera/image_raw']
        and params['budget_tokens'] == 32
    )


def test_attach_to_a_node_started_with_its_defaults(
    short_sample: Path, tmp_path: Path, own_domain: None
) -> None:
    node = NodeProcess({'autostart': True}, tmp_path / 'node.log')
    try:
        out = tmp_path / 'attach'
        code = evaluate.main(['--bag', str(short_sample), '--attach', '/livevlm', '--out',
                              str(out), '--quiet'])
        assert code == 0, node.log()
    finally:
        assert node.stop() == 0
    records = read_records(out)
    assert len(records) == 8 and not any(r['error'] for r in records)
    assert {r['policy'] for r in records} == {'livevlm'}  # the node's own settings
    assert '| livevlm | 40 | 8 | 0 | 8 | 0 |' in (out / 'summary.md').read_text()

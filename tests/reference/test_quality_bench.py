# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The quality benchmark runs every config on the same streams and writes accuracy records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ros2_livevlm.bench import quality


def test_quality_benchmark_writes_records_with_accuracy(tmp_path: Path, capsys) -> None:
    out = tmp_path / 'quality.jsonl'
    quality.main(['--lengths', '16,32', '--streams', '1', '--questions', '4',
                  '--configs', 'full,recent_frames,livevlm/pos-keys', '--json', str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r['config'], r['frames']) for r in records] == [
        (config, frames) for frames in (16, 32)
        for config in ('full', 'recent_frames', 'livevlm/pos-keys')]
    for record in records:
        assert record['questions'] == 4 and 0.0 <= record['accuracy'] <= 1.0
        assert record['model']['tokens_per_frame'] == 16
        assert sum(1 for _ in record['accuracy_by_kind']) >= 2
    by_config = {(r['config'], r['frames']): r for r in records}
    assert by_config[('full', 16)]['memory']['budget_tokens'] is None
    assert by_config[('recent_frames', 32)]['memory']['budget_tokens'] == 192
    assert by_config[('recent_frames', 32)]['kv_tokens'] < by_config[('full', 32)]['kv_tokens']
    assert by_config[('livevlm/pos-keys', 16)]['retrieval_keys'] == 'positional'
    assert by_config[('full', 16)]['accuracy'] == 1.0
    printed = capsys.readouterr().out
    assert '## Accuracy per config and stream length' in printed and 'livevlm/pos-keys' in printed


@pytest.mark.parametrize('frames_ago, label', [(0, '0'), (1, '1-15'), (31, '16-31'),
                                               (127, '64-127'), (500, '>=128')])
def test_distance_bins(frames_ago: int, label: str) -> None:
    assert quality.distance_bin(frames_ago) == label

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
    configs = ('full', 'simplestream', 'livevlm/pos-keys', 'rekv')
    quality.main(['--lengths', '16,32', '--streams', '1', '--questions', '6',
                  '--configs', ','.join(configs), '--json', str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r['config'], r['frames']) for r in records] == [
        (config, frames) for frames in (16, 32) for config in configs]
    for record in records:
        assert record['questions'] == 6 and 0.0 <= record['accuracy'] <= 1.0
        assert record['model']['tokens_per_frame'] == 16
        assert sum(1 for _ in record['accuracy_by_kind']) >= 2
        assert record['accuracy_long_range'] is not None
    by_config = {(r['config'], r['frames']): r for r in records}
    assert by_config[('full', 16)]['memory']['budget_tokens'] is None
    assert by_config[('simplestream', 32)]['memory']['budget_tokens'] == 2 * 16  # 4 frames
    assert by_config[('simplestream', 32)]['kv_tokens'] < by_config[('full', 32)]['kv_tokens']
    assert by_config[('livevlm/pos-keys', 16)]['retrieval_keys'] == 'positional'
    assert by_config[('full', 16)]['accuracy'] >= 5 / 6
    printed = capsys.readouterr().out
    assert '## Accuracy per config and stream length' in printed and 'livevlm/pos-keys' in printed
    assert '## Goals' in printed and 'best bounded config' in printed


def test_shared_memory_configs_answer_like_their_own_stream() -> None:
    """A config answering from a restored copy of another's memory equals streaming it."""
    base = quality.StreamingVLM.from_pretrained(quality.REFERENCE, policy='full',
                                                **quality.MEMORY)
    episodes = quality.episodes_for(40, 1, 6, seed=3)
    shared, _ = quality.run_configs(base, {'livevlm': quality.CONFIGS['livevlm']}, episodes)
    own = quality.Tally()
    engine = base.new_stream(**quality.CONFIGS['livevlm'])
    engine.ingest(episodes[0].frames, episodes[0].stamps)
    engine.flush()
    quality.answer_all(engine, episodes[0], own)
    assert shared['livevlm'].correct == own.correct
    assert shared['livevlm'].attended == own.attended


@pytest.mark.parametrize('frames_ago, label', [(0, '0'), (1, '1-15'), (31, '16-63'),
                                               (127, '64-127'), (500, '>=128')])
def test_distance_bins(frames_ago: int, label: str) -> None:
    assert quality.distance_bin(frames_ago) == label

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The streaming benchmark, light: every policy, the memory's own work and the speed goals."""

from __future__ import annotations

import json
from pathlib import Path

from ros2_livevlm.bench import stream
from ros2_livevlm.config import POLICIES


def test_stream_benchmark_runs_every_policy(tiny_path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / 'stream.jsonl'
    stream.main(['--model-path', str(tiny_path), '--lengths', '32,64', '--all-up-to', '32',
                 '--offline-max', '32', '--repeats', '1', '--max-new-tokens', '2',
                 '--json', str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r['policy'], r['frames']) for r in records] == [
        (policy, frames) for policy in POLICIES
        for frames in ((32, 64) if policy == 'livevlm' else (32,))] + [('offline', 32)]
    assert all(r['ttft_s']['p50'] > 0 and r['kv_bytes'] > 0 for r in records)
    printed = capsys.readouterr().out
    assert 'TTFT(rekv) / TTFT(livevlm) at 32 frames' in printed
    assert 'TTFT(livevlm, 64) / TTFT(livevlm, 32)' in printed
    assert 'livevlm memory work per clip' in printed

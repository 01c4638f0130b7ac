# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The GPU check's kernel sections in ``--smoke`` mode on CPU: files, report, exit code.

Triton runs in its CPU interpreter. The pipeline and ONNX sections are left to manual smoke
runs (about a minute on CPU); here the kernel parity and timing paths and the report must
keep working.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


# Triton reads it when the kernels are defined, so before importing them
os.environ['TRITON_INTERPRET'] = '1'

from ros2_livevlm.bench import gpu_check  # noqa: E402
import torch  # noqa: E402


def test_smoke_kernel_sections_write_rows_and_report(tmp_path: Path) -> None:
    assert (
        gpu_check.main(
            [str(tmp_path), '--device', 'cpu', '--smoke', '--sections', 'parity,kernels']
        )
        == 0
    )
    parity = [json.loads(line) for line in (tmp_path / 'parity.jsonl').read_text().splitlines()]
    kernels = {'vsb_scores', 'page_scores', 'decode_attention', 'prompt_attention'}
    assert {row['kernel'] for row in parity} == kernels and all(row['pass'] for row in parity)
    assert {row['dtype'] for row in parity} == {'float32', 'float16'}
    timed = [json.loads(line) for line in (tmp_path / 'kernels.jsonl').read_text().splitlines()]
    assert {(row['kernel'], row['impl']) for row in timed} >= {
        (k, impl) for k in kernels for impl in ('torch', 'triton')
    }
    assert all(row['p50_s'] > 0 for row in timed)
    sections = json.loads((tmp_path / 'sections.json').read_text())['sections']
    assert [(s['section'], s['status']) for s in sections] == [('parity', 'ok'), ('kernels', 'ok')]
    assert '### Kernels: torch vs Triton' in (tmp_path / 'report.md').read_text()


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path: Path) -> None:
    run = gpu_check.Run(tmp_path, torch.device('cpu'), True, 1e15, 4.8e12)

    def broken(run: gpu_check.Run, rows: list) -> None:
        rows.append({'kept': True})
        raise RuntimeError('no such device')

    status, rows = gpu_check.run_section(run, 'broken', 5.0, broken)
    assert status['status'] == 'failed: RuntimeError: no such device' and rows == [{'kept': True}]
    assert 'RuntimeError' in (tmp_path / 'broken.error.txt').read_text()
    status, _ = gpu_check.run_section(run, 'next', 5.0, lambda run, rows: rows.append({}))
    assert status['status'] == 'ok'

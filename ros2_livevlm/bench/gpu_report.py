# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The GPU check's Markdown report: parity, ONNX, LLM, kernel and pipeline tables."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import json
from typing import Any


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, Callable[[Any], str]]]
) -> str:
    """
    Format ``rows`` as a Markdown table.

    One ``(header, key, format)`` per column; missing keys print ``-``.
    """
    lines = ['| ' + ' | '.join(h for h, _, _ in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        cells = ['-' if row.get(key) is None else fmt(row[key]) for _, key, fmt in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _g(value: Any) -> str:
    return f'{value:.3g}'


def _ms(value: Any) -> str:
    return f'{value * 1e3:.3f}'


def report(
    environment: dict[str, Any], results: dict[str, list], sections: list[dict[str, Any]]
) -> str:
    """Write the Markdown report: environment, section status, and one table per section."""
    from .records import headline
    from .records import markdown_table

    section_columns = [
        ('section', 'section', str),
        ('status', 'status', str),
        ('s', 'seconds', '{:.1f}'.format),
    ]
    parts = [
        '## GPU check',
        '',
        '```',
        json.dumps(environment, indent=1),
        '```',
        '',
        table(sections, section_columns),
    ]
    parity_columns = [
        ('kernel', 'kernel', str),
        ('shape', 'shape', str),
        ('dtype', 'dtype', str),
        ('max abs diff', 'max_abs_diff', _g),
        ('relative', 'relative', _g),
        ('tolerance', 'tolerance', _g),
        ('pass', 'pass', str),
    ]
    parts += [
        '',
        '### Parity: Triton vs torch',
        '',
        table(results.get('parity', []), parity_columns),
    ]
    onnx_columns = [
        ('export', 'export_dtype', str),
        ('providers', 'providers', ','.join),
        ('frames', 'frames', str),
    ]
    onnx_columns += parity_columns[3:]
    parts += [
        '',
        '### Parity: ONNX vision path (onnxruntime) vs torch',
        '',
        table(results.get('onnx', []), onnx_columns),
    ]
    parts += ['', *llm_report(results.get('llm', []))]
    kernel_columns = [
        ('kernel', 'kernel', str),
        ('shape', 'shape', str),
        ('impl', 'impl', str),
        ('p50 ms', 'p50_s', _ms),
        ('p95 ms', 'p95_s', _ms),
        ('speed-up vs torch', 'speedup_vs_torch', '{:.2f}'.format),
        ('roofline', 'roofline_fraction', '{:.3f}'.format),
        ('skipped', 'skipped', str),
    ]
    parts += [
        '',
        '### Kernels: torch vs Triton',
        '',
        table(results.get('kernels', []), kernel_columns),
    ]
    records = [r for r in results.get('pipeline', []) if 'ttft_s' in r]
    labelled = [  # the same policy with torch kernels gets its own label in the tables
        {**r, 'policy': f'{r["policy"]} ({r["kernels"]} kernels)'}
        if r.get('kernels') == 'torch'
        else r
        for r in records
    ]
    parts += ['', '### Pipeline (BENCHMARKS.md records)', '', markdown_table(labelled), '']
    extra_columns = [
        ('policy', 'policy', str),
        ('frames', 'frames', str),
        ('tpot ms p50', 'tpot_s', lambda t: _ms(t['p50'])),
        ('decode roofline', 'decode_roofline_fraction', '{:.4f}'.format),
        ('peak bytes', 'peak_bytes', '{:,}'.format),
    ]
    parts += [table([r for r in labelled if r.get('kernels')], extra_columns), '']
    if records:
        parts += headline([r for r in records if r.get('kernels', 'triton') == 'triton'])
    problems = [r for r in results.get('pipeline', []) if 'ttft_s' not in r]
    if problems:
        parts += ['', 'Not measured:', *(f'- {json.dumps(r)}' for r in problems)]
    return '\n'.join(parts) + '\n'


def llm_report(rows: list[dict[str, Any]]) -> list[str]:
    """Return the LLM section's lines: parity per policy, speed per backend, what did not run."""
    from .llm_backends import PARITY_COLUMNS

    speed_columns = [
        ('llm_backend', 'llm_backend', str),
        ('dtype', 'dtype', str),
        ('frames', 'frames', str),
        ('clip prefill s', 'clip_prefill_s', '{:.3f}'.format),
        ('TTFT ms p50', 'ttft_s', lambda t: _ms(t['p50'])),
        ('TPOT ms p50', 'tpot_s', lambda t: _ms(t['p50']) if t['p50'] else '-'),
        ('decode roofline', 'decode_roofline_fraction', '{:.4f}'.format),
    ]
    lines = [
        '### LLM backends vs torch: next-token logits and greedy answers',
        '',
        table([r for r in rows if 'max_abs_diff' in r], PARITY_COLUMNS),
        '',
        '### LLM backends: speed (policy livevlm)',
        '',
        table([r for r in rows if 'ttft_s' in r], speed_columns),
    ]
    problems = [r for r in rows if 'error' in r or 'skipped' in r]
    if problems:
        lines += ['', 'Not run:', *(f'- {json.dumps(r)}' for r in problems)]
    return lines

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The benchmark result record of ``BENCHMARKS.md``, in one place for every benchmark.

One JSON object per (policy, stream length) line::

    {"git_sha", "device", "model": {...}, "policy", "memory": {...}, "frames", "kv_tokens",
     "kv_bytes", "peak_bytes", "ttft_s": {"p50", "p95"}, "answer_s": {"p50"},
     "tpot_s": {"p50"}, "ingest_fps", "tokens_attended", "accuracy"}

Benchmarks build records with :func:`make_record` (or :func:`record` from measured values),
print them with :func:`markdown_table` and write them with :func:`write_jsonl`.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import json
import os
from pathlib import Path
import subprocess
from typing import Any

import numpy as np
import torch

from ..engine import StreamingVLM


def git_sha() -> str:
    """Return the checkout's commit, or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ['git', 'rev-parse', '--short=12', 'HEAD'],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def device_name(device: str) -> str:
    """``cpu`` or ``cuda:<GPU name>``."""
    if torch.device(device).type == 'cuda':
        return f'cuda:{torch.cuda.get_device_name(torch.device(device))}'
    return 'cpu'


def peak_rss_bytes(pid: int | str = 'self') -> int | None:
    """Peak resident set size (``VmHWM``) of a process, bytes; None where /proc is unavailable."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak(device: str) -> None:
    """Restart peak-memory tracking of this process (CUDA allocator, or Linux ``clear_refs``)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        return
    try:
        with open(f'/proc/{os.getpid()}/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def peak_bytes(device: str) -> int | None:
    """Peak memory since :func:`reset_peak`: CUDA allocator bytes on a GPU, else peak RSS."""
    if torch.device(device).type == 'cuda':
        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    return peak_rss_bytes()


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """``{"p50", "p95"}`` of ``values`` (None when empty)."""
    if not values:
        return {'p50': None, 'p95': None}
    return {'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95))}


def engine_setup(engine: StreamingVLM) -> dict[str, Any]:
    """Return the device, dtype, model, policy and memory fields of a record for ``engine``."""
    model, memory = engine.model, engine.memory_config
    return {
        'device': device_name(engine.engine_config.device),
        'dtype': str(model.dtype).removeprefix('torch.'),
        'model': {
            'name': model.path.name if model.path else 'unknown',
            'layers': model.num_layers,
            'hidden': model.hidden_size,
            'heads': model.num_heads,
            'kv_heads': model.num_kv_heads,
            'tokens_per_frame': model.tokens_per_frame,
        },
        'policy': memory.policy,
        'memory': {
            'budget_tokens': engine.policy.budget_tokens,
            'page_size': memory.page_size,
            'retrieval_ratio': memory.retrieval_ratio,
            'short_term_frames': memory.short_term_frames,
            'frames_per_clip': engine.engine_config.frames_per_clip,
        },
    }


def record(
    setup: dict[str, Any],
    *,
    frames: int,
    kv_tokens: int | None,
    kv_bytes: int | None,
    peak_bytes: int | None,
    ttft_s: Sequence[float],
    answer_s: Sequence[float],
    tpot_s: Sequence[float],
    ingest_fps: float | None,
    tokens_attended: float | None,
    accuracy: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """
    Build one BENCHMARKS.md result record from measured values.

    Args:
        setup: ``device``, ``dtype``, ``model``, ``policy``, ``memory`` (:func:`engine_setup`
            builds them for an engine; the live evaluation builds them for a node).
        frames: frames seen by the stream.
        kv_tokens: tokens resident in the memory (all segments).
        kv_bytes: bytes of K and V resident, all layers.
        peak_bytes: peak process memory (GPU allocator or RSS), bytes.
        ttft_s: time-to-first-token samples, s (summarised as p50/p95).
        answer_s: question-to-last-token samples, s.
        tpot_s: time-per-output-token samples, s.
        ingest_fps: sustained frames per second through encode + prefill + memory update.
        tokens_attended: context length the answers attended to.
        accuracy: benchmark accuracy in [0, 1], or None when not meaningful.
        **extra: further fields, appended as they are.
    """
    return {
        'git_sha': git_sha(),
        **setup,
        'frames': frames,
        'kv_tokens': kv_tokens,
        'kv_bytes': kv_bytes,
        'peak_bytes': peak_bytes,
        'ttft_s': quantiles(ttft_s),
        'answer_s': {'p50': quantiles(answer_s)['p50']},
        'tpot_s': {'p50': quantiles(tpot_s)['p50']},
        'ingest_fps': ingest_fps,
        'tokens_attended': tokens_attended,
        'accuracy': accuracy,
        **extra,
    }


def make_record(
    engine: StreamingVLM,
    *,
    frames: int,
    ttft_s: Sequence[float],
    answer_s: Sequence[float],
    tpot_s: Sequence[float],
    ingest_fps: float | None,
    tokens_attended: float | None,
    peak_bytes: int,
    accuracy: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the record of ``engine``'s policy after ``frames`` frames, occupancy read now."""
    stats = engine.stats()
    return record(
        engine_setup(engine),
        frames=frames,
        kv_tokens=stats.tokens_init + stats.tokens_long_term + stats.tokens_short_term,
        kv_bytes=stats.kv_bytes,
        peak_bytes=peak_bytes,
        ttft_s=ttft_s,
        answer_s=answer_s,
        tpot_s=tpot_s,
        ingest_fps=ingest_fps,
        tokens_attended=tokens_attended,
        accuracy=accuracy,
        **extra,
    )


def _cell(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    return '-' if value is None else f'{value * scale:.{digits}f}'


def markdown_table(records: Iterable[dict[str, Any]]) -> str:
    """Format records as a Markdown table: policy, frames, KV, TTFT, answer time, accuracy."""
    lines = [
        '| policy | frames | kv_tokens | kv_MiB | ttft_ms p50 | ttft_ms p95 | answer_ms p50 '
        '| ingest_fps | attended | accuracy |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in records:
        lines.append(
            f'| {r["policy"]} | {r["frames"]} '
            f'| {r["kv_tokens"] if r["kv_tokens"] is not None else "-"} '
            f'| {_cell(r["kv_bytes"], 1 / 2**20)} | {_cell(r["ttft_s"]["p50"], 1e3, 1)} '
            f'| {_cell(r["ttft_s"]["p95"], 1e3, 1)} | {_cell(r["answer_s"]["p50"], 1e3, 1)} '
            f'| {_cell(r["ingest_fps"], 1, 1)} | {_cell(r["tokens_attended"], 1, 0)} '
            f'| {_cell(r["accuracy"], 100, 1) + ("%" if r["accuracy"] is not None else "")} |'
        )
    return '\n'.join(lines)


def headline(records: list[dict[str, Any]]) -> list[str]:
    """Return the ratios BENCHMARKS.md asks for, as printable lines."""

    def find(policy: str, frames: int) -> dict[str, Any] | None:
        return next((r for r in records if r['policy'] == policy and r['frames'] == frames), None)

    def ttft(record: dict[str, Any]) -> float:
        return record['ttft_s']['p50']

    lengths = sorted({r['frames'] for r in records if r['policy'] != 'offline'})
    longest, shortest = lengths[-1], lengths[0]
    lines = []
    full, live = find('full', longest), find('livevlm', longest)
    if full and live:
        lines.append(
            f'ttft(full) / ttft(livevlm) at {longest} frames: {ttft(full) / ttft(live):.2f}'
        )
        lines.append(
            f'kv_bytes(full) / kv_bytes(livevlm) at {longest} frames: '
            f'{full["kv_bytes"] / live["kv_bytes"]:.2f}'
        )
    live_short = find('livevlm', shortest)
    if live and live_short:
        lines.append(
            f'ttft(livevlm, {longest}) / ttft(livevlm, {shortest}) (flatness): '
            f'{ttft(live) / ttft(live_short):.2f}'
        )
    for record in (r for r in records if r['policy'] == 'offline'):
        live_same = find('livevlm', record['frames'])
        if live_same:
            lines.append(
                f'ttft(offline re-prefill) / ttft(livevlm) at {record["frames"]} frames: '
                f'{ttft(record) / ttft(live_same):.1f}'
            )
    return lines


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write records as JSON lines to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')
    return path

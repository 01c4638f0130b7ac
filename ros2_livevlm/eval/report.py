# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The evaluation report: records, a Markdown summary and plots, all policies side by side.

``--out DIR`` of ``evaluate`` receives:

- ``records.jsonl``: one line per (policy, question): the result record of
  ``BENCHMARKS.md`` (:func:`ros2_livevlm.bench.records.record`; ``frames``, ``kv_*`` are
  the memory when the question was asked, ``ttft_s`` over the repeats, ``accuracy`` 1 or
  0) plus the question's own fields (``question``, ``kind``, ``range``, ``expected``,
  ``prediction``, ``correct``, ``evidence``, ...); times relative to the bag start in s.
- ``memory_trace.jsonl``: ``{"policy", "frames", "kv_tokens", "kv_bytes"}`` per ingested
  frame (offline) or per MemoryState (live).
- ``summary.md``: one row per policy (records over all its questions), accuracy per
  question kind and evidence range, the headline ratios of ``BENCHMARKS.md``.
- ``ttft_vs_frames.png``, ``kv_bytes_vs_frames.png``, ``accuracy.png`` (matplotlib, Agg).

A question's *range* is ``recent`` when its evidence (``evidence_time``) is less than
``long_range_s`` before it was asked, ``long_range`` otherwise (``-`` without evidence).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import numpy as np

from .replay import PolicyRun
from .replay import QuestionResult
from ..bench.records import headline
from ..bench.records import markdown_table
from ..bench.records import record
from ..bench.records import write_jsonl
from ..checkpoints import REFERENCE

PLOTS = ('ttft_vs_frames.png', 'kv_bytes_vs_frames.png', 'accuracy.png')
STYLES = (('-', 'o'), ('--', 's'), ('-.', '^'), (':', 'D'), ('-', 'v'), ('--', 'x'))
"""Line style and marker per policy, so overlapping curves stay visible."""


@dataclass(frozen=True)
class RunContext:
    """
    What the whole evaluation ran on, for the report.

    Attributes:
        mode: ``offline`` or ``live``.
        bag: bag path.
        topic: replayed camera topic.
        start_ns: bag start (earliest log time), ns: the zero of every relative time.
        sample_fps: sampling rate, Hz.
        repeats: times each question was asked.
        model_path: as given (``tiny`` = random weights).
        random_model: True when the weights are random (accuracy is noise).
        long_range_s: evidence age from which a question is ``long_range``, s.
    """

    mode: str
    bag: str
    topic: str
    start_ns: int
    sample_fps: float
    repeats: int
    model_path: str
    random_model: bool
    long_range_s: float


def _relative(ctx: RunContext, stamp_s: float) -> float:
    return round(stamp_s - ctx.start_ns * 1e-9, 3)


def question_range(result: QuestionResult, ctx: RunContext) -> str:
    """``recent``, ``long_range`` or ``-`` (no evidence time given), see the module docstring."""
    evidence = result.question.evidence_time
    if evidence is None:
        return '-'
    age_s = (result.asked_ns - evidence.resolve(ctx.start_ns)) * 1e-9
    return 'long_range' if age_s >= ctx.long_range_s else 'recent'


def question_record(run: PolicyRun, result: QuestionResult, ctx: RunContext) -> dict[str, Any]:
    """Build the record line of one answered question (see the module docstring)."""
    q = result.question
    evidence_ns = q.evidence_time.resolve(ctx.start_ns) if q.evidence_time is not None else None
    return record(
        run.info['setup'],
        frames=result.frames_seen,
        kv_tokens=result.kv_tokens,
        kv_bytes=result.kv_bytes,
        peak_bytes=run.peak_bytes,
        ttft_s=result.ttft_s,
        answer_s=result.answer_s,
        tpot_s=result.tpot_s,
        ingest_fps=run.ingest_fps,
        tokens_attended=result.tokens_attended,
        accuracy=None if result.error else float(result.correct),
        mode=ctx.mode,
        bag=ctx.bag,
        topic=ctx.topic,
        sample_fps=ctx.sample_fps,
        repeats=ctx.repeats,
        question_line=q.line,
        time_s=_relative(ctx, result.asked_ns * 1e-9),
        question=q.question,
        kind=q.kind,
        range=question_range(result, ctx),
        camera=q.camera,
        options=list(q.options) if q.options else None,
        expected=q.answer,
        prediction=result.text,
        correct=None if result.error else result.correct,
        evidence=[[_relative(ctx, a), _relative(ctx, b)] for a, b in result.evidence],
        evidence_time_s=None if evidence_ns is None else _relative(ctx, evidence_ns * 1e-9),
        evidence_age_s=None
        if evidence_ns is None
        else round((result.asked_ns - evidence_ns) * 1e-9, 3),
        frames_in_memory=result.frames_in_memory,
        tokens_generated=result.tokens_generated,
        error=result.error,
        **run.info.get('extra', {}),
    )


def policy_record(run: PolicyRun) -> dict[str, Any]:
    """
    Build one record for a policy over all its questions.

    Frames and memory at its last question, timings pooled over all.
    """
    answered = [r for r in run.results if not r.error]
    last = answered[-1] if answered else None
    return record(
        run.info['setup'],
        frames=last.frames_seen if last else 0,
        kv_tokens=last.kv_tokens if last else None,
        kv_bytes=last.kv_bytes if last else None,
        peak_bytes=run.peak_bytes,
        ttft_s=[t for r in answered for t in r.ttft_s],
        answer_s=[t for r in answered for t in r.answer_s],
        tpot_s=[t for r in answered for t in r.tpot_s],
        ingest_fps=run.ingest_fps,
        tokens_attended=float(np.mean([r.tokens_attended for r in answered]))
        if answered
        else None,
        accuracy=float(np.mean([r.correct for r in answered])) if answered else None,
        questions=len(run.results),
        errors=len(run.results) - len(answered),
        frames_received=run.frames_received,
        frames_sampled=run.frames_sampled,
        frames_dropped=run.frames_dropped,
    )


def checkpoint_records(run: PolicyRun) -> list[dict[str, Any]]:
    """One record per stream length at which questions were asked (timings pooled over them)."""
    by_frames: dict[int, list[QuestionResult]] = defaultdict(list)
    for result in run.results:
        if not result.error:
            by_frames[result.frames_seen].append(result)
    return [
        record(
            run.info['setup'],
            frames=frames,
            kv_tokens=group[-1].kv_tokens,
            kv_bytes=group[-1].kv_bytes,
            peak_bytes=run.peak_bytes,
            ttft_s=[t for r in group for t in r.ttft_s],
            answer_s=[t for r in group for t in r.answer_s],
            tpot_s=[t for r in group for t in r.tpot_s],
            ingest_fps=run.ingest_fps,
            tokens_attended=float(np.mean([r.tokens_attended for r in group])),
            accuracy=float(np.mean([r.correct for r in group])),
        )
        for frames, group in sorted(by_frames.items())
    ]


def accuracy_groups(
    runs: Sequence[PolicyRun], ctx: RunContext
) -> tuple[list[str], dict[str, dict[str, tuple[int, int]]]]:
    """Group names (kinds, then ranges, then ``all``) and policy -> group -> (correct, asked)."""
    table: dict[str, dict[str, list[int]]] = {}
    kinds: list[str] = []
    for run in runs:
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for result in run.results:
            if result.error:
                continue
            names = [result.question.kind, question_range(result, ctx), 'all']
            for name in names:
                if name == '-':
                    continue
                groups[name][0] += int(result.correct)
                groups[name][1] += 1
            if result.question.kind not in kinds:
                kinds.append(result.question.kind)
        table[run.policy] = groups
    ranges = [name for name in ('recent', 'long_range') if any(name in g for g in table.values())]
    return kinds + ranges + ['all'], {
        p: {k: tuple(v) for k, v in g.items()} for p, g in table.items()
    }


def _accuracy_table(runs: Sequence[PolicyRun], ctx: RunContext) -> str:
    names, table = accuracy_groups(runs, ctx)
    lines = ['| policy | ' + ' | '.join(names) + ' |', '|---|' + '---:|' * len(names)]
    for run in runs:
        cells = []
        for name in names:
            correct, asked = table[run.policy].get(name, (0, 0))
            cells.append(f'{100 * correct / asked:.0f}% ({correct}/{asked})' if asked else '-')
        lines.append(f'| {run.policy} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def summary_markdown(
    runs: Sequence[PolicyRun], ctx: RunContext, policy_records: Sequence[dict[str, Any]]
) -> str:
    """Write the Markdown summary: header (with the accuracy caveat), tables, headline ratios."""
    model = policy_records[0]['model'] if policy_records else {}
    budgets = [
        r['memory']['budget_tokens']
        for r in policy_records
        if r['memory']['budget_tokens'] is not None
    ]
    memory = policy_records[0]['memory'] if policy_records else {}
    lines = [f'# Evaluation of {ctx.bag} ({ctx.topic}), {ctx.mode} replay', '']
    if ctx.random_model:
        lines += [
            f'> **Accuracy is meaningless here:** the model (`{ctx.model_path}`) has random '
            'weights, so',
            '> its answers are noise. Time to first token, KV memory and ingest rate are real',
            '> measurements of the memory policies on this machine.',
            '',
        ]
    elif str(ctx.model_path) == REFERENCE:
        lines += [
            "> The model is the project's tiny reference model, trained on the twelve photos of",
            '> this tour and on these question forms: a stand-in for a real LLaVA-OneVision',
            '> checkpoint. Its accuracy compares the memory policies on this task; it says',
            '> nothing about the quality of a real model.',
            '',
        ]
    lines += [
        f'model `{model.get("name")}` ({model.get("layers")} layers, '
        f'hidden {model.get("hidden")}, {model.get("tokens_per_frame")} tokens/frame), '
        f'device {policy_records[0]["device"] if policy_records else "-"}, '
        f'sample_fps {ctx.sample_fps:g} Hz, '
        f'long-term budget {budgets[0] if budgets else "-"} tokens '
        f'(policy `full`: unlimited), {memory.get("frames_per_clip")} frames/clip, '
        f'{ctx.repeats} repeat(s) per question; `range`: evidence older than '
        f'{ctx.long_range_s:g} s is long_range.',
        '',
        *_budget_note(policy_records),
        '## Policies (timings over all questions; frames and kv at the last question)',
        '',
        markdown_table(policy_records),
        '',
        '| policy | frames received | sampled | dropped | questions | errors |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for r in policy_records:
        lines.append(
            f'| {r["policy"]} | {r["frames_received"]} | {r["frames_sampled"]} '
            f'| {r["frames_dropped"]} '
            f'| {r["questions"]} | {r["errors"]} |'
        )
    lines += [
        '',
        '## Accuracy per question kind and evidence range',
        '',
        _accuracy_table(runs, ctx),
        '',
    ]
    checkpoints = [r for run in runs for r in checkpoint_records(run)]
    if checkpoints:
        lines += [
            '## Per stream length at which questions were asked',
            '',
            markdown_table(checkpoints),
            '',
        ]
        ratios = headline(checkpoints)
        if ratios:
            lines += (
                ['## Headline ratios (BENCHMARKS.md)', '']
                + [f'- {line}' for line in ratios]
                + ['']
            )
    return '\n'.join(lines)


def _budget_note(policy_records: Sequence[dict[str, Any]]) -> list[str]:
    """Say so when no bounded policy filled its budget (then they all equal ``full``)."""
    bounded = [r for r in policy_records if r['memory']['budget_tokens'] is not None]
    if not bounded or any(r['kv_tokens'] >= r['memory']['budget_tokens'] for r in bounded):
        return []
    return [
        f'> **No memory policy evicted anything:** the long-term budget '
        f'({bounded[0]["memory"]["budget_tokens"]} tokens) is larger than the whole memory '
        f'at the last question ({max(r["kv_tokens"] for r in bounded)} tokens),',
        '> so every policy kept every token and equals `full`. Lower `--budget-tokens` '
        '(e.g. to a few frames of tokens) to compare them.',
        '',
    ]


def _plot(runs: Sequence[PolicyRun], ctx: RunContext, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    styles = [
        {'linestyle': ls, 'marker': m, 'linewidth': 2.4 - 0.35 * i}
        for i, (ls, m) in enumerate(STYLES)
    ]
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run, style in zip(runs, styles * len(runs)):
        samples = [(r.frames_seen, t * 1e3) for r in run.results if not r.error for t in r.ttft_s]
        medians = [(c['frames'], c['ttft_s']['p50'] * 1e3) for c in checkpoint_records(run)]
        if medians:
            (line,) = ax.plot(*zip(*medians), markersize=4, label=f'{run.policy} (p50)', **style)
            ax.scatter(*zip(*samples), s=8, alpha=0.3, color=line.get_color())
    ax.set(
        xlabel='frames seen',
        ylabel='TTFT (ms)',
        title='Time to first token vs frames seen (dots: each answer)',
    )
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / PLOTS[0]))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run, style in zip(runs, styles * len(runs)):
        if run.trace:
            frames, _, kv_bytes = zip(*run.trace)
            kib = np.array(kv_bytes) / 2**10
            ax.plot(
                frames, kib, label=run.policy, drawstyle='steps-post', **{**style, 'marker': None}
            )
    ax.set(
        xlabel='frames seen', ylabel='KV cache (KiB, all layers)', title='KV memory vs frames seen'
    )
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / PLOTS[1]))

    names, table = accuracy_groups(runs, ctx)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(names) + 2), 4.2))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [
            100 * c / n if n else 0.0
            for c, n in (table[run.policy].get(name, (0, 0)) for name in names)
        ]
        ax.bar(
            np.arange(len(names)) + (i - (len(runs) - 1) / 2) * width,
            values,
            width,
            label=run.policy,
        )
    title = 'Accuracy per question kind' + (' (random model: noise)' if ctx.random_model else '')
    ax.set(ylabel='accuracy (%)', ylim=(0, 119), title=title)
    ax.set_xticks(np.arange(len(names)), names, rotation=20)
    ax.legend(fontsize='small', loc='upper center', ncols=len(runs))  # above the 100 % bars
    ax.grid(alpha=0.3, axis='y')
    paths.append(_save(fig, out / PLOTS[2]))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(runs: Sequence[PolicyRun], ctx: RunContext, out: str | Path) -> tuple[Path, str]:
    """Write records, memory trace, summary and plots into ``out``; return ``(out, summary)``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(
        (question_record(run, result, ctx) for run in runs for result in run.results),
        out / 'records.jsonl',
    )
    with (out / 'memory_trace.jsonl').open('w') as f:
        for run in runs:
            for frames, kv_tokens, kv_bytes in run.trace:
                point = {
                    'policy': run.policy,
                    'frames': frames,
                    'kv_tokens': kv_tokens,
                    'kv_bytes': kv_bytes,
                }
                f.write(json.dumps(point) + '\n')
    summary = summary_markdown(runs, ctx, [policy_record(run) for run in runs])
    (out / 'summary.md').write_text(summary + '\n')
    _plot(runs, ctx, out)
    return out, summary

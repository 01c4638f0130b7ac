# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Quality benchmark: answer accuracy of every memory policy on long real-photo streams.

    python -m ros2_livevlm.bench.quality [--lengths 16,64,128,256] [--streams 12] [--json FILE]

The reference model (:mod:`ros2_livevlm.reference`, trained with full attention only, on
streams of 8-256 frames) watches held-out real-photo streams of every length in
``--lengths`` and answers the recall questions of :mod:`ros2_livevlm.reference.task`.
Every config runs in one process on the same streams and questions, sharing one loaded
model (:meth:`StreamingVLM.new_stream`), at one KV budget (:data:`MEMORY`: at most a
quarter of ``full``'s KV at 128 frames):

=========================  ==============================================================
config                     what it is
=========================  ==============================================================
``full``                   every token kept and attended
``simplestream``           the last 4 frames only (SimpleStream)
``recent_frames``          the newest frames that fit the budget
``window``                 the newest tokens that fit the budget (StreamingLLM; the init
                           segment is the sink)
``vsb``                    Vision Sink Bucketing (stream buckets), answers attend to all
``vsb/candidate``          VSB with candidate-list buckets (spec A.4 step 5, item 3)
``livevlm``                VSB + PaR pages, ratio 0.4
``livevlm/clusters``       VSB + ClusterKV clusters (the same share of tokens)
``livevlm/original``       ``livevlm`` with original RoPE positions (spec A.4.8)
``livevlm/pos-keys``       PaR on keys *with* positions (LiveVLM Table 1 ablation)
``livevlm/r=1.0``          retrieval ratio 1.0 (LiveVLM Table 6; equals ``vsb``)
``clusterkv``              every token kept, clusters of pre-RoPE keys recalled to budget
``clusterkv/post-rope``    ClusterKV on post-RoPE keys, as the paper clusters
``rekv``                   every frame kept, local-window streaming, top frames recalled
=========================  ==============================================================

Configs that keep the same memory (``vsb``, the ``livevlm`` variants that only answer
differently) stream once and answer from a restored copy of that memory
(:meth:`VideoMemory.state` / :meth:`~VideoMemory.load_state`).

Scoring: exact match of the greedy answer (up to 3 new tokens, whitespace stripped) with
the one-word answer; no judge, no logit comparison. Accuracy is reported per config and
length, for the long-range kinds (``presence``, ``first``, ``order``: evidence anywhere in
the stream) and ``now``, per question kind and per evidence distance (frames between the
newest frame and the newest frame that decides the answer; 1 frame/s, so frames =
seconds). A diagnostic table shows how often the retrieval's top evidence span lies in
the asked scene, against a question-blind ranking. Prints Markdown tables and the goals
of issue 11; ``--json`` writes one ``BENCHMARKS.md`` record per (config, length) with
``accuracy`` filled and the breakdowns as extra fields.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import time
from typing import Any

import torch

from .records import make_record
from .records import markdown_table
from .records import peak_bytes
from .records import write_jsonl
from ..checkpoints import REFERENCE
from ..engine import StreamingVLM
from ..reference import MEMORY_SETTINGS
from ..reference.task import Episode
from ..reference.task import FPS
from ..reference.task import held_out_seed
from ..reference.task import KINDS
from ..reference.task import LONG_RANGE_KINDS
from ..reference.task import make_episode

MEMORY = {**MEMORY_SETTINGS, 'short_term_frames': 2, 'page_size': 16, 'retrieval_ratio': 0.4}
"""
Memory settings for the reference model's 16 tokens per frame (its node defaults): a
long-term budget of 28 frames plus 2 short-term frames, 524 tokens with the init segment,
a quarter of ``full``'s 2,092 at 128 frames; clips of 8 frames; VSB observes the last 2
frames; one page per frame.
"""

CONFIGS: dict[str, dict[str, Any]] = {
    'full': {'policy': 'full'},
    'simplestream': {'policy': 'simplestream'},
    'recent_frames': {'policy': 'recent_frames'},
    'window': {'policy': 'window'},
    'vsb': {'policy': 'vsb', 'bucket_by': 'stream'},
    'vsb/candidate': {'policy': 'vsb', 'bucket_by': 'candidate'},
    'livevlm': {'policy': 'livevlm', 'bucket_by': 'stream', 'retrieval': 'pages'},
    'livevlm/clusters': {'policy': 'livevlm', 'bucket_by': 'stream', 'retrieval': 'clusters'},
    'livevlm/original': {'policy': 'livevlm', 'bucket_by': 'stream', 'retrieval': 'pages',
                         'positions': 'original'},
    'livevlm/pos-keys': {'policy': 'livevlm', 'bucket_by': 'stream', 'retrieval': 'pages',
                         'retrieval_keys': 'positional'},
    'livevlm/r=1.0': {'policy': 'livevlm', 'bucket_by': 'stream', 'retrieval': 'pages',
                      'retrieval_ratio': 1.0},
    'clusterkv': {'policy': 'clusterkv'},
    'clusterkv/post-rope': {'policy': 'clusterkv', 'retrieval_keys': 'positional'},
    'rekv': {'policy': 'rekv'},
}
"""Compared configurations: every policy, the bucketing, position and retrieval variants."""

SHARED_MEMORY = {
    'vsb': 'livevlm/clusters',
    'livevlm': 'livevlm/clusters',
    'livevlm/pos-keys': 'livevlm/clusters',
    'livevlm/r=1.0': 'livevlm/clusters',
    'full': 'clusterkv',
}
"""Configs answering from the memory another config streamed (same store and prefill)."""

DISTANCE_BINS = ((0, 0), (1, 15), (16, 63), (64, 127), (128, 10**9))
"""Evidence distance bins, frames ago (inclusive)."""


def distance_bin(frames_ago: int) -> str:
    """Return the :data:`DISTANCE_BINS` label of an evidence distance, e.g. ``'16-63'``."""
    for low, high in DISTANCE_BINS:
        if low <= frames_ago <= high:
            if low == high:
                return str(low)
            return f'{low}-{high}' if high < 10**9 else f'>={low}'
    raise ValueError(f'negative evidence distance {frames_ago}')


def group_key(kind: str, answer: str) -> str:
    """Return the question group of the per-kind table: presence split by its answer."""
    return f'presence:{answer}' if kind == 'presence' else kind


@dataclass
class Tally:
    """Answers of one config on one stream length (lists hold one entry per question)."""

    correct: list[int] = field(default_factory=list)
    by_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_range: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_distance: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    ttft_s: list[float] = field(default_factory=list)
    answer_s: list[float] = field(default_factory=list)
    attended: list[int] = field(default_factory=list)
    evidence_hits: list[int] = field(default_factory=list)
    evidence_chance: list[float] = field(default_factory=list)
    ingest_s: float = 0.0
    frames: int = 0


def evidence_hit(engine: StreamingVLM, episode: Episode, scene: str,
                 evidence: Sequence[tuple[float, float]]) -> tuple[int, float]:
    """
    Check whether the top evidence span of an answer lies in a run of the asked ``scene``.

    ``Answer.evidence`` lists the time spans of the frames retrieved most (for policies
    without retrieval: the pages PaR ranks highest, though all are attended). Returns
    ``(hit, chance)``: 1 if the first span overlaps a run of ``scene`` (else 0), and the
    share of the long-term frames (any layer) from that scene, the hit rate of a ranking
    that ignores the question.
    """
    runs = [(r.start / FPS, (r.end - 1) / FPS) for r in episode.runs if r.scene == scene]
    hit = bool(evidence) and any(t0 <= evidence[0][1] and evidence[0][0] <= t1
                                 for t0, t1 in runs)
    memory = engine.memory
    frames = torch.unique(memory.frame[:, memory.long_term])
    in_scene = torch.zeros_like(frames, dtype=torch.bool)
    for run in episode.runs:
        if run.scene == scene:
            in_scene |= (frames >= run.start) & (frames < run.end)
    return int(hit), float(in_scene.float().mean()) if frames.numel() else 0.0


def answer_all(engine: StreamingVLM, episode: Episode, tally: Tally) -> None:
    """Ask every question of ``episode`` and tally the answers."""
    for question in episode.questions:
        answer = engine.ask(question.text, max_new_tokens=3)
        ok = int(answer.text.strip() == question.answer)
        tally.correct.append(ok)
        tally.by_kind[group_key(question.kind, question.answer)].append(ok)
        tally.by_range['long' if question.kind in LONG_RANGE_KINDS else 'now'].append(ok)
        tally.by_distance[distance_bin(question.evidence_frames_ago)].append(ok)
        if question.kind == 'presence' and question.answer == 'yes':
            hit, chance = evidence_hit(engine, episode, question.scene, answer.evidence)
            tally.evidence_hits.append(hit)
            tally.evidence_chance.append(chance)
        tally.ttft_s.append(answer.ttft_s)
        tally.answer_s.append(answer.total_s)
        tally.attended.append(answer.tokens_attended)


def run_configs(base: StreamingVLM, configs: dict[str, dict[str, Any]],
                episodes: Sequence[Episode]) -> tuple[dict[str, Tally], dict[str, StreamingVLM]]:
    """
    Stream every episode through a fresh memory per config and answer its questions.

    A config of :data:`SHARED_MEMORY` answers from a restored copy of the memory its
    source config streamed (the source runs even if not asked for, unless it is absent
    from :data:`CONFIGS`). Returns the tallies and each config's last engine.
    """
    tallies = {name: Tally() for name in configs}
    engines: dict[str, StreamingVLM] = {}
    sources = {SHARED_MEMORY.get(name, name) for name in configs}
    for episode in episodes:
        streamed: dict[str, StreamingVLM] = {}
        for source in sorted(sources):
            engine = base.new_stream(**CONFIGS[source])
            start = time.perf_counter()
            engine.ingest(episode.frames, episode.stamps)
            engine.flush()
            streamed[source] = engine
            for name in configs:
                if SHARED_MEMORY.get(name, name) == source:
                    tallies[name].ingest_s += time.perf_counter() - start
                    tallies[name].frames += len(episode.frames)
        for name in configs:
            source = streamed[SHARED_MEMORY.get(name, name)]
            engine = source
            if name != SHARED_MEMORY.get(name, name):
                engine = base.new_stream(**CONFIGS[name])
                engine.memory.load_state(source.memory.state())
            answer_all(engine, episode, tallies[name])
            engines[name] = engine
    return tallies, engines


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pct(value: float | None, count: int | None = None) -> str:
    if value is None:
        return '-'
    return f'{100 * value:.0f}%' + (f' ({count})' if count is not None else '')


def breakdown_table(title: str, results: dict[str, Tally], attribute: str,
                    columns: Sequence[str]) -> str:
    """Return a Markdown table: one row per config, one column per group of ``attribute``."""
    lines = [f'| {title} | ' + ' | '.join(columns) + ' |', '|---|' + '---:|' * len(columns)]
    for name, tally in results.items():
        groups = getattr(tally, attribute)
        cells = [_pct(_mean(groups.get(c, [])), len(groups.get(c, []))) for c in columns]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def evidence_table(results: dict[str, Tally]) -> str:
    """Return a Markdown table of the top evidence span on "Did you see X?" answered yes."""
    lines = ['| config | top span in the asked scene | question-blind ranking | ratio |',
             '|---|---:|---:|---:|']
    for name, tally in results.items():
        hits, chance = _mean(tally.evidence_hits), _mean(tally.evidence_chance)
        ratio = f'{hits / chance:.1f}' if hits is not None and chance else '-'
        lines.append(f'| {name} | {_pct(hits, len(tally.evidence_hits))} '
                     f'| {_pct(chance)} | {ratio} |')
    return '\n'.join(lines)


def episodes_for(length: int, streams: int, questions: int, seed: int) -> list[Episode]:
    """Render ``streams`` held-out streams of ``length`` frames (never training streams)."""
    return [make_episode(held_out_seed(seed, length, i), length, questions)
            for i in range(streams)]


def _record(engine: StreamingVLM, name: str, length: int, tally: Tally) -> dict[str, Any]:
    return make_record(
        engine,
        frames=length,
        ttft_s=tally.ttft_s,
        answer_s=tally.answer_s,
        tpot_s=[],
        ingest_fps=tally.frames / tally.ingest_s,
        tokens_attended=sum(tally.attended) / len(tally.attended),
        peak_bytes=peak_bytes(engine.engine_config.device),
        accuracy=_mean(tally.correct),
        config=name,
        retrieval_keys=engine.memory_config.retrieval_keys,
        questions=len(tally.correct),
        scoring='exact match of the greedy answer word',
        accuracy_long_range=_mean(tally.by_range['long']),
        accuracy_now=_mean(tally.by_range['now']),
        accuracy_by_kind={k: _mean(v) for k, v in sorted(tally.by_kind.items())},
        accuracy_by_distance={k: _mean(v) for k, v in tally.by_distance.items()},
        evidence_top_span_in_scene=_mean(tally.evidence_hits),
        evidence_question_blind=_mean(tally.evidence_chance),
    )


def goals(records: list[dict[str, Any]], lengths: Sequence[int]) -> list[str]:
    """
    Return the quality goals of issue 11 as printable lines, from the records of one run.

    Bounded configs: those whose memory stops growing (every config but ``full``,
    ``clusterkv*`` and ``rekv``); the best is the one with the highest long-range accuracy
    over the longest lengths.
    """
    by = {(r['config'], r['frames']): r for r in records}
    configs = list(dict.fromkeys(r['config'] for r in records))
    unbounded = ('full', 'clusterkv', 'clusterkv/post-rope', 'rekv')
    bounded = [c for c in configs if c not in unbounded and c != 'simplestream']
    long = [n for n in lengths if n >= 128] or list(lengths[-1:])
    lines: list[str] = []
    if not bounded or 'full' not in configs:
        return lines
    best = max(bounded, key=lambda c: sum(by[(c, n)]['accuracy_long_range'] or 0 for n in long))
    lines.append(f'best bounded config (long-range accuracy at {long} frames): {best}')
    for n in long:
        ours, full = by[(best, n)], by[('full', n)]
        lines.append(
            f'{n} frames: long-range {best} {100 * ours["accuracy_long_range"]:.1f} % vs full '
            f'{100 * full["accuracy_long_range"]:.1f} % (goal: within 5 points) at '
            f'{ours["kv_tokens"] / full["kv_tokens"]:.2f} of full\'s KV tokens (goal <= 0.25)')
        if 'simplestream' in configs:
            simple = by[('simplestream', n)]
            lines.append(
                f'{n} frames: vs simplestream long-range '
                f'{100 * (ours["accuracy_long_range"] - simple["accuracy_long_range"]):+.1f} '
                f'points (goal >= +20), now '
                f'{100 * (ours["accuracy_now"] - simple["accuracy_now"]):+.1f} points '
                '(goal >= -2)')
        hits, blind = ours['evidence_top_span_in_scene'], ours['evidence_question_blind']
        if hits is not None and blind:
            lines.append(f'{n} frames: top evidence span in the asked scene {100 * hits:.0f} % '
                         f'vs question-blind {100 * blind:.0f} %: {hits / blind:.1f}x '
                         '(goal >= 2x)')
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run every config on every length; print the tables; optionally write JSON records."""
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.bench.quality',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--model-path', default=REFERENCE,
                        help='checkpoint (default: the reference model)')
    parser.add_argument('--lengths', default='16,64,128,256',
                        help='stream lengths in frames, comma separated '
                        '(default: %(default)s)')
    parser.add_argument('--streams', type=int, default=12,
                        help='streams per length (default: %(default)s)')
    parser.add_argument('--questions', type=int, default=16,
                        help='questions per stream (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=7,
                        help='held-out stream seed (default: %(default)s)')
    parser.add_argument('--budget-tokens', type=int, default=MEMORY['budget_tokens'],
                        help='long-term budget, tokens (default: %(default)s)')
    parser.add_argument('--configs', default=','.join(CONFIGS),
                        help='configs to run, comma separated (default: all)')
    parser.add_argument('--json', default=None, help='write BENCHMARKS.md records here')
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(',')]
    configs = {name: CONFIGS[name] for name in args.configs.split(',')}
    base = StreamingVLM.from_pretrained(args.model_path, policy='full',
                                        **{**MEMORY, 'budget_tokens': args.budget_tokens})
    records, overall = [], defaultdict(dict)
    kinds = [group_key(k, a) for k in KINDS for a in (('yes', 'no') if k == 'presence' else ('',))]
    for length in lengths:
        episodes = episodes_for(length, args.streams, args.questions, args.seed)
        results, engines = run_configs(base, configs, episodes)
        for name in configs:
            overall[name][length] = results[name]
            records.append(_record(engines[name], name, length, results[name]))
        bins = [distance_bin(low) for low, _ in DISTANCE_BINS if low < length]
        questions = sum(len(e.questions) for e in episodes)
        print(f'\n## {length} frames ({len(episodes)} streams, {questions} questions)\n')
        print(breakdown_table('config \\ kind', results, 'by_kind', kinds))
        print()
        print(breakdown_table('config \\ evidence frames ago', results, 'by_distance', bins))
        print()
        print(evidence_table(results))
    print('\n## Accuracy per config and stream length: all / long-range / now\n')
    print('| config | ' + ' | '.join(f'{n} frames' for n in lengths) + ' |')
    print('|---|' + '---:|' * len(lengths))
    for name, row in overall.items():
        cells = [' / '.join(_pct(_mean(values)) for values in (
            row[n].correct, row[n].by_range['long'], row[n].by_range['now'])) for n in lengths]
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    print('\n## BENCHMARKS.md records\n')
    print(markdown_table([{**r, 'policy': r['config']} for r in records]))  # config names
    print('\n## Goals\n')
    for line in goals(records, lengths):
        print(f'- {line}')
    if args.json:
        print(f'\nwrote {write_jsonl(records, args.json)}')


if __name__ == '__main__':
    main()

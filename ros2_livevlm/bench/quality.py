# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Quality benchmark: answer accuracy of every memory policy on streams longer than trained on.

    python -m ros2_livevlm.bench.quality [--lengths 16,32,64,128] [--streams 16] [--json FILE]

The reference model (:mod:`ros2_livevlm.reference`, trained on 6-24-frame streams, nominal
16) watches real-photo streams of every length in ``--lengths`` (2-8x its training length
by default, plus the training length itself) with the KV budget well below the stream
length, and answers the recall questions of :mod:`ros2_livevlm.reference.task`. Every
policy and the two LiveVLM sanity checks run in one process on the same streams and
questions, sharing one loaded model (:meth:`StreamingVLM.new_stream`):

====================  ==============================================================
config                what it is
====================  ==============================================================
``full``              every token kept (positions grow to 8x the training length)
``recent_frames``     the newest frames that fit the budget
``window``            one frame of attention sinks + the newest tokens
``vsb``               Vision Sink Bucketing, answers attend to all of long-term
``livevlm``           VSB + position-agnostic page retrieval (PaR), ratio 0.4
``livevlm/pos-keys``  PaR on keys *with* positions (LiveVLM Table 1 ablation)
``livevlm/r=1.0``     retrieval ratio 1.0 (LiveVLM Table 6; equals ``vsb`` by design)
====================  ==============================================================

Scoring: exact match of the greedy answer (up to 3 new tokens, whitespace stripped) with
the one-word answer; no judge, no logit comparison. Accuracy is reported per config and
length, per question kind and per evidence distance (frames between the newest frame and
the newest frame that decides the answer; streams run at 1 frame/s, so frames = seconds).
A diagnostic table shows how often PaR's page ranking puts the asked scene first. Prints
Markdown tables; ``--json`` writes one ``BENCHMARKS.md`` record per (config, length) with
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
from ..reference.task import Episode
from ..reference.task import FPS
from ..reference.task import KINDS
from ..reference.task import make_episode
from ..reference.train_reference import TrainConfig

MEMORY = {
    'frames_per_clip': 8,
    'budget_tokens': 192,
    'short_term_frames': 2,
    'observation_tokens': 32,
    'page_size': 16,
    'retrieval_ratio': 0.4,
    'sink_tokens': 16,
}
"""
Memory settings for the reference model's 16 tokens per frame.

A long-term budget of 12 frames plus 2 short-term frames: 14 frames in all, below the
16-frame training length; clips of 8 frames; VSB observes the last 2 frames; one page per
frame; one sink frame for ``window``.
"""

CONFIGS: dict[str, dict[str, Any]] = {
    'full': {'policy': 'full'},
    'recent_frames': {'policy': 'recent_frames'},
    'window': {'policy': 'window'},
    'vsb': {'policy': 'vsb'},
    'livevlm': {'policy': 'livevlm'},
    'livevlm/pos-keys': {'policy': 'livevlm', 'retrieval_keys': 'positional'},
    'livevlm/r=1.0': {'policy': 'livevlm', 'retrieval_ratio': 1.0},
}
"""Compared configurations: the five policies and the two LiveVLM sanity checks."""

DISTANCE_BINS = ((0, 0), (1, 15), (16, 31), (32, 63), (64, 127), (128, 10**9))
"""Evidence distance bins, frames ago (inclusive)."""


def distance_bin(frames_ago: int) -> str:
    """Return the :data:`DISTANCE_BINS` label of an evidence distance, e.g. ``'16-31'``."""
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
    Check whether PaR's top evidence span lies in a run of the asked ``scene``.

    ``Answer.evidence`` lists the time spans whose pages PaR ranked highest (for policies
    without retrieval too: every page is attended, the ranking is still PaR's). Returns
    ``(hit, chance)``: 1 if the first span overlaps a run of ``scene`` (else 0), and the
    share of long-term tokens (layer 0) from that scene, about the hit rate of a ranking
    that ignores the question.
    """
    runs = [(r.start / FPS, (r.end - 1) / FPS) for r in episode.runs if r.scene == scene]
    hit = bool(evidence) and any(t0 <= evidence[0][1] and evidence[0][0] <= t1
                                 for t0, t1 in runs)
    memory = engine.memory
    frames = memory.frame[0, memory.long_term]
    in_scene = torch.zeros_like(frames, dtype=torch.bool)
    for run in episode.runs:
        if run.scene == scene:
            in_scene |= (frames >= run.start) & (frames < run.end)
    return int(hit), float(in_scene.float().mean()) if frames.numel() else 0.0


def run_config(base: StreamingVLM, settings: dict[str, Any],
               episodes: Sequence[Episode]) -> tuple[Tally, StreamingVLM]:
    """Stream every episode through a fresh memory of ``settings`` and answer its questions."""
    tally = Tally()
    engine = base
    for episode in episodes:
        engine = base.new_stream(**settings)
        start = time.perf_counter()
        engine.ingest(episode.frames, episode.stamps)
        engine.flush()
        tally.ingest_s += time.perf_counter() - start
        tally.frames += len(episode.frames)
        for question in episode.questions:
            answer = engine.ask(question.text, max_new_tokens=3)
            ok = int(answer.text.strip() == question.answer)
            tally.correct.append(ok)
            tally.by_kind[group_key(question.kind, question.answer)].append(ok)
            tally.by_distance[distance_bin(question.evidence_frames_ago)].append(ok)
            if question.kind == 'presence' and question.answer == 'yes':
                hit, chance = evidence_hit(engine, episode, question.scene, answer.evidence)
                tally.evidence_hits.append(hit)
                tally.evidence_chance.append(chance)
            tally.ttft_s.append(answer.ttft_s)
            tally.answer_s.append(answer.total_s)
            tally.attended.append(answer.tokens_attended)
    return tally, engine


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
    """Return a Markdown table of PaR's ranking on "Did you see X?" questions answered yes."""
    lines = ['| config | PaR top span in the asked scene | question-blind ranking |',
             '|---|---:|---:|']
    for name, tally in results.items():
        hits = tally.evidence_hits
        lines.append(f'| {name} | {_pct(_mean(hits), len(hits))} '
                     f'| {_pct(_mean(tally.evidence_chance))} |')
    return '\n'.join(lines)


def episodes_for(length: int, streams: int, questions: int, seed: int,
                 train: TrainConfig) -> list[Episode]:
    """
    Render ``streams`` held-out streams of ``length`` frames; scene runs scale with length.

    Runs last ``length / train.train_frames`` times the training run lengths, so a long
    stream shows about as many scene runs as a training stream (with 12 scenes, short runs
    over a long stream would show every scene and leave no "no" answers).
    """
    scale = max(1, round(length / train.train_frames))
    run_frames = (train.run_frames[0] * scale, train.run_frames[1] * scale)
    return [make_episode(seed * 1_000_003 + length * 1_009 + i, length, run_frames, questions)
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
        accuracy_by_kind={k: _mean(v) for k, v in sorted(tally.by_kind.items())},
        accuracy_by_distance={k: _mean(v) for k, v in tally.by_distance.items()},
        par_top_span_in_scene=_mean(tally.evidence_hits),
        par_question_blind=_mean(tally.evidence_chance),
    )


def main(argv: list[str] | None = None) -> None:
    """Run every config on every length; print the tables; optionally write JSON records."""
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.bench.quality',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--model-path', default=REFERENCE,
                        help='checkpoint (default: the reference model)')
    parser.add_argument('--lengths', default='16,32,64,128',
                        help='stream lengths in frames, comma separated '
                        '(default: %(default)s)')
    parser.add_argument('--streams', type=int, default=16,
                        help='streams per length (default: %(default)s)')
    parser.add_argument('--questions', type=int, default=10,
                        help='questions per stream (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=7,
                        help='stream seed; the training data is seeded apart '
                        '(default: %(default)s)')
    parser.add_argument('--configs', default=','.join(CONFIGS),
                        help='configs to run, comma separated (default: all)')
    parser.add_argument('--json', default=None, help='write BENCHMARKS.md records here')
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(',')]
    configs = {name: CONFIGS[name] for name in args.configs.split(',')}
    base = StreamingVLM.from_pretrained(args.model_path, policy='full', **MEMORY)
    records, overall = [], defaultdict(dict)
    kinds = [group_key(k, a) for k in KINDS for a in (('yes', 'no') if k == 'presence' else ('',))]
    for length in lengths:
        episodes = episodes_for(length, args.streams, args.questions, args.seed, TrainConfig())
        results: dict[str, Tally] = {}
        for name, settings in configs.items():
            results[name], engine = run_config(base, settings, episodes)
            overall[name][length] = _mean(results[name].correct)
            records.append(_record(engine, name, length, results[name]))
        bins = [distance_bin(low) for low, _ in DISTANCE_BINS if low < length]
        questions = sum(len(e.questions) for e in episodes)
        print(f'\n## {length} frames ({len(episodes)} streams, {questions} questions)\n')
        print(breakdown_table('config \\ kind', results, 'by_kind', kinds))
        print()
        print(breakdown_table('config \\ evidence frames ago', results, 'by_distance', bins))
        print()
        print(evidence_table(results))
    print('\n## Accuracy per config and stream length\n')
    print('| config | ' + ' | '.join(f'{n} frames' for n in lengths) + ' |')
    print('|---|' + '---:|' * len(lengths))
    for name, row in overall.items():
        print(f'| {name} | ' + ' | '.join(_pct(row[n]) for n in lengths) + ' |')
    print('\n## BENCHMARKS.md records\n')
    print(markdown_table([{**r, 'policy': r['config']} for r in records]))  # config names
    if args.json:
        print(f'\nwrote {write_jsonl(records, args.json)}')


if __name__ == '__main__':
    main()

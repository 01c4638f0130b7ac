# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Streaming benchmark: memory, TTFT and ingest rate vs frames seen, for every policy, in one run.

    python -m ros2_livevlm.bench.stream [--lengths 64,128,256,512,1024] [--json FILE]
    python -m ros2_livevlm.bench.stream --qwen2-layers 4 --llm-backend torch,onnxruntime

Every policy (``full``, ``recent_frames``, ``window``, ``vsb``, ``livevlm``) streams the
same real-photo tour on one loaded model; at each length in ``--lengths`` the same
questions are asked (after a warm-up answer). The offline re-prefill baseline (HF
``generate`` over all frames at question time: what a user does without this project)
runs at the lengths up to ``--offline-max``. Prints the Markdown table of
``BENCHMARKS.md`` records and the headline ratios; ``--json`` writes the records.

The default model is a tiny random LLaVA-OneVision sized so the run fits 2 CPU cores in a
few minutes (answers are noise: accuracy is not measured here; latency and memory are
real). ``--model-path`` runs a real checkpoint instead, ``--qwen2-layers N`` the benchmark
checkpoint with Qwen2-0.5B's LLM shapes (random, 196 tokens per frame) cut to N layers.
``--llm-backend`` runs every policy once per LLM backend on the same model and adds a
table of clip prefill time, TTFT and decode tokens/s per backend.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
import time
from typing import Any

import numpy as np
import torch

from .gpu_report import table
from .records import headline
from .records import make_record
from .records import markdown_table
from .records import peak_bytes
from .records import reset_peak
from .records import write_jsonl
from ..checkpoints import tiny_checkpoint
from ..config import POLICIES
from ..engine import StreamingVLM
from ..models import TinySpec
from ..models.tiny import QWEN2_05B_SPEC
from ..reference.scenes import dwell
from ..reference.scenes import render
from ..reference.scenes import scene_image
from ..reference.scenes import SCENE_NAMES


BENCH_SPEC = TinySpec(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=512)
"""Tiny random model for CPU: 16 tokens per frame, 4 layers, 4 query / 2 KV heads of 64."""

BENCH_MEMORY = {
    'frames_per_clip': 16,
    'budget_tokens': 1024,
    'short_term_frames': 2,
    'observation_tokens': 32,
    'page_size': 16,
    'retrieval_ratio': 0.4,
    'sink_tokens': 16,
}
"""Memory settings scaled to the tiny model: 16 tokens per frame, so the budget is 64 frames."""

QUESTIONS = ('What did you see first?', 'Did you see a cat?', 'What are you looking at now?')


def tour(
    num_frames: int, size: tuple[int, int] = (96, 128), dwell_frames: int = 16, seed: int = 0
) -> np.ndarray:
    """Render a camera tour of the photo scenes, ``dwell_frames`` each: uint8 ``[N, H, W, 3]``."""
    rng = np.random.default_rng(seed)
    frames = []
    while len(frames) < num_frames:
        image = scene_image(SCENE_NAMES[rng.integers(len(SCENE_NAMES))])
        frames.extend(
            render(image, view, size, rng, noise=2.0) for view in dwell(rng, dwell_frames)
        )
    return np.stack(frames[:num_frames])


def measure_answers(
    engine: StreamingVLM, questions: Sequence[str], repeats: int, max_new_tokens: int
) -> dict[str, list[float]]:
    """Ask each question ``repeats`` times after a warm-up answer; TTFT, answer time, TPOT (s)."""
    engine.ask(questions[0], max_new_tokens=max_new_tokens)  # warm-up, excluded
    samples: dict[str, list[float]] = {'ttft': [], 'answer': [], 'tpot': [], 'attended': []}
    for _ in range(repeats):
        for question in questions:
            answer = engine.ask(question, max_new_tokens=max_new_tokens)
            samples['ttft'].append(answer.ttft_s)
            samples['answer'].append(answer.total_s)
            samples['attended'].append(answer.tokens_attended)
            if len(answer.token_ids) > 1:
                samples['tpot'].append(
                    (answer.total_s - answer.ttft_s) / (len(answer.token_ids) - 1)
                )
    return samples


def answers_record(
    engine: StreamingVLM,
    frames: int,
    samples: dict[str, list[float]],
    ingest_fps: float,
    device: str,
    **extra: Any,
) -> dict[str, Any]:
    """Build the record of ``engine`` after ``frames`` frames from :func:`measure_answers`."""
    return make_record(
        engine,
        frames=frames,
        ttft_s=samples['ttft'],
        answer_s=samples['answer'],
        tpot_s=samples['tpot'],
        ingest_fps=ingest_fps,
        tokens_attended=float(np.mean(samples['attended'])),
        peak_bytes=peak_bytes(device),
        **extra,
    )


def stream_policy(
    base: StreamingVLM,
    policy: str,
    frames: np.ndarray,
    lengths: Sequence[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Stream ``frames`` through a fresh memory of ``policy``; one record per length."""
    engine = base.new_stream(policy=policy)
    stamps = np.arange(len(frames)) / args.stream_fps
    records, seen = [], 0
    reset_peak(args.device)
    for length in lengths:
        start = time.perf_counter()
        engine.ingest(frames[seen:length], stamps[seen:length])
        ingest_fps = (length - seen) / (time.perf_counter() - start)
        seen = length
        samples = measure_answers(engine, QUESTIONS, args.repeats, args.max_new_tokens)
        records.append(
            answers_record(
                engine,
                length,
                samples,
                ingest_fps,
                args.device,
                rt_factor=ingest_fps / args.stream_fps,
                llm_backend=base.engine_config.llm_backend,
                clip_prefill_s=engine.stats().last_prefill_s,
            )
        )
    return records


@torch.inference_mode()
def offline_record(base: StreamingVLM, frames: np.ndarray, repeats: int) -> dict[str, Any]:
    """Time HF ``generate`` over all frames per question (encode + prefill everything again)."""
    model = base.model
    ttft = []
    for i in range(repeats * len(QUESTIONS) + 1):
        start = time.perf_counter()
        ids, pixels = base.offline_inputs(frames, QUESTIONS[i % len(QUESTIONS)])
        model.hf.generate(
            input_ids=ids, pixel_values_videos=pixels, max_new_tokens=1, do_sample=False
        )
        if i:  # the first is a warm-up
            ttft.append(time.perf_counter() - start)
    num_tokens = int(ids.shape[1])
    kv_bytes = (
        2
        * model.num_layers
        * model.num_kv_heads
        * model.head_dim
        * num_tokens
        * model.dtype.itemsize
    )
    record = make_record(
        base,
        frames=len(frames),
        ttft_s=ttft,
        answer_s=[],
        tpot_s=[],
        ingest_fps=None,
        tokens_attended=num_tokens,
        peak_bytes=peak_bytes(base.engine_config.device),
    )
    return {
        **record,
        'policy': 'offline',
        'kv_tokens': num_tokens,
        'kv_bytes': kv_bytes,
        'memory': None,
    }


def backend_table(records: Sequence[dict[str, Any]], baseline: str) -> str:
    """
    Compare LLM backends per policy and length: clip prefill, TTFT, decode tokens/s.

    Ratios are ``baseline`` time / backend time (above 1: the backend is faster).
    """
    rows = []
    for r in records:
        base = next(
            x
            for x in records
            if x['llm_backend'] == baseline
            and (x['policy'], x['frames']) == (r['policy'], r['frames'])
        )
        tpot = r['tpot_s']['p50']
        rows.append(
            {
                **r,
                'ttft_p50': r['ttft_s']['p50'],
                'decode_tps': 1 / tpot if tpot else None,
                'prefill_ratio': base['clip_prefill_s'] / r['clip_prefill_s'],
                'ttft_ratio': base['ttft_s']['p50'] / r['ttft_s']['p50'],
                'decode_ratio': base['tpot_s']['p50'] / tpot if tpot else None,
            }
        )
    return table(
        rows,
        [
            ('policy', 'policy', str),
            ('frames', 'frames', str),
            ('llm_backend', 'llm_backend', str),
            ('clip prefill s', 'clip_prefill_s', '{:.3f}'.format),
            ('TTFT ms p50', 'ttft_p50', lambda s: f'{s * 1e3:.1f}'),
            ('decode tokens/s', 'decode_tps', '{:.1f}'.format),
            (f'prefill x vs {baseline}', 'prefill_ratio', '{:.2f}'.format),
            (f'TTFT x vs {baseline}', 'ttft_ratio', '{:.2f}'.format),
            (f'decode x vs {baseline}', 'decode_ratio', '{:.2f}'.format),
        ],
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m ros2_livevlm.bench.stream',
        description=__doc__.strip().split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--model-path',
        default=None,
        help='local LLaVA-OneVision directory (default: tiny random bench model)',
    )
    parser.add_argument(
        '--qwen2-layers',
        type=int,
        default=None,
        help="benchmark checkpoint with Qwen2-0.5B's LLM shapes (random weights, 196 tokens "
        'per frame) with this many of its 24 layers, instead of the tiny one',
    )
    parser.add_argument(
        '--llm-backend',
        default='torch',
        help='comma-separated LLM backends, each running every policy (default: %(default)s)',
    )
    parser.add_argument('--device', default='cpu', help='torch device (default: cpu)')
    parser.add_argument(
        '--dtype', default='auto', help='auto | float32 | float16 | bfloat16 (default: auto)'
    )
    parser.add_argument(
        '--lengths',
        default='64,128,256,512,1024',
        help='comma-separated frame counts at which to measure (default: %(default)s)',
    )
    parser.add_argument(
        '--policies',
        default=','.join(POLICIES),
        help='comma-separated memory policies (default: %(default)s)',
    )
    parser.add_argument(
        '--offline-max',
        type=int,
        default=256,
        help='longest stream for the offline baseline, frames (default: %(default)s)',
    )
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='times each question is asked per length (default: %(default)s)',
    )
    parser.add_argument(
        '--max-new-tokens',
        type=int,
        default=8,
        help='answer length limit, tokens (default: %(default)s)',
    )
    parser.add_argument(
        '--stream-fps',
        type=float,
        default=1.0,
        help='sampled stream rate for stamps and rt_factor, Hz (default: %(default)s)',
    )
    parser.add_argument(
        '--json', default=None, help='write the records as JSON lines to this file'
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    lengths = sorted(int(x) for x in args.lengths.split(','))
    if any(length % BENCH_MEMORY['frames_per_clip'] for length in lengths):
        raise SystemExit(
            f'--lengths must be multiples of frames_per_clip={BENCH_MEMORY["frames_per_clip"]}'
        )
    spec = BENCH_SPEC if args.qwen2_layers is None else replace(
        QWEN2_05B_SPEC, layers=args.qwen2_layers
    )
    model_path = args.model_path or tiny_checkpoint(spec)
    torch.manual_seed(0)
    backends = args.llm_backend.split(',')
    base = StreamingVLM.from_pretrained(
        model_path, device=args.device, dtype=args.dtype, llm_backend=backends[0], **BENCH_MEMORY
    )
    frames = tour(lengths[-1])
    print(
        f'model {model_path} | {base.model.num_layers} layers, hidden {base.model.hidden_size}, '
        f'{base.model.tokens_per_frame} tokens/frame | device {args.device} | '
        f'{torch.get_num_threads()} threads'
    )
    records = []
    for backend in backends:  # the same loaded model and encoder, one LLM backend after the other
        backend_base = base if backend == backends[0] else StreamingVLM(
            base.model,
            base.memory_config,
            replace(base.engine_config, llm_backend=backend),
            vision_encoder=base.encode,
        )
        for policy in args.policies.split(','):
            start = time.perf_counter()
            records += stream_policy(backend_base, policy, frames, lengths, args)
            print(f'  {policy} ({backend}): {time.perf_counter() - start:.1f} s')
    for length in (n for n in lengths if n <= args.offline_max):
        records.append(offline_record(base, frames[:length], args.repeats))
        print(f'  offline re-prefill at {length} frames done')
    main_records = [r for r in records if r.get('llm_backend', backends[0]) == backends[0]]
    print()
    print(markdown_table(main_records))
    print()
    for line in headline(main_records):
        print(line)
    if len(backends) > 1:
        print()
        print(backend_table([r for r in records if 'llm_backend' in r], backends[0]))
    if args.json:
        print(f'\nrecords: {write_jsonl(records, args.json)}')


if __name__ == '__main__':
    main()

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Streaming benchmark: memory, TTFT and ingest rate vs frames seen, for every policy, in one run.

    python -m ros2_livevlm.bench.stream [--lengths 64,256,1024] [--json FILE]
    python -m ros2_livevlm.bench.stream --qwen2-layers 4 --llm-backend torch,onnxruntime

Every policy streams the same real-photo tour on one loaded model; at each length in
``--lengths`` the same questions are asked (after a warm-up answer). Policies whose
memory grows with the stream (``full``, ``clusterkv``, ``rekv``) and the other baselines
stop at ``--all-up-to`` frames; ``livevlm`` (ours) goes on to the longest length. The
offline re-prefill baseline (HF ``generate`` over all frames at question time: what a
user does without this project) runs at the lengths up to ``--offline-max``. For
``livevlm`` at its longest length the memory's own work is timed apart (VSB scores,
eviction, retrieval) against a clip's prefill. Prints the Markdown table of
``BENCHMARKS.md`` records, the headline ratios and the speed goals of issue 11;
``--json`` writes the records.

The default model has Qwen2-0.5B's attention shapes and LiveVLM's 196 tokens per frame
(:data:`~ros2_livevlm.models.tiny.QWEN2_05B_SPEC`) with 2 of its 24 layers and random
weights, so the run fits 2 CPU cores in a few minutes (answers are noise: accuracy is
not measured here; latency and memory are real); the memory has LiveVLM's sizes (budget
12,000 tokens, 2 short-term frames, pages of 16, ratio 0.4). ``--model-path`` runs a
real checkpoint instead, ``--qwen2-layers N`` the same shapes cut to N layers.
``--llm-backend`` runs every policy once per LLM backend on the same model and adds a
table of clip prefill time, TTFT and decode tokens/s per backend.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
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
from ..memory.retrieval import make_retriever
from ..memory.retrieval import Query
from ..models.tiny import QWEN2_05B_SPEC
from ..reference.scenes import dwell
from ..reference.scenes import render
from ..reference.scenes import scene_image
from ..reference.scenes import SCENE_NAMES


BENCH_SPEC = replace(QWEN2_05B_SPEC, layers=2)
"""Qwen2-0.5B's attention shapes, 196 tokens per frame, 2 layers (CPU)."""

BENCH_MEMORY = {
    'frames_per_clip': 32,
    'budget_tokens': 12000,
    'short_term_frames': 2,
    'observation_tokens': 392,
    'page_size': 16,
    'retrieval_ratio': 0.4,
}
"""LiveVLM v2's memory sizes (spec A.5) for 196 tokens per frame."""

GROWING = ('full', 'clusterkv', 'rekv')
"""Policies whose memory grows with the stream."""

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
) -> tuple[list[dict[str, Any]], StreamingVLM]:
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
    return records, engine


def _timed(run: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall time of ``run()``, s (CUDA synchronised around each run)."""
    times = []
    for _ in range(repeats + 1):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def memory_overhead(engine: StreamingVLM, repeats: int = 3) -> dict[str, float]:
    """
    Time the memory's own work for one clip of ``engine`` (a VSB policy), s.

    ``vsb_scores_s``: the observation window's scores over the whole context, all layers;
    ``eviction_s``: committing a clip (FIFO, VSB selection, gather) into a copy of the
    memory; ``retrieval_s``: the answer's per-layer retrieval (question of 12 tokens);
    ``prefill_s``: the last clip's prefill (LLM layers + memory update).
    """
    memory, model = engine.memory, engine.model
    device = memory.k.device
    clip = engine.engine_config.frames_per_clip * model.tokens_per_frame
    generator = torch.Generator(device='cpu').manual_seed(0)

    def noise(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device, model.dtype)

    num_obs = engine.memory_config.observation_tokens
    keys = noise(model.num_kv_heads, memory.num_tokens + clip, model.head_dim)
    q_obs = noise(model.num_heads, num_obs, model.head_dim)
    vsb_s = _timed(lambda: [engine.kernels.vsb_scores(q_obs, keys)
                            for _ in range(model.num_layers)], device, repeats)
    k_new = noise(model.num_layers, model.num_kv_heads, clip, model.head_dim)
    scores = torch.rand(model.num_layers, memory.num_tokens + clip, generator=generator)
    frames = torch.full((clip,), 10**6, dtype=torch.int64)
    stamps = torch.full((clip,), 1e6, dtype=torch.float64)
    scratch = engine.new_stream()

    def evict() -> None:
        scratch.memory.load_state(memory.state())
        scratch.memory.commit(k_new, k_new, frames, stamps, scores.to(device), scratch.policy,
                              scratch.rope)

    evict_s = _timed(evict, device, repeats) - _timed(
        lambda: scratch.memory.load_state(memory.state()), device, repeats)
    retriever = make_retriever(engine.policy.retrieval, memory, engine.rope,
                               engine.memory_config, engine.kernels, model.tokens_per_frame)
    query = Query(noise(model.num_heads, 12, model.head_dim),
                  memory.next_position + torch.arange(12, device=device), None)
    retrieval_s = _timed(lambda: [retriever.select(layer, query)
                                  for layer in range(model.num_layers)], device, repeats)
    return {'vsb_scores_s': vsb_s, 'eviction_s': max(evict_s, 0.0),
            'retrieval_s': retrieval_s, 'prefill_s': engine.stats().last_prefill_s}


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


def goals(records: list[dict[str, Any]], overhead: dict[str, float] | None) -> list[str]:
    """Return the speed goals of issue 11 as printable lines, from the records of one run."""

    def find(policy: str, frames: int) -> dict[str, Any] | None:
        return next((r for r in records if r['policy'] == policy and r['frames'] == frames),
                    None)

    lines = []
    ours = sorted(r['frames'] for r in records if r['policy'] == 'livevlm')
    for length in sorted({r['frames'] for r in records if r['policy'] == 'rekv'}):
        rekv, live = find('rekv', length), find('livevlm', length)
        if rekv and live:
            lines.append(f'TTFT(rekv) / TTFT(livevlm) at {length} frames: '
                         f'{rekv["ttft_s"]["p50"] / live["ttft_s"]["p50"]:.2f} (goal >= 5)')
    if len(ours) > 1:
        first, last = find('livevlm', ours[0]), find('livevlm', ours[-1])
        lines.append(f'TTFT(livevlm, {ours[-1]}) / TTFT(livevlm, {ours[0]}): '
                     f'{last["ttft_s"]["p50"] / first["ttft_s"]["p50"]:.2f} (goal: flat)')
    if overhead:
        work = overhead['vsb_scores_s'] + overhead['eviction_s'] + overhead['retrieval_s']
        lines.append(
            f'livevlm memory work per clip: VSB scores {1e3 * overhead["vsb_scores_s"]:.1f} ms '
            f'+ eviction {1e3 * overhead["eviction_s"]:.1f} ms + retrieval '
            f'{1e3 * overhead["retrieval_s"]:.1f} ms = {100 * work / overhead["prefill_s"]:.1f} % '
            f'of the clip prefill ({1e3 * overhead["prefill_s"]:.0f} ms; goal < 5 %)')
    return lines


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
        help='local LLaVA-OneVision directory (default: Qwen2-0.5B-shaped random model, '
        '2 layers)',
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
        default='64,256,1024',
        help='comma-separated frame counts at which to measure (default: %(default)s)',
    )
    parser.add_argument(
        '--all-up-to',
        type=int,
        default=256,
        help='longest stream for every policy but livevlm, frames (default: %(default)s)',
    )
    parser.add_argument(
        '--policies',
        default=','.join(POLICIES),
        help='comma-separated memory policies (default: %(default)s)',
    )
    parser.add_argument(
        '--offline-max',
        type=int,
        default=64,
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
        f'{base.model.num_heads} / {base.model.num_kv_heads} heads of {base.model.head_dim}, '
        f'{base.model.tokens_per_frame} tokens/frame | device {args.device} | '
        f'{torch.get_num_threads()} threads'
    )
    records, overhead = [], None
    for backend in backends:  # the same loaded model and encoder, one LLM backend after the other
        backend_base = base if backend == backends[0] else StreamingVLM(
            base.model,
            base.memory_config,
            replace(base.engine_config, llm_backend=backend),
            vision_encoder=base.encode,
        )
        for policy in args.policies.split(','):
            start = time.perf_counter()
            upto = lengths if policy == 'livevlm' else [n for n in lengths if n <= args.all_up_to]
            policy_records, engine = stream_policy(backend_base, policy, frames, upto, args)
            records += policy_records
            if policy == 'livevlm' and backend == backends[0]:
                overhead = memory_overhead(engine)
            print(f'  {policy} ({backend}): {time.perf_counter() - start:.1f} s')
    for length in (n for n in lengths if n <= args.offline_max):
        records.append(offline_record(base, frames[:length], args.repeats))
        print(f'  offline re-prefill at {length} frames done')
    main_records = [r for r in records if r.get('llm_backend', backends[0]) == backends[0]]
    print()
    print(markdown_table(main_records))
    print()
    for line in headline(main_records) + goals(main_records, overhead):
        print(line)
    if len(backends) > 1:
        print()
        print(backend_table([r for r in records if 'llm_backend' in r], backends[0]))
    if args.json:
        print(f'\nrecords: {write_jsonl(records, args.json)}')


if __name__ == '__main__':
    main()

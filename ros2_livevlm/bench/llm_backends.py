# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Compiled LLM backends against torch: logits and greedy answers per policy, and graph-call cost.

    python -m ros2_livevlm.bench.llm_backends [--layers 4] [--frames 16] [--json FILE]

On the benchmark checkpoint with Qwen2-0.5B's LLM shapes (random weights,
:data:`~ros2_livevlm.models.tiny.QWEN2_05B_SPEC`, the first ``--layers`` of its 24 on a
CPU; 196 tokens per frame) every policy streams the same real-photo tour through an
engine per backend; then each question's next-token logits are compared with torch's
(max abs difference, float32 logits) and the greedy answers token by token. Float32
compiled graphs are held to 1e-4 against float32 torch; float16 graphs are compared with
float32 torch (the error a user sees) and, with ``--torch-fp16``, with float16 torch.

The graph-call cost is the median time of the smallest graph call (the attention of one
query over one key) times the calls of one decode step (3 per layer + the LM head),
against the step's time (TPOT): the price of cutting the layer into graphs.

Prints Markdown tables; ``--json`` writes one JSON object per row. ``gpu_check`` runs
the same rows on a GPU.
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
from .records import write_jsonl
from .stream import QUESTIONS
from .stream import tour
from ..backends.llm import ATTENTION
from ..backends.llm import CompiledDecoder
from ..checkpoints import tiny_checkpoint
from ..config import POLICIES
from ..engine import StreamingVLM
from ..models.tiny import QWEN2_05B_SPEC


SETTINGS = {
    'frames_per_clip': 4,
    'budget_tokens': 784,
    'short_term_frames': 1,
    'observation_tokens': 196,
    'page_size': 16,
    'max_new_tokens': 8,
}
"""Memory sized in frames of 196 tokens (a 4-frame budget) so every policy evicts and differs."""
FP32_TOLERANCE = 1e-4
"""Max abs next-token logit difference of float32 graphs against float32 torch (the issue's)."""


PARITY_COLUMNS = [
    ('backend', 'backend', str),
    ('dtype', 'dtype', str),
    ('policy', 'policy', str),
    ('max abs diff vs torch fp32', 'max_abs_diff', '{:.2e}'.format),
    ('vs torch same dtype', 'max_abs_diff_same_dtype', '{:.2e}'.format),
    ('max abs logit', 'logit_scale', '{:.3g}'.format),
    ('same greedy answers', 'same_answers', str),
    ('pass', 'pass', str),
]
"""Columns of the parity table (:func:`~.gpu_report.table`)."""
COST_COLUMNS = [
    ('backend', 'backend', str),
    ('dtype', 'dtype', str),
    ('graph call ms', 'call_s', lambda s: f'{s * 1e3:.3f}'),
    ('calls per token', 'calls_per_token', str),
    ('TPOT ms', 'tpot_s', lambda s: f'{s * 1e3:.1f}'),
    ('call overhead / TPOT', 'overhead', '{:.1%}'.format),
]
"""Columns of the graph-call cost table."""


def _engines(
    model_path: str, backend: str, dtype: str, device: str, settings: dict[str, Any]
) -> dict[str, StreamingVLM]:
    """One engine per policy on one loaded model, all sharing the backend's LLM."""
    base = StreamingVLM.from_pretrained(
        model_path, device=device, dtype=dtype, llm_backend=backend, **settings
    )
    return {policy: base.new_stream(policy=policy) for policy in POLICIES}


def parity_rows(
    model_path: str,
    runs: Sequence[tuple[str, str]],
    *,
    frames: int,
    device: str = 'cpu',
    torch_fp16: bool = False,
    settings: dict[str, Any] = SETTINGS,
) -> list[dict[str, Any]]:
    """
    Compare compiled backends with torch, per policy, dtype and question.

    ``runs`` are the ``(backend, dtype)`` pairs to compare. Returns one row per
    (backend, dtype, policy): ``max_abs_diff`` of the next-token logits
    against torch at float32 (and ``max_abs_diff_same_dtype`` against torch at the same
    dtype when it ran), ``logit_scale`` (max abs torch logit), ``same_answers`` (greedy
    tokens equal to torch at the same dtype, or at float32 when that is the only
    reference) and ``pass`` for float32 rows (:data:`FP32_TOLERANCE` and same answers).
    With ``torch_fp16``, torch float16 gets rows too, against torch float32.
    """
    video = tour(frames, size=(240, 320))
    stamps = np.arange(frames, dtype=float)
    fp16 = torch_fp16 and any(dtype == 'float16' for _, dtype in runs)
    references = [('torch', 'float32')] + ([('torch', 'float16')] if fp16 else [])
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    for backend, dtype in [*references, *runs]:
        for policy, engine in _engines(model_path, backend, dtype, device, settings).items():
            engine.ingest(video, stamps)
            results[backend, dtype, policy] = {
                'logits': [engine.next_token_logits(q) for q in QUESTIONS],
                'answers': [engine.ask(q).token_ids for q in QUESTIONS],
            }
    rows = []
    for backend, dtype in [*runs, *references[1:]]:  # torch float16 shows float16's own error
        for policy in POLICIES:
            got = results[backend, dtype, policy]
            fp32 = results['torch', 'float32', policy]
            same = fp32 if backend == 'torch' else results.get(('torch', dtype, policy), fp32)
            row = {
                'backend': backend,
                'dtype': dtype,
                'policy': policy,
                'max_abs_diff': _max_diff(got['logits'], fp32['logits']),
                'max_abs_diff_same_dtype': (
                    _max_diff(got['logits'], same['logits']) if same is not fp32 else None
                ),
                'logit_scale': max(float(x.abs().max()) for x in fp32['logits']),
                'same_answers': got['answers'] == same['answers'],
            }
            if dtype == 'float32':
                row['pass'] = row['max_abs_diff'] <= FP32_TOLERANCE and row['same_answers']
            rows.append(row)
    return rows


def _max_diff(got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, expected))


def call_cost_row(engine: StreamingVLM, repeats: int = 200) -> dict[str, Any]:
    """
    Measure the cost of one graph call against one decode step of ``engine``'s compiled LLM.

    Returns ``call_s`` (median of the attention graph on one query and one key),
    ``calls_per_token`` (3 per layer + 1), ``tpot_s`` (median decode step of 16-token
    answers) and ``overhead`` = calls x call / TPOT.
    """
    llm = engine.llm
    if not isinstance(llm, CompiledDecoder):
        raise ValueError(f'{llm.name} is not a compiled LLM backend')
    model = engine.model
    q = torch.zeros(model.num_heads, 1, model.head_dim, dtype=model.dtype, device=model.device)
    kv = torch.zeros(model.num_kv_heads, 1, model.head_dim, dtype=model.dtype, device=q.device)
    out = torch.empty_like(q)
    timings = []
    for _ in range(repeats + 10):
        start = time.perf_counter()
        llm.run(ATTENTION, {'query': q, 'key': kv, 'value': kv}, {'output': out})
        if model.device.type == 'cuda':
            torch.cuda.synchronize(model.device)
        timings.append(time.perf_counter() - start)
    call_s = float(np.median(timings[10:]))
    tpot = []
    for question in QUESTIONS:
        answer = engine.ask(question, max_new_tokens=16)
        if len(answer.token_ids) > 1:
            tpot.append((answer.total_s - answer.ttft_s) / (len(answer.token_ids) - 1))
    tpot_s = float(np.median(tpot)) if tpot else None
    calls = 3 * model.num_layers + 1
    return {
        'backend': llm.name,
        'dtype': str(model.dtype).removeprefix('torch.'),
        'call_s': call_s,
        'calls_per_token': calls,
        'tpot_s': tpot_s,
        'overhead': calls * call_s / tpot_s if tpot_s else None,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m ros2_livevlm.bench.llm_backends',
        description=__doc__.strip().split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--layers', type=int, default=4, help='decoder layers of the 24 (default: %(default)s)'
    )
    parser.add_argument(
        '--frames', type=int, default=16, help='frames streamed per policy (default: %(default)s)'
    )
    parser.add_argument(
        '--backends',
        default='onnxruntime',
        help='comma-separated compiled backends to compare with torch (default: %(default)s)',
    )
    parser.add_argument(
        '--dtypes', default='float32,float16', help='graph dtypes (default: %(default)s)'
    )
    parser.add_argument(
        '--torch-fp16',
        action='store_true',
        help='also run torch at float16 (slow on a CPU) as the same-dtype reference',
    )
    parser.add_argument('--device', default='cpu', help='torch device (default: cpu)')
    parser.add_argument('--json', default=None, help='write the rows as JSON lines here')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns 1 if a float32 row fails, else 0."""
    args = parse_args(argv)
    model_path = str(tiny_checkpoint(replace(QWEN2_05B_SPEC, layers=args.layers)))
    backends = args.backends.split(',')
    print(
        f'model {model_path} (Qwen2-0.5B shapes, {args.layers} layers, random) | '
        f'device {args.device} | {torch.get_num_threads()} threads | {args.frames} frames'
    )
    runs = [(b, dtype) for b in backends for dtype in args.dtypes.split(',')]
    rows = parity_rows(
        model_path, runs, frames=args.frames, device=args.device, torch_fp16=args.torch_fp16
    )
    print(table(rows, PARITY_COLUMNS))
    costs = []
    for backend, dtype in runs:
        engine = StreamingVLM.from_pretrained(
            model_path, device=args.device, dtype=dtype, llm_backend=backend, **SETTINGS
        )
        engine.ingest(tour(args.frames, size=(240, 320)), np.arange(args.frames, dtype=float))
        costs.append(call_cost_row(engine))
    print()
    print(table(costs, COST_COLUMNS))
    if args.json:
        print(f'\nrows: {write_jsonl(rows + costs, args.json)}')
    return int(any(not row.get('pass', True) for row in rows))


if __name__ == '__main__':
    raise SystemExit(main())

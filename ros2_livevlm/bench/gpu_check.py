# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
One prepared check for a CUDA machine: kernel, ONNX and LLM parity, kernel speed, the pipeline.

    python -m ros2_livevlm.bench.gpu_check OUT_DIR                      # CUDA, under 10 minutes
    python -m ros2_livevlm.bench.gpu_check OUT_DIR --device cpu --smoke  # same paths, tiny, CPU

Sections, each with its own time budget (a late or failing section is recorded, its rows
so far are kept, and the next section runs):

``parity``    every Triton kernel vs its torch reference (float32, float16, and bfloat16
              on CUDA) at the attention shapes of Qwen2-0.5B and Qwen2-7B (:mod:`.kernel_cases`).
``onnx``      the ONNX vision path (SigLIP + projector + pooling) on onnxruntime vs torch,
              float32 and float16 exports (:mod:`ros2_livevlm.backends.onnx`).
``kernels``   torch vs Triton per kernel in bfloat16 (median and p95 of CUDA-event
              timings) with the roofline fraction ``max(flops / peak, bytes / bandwidth) / time``.
``llm``       the compiled LLM backends (:mod:`ros2_livevlm.backends.llm`) against torch on
              the Qwen2-0.5B-shaped checkpoint: next-token logits and greedy answers per
              policy (:mod:`.llm_backends`), then clip prefill, TTFT, decode tokens/s and
              the decode roofline fraction per backend. onnxruntime needs its CUDA
              provider on a GPU; tensorrt needs engines built by ``build_engines`` (not
              timed here); a backend that cannot run is recorded with its error.
``pipeline``  every policy at 256 and 1024 frames (Triton kernels; ``livevlm`` also with
              torch kernels) on a Qwen2-0.5B-shaped random checkpoint (24 layers, hidden
              896, 14 heads, 2 KV heads, head dim 64, MLP 4864; byte-level vocabulary)
              behind a small SigLIP at 196 tokens per frame: ingest fps, TTFT, KV bytes
              (the BENCHMARKS.md records) and the decode roofline fraction; the offline
              re-prefill baseline at 256 frames.

Writes ``parity.jsonl``, ``onnx.jsonl``, ``llm.jsonl``, ``kernels.jsonl``, ``records.jsonl``
(BENCHMARKS.md records), ``sections.json`` (status and seconds per section),
``<section>.error.txt`` for a failed section, and ``report.md`` (the printed tables) into
OUT_DIR. Never imports rclpy.

``--smoke`` shrinks every shape so the run proves the code paths on CPU; it sets
``TRITON_INTERPRET=1`` before any kernel is defined. Its numbers mean nothing. Peak
numbers default to an H200's (4.8 TB/s, 989 TFLOP/s bfloat16 dense).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
import json
import os
from pathlib import Path
import platform
import signal
import tempfile
import time
import traceback
from typing import Any

import numpy as np
import torch

from .gpu_report import report
from ..config import POLICIES
from ..models import TinySpec
from ..models.tiny import BENCH_VISION_SPEC
from ..models.tiny import QWEN2_05B_SPEC


SECTION_BUDGETS_S = {
    'parity': 60.0,
    'onnx': 60.0,
    'llm': 120.0,
    'kernels': 60.0,
    'pipeline': 250.0,
}
"""Seconds per section on CUDA: with start-up and :data:`GRACE_S` they stay under 10 minutes."""
GRACE_S = 20.0
"""A section still running this long after its budget is interrupted (SIGALRM)."""

SMOKE_MEMORY = {'budget_tokens': 96, 'observation_tokens': 32, 'page_size': 8}
"""Memory settings for the tiny smoke model (16 tokens per frame)."""


class SectionTimeout(Exception):
    """Raised inside a section that overran its budget by more than :data:`GRACE_S`."""


@dataclass
class Run:
    """Settings of one check run; ``deadline``: the current section's soft budget (monotonic s)."""

    out: Path
    device: torch.device
    smoke: bool
    peak_flops: float
    peak_bandwidth: float
    deadline: float = 0.0

    def late(self) -> bool:
        return time.monotonic() > self.deadline

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


def _interrupt(signum: int, frame: object) -> None:
    raise SectionTimeout(f"interrupted {GRACE_S:.0f} s after the section's budget")


def run_section(
    run: Run, name: str, budget_s: float, body: Callable[[Run, list], None]
) -> tuple[dict[str, Any], list]:
    """
    Run ``body(run, rows)`` under a soft budget (``run.late()``) and a hard one (SIGALRM).

    Rows appended before a failure are kept; the returned status says what happened and
    the traceback goes to ``<name>.error.txt``.
    """
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    run.deadline = start + budget_s
    signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, budget_s + GRACE_S)
    try:
        body(run, rows)
        status = 'ok'
    except Exception as error:  # one section's failure must not lose the others
        status = f'failed: {type(error).__name__}: {str(error)[:300]}'
        (run.out / f'{name}.error.txt').write_text(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if run.device.type == 'cuda':
        torch.cuda.empty_cache()
    elapsed = time.monotonic() - start
    print(f'[{name}] {status} in {elapsed:.1f} s, {len(rows)} rows', flush=True)
    return {
        'section': name,
        'status': status,
        'seconds': elapsed,
        'budget_s': budget_s,
        'rows': len(rows),
    }, rows


# ---- kernel sections ------------------------------------------------------------------


def _shapes(run: Run) -> list:
    from .kernel_cases import QWEN2_05B
    from .kernel_cases import QWEN2_7B
    from .kernel_cases import SMOKE

    return [SMOKE] if run.smoke else [QWEN2_05B, QWEN2_7B]


def parity_section(run: Run, rows: list) -> None:
    """
    Check every Triton kernel against its torch reference, per shape and dtype.

    No bfloat16 in the interpreter.
    """
    from .kernel_cases import kernel_cases
    from .kernel_cases import parity

    dtypes = [torch.float32, torch.float16] + ([] if run.smoke else [torch.bfloat16])
    for shape in _shapes(run):
        for dtype in dtypes:
            rows.extend(parity(case) for case in kernel_cases(shape, dtype, run.device))


def kernels_section(run: Run, rows: list) -> None:
    """Time torch vs Triton per call in the compute dtype: seconds, speed-up, roofline fraction."""
    from .kernel_cases import kernel_cases
    from .kernel_cases import timings
    from .records import quantiles

    dtype = torch.float32 if run.smoke else torch.bfloat16
    for shape in _shapes(run):
        for case in kernel_cases(shape, dtype, run.device):
            if run.late():
                rows.append({'kernel': case.kernel, 'shape': case.shape, 'skipped': 'budget'})
                continue
            seconds = {
                impl: quantiles(timings(fn, run.device, 2 if run.smoke else 20))
                for impl, fn in case.run.items()
            }
            bound_s = max(case.flops / run.peak_flops, case.bytes_moved / run.peak_bandwidth)
            for impl, stats in seconds.items():
                rows.append(
                    {
                        'kernel': case.kernel,
                        'shape': case.shape,
                        'dtype': str(dtype).removeprefix('torch.'),
                        'impl': impl,
                        'p50_s': stats['p50'],
                        'p95_s': stats['p95'],
                        'speedup_vs_torch': seconds['torch']['p50'] / stats['p50'],
                        'bytes': case.bytes_moved,
                        'flops': case.flops,
                        'roofline_fraction': (
                            bound_s / stats['p50'] if run.device.type == 'cuda' else None
                        ),
                    }
                )


# ---- ONNX vision path -----------------------------------------------------------------


def synthetic_frames(num_frames: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Make moving colour gradients with noise, uint8 ``[N, H, W, 3]`` (the content is moot)."""
    rng = np.random.default_rng(seed)
    height, width = size
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    t = np.arange(num_frames)[:, None, None, None] / 50.0
    frames = 127.5 * (
        1 + np.sin(6 * x[None, ..., None] + 4 * y[None, ..., None] + t + np.array([0.0, 2.0, 4.0]))
    )
    frames += rng.normal(0, 8, frames.shape)
    return torch.from_numpy(frames.clip(0, 255).astype(np.uint8))


def onnx_section(run: Run, rows: list) -> None:
    """
    Check the ONNX vision path on onnxruntime against the torch vision path.

    A float32 model, exported at fp32 and at fp16.
    """
    from ..backends.onnx import export_vision_onnx
    from ..backends.onnx import OnnxVisionEncoder
    from ..models import LlavaOnevision
    from ..models import make_tiny_checkpoint

    spec = TinySpec(image_size=56, patch_size=8) if run.smoke else BENCH_VISION_SPEC
    with tempfile.TemporaryDirectory() as tmp:
        model = LlavaOnevision.from_pretrained(
            make_tiny_checkpoint(Path(tmp) / 'model', spec), device=run.device
        )
        pixels = model.preprocess(
            synthetic_frames(3 if run.smoke else 16, model.frame_size, seed=1)
        )
        reference = model.encode_frames(pixels).float()
        for dtype, tolerance in ((torch.float32, 1e-4), (torch.float16, 2e-3)):
            encoder = OnnxVisionEncoder(
                export_vision_onnx(model, Path(tmp) / f'vision-{dtype}.onnx', dtype=dtype),
                device=run.device,
                dtype=dtype,
            )
            tokens = encoder(pixels).float()
            error = (tokens - reference).abs().max().item()
            relative = error / reference.abs().max().item()
            rows.append(
                {
                    'check': 'onnx_vision',
                    'export_dtype': str(dtype).removeprefix('torch.'),
                    'providers': encoder.session.get_providers(),
                    'frames': pixels.shape[0],
                    'tokens_per_frame': model.tokens_per_frame,
                    'max_abs_diff': error,
                    'relative': relative,
                    'tolerance': tolerance,
                    'pass': relative <= tolerance,
                }
            )


# ---- compiled LLM ---------------------------------------------------------------------


def llm_section(run: Run, rows: list) -> None:
    """
    Compare the compiled LLM backends with torch: parity per policy, then speed per backend.

    Parity rows come from :func:`.llm_backends.parity_rows`; speed rows are BENCHMARKS.md
    records of policy ``livevlm`` with ``llm_backend``, ``clip_prefill_s`` and
    ``decode_roofline_fraction``. A backend that cannot run here gets a row with its error.
    """
    from .llm_backends import parity_rows
    from .records import reset_peak
    from .stream import answers_record
    from .stream import measure_answers
    from .stream import QUESTIONS
    from ..checkpoints import tiny_checkpoint
    from ..engine import StreamingVLM

    device = str(run.device)
    path = str(tiny_checkpoint(TinySpec() if run.smoke else QWEN2_05B_SPEC))
    if run.device.type == 'cuda':
        candidates = [
            ('onnxruntime', 'float16'),
            ('tensorrt', 'float16'),
            ('tensorrt', 'bfloat16'),
        ]
    else:
        candidates = [('onnxruntime', 'float32'), ('onnxruntime', 'float16')]
    runs = []
    for backend, dtype in candidates:
        try:
            StreamingVLM.from_pretrained(path, device=device, dtype=dtype, llm_backend=backend)
            runs.append((backend, dtype))
        except (ValueError, RuntimeError) as error:
            rows.append({'backend': backend, 'dtype': dtype, 'error': str(error)[:300]})
    rows.extend(parity_rows(path, runs, frames=8 if run.smoke else 16, device=device))
    frames = synthetic_frames(16 if run.smoke else 128, (240, 320))
    stamps = np.arange(len(frames), dtype=float)
    memory = {**SMOKE_MEMORY, 'frames_per_clip': 8} if run.smoke else {}
    speed_runs = sorted({('torch', dtype) for _, dtype in runs}) + runs
    for backend, dtype in speed_runs:
        if run.late():
            rows.append({'backend': backend, 'dtype': dtype, 'skipped': 'budget'})
            continue
        engine = StreamingVLM.from_pretrained(
            path, device=device, dtype=dtype, llm_backend=backend, policy='livevlm', **memory
        )
        run.sync()
        reset_peak(device)
        start = time.perf_counter()
        engine.ingest(frames, stamps)
        run.sync()
        ingest_fps = len(frames) / (time.perf_counter() - start)
        samples = measure_answers(engine, QUESTIONS, 1, 4 if run.smoke else 16)
        tpot = float(np.median(samples['tpot'])) if samples['tpot'] else None
        attended = float(np.mean(samples['attended']))
        record = answers_record(
            engine, len(frames), samples, ingest_fps, device,
            llm_backend=backend,
            clip_prefill_s=engine.stats().last_prefill_s,
            decode_roofline_fraction=(
                decode_roofline(engine, tpot, attended, run.peak_bandwidth)
                if run.device.type == 'cuda' else None
            ),
        )
        rows.append(named(record, run))


# ---- pipeline -------------------------------------------------------------------------


def build_model(run: Run):
    """Build the pipeline's random checkpoint in memory on the device (bfloat16 on CUDA)."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from ..models import LlavaOnevision
    from ..models.tiny import make_tiny_model
    from ..models.tiny import make_tokenizer

    spec = TinySpec() if run.smoke else QWEN2_05B_SPEC
    tokenizer = make_tokenizer()
    with run.device:  # random init on the device (seconds on a GPU instead of a minute on CPU)
        hf_model = make_tiny_model(spec, tokenizer)
    hf_model.to(torch.bfloat16 if run.device.type == 'cuda' else torch.float32)
    processor = LlavaOnevisionImageProcessorPil(
        size={'height': spec.image_size, 'width': spec.image_size},
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
        image_grid_pinpoints=[[spec.image_size, spec.image_size]],
    )
    return LlavaOnevision(hf_model, tokenizer, processor)


def decode_roofline(
    engine, tpot_s: float | None, tokens_attended: float, peak_bandwidth: float
) -> float | None:
    """
    Return achieved / peak bandwidth of one decode step (None without a TPOT).

    A step reads the LLM weights and the attended K/V once per token.
    """
    if not tpot_s:
        return None
    model = engine.model
    weights = sum(p.numel() * p.element_size() for p in model.hf.model.language_model.parameters())
    weights += model.hf.lm_head.weight.numel() * model.hf.lm_head.weight.element_size()
    kv = (
        tokens_attended
        * 2
        * model.num_layers
        * model.num_kv_heads
        * model.head_dim
        * model.dtype.itemsize
    )
    return (weights + kv) / tpot_s / peak_bandwidth


def pipeline_section(run: Run, rows: list) -> None:
    """
    Stream the same frames through every policy.

    One record per (policy, kernels, length), shortest first.
    """
    from .records import reset_peak
    from .stream import answers_record
    from .stream import measure_answers
    from .stream import QUESTIONS
    from .stream import offline_record
    from ..config import EngineConfig
    from ..config import MemoryConfig
    from ..engine import StreamingVLM

    lengths = (16, 32) if run.smoke else (256, 1024)
    model = build_model(run)
    frames = synthetic_frames(lengths[-1], model.frame_size)
    stamps = np.arange(lengths[-1], dtype=float)  # 1 Hz stream
    engine_config = EngineConfig(device=str(run.device), frames_per_clip=8 if run.smoke else 32)
    memory = SMOKE_MEMORY if run.smoke else {}
    runs = sorted(
        [(p, 'triton') for p in POLICIES] + [('livevlm', 'torch')], key=lambda r: r[0] == 'full'
    )
    engines = {  # full grows without bound, so it runs last at every length
        (policy, kernels): StreamingVLM(
            model, MemoryConfig(policy=policy, **memory), replace(engine_config, kernels=kernels)
        )
        for policy, kernels in runs
    }
    # Triton compiles, allocator, before any timing
    warm_up = engines[('livevlm', 'triton')].new_stream()
    warm_up.ingest(
        frames[: 2 * engine_config.frames_per_clip], stamps[: 2 * engine_config.frames_per_clip]
    )
    warm_up.ask(QUESTIONS[0], max_new_tokens=2)
    del warm_up
    seen = 0
    for length in lengths:
        for policy, kernels in runs:
            engine = engines.get((policy, kernels))
            if engine is None or run.late():
                rows.append(
                    {
                        'policy': policy,
                        'kernels': kernels,
                        'frames': length,
                        'skipped': 'budget or earlier OOM',
                    }
                )
                continue
            try:
                run.sync()
                reset_peak(str(run.device))
                start = time.perf_counter()
                engine.ingest(frames[seen:length], stamps[seen:length])
                run.sync()
                ingest_fps = (length - seen) / (time.perf_counter() - start)
                samples = measure_answers(engine, QUESTIONS, 1, 4 if run.smoke else 16)
            except torch.cuda.OutOfMemoryError as error:
                rows.append(
                    {
                        'policy': policy,
                        'kernels': kernels,
                        'frames': length,
                        'error': str(error)[:300],
                    }
                )
                del engines[(policy, kernels)]
                torch.cuda.empty_cache()
                continue
            tpot = float(np.median(samples['tpot'])) if samples['tpot'] else None
            attended = float(np.mean(samples['attended']))
            on_gpu = run.device.type == 'cuda'
            record = answers_record(
                engine, length, samples, ingest_fps, str(run.device),
                kernels=kernels,
                decode_roofline_fraction=(
                    decode_roofline(engine, tpot, attended, run.peak_bandwidth) if on_gpu else None
                ),
            )
            rows.append(named(record, run))
        seen = length
    # HF generate over every frame at question time, at the shortest length
    if engines and not run.late():
        offline = offline_record(
            next(iter(engines.values())), frames[: lengths[0]], repeats=1
        )
        rows.append(named(offline, run))


def named(record: dict[str, Any], run: Run) -> dict[str, Any]:
    """Name the model in ``record`` (it was built in memory, not loaded from a directory)."""
    name = 'tiny-random' if run.smoke else 'qwen2-0.5b-shaped-random+small-siglip'
    return {**record, 'model': {**record['model'], 'name': name}}


def environment_info(run: Run) -> dict[str, Any]:
    """Collect versions and device, for the report."""
    from .records import device_name
    from .records import git_sha

    info: dict[str, Any] = {
        'git_sha': git_sha(),
        'device': device_name(str(run.device)),
        'python': platform.python_version(),
        'torch': torch.__version__,
        'cuda': torch.version.cuda,
        'smoke': run.smoke,
        'triton_interpret': os.environ.get('TRITON_INTERPRET', '0'),
    }
    for package in ('triton', 'transformers', 'onnx', 'onnxruntime', 'onnxscript'):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


SECTIONS: dict[str, Callable[[Run, list], None]] = {
    'parity': parity_section,
    'onnx': onnx_section,
    'llm': llm_section,
    'kernels': kernels_section,
    'pipeline': pipeline_section,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add('out', help='directory for the JSON lines and report.md (created)')
    add('--device', default='cuda', help='torch device (default: cuda)')
    add('--smoke', action='store_true', help="tiny shapes; on CPU with Triton's interpreter")
    add(
        '--sections',
        default=','.join(SECTIONS),
        help='comma-separated subset of ' + ', '.join(SECTIONS),
    )
    add(
        '--budget-scale',
        type=float,
        default=None,
        help='multiply every section budget (default 1, smoke 10)',
    )
    add(
        '--peak-tbps',
        type=float,
        default=4.8,
        help='memory bandwidth for roofline fractions, TB/s (H200: 4.8)',
    )
    add(
        '--peak-tflops',
        type=float,
        default=989.0,
        help='dense bfloat16 TFLOP/s for roofline fractions (H200: 989)',
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the selected sections.

    Returns 0 when every section ran and every parity row passed, else 1.
    """
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(
            'no CUDA device here; run with --device cpu --smoke to exercise the code paths'
        )
    if device.type != 'cuda' and not args.smoke:
        raise SystemExit(
            f"--device {args.device} runs Triton's interpreter: "
            'add --smoke (full shapes would take hours)'
        )
    if device.type != 'cuda':
        # Triton reads it when the kernels are defined: before any kernel module is imported
        os.environ['TRITON_INTERPRET'] = '1'
    unknown = set(args.sections.split(',')) - set(SECTIONS)
    if unknown:
        raise SystemExit(
            f'unknown section(s) {", ".join(sorted(unknown))}; choose from {", ".join(SECTIONS)}'
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, device, args.smoke, args.peak_tflops * 1e12, args.peak_tbps * 1e12)
    scale = args.budget_scale or (10.0 if args.smoke else 1.0)
    environment = environment_info(run)
    print(json.dumps(environment), flush=True)
    results, sections = {}, []
    for name in (n for n in SECTIONS if n in args.sections.split(',')):
        status, rows = run_section(run, name, SECTION_BUDGETS_S[name] * scale, SECTIONS[name])
        sections.append(status)
        results[name] = rows
        with (out / ('records.jsonl' if name == 'pipeline' else f'{name}.jsonl')).open('w') as f:
            f.writelines(json.dumps(row) + '\n' for row in rows)
    (out / 'sections.json').write_text(
        json.dumps({'environment': environment, 'sections': sections}, indent=1)
    )
    try:
        text = report(environment, results, sections)
    except Exception:  # the JSON lines are written already; say why the tables are missing
        text = 'report failed (the JSON lines are complete):\n' + traceback.format_exc()
    (out / 'report.md').write_text(text)
    print(text, flush=True)
    failed = any(s['status'] != 'ok' for s in sections)
    failed |= any(
        not row.get('pass', True)
        for name in ('parity', 'onnx', 'llm')
        for row in results.get(name, [])
    )
    return int(failed)


if __name__ == '__main__':
    raise SystemExit(main())

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``build_engines``: compile a checkpoint's vision encoder into the engine cache, once per device.

    MODEL=~/models/llava-onevision-qwen2-0.5b-ov-hf
    ros2 run ros2_livevlm build_engines --model-path $MODEL --precision fp16
    build_engines --model-path $MODEL --onnx-only   # no TensorRT needed

Steps: check TensorRT and the GPU (unless ``--onnx-only``), skip if a valid engine for the
key is cached (unless ``--force``), load the checkpoint on the CPU, export the vision path
to ONNX (cached; :mod:`.onnx`), build a strongly typed engine with an optimization profile
for the frames axis (:mod:`.tensorrt`) and store it with its sidecar (:mod:`.cache`).
Nodes never build engines; they validate this cache at configure time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
import sys
import time

import torch

from .cache import BatchProfile
from .cache import engine_cache_root
from .cache import EngineCacheError
from .cache import find_engine
from .cache import PRECISIONS
from .cache import store_engine
from ..checkpoints import resolve_model_path
from ..config import EngineConfig
from ..config import field_docs
from ..models import LlavaOnevision
from ..models import ModelDirectoryError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line of ``build_engines`` (batch defaults: 1 and ``frames_per_clip``)."""
    frames_per_clip = EngineConfig().frames_per_clip
    defaults = BatchProfile(opt_batch=frames_per_clip, max_batch=frames_per_clip)
    parser = argparse.ArgumentParser(
        prog='build_engines',
        description=(
            "Build the TensorRT engine of a checkpoint's vision encoder into the engine cache."
        ),
    )
    parser.add_argument(
        '--model-path', required=True, help="local LLaVA-OneVision directory, or 'tiny'"
    )
    parser.add_argument(
        '--precision',
        choices=tuple(PRECISIONS),
        default='fp16',
        help="precision of the matrix products; the node's dtype must match (default: fp16)",
    )
    parser.add_argument(
        '--min-batch',
        type=int,
        default=defaults.min_batch,
        help='fewest frames per call (default: %(default)s)',
    )
    parser.add_argument(
        '--opt-batch',
        type=int,
        default=defaults.opt_batch,
        help='frames per call TensorRT tunes for (default: frames_per_clip, %(default)s)',
    )
    parser.add_argument(
        '--max-batch',
        type=int,
        default=defaults.max_batch,
        help='most frames per call; larger clips run in chunks (default: %(default)s)',
    )
    parser.add_argument(
        '--engine-cache-dir', default='', help=field_docs(EngineConfig)['engine_cache_dir']
    )
    parser.add_argument('--device', default='cuda', help='GPU to build for (default: %(default)s)')
    parser.add_argument(
        '--onnx-only',
        action='store_true',
        help='only export the ONNX file into the cache (no TensorRT)',
    )
    parser.add_argument(
        '--force', action='store_true', help='rebuild even if a valid engine is cached'
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Entry point of ``build_engines``; returns the exit code.

    0: built, exported (``--onnx-only``) or already up to date; 1: no TensorRT or no GPU;
    2: bad arguments or model directory.
    """
    from .onnx import cached_vision_onnx

    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    try:
        model_path = resolve_model_path(args.model_path)
        batch = BatchProfile(args.min_batch, args.opt_batch, args.max_batch)
        root = engine_cache_root(args.engine_cache_dir)
    except (ModelDirectoryError, ValueError) as error:
        print(f'build_engines: error: {error}', file=sys.stderr)
        return 2
    dtype = PRECISIONS[args.precision]
    if not args.onnx_only:
        from .tensorrt import cuda_device
        from .tensorrt import engine_key
        from .tensorrt import import_tensorrt
        from .tensorrt import TensorRTUnavailable

        try:
            trt = import_tensorrt()
            device = cuda_device(args.device)
        except TensorRTUnavailable as error:
            print(f'build_engines: error: {error}', file=sys.stderr)
            return 1
        except ValueError as error:
            print(f'build_engines: error: {error}', file=sys.stderr)
            return 2
        key = engine_key(model_path, args.precision, device, trt)
        if not args.force:
            try:
                print(f'up to date: {find_engine(root, key, model_path).engine_path}')
                return 0
            except EngineCacheError:
                pass
    model = LlavaOnevision.from_pretrained(model_path, device='cpu', dtype=dtype)
    onnx_path = cached_vision_onnx(model, dtype)
    print(f'ONNX: {onnx_path}')
    if args.onnx_only:
        return 0
    del model  # the build needs the host memory (shared with the GPU on Jetson)
    from .tensorrt import build_serialized_engine

    start = time.perf_counter()
    with torch.cuda.device(device):
        serialized = build_serialized_engine(onnx_path, batch, trt)
    gpu_name = torch.cuda.get_device_name(device)
    entry = store_engine(
        root, key, serialized, model_path=model_path, gpu_name=gpu_name, batch=batch
    )
    seconds = time.perf_counter() - start
    print(f'engine: {entry.engine_path} ({entry.engine_bytes / 2**20:.1f} MiB, {seconds:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

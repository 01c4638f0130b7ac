# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``build_engines``: compile a checkpoint's vision encoder and LLM into the engine cache.

    MODEL=~/models/llava-onevision-qwen2-0.5b-ov-hf
    ros2 run ros2_livevlm build_engines --model-path $MODEL --precision fp16
    build_engines --model-path $MODEL --onnx-only   # no TensorRT needed

Steps: check TensorRT and the GPU (unless ``--onnx-only``), skip the engines whose key is
cached and valid (unless ``--force``), load the checkpoint on the CPU, export the vision
path and the LLM's four parts to ONNX (cached; :mod:`.onnx`, :mod:`.llm`), build strongly
typed engines with optimization profiles for their dynamic axes (frames; tokens, queries,
keys: :mod:`.tensorrt`, :mod:`.llm_tensorrt`) and store each with its sidecar
(:mod:`.cache`). Once per device (GPU and TensorRT version). Nodes never build engines;
they validate this cache at configure time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path
import sys
import time

import torch

from .cache import AxisProfile
from .cache import engine_cache_root
from .cache import EngineCacheError
from .cache import find_engine
from .cache import PRECISIONS
from .cache import Profile
from .cache import store_engine
from ..checkpoints import resolve_model_path
from ..config import EngineConfig
from ..config import field_docs
from ..config import MemoryConfig
from ..models import LlavaOnevision
from ..models import ModelDirectoryError


COMPONENTS = ('vision', 'llm')
CONTEXT_MARGIN = 512
"""Keys beyond long-term + short-term + clip in the default ``--max-context``: the init
prompt while streaming, the prompt and answer tokens when answering."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line of ``build_engines`` (batch defaults: 1 and ``frames_per_clip``)."""
    frames_per_clip = EngineConfig().frames_per_clip
    defaults = AxisProfile(opt_size=frames_per_clip, max_size=frames_per_clip)
    parser = argparse.ArgumentParser(
        prog='build_engines',
        description=(
            "Build the TensorRT engines of a checkpoint's vision encoder and LLM into the "
            'engine cache.'
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
        '--components',
        default=','.join(COMPONENTS),
        help='comma-separated engines to build: vision, llm (default: %(default)s)',
    )
    parser.add_argument(
        '--min-batch',
        type=int,
        default=defaults.min_size,
        help='vision: fewest frames per call (default: %(default)s)',
    )
    parser.add_argument(
        '--opt-batch',
        type=int,
        default=defaults.opt_size,
        help='vision: frames per call TensorRT tunes for (default: frames_per_clip, %(default)s)',
    )
    parser.add_argument(
        '--max-batch',
        type=int,
        default=defaults.max_size,
        help='vision: most frames per call; larger clips run in chunks (default: %(default)s)',
    )
    parser.add_argument(
        '--max-tokens',
        type=int,
        default=None,
        help='LLM: most tokens per prefill call, TensorRT tunes for it; longer inputs run in '
        'chunks (default: frames_per_clip x tokens per frame of the model)',
    )
    parser.add_argument(
        '--max-context',
        type=int,
        default=None,
        help='LLM: most keys one attention call sees; longer contexts (policy full) fall back '
        'to torch attention (default: budget_tokens + (short_term_frames + frames_per_clip) x '
        f'tokens per frame + {CONTEXT_MARGIN}, with the config defaults)',
    )
    parser.add_argument(
        '--engine-cache-dir', default='', help=field_docs(EngineConfig)['engine_cache_dir']
    )
    parser.add_argument('--device', default='cuda', help='GPU to build for (default: %(default)s)')
    parser.add_argument(
        '--onnx-only',
        action='store_true',
        help='only export the ONNX files into the cache (no TensorRT)',
    )
    parser.add_argument(
        '--force', action='store_true', help='rebuild even if a valid engine is cached'
    )
    return parser.parse_args(argv)


def _components(value: str) -> list[str]:
    names = [name for name in value.split(',') if name]
    unknown = sorted(set(names) - set(COMPONENTS))
    if unknown or not names:
        raise ValueError(
            f'--components {value!r}: choose from {", ".join(COMPONENTS)} (comma-separated)'
        )
    return names


def _limits(args: argparse.Namespace, tokens_per_frame: int) -> tuple[int, int]:
    """Return ``--max-tokens`` and ``--max-context``, defaulted for ``tokens_per_frame``."""
    engine, memory = EngineConfig(), MemoryConfig()
    clip = engine.frames_per_clip * tokens_per_frame
    context = (
        memory.budget_tokens
        + (memory.short_term_frames + engine.frames_per_clip) * tokens_per_frame
        + CONTEXT_MARGIN
    )
    return args.max_tokens or clip, args.max_context or context


def _export(model: LlavaOnevision, components: list[str], dtype: torch.dtype) -> dict[str, Path]:
    """Export (or find cached) ONNX files; return each engine's source file by engine name."""
    from .llm import cached_llm_onnx
    from .llm import PARTS
    from .llm_tensorrt import engine_name
    from .onnx import cached_vision_onnx

    files = {}
    if 'vision' in components:
        files['vision'] = cached_vision_onnx(model, dtype)
    if 'llm' in components:
        directory = cached_llm_onnx(model, dtype)
        files.update({engine_name(part): directory / part.file_name for part in PARTS})
    for path in sorted({str(path.parent) for path in files.values()}):
        print(f'ONNX: {path}')
    return files


def _profiles(
    args: argparse.Namespace, vision: AxisProfile, tokens_per_frame: int
) -> dict[str, tuple[Profile, ...]]:
    """Return the optimization profiles of every engine, by engine name."""
    from .llm import PARTS
    from .llm_tensorrt import engine_name
    from .llm_tensorrt import llm_profiles

    llm = llm_profiles(*_limits(args, tokens_per_frame))
    return {'vision': ({'frames': vision},), **{engine_name(p): llm[p.name] for p in PARTS}}


def main(argv: Sequence[str] | None = None) -> int:
    """
    Entry point of ``build_engines``; returns the exit code.

    0: built, exported (``--onnx-only``) or already up to date; 1: no TensorRT or no GPU;
    2: bad arguments or model directory.
    """
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    try:
        model_path = resolve_model_path(args.model_path)
        vision = AxisProfile(args.min_batch, args.opt_batch, args.max_batch)
        root = engine_cache_root(args.engine_cache_dir)
        components = _components(args.components)
        for name in ('max_tokens', 'max_context'):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise ValueError(f'--{name.replace("_", "-")} must be at least 1')
    except (ModelDirectoryError, ValueError) as error:
        print(f'build_engines: error: {error}', file=sys.stderr)
        return 2
    dtype = PRECISIONS[args.precision]
    if not args.onnx_only:
        from .llm import PARTS
        from .llm_tensorrt import engine_name
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
        names = (['vision'] if 'vision' in components else []) + (
            [engine_name(part) for part in PARTS] if 'llm' in components else []
        )
        keys = {name: engine_key(model_path, args.precision, device, trt, name) for name in names}
        for name, key in list(keys.items()):
            try:
                if not args.force:
                    print(f'up to date: {find_engine(root, key, model_path).engine_path}')
                    del keys[name]
            except EngineCacheError:
                pass
        if not keys:
            return 0
    model = LlavaOnevision.from_pretrained(model_path, device='cpu', dtype=dtype)
    files = _export(model, components, dtype)
    if args.onnx_only:
        return 0
    profiles = _profiles(args, vision, model.tokens_per_frame)
    del model  # the build needs the host memory (shared with the GPU on Jetson)
    from .tensorrt import build_serialized_engine

    gpu_name = torch.cuda.get_device_name(device)
    for name, key in keys.items():
        start = time.perf_counter()
        with torch.cuda.device(device):
            serialized = build_serialized_engine(files[name], profiles[name], trt)
        entry = store_engine(
            root,
            key,
            serialized,
            model_path=model_path,
            gpu_name=gpu_name,
            profiles=profiles[name],
        )
        seconds = time.perf_counter() - start
        print(
            f'engine: {entry.engine_path} ({entry.engine_bytes / 2**20:.1f} MiB, {seconds:.0f} s)'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())

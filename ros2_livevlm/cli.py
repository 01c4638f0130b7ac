# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
r"""
``livevlm-run``: stream images or a video into the memory and ask it questions, without ROS.

    livevlm-run --tiny --images 'photos/*.jpg' --question "What did you see first?"
    livevlm-run --model-path ~/models/llava-onevision-qwen2-0.5b-ov-hf --video tour.mp4 \
        --fps 1 --question "Where are the keys?" --policy livevlm --budget-tokens 12000

Frames are sampled at ``--fps`` (a video by its presentation times; an image sequence is
taken as shot at that rate), ingested clip by clip, and every question is answered from
the memory; each answer is printed with its evidence time span, then the memory stats.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from collections.abc import Sequence
import glob
from pathlib import Path
import sys
import time

import numpy as np
from PIL import Image

from .checkpoints import default_settings
from .checkpoints import default_settings_help
from .config import add_arguments
from .config import EngineConfig
from .config import MemoryConfig
from .config import settings_from_args
from .engine import Answer
from .engine import MemoryStats
from .engine import StreamingVLM


IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'}


def image_files(pattern: str) -> list[Path]:
    """
    Image files of a folder (sorted by name) or of a glob pattern.

    Raises:
        ValueError: nothing matches.
    """
    root = Path(pattern).expanduser()
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        files = sorted(
            Path(p) for p in glob.glob(str(root)) if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
    if not files:
        raise ValueError(f'no images ({", ".join(sorted(IMAGE_SUFFIXES))}) match {pattern!r}')
    return files


def image_frames(files: Sequence[Path], fps: float) -> Iterator[tuple[np.ndarray, float]]:
    """
    ``(RGB uint8 [H, W, 3], stamp s)`` per image, taken as shot at ``fps`` Hz.

    An image that cannot be read is skipped with a warning on stderr (its time slot stays
    empty); the caller sees fewer frames than files.
    """
    for index, path in enumerate(files):
        try:
            with Image.open(path) as image:
                frame = np.asarray(image.convert('RGB'))
        except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
            print(f'livevlm-run: skipping {path}: {error}', file=sys.stderr)
            continue
        yield frame, index / fps


def video_frames(path: str, fps: float) -> Iterator[tuple[np.ndarray, float]]:
    """
    Yield ``(RGB uint8 [H, W, 3], stamp s)`` of a video, sampled at ``fps`` Hz by time (PyAV).

    Raises:
        ValueError: the file cannot be opened or has no video stream.
    """
    import av

    try:
        container = av.open(path)
    except (OSError, av.error.FFmpegError) as error:
        raise ValueError(f'cannot open video {path!r}: {error}') from error
    with container:
        if not container.streams.video:
            raise ValueError(f'{path!r} has no video stream')
        next_stamp = 0.0
        for frame in container.decode(video=0):
            if frame.time is None or frame.time + 1e-9 < next_stamp:
                continue
            yield frame.to_ndarray(format='rgb24'), float(frame.time)
            next_stamp = frame.time + 1.0 / fps


def format_answer(question: str, answer: Answer) -> str:
    """Format one answer for printing: question, text, evidence spans and timings."""
    spans = ', '.join(f'{start:.1f}-{end:.1f} s' for start, end in answer.evidence) or 'none'
    return (
        f'Q: {question}\nA: {answer.text!r}\n'
        f'   evidence: {spans} | ttft {answer.ttft_s * 1e3:.1f} ms | '
        f'total {answer.total_s * 1e3:.1f} ms | '
        f'attended {answer.tokens_attended} tokens | stop: {answer.stop_reason}'
    )


def format_stats(policy: str, stats: MemoryStats) -> str:
    """Format the memory's occupancy for printing."""
    budget = 'unlimited' if stats.budget_tokens is None else stats.budget_tokens
    return (
        f'memory: policy {policy} | frames ingested {stats.frames_ingested}, '
        f'in memory {stats.frames_in_memory} | tokens init {stats.tokens_init} + '
        f'long-term {stats.tokens_long_term} (budget {budget}) + '
        f'short-term {stats.tokens_short_term} | KV {stats.kv_bytes / 2**20:.2f} MiB'
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='livevlm-run',
        description=__doc__.strip().split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=default_settings_help(),
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument(
        '--model-path',
        help="local Hugging Face LLaVA-OneVision directory, 'reference' (the project's tiny "
        "trained model) or 'tiny' (random weights)",
    )
    model.add_argument(
        '--tiny', action='store_true', help='a tiny random LLaVA-OneVision (answers are noise)'
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--images', help='a folder of images or a glob pattern (quote it)')
    source.add_argument('--video', help='a video file (decoded with PyAV)')
    parser.add_argument(
        '--fps',
        type=float,
        default=1.0,
        help='frames sampled per second of stream time, Hz (default: %(default)s)',
    )
    parser.add_argument(
        '--question', action='append', required=True, help='a question (repeatable)'
    )
    add_arguments(parser, MemoryConfig, EngineConfig)
    args = parser.parse_args(argv)
    if args.fps <= 0:
        parser.error('--fps must be > 0')
    if not all(question.strip() for question in args.question):
        parser.error('--question must not be empty')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``livevlm-run``; returns the exit code."""
    args = parse_args(argv)
    model_path = 'tiny' if args.tiny else args.model_path
    settings = {
        **default_settings(model_path), **settings_from_args(args, MemoryConfig, EngineConfig)}
    try:
        engine = StreamingVLM.from_pretrained(model_path, **settings)
    except (ValueError, RuntimeError) as error:
        print(f'livevlm-run: error: {error}', file=sys.stderr)
        return 2
    try:
        frames = (
            image_frames(image_files(args.images), args.fps)
            if args.images
            else video_frames(args.video, args.fps)
        )
        start = time.perf_counter()
        for frame, stamp in frames:
            engine.ingest(frame[None], [stamp])
        engine.flush()
    except ValueError as error:
        print(f'livevlm-run: error: {error}', file=sys.stderr)
        return 2
    stats = engine.stats()
    print(
        f'ingested {stats.frames_ingested} frames ({stats.clips_prefilled} clips) '
        f'in {time.perf_counter() - start:.2f} s'
    )
    for question in args.question:
        print(format_answer(question, engine.ask(question)))
    print(format_stats(engine.memory_config.policy, stats))
    return 0


if __name__ == '__main__':
    sys.exit(main())

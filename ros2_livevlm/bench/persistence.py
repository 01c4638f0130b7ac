# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Memory file benchmark: save and load time and file size after a long stream.

    python -m ros2_livevlm.bench.persistence [--frames 1000] [--policies livevlm,full]

The reference model with its memory settings (``reference.MEMORY_SETTINGS``) watches one
real-photo stream of ``--frames`` frames (``reference.task.make_episode``) per policy;
then its memory is saved ``--repeats`` times and loaded as often into an engine loaded
afresh from the checkpoint, which must answer the stream's questions with the same
tokens and evidence. Prints, per policy, the file size against the KV bytes it holds and
the save/load times against one clip prefill (median over repeats, the first save apart:
it may include the model fingerprint). The fingerprint hashes every weight byte once per
checkpoint; its throughput here, measured on a 256 MiB buffer, projects the one-time cost
for a 15 GB 7B checkpoint.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import hashlib
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

import numpy as np

from ..checkpoints import default_settings
from ..checkpoints import REFERENCE
from ..engine import StreamingVLM
from ..reference.task import make_episode


SEVEN_B_BYTES = 15e9
"""LLaVA-OneVision-7B in fp16, bytes of weights (the fingerprint's input)."""


def sha256_throughput(num_bytes: int = 256 << 20) -> float:
    """Return SHA-256 throughput on this machine, bytes/s (one pass over a buffer)."""
    data = np.random.default_rng(0).integers(0, 256, num_bytes, dtype=np.uint8)
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return num_bytes / (time.perf_counter() - start)


def measure(
    policy: str, frames: np.ndarray, stamps: np.ndarray, questions: Sequence[str],
    repeats: int, out: Path
) -> dict[str, Any]:
    """Stream, then save and load ``repeats`` times; return sizes, times and the check."""
    settings = {**default_settings(REFERENCE), 'policy': policy}
    engine = StreamingVLM.from_pretrained(REFERENCE, **settings)
    start = time.perf_counter()
    engine.ingest(frames, stamps)
    ingest_s = time.perf_counter() - start
    clip_s = engine.stats().last_encode_s + engine.stats().last_prefill_s
    path = out / f'{policy}.safetensors'
    saves = [engine.save(path).elapsed_s for _ in range(repeats)]
    fresh = StreamingVLM.from_pretrained(REFERENCE, **settings)
    loads = [fresh.load(path).elapsed_s for _ in range(repeats)]
    same = all(
        (a.token_ids, a.evidence) == (b.token_ids, b.evidence)
        for a, b in ((engine.ask(q, max_new_tokens=3), fresh.ask(q, max_new_tokens=3))
                     for q in questions)
    )
    stats = engine.stats()
    return {
        'policy': policy,
        'frames': len(frames),
        'kv_tokens': stats.tokens_init + stats.tokens_long_term + stats.tokens_short_term,
        'kv_bytes': stats.kv_bytes,
        'file_bytes': path.stat().st_size,
        'first_save_s': saves[0],
        'save_s': statistics.median(saves[1:] or saves),
        'load_s': statistics.median(loads),
        'clip_s': clip_s,
        'ingest_s': ingest_s,
        'same_answers': same,
    }


def table(results: Sequence[dict[str, Any]]) -> str:
    """Format the measurements as a Markdown table."""
    lines = [
        '| policy | frames | kv_tokens | kv_MiB | file_MiB | file/kv | first save ms '
        '| save ms p50 | load ms p50 | clip ms | save/clip | load/clip | same answers |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    for r in results:
        lines.append(
            f'| {r["policy"]} | {r["frames"]} | {r["kv_tokens"]} | {r["kv_bytes"] / 2**20:.2f} '
            f'| {r["file_bytes"] / 2**20:.2f} | {r["file_bytes"] / r["kv_bytes"]:.3f} '
            f'| {r["first_save_s"] * 1e3:.1f} | {r["save_s"] * 1e3:.1f} '
            f'| {r["load_s"] * 1e3:.1f} | {r["clip_s"] * 1e3:.1f} '
            f'| {r["save_s"] / r["clip_s"]:.2f} | {r["load_s"] / r["clip_s"]:.2f} '
            f'| {"yes" if r["same_answers"] else "NO"} |'
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure every policy on one stream; print the table and the fingerprint projection."""
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.bench.persistence',
                                     description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=1000,
                        help='frames streamed before saving (default: %(default)s)')
    parser.add_argument('--policies', default='livevlm,full',
                        help='memory policies, comma separated (default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='saves and loads per policy (default: %(default)s)')
    args = parser.parse_args(argv)
    episode = make_episode(0, args.frames, 8)
    questions = [q.text for q in episode.questions]
    with tempfile.TemporaryDirectory() as out:
        results = [
            measure(policy, episode.frames, episode.stamps, questions, args.repeats, Path(out))
            for policy in args.policies.split(',')
        ]
    print(table(results))
    rate = sha256_throughput()
    print(f'\nmodel fingerprint: SHA-256 at {rate / 1e9:.2f} GB/s here, so about '
          f'{SEVEN_B_BYTES / rate:.0f} s once for a 15 GB 7B checkpoint (then memoized)')


if __name__ == '__main__':
    main()

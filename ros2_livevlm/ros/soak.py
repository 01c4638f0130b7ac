# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Soak run: the node fed by a camera for a long time, questioned at intervals.

    python -m ros2_livevlm.ros.soak [--frames 10000] [--rate 30] [--speed 1]
        [--sample-fps 2] [--question-every 5] [--width 640] [--height 480]

Starts ``livevlm`` in its own process with its defaults but ``autostart`` and
``sample_fps``, publishes a :class:`~ros2_livevlm.ros.camera.SyntheticCamera` (reliable,
rgb8) of ``--frames`` frames at ``--rate`` Hz of camera time, ``--speed`` x real time in
wall time (the node samples by header.stamp, so a faster run sees the same camera), asks
``~/query`` every ``--question-every`` s of camera time, and samples the node's resident
memory (``/proc/<pid>/status`` VmRSS) and ``~/memory_state`` every second. Then it stops
the node with SIGINT and prints a summary with a verdict per criterion: RSS after warm-up
(the first ``--warm-up`` share of the frames) flat within 10 %, ``kv_bytes`` after warm-up
flat, the frame queue within ``queue_size``, every question answered, a clean exit.
Exit code 0 when every criterion holds. A script, not a test: it runs for minutes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from dataclasses import field
import os
from pathlib import Path
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Optional, Sequence

from .camera import SyntheticCamera
from .client import LiveVLMClient
from .process import NodeProcess

QUESTIONS = ('What are you looking at now?', 'Did you see a cat?', 'What did you see first?')
"""Asked in turn."""

QUEUE_SIZE = 8
"""The node's default ``queue_size`` (the bound the frame queue must keep)."""


@dataclass
class Samples:
    """What the soak records, per second of wall time after warm-up and in all."""

    rss_bytes: list[tuple[int, int]] = field(default_factory=list)  # (frames published, RSS)
    kv_bytes: list[tuple[int, int]] = field(default_factory=list)
    queued_max: int = 0


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid``, bytes (Linux ``/proc``)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f'no VmRSS for process {pid}')


def spread(values: Sequence[int]) -> float:
    """``(max - min) / min`` of ``values``, 0 when empty."""
    return (max(values) - min(values)) / min(values) if values and min(values) else 0.0


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.ros.soak',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=10000, help='default: %(default)s')
    parser.add_argument('--rate', type=float, default=30.0,
                        help='camera Hz (default: %(default)s)')
    parser.add_argument('--speed', type=float, default=1.0,
                        help='wall-time speed, x real time (default: %(default)s)')
    parser.add_argument('--sample-fps', type=float, default=2.0, help='default: %(default)s')
    parser.add_argument('--question-every', type=float, default=5.0,
                        help='s of camera time (default: %(default)s)')
    parser.add_argument('--width', type=int, default=640, help='default: %(default)s')
    parser.add_argument('--height', type=int, default=480, help='default: %(default)s')
    parser.add_argument('--warm-up', type=float, default=0.2,
                        help='share of the frames before the flatness checks (default: '
                        '%(default)s)')
    parser.add_argument('--model-path', default='reference', help='default: %(default)s')
    parser.add_argument('--log-dir', type=Path, default=None,
                        help='node log directory (default: a temporary one)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Run the soak; print the summary; return the exit code."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(90 + os.getpid() % 10))
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix='livevlm_soak.'))
    node = NodeProcess({'autostart': True, 'sample_fps': args.sample_fps,
                        'model_path': args.model_path}, log_dir / 'node.log')
    client = LiveVLMClient()
    samples, published, asked = Samples(), [0], []
    done = threading.Event()
    try:
        client.wait_for(lambda: (node.check_alive(), client.state('image'))[1], 300.0)
        camera = SyntheticCamera(client.node, '/image', size=(args.height, args.width),
                                 rate_hz=args.rate, dwell_frames=int(20 * args.rate))
        client.wait_for(lambda: client.state('image').reliability == 'reliable', 30.0)
        client.wait_for(camera.publisher.get_subscription_count, 30.0)
        sampler = threading.Thread(target=_sample, args=(node, client, samples, published,
                                                         done))
        sampler.start()
        started = time.monotonic()
        every = max(1, round(args.question_every * args.rate))
        for index in range(args.frames):
            camera.publish(index)
            published[0] = index + 1
            if index % every == every - 1:
                question = QUESTIONS[len(asked) % len(QUESTIONS)]
                asked.append((question, camera.scene(index), client.query_async(question)))
            time.sleep(max(0.0, started + (index + 1) / (args.rate * args.speed)
                           - time.monotonic()))
        wall_s = time.monotonic() - started
        client.wait_for(lambda: all(future.done() for _, _, future in asked), 120.0)
        time.sleep(2.0)  # the last MemoryState
    finally:
        done.set()
        final = client.state('image')
        client.close()
        node.process.send_signal(signal.SIGINT)
        code = node.stop()
    answers = [(expected, future.result().answer) for _, expected, future in asked]
    return _report(args, samples, final, answers, wall_s, code, log_dir)


def _sample(node: NodeProcess, client: LiveVLMClient, samples: Samples, published: list[int],
            done: threading.Event) -> None:
    while not done.wait(1.0):
        state = client.state('image')
        samples.rss_bytes.append((published[0], rss_bytes(node.process.pid)))
        if state is not None:
            samples.kv_bytes.append((published[0], state.kv_bytes))
            samples.queued_max = max(samples.queued_max, state.frames_queued)


def _report(args: argparse.Namespace, samples: Samples, final: Any, answers: list,
            wall_s: float, code: int, log_dir: Path) -> int:
    warm = args.warm_up * args.frames
    rss = [value for frames, value in samples.rss_bytes if frames >= warm]
    kv = [value for frames, value in samples.kv_bytes if frames >= warm]
    now = [(expected, answer) for expected, answer in answers if answer.question == QUESTIONS[0]]
    answered = sum(answer.success for _, answer in answers)
    checks = {
        f'RSS after warm-up flat within 10 % (spread {100 * spread(rss):.1f} %)':
            bool(rss) and spread(rss) <= 0.10,
        f'kv_bytes after warm-up flat (spread {100 * spread(kv):.2f} %)':
            bool(kv) and spread(kv) <= 0.01,
        f'frame queue bounded (max {samples.queued_max} <= {QUEUE_SIZE})':
            samples.queued_max <= QUEUE_SIZE,
        f'every question answered ({answered} of {len(answers)})':
            bool(answers) and answered == len(answers),
        f'clean exit (code {code})': code == 0,
    }
    mib = 2 ** 20
    print(f'soak: {args.frames} frames {args.width}x{args.height} rgb8 at {args.rate:g} Hz '
          f'({args.frames / args.rate:.0f} s of camera time) in {wall_s:.0f} s of wall time '
          f'(speed {args.speed:g}), sample_fps {args.sample_fps:g}, a question every '
          f'{args.question_every:g} s; node log {log_dir / "node.log"}')
    print(f'node: received {final.frames_received}, lost {final.frames_lost}, sampled '
          f'{final.frames_sampled}, ingested {final.frames_ingested}, dropped (queue) '
          f'{final.frames_dropped_queue}, in memory {final.frames_in_memory}, '
          f'ingest rate {final.ingest_rate:.2f} Hz')
    print(f'RSS after warm-up: {min(rss, default=0) / mib:.1f} .. {max(rss, default=0) / mib:.1f}'
          f' MiB ({len(rss)} samples); kv_bytes after warm-up: {min(kv, default=0)} .. '
          f'{max(kv, default=0)}')
    right = sum(a.success and a.text.strip() == expected for expected, a in now)
    print(f'questions: {len(answers)} asked, {answered} answered; "now" right {right} of '
          f'{len(now)}; mean answer time '
          f'{sum(a.total_time for _, a in answers) / max(1, len(answers)) * 1e3:.0f} ms')
    for name, ok in checks.items():
        print(f'  [{"PASS" if ok else "FAIL"}] {name}')
    return 0 if all(checks.values()) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code."""
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A watch firing on the sample tour, and a memory that survives a restart of the node.

Starts ``livevlm`` in its own process on the reference model with the sample tour's
settings (one model frame every 10 s of camera time, clips of one frame), sends the
``~/watch`` goal "Did you see <scene>?" about the present (window 0, hold 1) for the first
scene that comes into view after the start (``watched_scene``), and publishes the tour
(``ros2_livevlm.eval.sample``: 180 frames of 640 x 480 at 1 Hz camera time) on ``/image``.
Every event is printed with its camera time against the true start or end of that scene,
then the watch's cost per clip. Then the memory is saved with ``~/save_memory``, the node
is stopped and started again with that ``memory_file`` (loaded at configure),
``~/load_memory`` loads it once more for its timing, and "What did you see first?" is asked
before and after the restart. Exit code 0 when the watch fired in that scene and the
answers before and after the restart are the same.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import signal
import sys
import tempfile
import time
from typing import Any, Optional

from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from .client import LiveVLMClient
from .process import NodeProcess
from .status import to_time
from ..eval.sample import camera_frames
from ..eval.sample import plan_runs
from ..eval.sample import scene_spans
from ..eval.sample import Tour
from ..eval.sample import watch_question
from ..eval.sample import watched_scene
from ..reference.task import Run

RECALL = 'What did you see first?'


def node_parameters(tour: Tour, memory_file: Path) -> dict[str, Any]:
    """Return the node's parameters: the tour's sampling rate, clips of one frame."""
    return {'autostart': True, 'model_path': 'reference', 'sample_fps': tour.sample_fps,
            'frames_per_clip': 1, 'budget_tokens': 96, 'clip_timeout': 0.0,
            'max_new_tokens': 8, 'state_period': 0.5, 'memory_file': str(memory_file)}


def start(parameters: dict[str, Any], log: Path, client: LiveVLMClient) -> NodeProcess:
    """Start the node and wait until it publishes its state."""
    with client._lock:
        client.states.clear()
    node = NodeProcess(parameters, log)
    client.wait_for(lambda: client.state('image'), timeout=180.0)
    return node


def stream_tour(client: LiveVLMClient, tour: Tour, runs: list[Run]) -> float:
    """Publish the tour's ``runs`` on ``/image``; return the first frame's stamp, s."""
    publisher = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
    client.wait_for(lambda: client.state('image').reliability == 'reliable', timeout=30.0)
    client.wait_for(publisher.get_subscription_count, timeout=30.0)
    frames = list(camera_frames(tour, runs))
    start_s = frames[0][0] * 1e-9
    for stamp_ns, rgb in frames:
        message = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                        step=rgb.shape[1] * 3, data=rgb.tobytes())
        message.header.stamp, message.header.frame_id = to_time(stamp_ns * 1e-9), tour.frame_id
        publisher.publish(message)
        time.sleep(0.05)
    client.wait_for(lambda: client.state('image').frames_received == len(frames), 30.0)
    sampled = client.state('image').frames_sampled
    client.wait_for(lambda: client.state('image').frames_ingested >= sampled, 120.0)
    period = tour.frame_period_s
    shown = ', '.join(f'{r.scene} {r.start * period:.0f}-{r.end * period:.0f} s' for r in runs)
    print(f'demo: the tour: {shown}; {sampled} frames sampled')
    return start_s


def report_events(events: list[Any], scene: str, spans: list[tuple[float, float]],
                  start_s: float) -> bool:
    """Print each event against the scene's true start (yes) or end (no); True if it fired."""
    fired = False
    for event in events:
        at = event.header.stamp.sec + event.header.stamp.nanosec * 1e-9 - start_s
        edges = [begin if event.answer else end for begin, end in spans]
        passed = [at - edge for edge in edges if edge <= at + 1e-6]
        truth = (f'{scene} scene {"starts" if event.answer else "ends"} at '
                 f'{at - min(passed):.0f} s: delay {min(passed):+.0f} s' if passed else
                 'no scene boundary before it: a false event')
        print(f'  event: {"yes" if event.answer else "no"} (p_yes {event.p_yes:.2f}) at camera '
              f'time {at:.0f} s; {truth}; evaluation {event.evaluation_time * 1e3:.1f} ms')
        fired |= event.answer and bool(passed) and any(b <= at < e for b, e in spans)
    return fired


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Answer ``--help`` (the demo takes no options) before anything starts."""
    summary, details = __doc__.strip().split('\n\n', 1)
    parser = argparse.ArgumentParser(
        prog='python -m ros2_livevlm.ros.watch_demo', description=summary,
        epilog=details.replace('``', ''), formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(17 + os.getpid() % 80))
    folder = Path(tempfile.mkdtemp(prefix='livevlm_watch_demo.'))
    tour, memory_file = Tour(), folder / 'memory.safetensors'
    runs = plan_runs(tour)
    scene = watched_scene(runs)
    question = watch_question(scene)
    parameters = node_parameters(tour, memory_file)
    client = LiveVLMClient()
    node: Optional[NodeProcess] = None
    try:
        print('demo: starting the node (reference model) ...', flush=True)
        node = start(parameters, folder / 'node.log', client)
        events: list[Any] = []
        goal = client.send_watch(question, window=0.0, hold=1, on_event=events.append)
        print(f'demo: watching "{question}" (the present: short-term frames, hold 1)')
        start_s = stream_tour(client, tour, runs)
        client.cancel(goal)
        _, result = client.watch_result(goal)
        fired = report_events(events, scene, scene_spans(tour, runs, scene), start_s)
        state = client.state('image')
        clip_ms = (state.encode_latency + state.prefill_latency) * 1e3
        print(f'demo: the watch: {result.evaluations} evaluations, one per clip, '
              f'{result.mean_evaluation_time * 1e3:.1f} ms each (mean); the last clip took '
              f'{clip_ms:.1f} ms (encode + prefill)')
        before = client.query(RECALL)
        saved = client.save_memory()
        print(f'demo: ~/save_memory: {saved.file_size} bytes in {saved.save_time * 1e3:.1f} ms '
              f'({saved.path})' if saved.success else f'demo: save failed: {saved.error}')
        code = node.stop(signal.SIGINT)
        node = start(parameters, folder / 'node2.log', client)
        after = client.query(RECALL)
        loaded = client.load_memory()
        print(f'demo: restarted with memory_file; ~/load_memory: {loaded.file_size} bytes in '
              f'{loaded.load_time * 1e3:.1f} ms' if loaded.success else
              f'demo: load failed: {loaded.reason}: {loaded.error}')
        print(f'demo: "{RECALL}" before the restart: {before.text!r}, after: {after.text!r} '
              f'({after.frames_in_memory} frames in memory)')
        same = (before.success and after.success and before.text == after.text
                and list(before.evidence_start) == list(after.evidence_start))
        ok = fired and same and saved.success and loaded.success and code == 0
    except TimeoutError as err:
        print(f'demo: failed: {err} (node logs in {folder})', file=sys.stderr)
        return 1
    finally:
        client.close()
        code = node.stop() if node is not None else 1
    print(f'demo: node exited with code {code} (logs and memory file in {folder})')
    return 0 if ok and code == 0 else 1


if __name__ == '__main__':
    sys.exit(main())

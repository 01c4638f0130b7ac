# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A one-minute demo of the node: a camera tour of real photos, three questions answered.

Starts ``livevlm`` in its own process (autostart) on the reference model, publishes a
camera dwelling on a few scenes of ``ros2_livevlm/reference/scenes.py`` (real photos from
scikit-image, with pans, zooms and noise) as 640 x 480 ``sensor_msgs/Image`` on ``/image``
from a reliable publisher, as most camera drivers publish (the node's default QoS,
``auto``, follows it), at 1 Hz of camera time, then asks on ``/livevlm/ask`` with the answer
streamed token by token, and stops the node with SIGINT. The reference model is a tiny
model trained on those photos: a stand-in for a real LLaVA-OneVision checkpoint, which
the node's ``model_path`` parameter selects (``livevlm_node``, ``livevlm.launch.py``).
Exit code 0 when every question was answered and the node exited cleanly.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Optional

import numpy as np
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from .client import LiveVLMClient
from .process import NodeProcess
from .status import to_time
from ..reference.task import render_run


TOUR = (('cat', 4), ('rocket', 4), ('coffee', 4), ('astronaut', 4))
"""Scenes the camera dwells on, in order, with the seconds spent on each."""

QUESTIONS = (
    ('What did you see first?', 'cat'),
    ('Did you see the rocket?', 'yes'),
    ('What are you looking at now?', 'astronaut'),
)
NODE_PARAMETERS = {'autostart': True, 'frames_per_clip': 4, 'budget_tokens': 96,
                   'observation_tokens': 32, 'max_new_tokens': 8}


def tour_messages(start: float = 1000.0) -> list[Image]:
    """Return the tour as 640 x 480 rgb8 Images, one per second of camera time from ``start``."""
    rng = np.random.default_rng(0)
    frames = np.concatenate(
        [render_run(rng, scene, seconds, (480, 640)) for scene, seconds in TOUR]
    )
    messages = []
    for index, rgb in enumerate(frames):
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                    step=rgb.shape[1] * 3, data=rgb.tobytes())
        msg.header.stamp, msg.header.frame_id = to_time(start + index), 'demo_camera'
        messages.append(msg)
    return messages


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Answer ``--help`` (the demo takes no options) before anything starts."""
    summary, details = __doc__.strip().split('\n\n', 1)
    parser = argparse.ArgumentParser(
        prog='livevlm_demo', description=summary, epilog=details.replace('``', ''),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(17 + os.getpid() % 80))
    log = Path(tempfile.mkdtemp(prefix='livevlm_demo.')) / 'node.log'
    node = NodeProcess(NODE_PARAMETERS, log)
    client = LiveVLMClient()
    try:
        publisher = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
        print('demo: waiting for the node to load the reference model ...', flush=True)
        client.wait_for(lambda: client.state('image'), timeout=180.0)
        client.wait_for(lambda: client.state('image').reliability == 'reliable', timeout=30.0)
        client.wait_for(publisher.get_subscription_count, timeout=30.0)
        messages = tour_messages()
        for msg in messages:
            publisher.publish(msg)
            time.sleep(0.1)
        client.wait_for(lambda: client.state('image').frames_received == len(messages), 10.0)
        sampled = client.state('image').frames_sampled
        client.wait_for(lambda: client.state('image').frames_ingested >= sampled, 120.0)
        print(f'demo: the camera saw {" -> ".join(scene for scene, _ in TOUR)}; '
              f'{sampled} frames sampled into memory')
        right = 0
        for question, expected in QUESTIONS:
            print(f'Q: {question}\nA: ', end='', flush=True)
            goal = client.send_ask(
                question, on_feedback=lambda f: print(f.delta, end='', flush=True)
            )
            _, answer = client.result(goal)
            if not answer.success:
                print(f'\ndemo: no answer: {answer.error}', file=sys.stderr)
                return 1
            right += answer.text.strip() == expected
            spans = ', '.join(f'{a.sec + a.nanosec * 1e-9:.0f}-{b.sec + b.nanosec * 1e-9:.0f} s'
                              for a, b in zip(answer.evidence_start, answer.evidence_end))
            print(f'   (expected {expected}; evidence {spans}; first token after '
                  f'{answer.ttft * 1e3:.1f} ms; {answer.tokens_attended} tokens attended)')
        print(f'demo: {right} of {len(QUESTIONS)} answers right')
    except TimeoutError as err:
        print(f'demo: failed: {err} (node log: {log})', file=sys.stderr)
        return 1
    finally:
        client.close()
        code = node.stop()
    print(f'demo: node exited with code {code} (its log: {log})')
    return code


if __name__ == '__main__':
    sys.exit(main())

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The fresh-machine demo: the node on the tiny model answers a question about photos.

Starts ``livevlm`` in its own process (autostart), publishes real photos (scikit-image's
``skimage.data``) as ``sensor_msgs/Image`` on ``/image`` with sensor-data QoS, waits until
they are in memory, asks on ``/livevlm/ask`` with the answer streamed token by token, then
stops the node with SIGINT. The tiny model has random weights, so its text is noise; with
``model_path`` set to a real LLaVA-OneVision checkpoint the same path answers for real.
Exit code 0 when the question was answered and the node exited cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Optional

import numpy as np
from PIL import Image as PILImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from skimage import data as photos

from .client import LiveVLMClient
from .status import to_time

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry')
QUESTION = 'What did the camera see?'
NODE_PARAMETERS = ('autostart:=true', 'model_path:=tiny', 'frames_per_clip:=4',
                   'sample_fps:=2.0', 'budget_tokens:=4000', 'max_new_tokens:=24')


def photo(name: str, width: int = 320) -> np.ndarray:
    """Return a ``skimage.data`` photo resized to ``width`` pixels: RGB uint8 ``[H, W, 3]``."""
    image = PILImage.fromarray(getattr(photos, name)()[:, :, :3])
    height = round(image.height * width / image.width)
    return np.asarray(image.resize((width, height), PILImage.BILINEAR))


def photo_message(name: str, stamp: float) -> Image:
    """Return a 320 pixel wide photo as an rgb8 Image stamped ``stamp`` (s)."""
    rgb = photo(name)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                step=rgb.shape[1] * 3)
    msg.header.stamp, msg.header.frame_id = to_time(stamp), 'demo_camera'
    msg.data = rgb.tobytes()
    return msg


def main(argv: Optional[list[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(17 + os.getpid() % 80))
    args = [arg for p in NODE_PARAMETERS for arg in ('-p', p)]
    node = subprocess.Popen([sys.executable, '-m', 'ros2_livevlm.ros.node', '--ros-args', *args])
    client = LiveVLMClient()
    try:
        publisher = client.node.create_publisher(Image, '/image', qos_profile_sensor_data)
        print('demo: waiting for the node to load the tiny model ...', flush=True)
        client.wait_for(lambda: client.state('image'), timeout=180.0)
        client.wait_for(publisher.get_subscription_count, timeout=30.0)
        frames = PHOTOS * 2  # 12 frames, 0.5 s apart in camera time
        for i, name in enumerate(frames):
            publisher.publish(photo_message(name, 1000.0 + 0.5 * i))
            time.sleep(0.25)
        client.wait_for(lambda: client.state('image').frames_received == len(frames), 10.0)
        sampled = client.state('image').frames_sampled
        client.wait_for(lambda: client.state('image').frames_ingested >= sampled, 120.0)
        print(f'demo: {sampled} photos sampled into memory; asking: {QUESTION!r}\n  ', end='')
        goal = client.send_ask(QUESTION, on_feedback=lambda f: print(f.delta, end='', flush=True))
        status, answer = client.result(goal)
        print()
        if not answer.success:
            print(f'demo: no answer: {answer.error}', file=sys.stderr)
            return 1
        spans = ', '.join(f'{a.sec + a.nanosec * 1e-9:.1f}-{b.sec + b.nanosec * 1e-9:.1f} s'
                          for a, b in zip(answer.evidence_start, answer.evidence_end))
        print(f'demo: answered from {answer.frames_in_memory} frames in memory '
              f'({answer.tokens_generated} tokens, first after {answer.ttft:.2f} s, '
              f'{answer.total_time:.2f} s in all); evidence: {spans}')
        print('demo: (the tiny model has random weights, so the text is noise)')
    except TimeoutError as err:
        print(f'demo: failed: {err}', file=sys.stderr)
        return 1
    finally:
        client.close()
        node.send_signal(signal.SIGINT)
        code = node.wait(timeout=60)
    print(f'demo: node exited with code {code}')
    return code


if __name__ == '__main__':
    sys.exit(main())

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A synthetic camera: real photos at camera size, published as ``sensor_msgs/Image``.

    python -m ros2_livevlm.ros.camera [--topic /image] [--width 640] [--height 480]
        [--rate 30] [--frames 0] [--reliability reliable|best_effort] [--speed 1]

Frames are the scenes of :mod:`ros2_livevlm.reference.scenes` (pans, zooms, noise, as the
reference task renders them) at the given size, rgb8, ``frame_id`` ``synthetic_camera``,
``header.stamp`` advancing by ``1 / rate`` s of camera time per frame from ``--start``;
``--speed`` publishes faster (or slower) than real time in wall time (a node samples by
header.stamp, so it sees the same camera). A few frames per scene are rendered up front
and cycled, so even 1920 x 1080 at 30 Hz costs little CPU. The soak test and the node
tests use it; users can point a node at it to try a setup without a camera. A best-effort
camera of large frames needs ``config/fastdds_large_frames.xml`` in its own environment
(see :mod:`ros2_livevlm.ros.qos`).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from .qos import RELIABILITY
from .status import to_time
from ..reference.task import render_run

SCENES = ('cat', 'rocket', 'coffee', 'astronaut')
"""Scenes the camera cycles through by default."""


class SyntheticCamera:
    """
    A camera publisher on ``node``: frame ``index`` shows scene ``index // dwell`` (cycling).

    Args:
        node: the node that owns the publisher.
        topic: image topic.
        size: ``(height, width)`` in pixels.
        rate_hz: camera frame rate, Hz (stamps advance by ``1 / rate_hz``).
        reliability: ``reliable`` or ``best_effort``.
        dwell_frames: frames per scene before the next.
        scenes: scene names of :mod:`ros2_livevlm.reference.scenes`.
        views: distinct frames rendered per scene (then cycled).
        start_s: ``header.stamp`` of frame 0, s.
    """

    def __init__(self, node: Node, topic: str, *, size: tuple[int, int] = (480, 640),
                 rate_hz: float = 30.0, reliability: str = 'reliable', dwell_frames: int = 150,
                 scenes: Sequence[str] = SCENES, views: int = 4, start_s: float = 1000.0) -> None:
        if rate_hz <= 0 or dwell_frames < 1 or views < 1:
            raise ValueError('rate_hz must be > 0, dwell_frames and views >= 1')
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=RELIABILITY[reliability])
        self.publisher = node.create_publisher(Image, topic, qos)
        self.rate_hz, self.dwell_frames, self.start_s = rate_hz, dwell_frames, start_s
        self.scenes = tuple(scenes)
        rng = np.random.default_rng(0)
        self._views = [render_run(rng, scene, views, size) for scene in self.scenes]

    def scene(self, index: int) -> str:
        """Return the scene frame ``index`` shows."""
        return self.scenes[(index // self.dwell_frames) % len(self.scenes)]

    def stamp(self, index: int) -> float:
        """``header.stamp`` of frame ``index``, s."""
        return self.start_s + index / self.rate_hz

    def message(self, index: int) -> Image:
        """Build frame ``index`` (rgb8)."""
        views = self._views[(index // self.dwell_frames) % len(self.scenes)]
        rgb = views[index % len(views)]
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                    step=rgb.shape[1] * 3, data=rgb.tobytes())
        msg.header.stamp, msg.header.frame_id = to_time(self.stamp(index)), 'synthetic_camera'
        return msg

    def publish(self, index: int) -> None:
        """Publish frame ``index``."""
        self.publisher.publish(self.message(index))


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m ros2_livevlm.ros.camera',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--topic', default='/image', help='image topic (default: %(default)s)')
    parser.add_argument('--width', type=int, default=640, help='pixels (default: %(default)s)')
    parser.add_argument('--height', type=int, default=480, help='pixels (default: %(default)s)')
    parser.add_argument('--rate', type=float, default=30.0,
                        help='camera rate, Hz of header.stamp time (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=0,
                        help='frames to publish, 0: until Ctrl-C (default: %(default)s)')
    parser.add_argument('--reliability', choices=sorted(RELIABILITY), default='reliable',
                        help='publisher QoS (default: %(default)s)')
    parser.add_argument('--speed', type=float, default=1.0,
                        help='wall-time speed, x real time (default: %(default)s)')
    parser.add_argument('--start', type=float, default=1000.0,
                        help='header.stamp of the first frame, s (default: %(default)s)')
    parser.add_argument('--wait-subscribers', type=float, default=30.0,
                        help='wait this long for a subscriber before publishing, s '
                        '(default: %(default)s)')
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.speed <= 0 or min(args.width, args.height) < 8:
        parser.error('--rate and --speed must be > 0, --width and --height >= 8')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Publish until ``--frames`` are out or Ctrl-C; returns the exit code."""
    args = parse_args(argv)
    rclpy.init()
    node = rclpy.create_node('synthetic_camera')
    try:
        camera = SyntheticCamera(node, args.topic, size=(args.height, args.width),
                                 rate_hz=args.rate, reliability=args.reliability,
                                 start_s=args.start)
        deadline = time.monotonic() + args.wait_subscribers
        while not camera.publisher.get_subscription_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        period, start, index = 1.0 / (args.rate * args.speed), time.monotonic(), 0
        while not args.frames or index < args.frames:
            camera.publish(index)
            index += 1
            time.sleep(max(0.0, start + index * period - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

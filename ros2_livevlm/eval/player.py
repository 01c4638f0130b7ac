# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A bag player on ``rosbags`` + rclpy: camera messages and ``/clock``, as ``ros2 bag play --clock``.

The recorded CDR bytes are published as they are (no decoding), in log-time order, paced
at ``rate`` times the recorded speed; ``/clock`` (``rosgraph_msgs/Clock``) carries the
bag time, so nodes running with ``use_sim_time`` see the recorded clock. Playback can be
paused at any bag time (:meth:`BagPlayer.play_until`), which is how the evaluation asks a
question "at" a time: the clock stands still until playback resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import importlib
from pathlib import Path
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from .bag import CameraMessage
from .bag import CameraTopic
from .bag import read_camera

CLOCK_PERIOD_S = 0.05
"""Longest wall time between two ``/clock`` messages while playing, s (20 Hz, as ros2 bag play)."""


def message_class(msgtype: str) -> type:
    """Return the rclpy message class of a rosbag2 type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def to_time_msg(ns: int) -> Any:
    """``builtin_interfaces/Time`` of a bag time in ns."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


class BagPlayer:
    """
    Publishes one camera topic of a bag and ``/clock`` from ``node``.

    Args:
        node: rclpy node that owns the publishers (any context; it need not spin).
        bag: rosbag2 path.
        camera: the camera topic to play.
        start_ns: bag start (earliest log time), ns: the clock starts here.
        topic: publish the camera under this name (default: its name in the bag).
        rate: playback speed, x recorded (> 0).
        depth: history depth of the reliable camera publisher.
        on_message: called with each camera message right after it is published.
        throttle: called before each camera message is published; it may block (flow
            control: wait until the subscriber has taken what was sent).
    """

    def __init__(
        self,
        node: Node,
        bag: str | Path,
        camera: CameraTopic,
        start_ns: int,
        *,
        topic: str | None = None,
        rate: float = 1.0,
        depth: int = 100,
        on_message: Callable[[CameraMessage], None] | None = None,
        throttle: Callable[[], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE
        )
        self.camera = camera
        self.rate = rate
        self.published = 0
        self.clock_ns = start_ns
        self._publisher = node.create_publisher(
            message_class(camera.msgtype), topic or camera.topic, qos)
        self._clock = node.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        self._on_message = on_message
        self._throttle = throttle
        self._messages: Iterator[CameraMessage] = read_camera(bag, camera.topic)
        self._next: CameraMessage | None = next(self._messages, None)
        self._anchor = (time.monotonic(), start_ns)

    @property
    def finished(self) -> bool:
        """Tell whether every message has been published."""
        return self._next is None

    def subscribers(self) -> int:
        """Subscriptions matched to the camera publisher."""
        return self._publisher.get_subscription_count()

    def publish_clock(self, ns: int) -> None:
        """Publish ``/clock`` = ``ns`` (bag time, never backwards)."""
        self.clock_ns = max(self.clock_ns, int(ns))
        self._clock.publish(Clock(clock=to_time_msg(self.clock_ns)))

    def play_until(self, until_ns: int | None) -> None:
        """
        Publish every message logged at or before ``until_ns`` (None: to the end), paced.

        The clock advances with the messages and at least every :data:`CLOCK_PERIOD_S` of
        wall time in between; it ends at ``until_ns`` (or the last message) and stays
        there until the next call, which resumes pacing from that point.
        """
        self._anchor = (time.monotonic(), self.clock_ns)
        while self._next is not None and (until_ns is None or self._next.log_ns <= until_ns):
            self._advance_to(self._next.log_ns)
            message = self._next
            if self._throttle is not None:
                self._throttle()
            self._publisher.publish(message.raw)
            self.published += 1
            if self._on_message is not None:
                self._on_message(message)
            self._next = next(self._messages, None)
        if until_ns is not None:
            self._advance_to(until_ns)

    def _advance_to(self, target_ns: int) -> None:
        """Sleep until bag time ``target_ns`` is due at ``rate``; publish the clock meanwhile."""
        wall0, bag0 = self._anchor
        while True:
            due = wall0 + (target_ns - bag0) * 1e-9 / self.rate
            now = time.monotonic()
            if now >= due:
                break
            time.sleep(min(CLOCK_PERIOD_S, due - now))
            self.publish_clock(
                min(target_ns, bag0 + int((time.monotonic() - wall0) * self.rate * 1e9))
            )
        self.publish_clock(target_ns)

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
One camera topic's subscription: QoS chosen from its publishers, and its transport health.

:class:`CameraSubscription` creates the subscription with the reliability
:func:`~ros2_livevlm.ros.qos.decide_reliability` chooses, re-decides on :meth:`refresh`
(the node calls it every :data:`REFRESH_PERIOD_S`) and recreates the subscription when the
choice changes. It counts what the middleware reports (incompatible QoS, messages lost in
transport) and when frames last arrived, so :meth:`transport` can tell a camera that
publishes into the void from one that is silent (see ``status.transport_problem``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import time
from typing import Any
from typing import Callable
from typing import Optional
import warnings

from rclpy.node import Node
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image

from .qos import decide_reliability
from .qos import RELIABILITY
from .qos import reliability_name

with warnings.catch_warnings():  # the Humble module; Iron and later keep it as an alias
    warnings.simplefilter('ignore', UserWarning)
    from rclpy.qos_event import SubscriptionEventCallbacks

REFRESH_PERIOD_S = 1.0
"""How often the node re-reads the publishers of its camera topics (steady clock), s."""

STALL_S = 5.0
"""Publishers but no frame for this long, or frames lost within it: a transport problem, s."""


@dataclass(frozen=True)
class TransportState:
    """
    What one camera topic delivers now.

    Attributes:
        topic: resolved topic name.
        reliability: the subscription's, ``best_effort`` or ``reliable``.
        publishers: publishers on the topic.
        incompatible: publishers seen offering incompatible QoS (since the subscription).
        lost: messages the middleware reported lost (since start).
        lost_recent: of those, lost in the last :data:`STALL_S`.
        silent_s: seconds with publishers but no frame (None: no publisher).
    """

    topic: str
    reliability: str
    publishers: int
    incompatible: int
    lost: int
    lost_recent: int
    silent_s: Optional[float]


class CameraSubscription:
    """
    The subscription of one camera (``sensor_msgs/Image`` or ``CompressedImage``).

    Callbacks run in the node's default (mutually exclusive) callback group, so
    :meth:`refresh` never recreates the subscription under a running message callback.

    Args:
        node: the node that owns it.
        name: topic name as given (relative names resolve in the node namespace).
        compressed: subscribe ``CompressedImage`` instead of ``Image``.
        setting: ``auto``, ``best_effort`` or ``reliable``.
        depth: history depth (keep last), messages.
        on_message: called with each message.
    """

    def __init__(self, node: Node, name: str, *, compressed: bool, setting: str, depth: int,
                 on_message: Callable[[Any], None]) -> None:
        self._node = node
        self._name = name
        self._msg_type = CompressedImage if compressed else Image
        self._setting = setting
        self._depth = depth
        self._on_message = on_message
        self.reliability = RELIABILITY.get(setting, ReliabilityPolicy.BEST_EFFORT)
        self.incompatible = 0
        self.lost = 0
        self._lost_at: deque[tuple[float, int]] = deque()
        self._last_arrival: Optional[float] = None
        self._publishers = 0
        self._publishers_since: Optional[float] = None
        self._subscription = self._create()
        self.topic: str = self._subscription.topic_name
        self.refresh()

    def _create(self) -> Any:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._depth,
                         reliability=self.reliability)
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible,
                                            message_lost=self._on_lost)
        return self._node.create_subscription(self._msg_type, self._name, self._on_frame, qos,
                                              event_callbacks=events)

    def _on_frame(self, msg: Any) -> None:
        self._last_arrival = time.monotonic()
        self._on_message(msg)

    def _on_incompatible(self, event: Any) -> None:
        self.incompatible = event.total_count

    def _on_lost(self, event: Any) -> None:
        self.lost += event.total_count_change
        self._lost_at.append((time.monotonic(), event.total_count_change))

    def refresh(self) -> bool:
        """Re-read the publishers; recreate the subscription if ``auto`` now chooses other QoS."""
        publishers = self._node.get_publishers_info_by_topic(self.topic)
        now = time.monotonic()
        if publishers and not self._publishers:
            self._publishers_since = now
        self._publishers = len(publishers)
        wanted = decide_reliability(
            self._setting, [p.qos_profile.reliability for p in publishers], self.reliability)
        if wanted == self.reliability:
            return False
        offered = sorted({reliability_name(p.qos_profile.reliability) for p in publishers})
        self._node.get_logger().info(
            f'camera {self._name}: publishers on {self.topic} are {", ".join(offered)}; '
            f'subscribing {reliability_name(wanted)} (qos_reliability auto)')
        self._node.destroy_subscription(self._subscription)
        self.reliability, self.incompatible = wanted, 0
        self._subscription = self._create()
        self._publishers_since = now  # the new subscription has to match again
        return True

    def transport(self) -> TransportState:
        """Return what the topic delivers now."""
        now = time.monotonic()
        while self._lost_at and self._lost_at[0][0] < now - STALL_S:
            self._lost_at.popleft()
        silent = None
        if self._publishers and self._publishers_since is not None:
            since = max(self._publishers_since, self._last_arrival or self._publishers_since)
            silent = now - since
        return TransportState(
            topic=self.topic, reliability=reliability_name(self.reliability),
            publishers=self._publishers, incompatible=self.incompatible, lost=self.lost,
            lost_recent=sum(count for _, count in self._lost_at), silent_s=silent)

    def destroy(self) -> None:
        """Destroy the subscription (a message callback under way still completes)."""
        self._node.destroy_subscription(self._subscription)

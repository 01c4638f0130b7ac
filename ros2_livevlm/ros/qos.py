# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
QoS of the node: camera reliability chosen from the publishers, requests never dropped.

Cameras (``qos_reliability``): ``auto`` (the default) matches each topic's publishers:
reliable when every publisher is reliable (most camera drivers; Fast DDS then delivers
frames of any size), best-effort as soon as one is best-effort (a reliable subscription
would not match it), unchanged while there is none. The node re-decides when the
publishers change (within :data:`~.subscription.REFRESH_PERIOD_S`) and recreates the
subscription; frames sent before the new one has matched are not delivered to it, so a
camera loses its first frames at the switch (set ``qos_reliability`` explicitly where
those matter). The rmw's own ``BEST_AVAILABLE``
(Iron and later, not Humble) is not used: it decides once, at creation, and picks
reliable while no publisher is known, so a best-effort camera started after the node
would never match.

Large frames on a best-effort link: Fast DDS (the default rmw) sends a sample bigger than
its shared-memory segment (512 KB by default) in fragments that overflow the segment, and
a best-effort writer never resends them: frames of 640 x 480 rgb8 and up are lost between
processes (measured: 0 of 10). The cure is on the publisher's side: the profile shipped
in ``config/fastdds_large_frames.xml`` (:func:`large_frames_profile`) gives the camera
process a 16 MiB segment. The node's own side needs nothing.

Requests: the node's services and action services keep every request and response
(:data:`REQUEST_QOS`, keep-all, reliable), so a burst larger than the default depth of 10
is not overwritten before the node takes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy

RELIABILITY = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
               'reliable': ReliabilityPolicy.RELIABLE}
"""Explicit ``qos_reliability`` values and their policies."""

QOS_RELIABILITY = ('auto', *RELIABILITY)
"""Accepted values of the ``qos_reliability`` parameter."""

REQUEST_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of the node's services and action services, and of the package's clients."""

LARGE_FRAMES_PROFILE = 'fastdds_large_frames.xml'
"""The Fast DDS profile (under ``config/``) for processes that publish large best-effort frames."""


def reliability_name(policy: ReliabilityPolicy) -> str:
    """Return ``best_effort`` or ``reliable`` (the parameter's words) for a policy."""
    return 'reliable' if policy == ReliabilityPolicy.RELIABLE else 'best_effort'


def decide_reliability(setting: str, publishers: Sequence[ReliabilityPolicy],
                       current: ReliabilityPolicy) -> ReliabilityPolicy:
    """
    Choose a camera subscription's reliability.

    Args:
        setting: ``auto``, ``best_effort`` or ``reliable`` (parameter ``qos_reliability``).
        publishers: the reliability each publisher of the topic offers.
        current: the subscription's reliability now (kept by ``auto`` without publishers).

    Returns:
        The explicit choice; for ``auto``: reliable if every publisher is reliable,
        best-effort if one is not, ``current`` if there is none.
    """
    if setting != 'auto':
        return RELIABILITY[setting]
    if not publishers:
        return current
    if all(p == ReliabilityPolicy.RELIABLE for p in publishers):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def large_frames_profile() -> Path:
    """
    Path of ``config/fastdds_large_frames.xml``: the source tree's, else the installed one.

    Raises:
        FileNotFoundError: neither exists (a broken install).
    """
    source = Path(__file__).resolve().parents[2] / 'config' / LARGE_FRAMES_PROFILE
    if source.is_file():
        return source
    from ament_index_python.packages import get_package_share_directory
    installed = Path(get_package_share_directory('ros2_livevlm')) / 'config' / LARGE_FRAMES_PROFILE
    if not installed.is_file():
        raise FileNotFoundError(f'{LARGE_FRAMES_PROFILE} is missing from {installed.parent}')
    return installed


def profile_variable() -> str:
    """Return the environment variable that points Fast DDS at an XML profile on this distro."""
    if os.environ.get('ROS_DISTRO') in ('humble', 'jazzy'):  # Fast DDS 2.x
        return 'FASTRTPS_DEFAULT_PROFILES_FILE'
    return 'FASTDDS_DEFAULT_PROFILES_FILE'  # Fast DDS 3 (Kilted and later)


def large_frames_environment() -> dict[str, str]:
    """Return the environment a camera process needs to send large best-effort frames."""
    return {profile_variable(): str(large_frames_profile())}


def large_frames_fix() -> str:
    """Say why best-effort frames are lost and what to set, on which process."""
    try:
        where = str(large_frames_profile())
    except FileNotFoundError:
        where = f'<share>/ros2_livevlm/config/{LARGE_FRAMES_PROFILE}'
    return ('a best-effort publisher loses frames larger than about 0.5 MB on Fast DDS (its '
            'shared-memory segment is 512 KB); start the camera process with '
            f'FASTDDS_DEFAULT_PROFILES_FILE={where} (FASTRTPS_DEFAULT_PROFILES_FILE on Humble '
            'and Jazzy), or make the camera publish reliable (qos_reliability auto follows '
            'it), or subscribe to its compressed topic')

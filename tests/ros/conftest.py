# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Fixtures for the node tests: real rclpy over DDS, the node in its own process.

This test process and the nodes it starts share one ROS_DOMAIN_ID picked from the process
id, so parallel test runs do not see each other; discovery stays on this machine.
"""

from __future__ import annotations

import os
from typing import Any
from typing import Iterator

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
import pytest
from ros2_livevlm.ros.client import LiveVLMClient
from ros2_livevlm.ros.process import NodeProcess

# Read by rclpy.init (not at import): this process and the nodes it starts share it.
os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


@pytest.fixture(scope='module')
def start_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Yield a function that starts node processes; any still running are killed after."""
    started: list[NodeProcess] = []

    def start(env: dict[str, str] | None = None, program: tuple[str, ...] | None = None,
              **parameters: Any) -> NodeProcess:
        parameters.setdefault('model_path', 'tiny')  # random weights: answers run long
        log = tmp_path_factory.mktemp('node') / 'node.log'
        env = {'ROS2_LIVEVLM_CACHE': str(log.parent / 'cache'), **(env or {})}
        node = NodeProcess(parameters, log, env=env, **({'program': program} if program else {}))
        started.append(node)
        return node

    yield start
    for node in started:
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait()


@pytest.fixture(scope='module')
def client() -> Iterator[LiveVLMClient]:
    """Yield a client of ``/livevlm`` in this process, on the test domain."""
    livevlm = LiveVLMClient('/livevlm')
    yield livevlm
    livevlm.close()


@pytest.fixture(scope='module')
def diagnostics(client: LiveVLMClient) -> dict[str, DiagnosticStatus]:
    """Latest DiagnosticStatus from /diagnostics by subject: ``node`` or ``camera <name>``."""
    latest: dict[str, DiagnosticStatus] = {}

    def on_array(array: DiagnosticArray) -> None:
        for status in array.status:
            latest[status.name.split(': ', 1)[-1]] = status
    client.node.create_subscription(DiagnosticArray, '/diagnostics', on_array, 10)
    return latest

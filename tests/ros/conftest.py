# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Fixtures for the node tests: real rclpy over DDS, the node in its own process.

This test process and the nodes it starts share one ROS_DOMAIN_ID picked from the process
id, so parallel test runs do not see each other; discovery stays on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Iterator

import pytest
from ros2_livevlm.ros.client import LiveVLMClient

# Read by rclpy.init (not at import): this process and the nodes it starts share it.
os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


class NodeProcess:
    """``python -m ros2_livevlm.ros.node`` with parameters, its output in a log file."""

    def __init__(self, log_path: Path, parameters: dict[str, str]) -> None:
        args = [arg for name, value in parameters.items() for arg in ('-p', f'{name}:={value}')]
        self.log_path = log_path
        self._log = open(log_path, 'w')
        env = dict(os.environ, ROS2_LIVEVLM_CACHE=str(log_path.parent / 'cache'))
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'ros2_livevlm.ros.node', '--ros-args', *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        """Everything the node printed so far."""
        return self.log_path.read_text()

    def stop(self, signum: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``signum`` and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()


@pytest.fixture(scope='module')
def start_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Yield a function that starts node processes; any still running are killed after."""
    started: list[NodeProcess] = []

    def start(**parameters: str) -> NodeProcess:
        parameters.setdefault('model_path', 'tiny')  # random weights: answers run long
        node = NodeProcess(tmp_path_factory.mktemp('node') / 'node.log', parameters)
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

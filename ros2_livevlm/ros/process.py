# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm node in its own process: what the demo, the live evaluation and the tests start.

``python -m ros2_livevlm.ros.node`` with its parameters in a YAML file beside its log (no
rclpy in this module: it only starts and stops a process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Any
from typing import Optional
from typing import Sequence


class NodeProcessError(RuntimeError):
    """The node process could not be started, or it exited."""


class NodeProcess:
    """
    Start the node with ``parameters`` (typed values: bool, int, float, str, lists).

    The parameters are written to ``<log>.params.yaml`` (``/**: ros__parameters:``) and
    passed with ``--params-file``; stdout and stderr go to ``log_path``.

    Args:
        parameters: node parameters by name.
        log_path: the node's log file (its parent is created).
        name: node name (``__node`` remap; default ``livevlm``).
        env: extra environment variables for the node process.
        program: what Python runs (default the node module; a script that calls
            :func:`ros2_livevlm.ros.node.main` with its own node works alike).

    Raises:
        NodeProcessError: the process could not be started.
    """

    def __init__(self, parameters: dict[str, Any], log_path: Path, *, name: str = 'livevlm',
                 env: Optional[dict[str, str]] = None,
                 program: Sequence[str] = ('-m', 'ros2_livevlm.ros.node')) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        params_path = log_path.with_suffix('.params.yaml')
        document = {'/**': {'ros__parameters': parameters}}
        params_path.write_text(json.dumps(document, indent=1) + '\n')  # YAML 1.2 is JSON
        self._log = open(log_path, 'w')
        command = [sys.executable, *program, '--ros-args',
                   '-r', f'__node:={name}', '--params-file', str(params_path)]
        try:
            self.process = subprocess.Popen(  # faulthandler: SIGABRT dumps every thread
                command, stdout=self._log, stderr=subprocess.STDOUT,
                env={**os.environ, 'PYTHONFAULTHANDLER': '1', **(env or {})})
        except OSError as err:
            self._log.close()
            raise NodeProcessError(f'cannot start the node: {err}') from err

    def log(self) -> str:
        """Return everything the node printed so far."""
        return self.log_path.read_text()

    def check_alive(self) -> None:
        """Raise :class:`NodeProcessError` with the tail of the node's log if it has exited."""
        if self.process.poll() is not None:
            tail = ''.join(self.log().splitlines(keepends=True)[-20:])
            raise NodeProcessError(f'the node exited with code {self.process.returncode}; '
                                   f'its log ({self.log_path}):\n{tail}')

    def stop(self, signum: int = signal.SIGINT, timeout_s: float = 60.0) -> int:
        """
        Send ``signum`` and wait; return the exit code.

        A node still running after ``timeout_s`` s gets SIGABRT, which makes Python's
        faulthandler write every thread's stack to the log (the reason it hung), and is
        killed 5 s later if that did not end it.
        """
        try:
            if self.process.poll() is None:
                self.process.send_signal(signum)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)
            try:
                return self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()
        finally:
            self._log.close()

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Unexpected exceptions, contained and reported: counted, each distinct one logged once.

The worker reports engine failures to an :class:`ErrorLog`; the node wraps every callback
with :func:`guarded`, so no exception ends the executor.
"""

from __future__ import annotations

import functools
import threading
import traceback
from typing import Any, Callable

MAX_DISTINCT = 100
"""Distinct errors remembered (to log each once); later new ones are logged as repeats."""


class ErrorLog:
    """
    Count exceptions and log them, each distinct message once with its traceback.

    Repeats are logged as one line, throttled to every 10 s. Thread-safe.

    Args:
        logger: an rclpy logger.
    """

    def __init__(self, logger: Any) -> None:
        self.count = 0
        self.last = ''
        self._log = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def report(self, message: str, err: BaseException) -> None:
        """Count ``err`` (described by ``message``) and log it."""
        with self._lock:
            self.count += 1
            self.last = message
            first = message not in self._seen
            if first and len(self._seen) < MAX_DISTINCT:
                self._seen.add(message)
        if first:
            trace = ''.join(traceback.format_exception(type(err), err, err.__traceback__))
            self._log.error(f'{message}\n{trace.rstrip()}')
        else:
            self._log.error(f'{message} (again; {self.count} errors)',
                            throttle_duration_sec=10.0)


def guarded(errors: ErrorLog, name: str, callback: Callable[..., Any],
            fallback: Callable[..., Any] = lambda *args: None) -> Callable[..., Any]:
    """
    Wrap a callback: an exception is reported to ``errors`` and ``fallback(*args)`` returned.

    The wrapper keeps the callback's signature (``functools.wraps``), which rclpy inspects
    (a timer callback may take a TimerInfo on Kilted).
    """
    @functools.wraps(callback)
    def run(*args: Any) -> Any:
        try:
            return callback(*args)
        except Exception as err:  # noqa: B902 - no callback may end the executor
            errors.report(f'unexpected error in {name}: {type(err).__name__}: {err}', err)
            return fallback(*args)
    return run

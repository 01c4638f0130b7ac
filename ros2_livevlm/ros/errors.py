# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Unexpected exceptions, contained and reported: counted, each distinct one logged once.

The worker reports engine failures to an :class:`ErrorLog`; the node wraps every callback
with :func:`guarded`, so no exception ends the executor. :class:`InFlight` lets a server
that closes wait for its callbacks still running (their responses go out first).
"""

from __future__ import annotations

from contextlib import contextmanager
import functools
import threading
import traceback
from typing import Any, Callable, Iterator

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


class InFlight:
    """Count the callbacks under way (request, goal) so a server that closes can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._done = threading.Condition()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the callback running in this ``with`` block."""
        with self._done:
            self._count += 1
        try:
            yield
        finally:
            with self._done:
                self._count -= 1
                self._done.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until no callback is under way (at most ``timeout_s`` s); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._count == 0, timeout=timeout_s)

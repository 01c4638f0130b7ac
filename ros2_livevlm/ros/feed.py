# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
One camera's feed: the sampler (by header.stamp), the bounded frame queue and its counters.

The subscription callback samples and pushes; the worker pops. Newest frames win: a push
into a full queue drops the oldest queued frame, and a question takes the newest queued
frame and drops the older ones (:meth:`CameraFeed.take_newest`), so an answer sees the
newest sampled frame even when the worker fell behind. Every drop is counted.

Time going backwards (a looped bag, a restarted clock): a stamp earlier than the newest
sampled stamp by more than one sample period resets the feed (queued frames are discarded,
counters restart, ``time_jumps`` is counted) and asks the worker to reset the memory;
smaller reorders are skipped by the sampler, so the engine only ever sees rising stamps.
No rclpy here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
from typing import Optional

import numpy as np

RATE_WINDOW_S = 5.0
"""Span of the sliding windows behind input and ingest rates, s."""

STAMP_WINDOW = 32
"""Messages whose header.stamps give the camera's own rate (:meth:`CameraFeed.camera_rate`)."""


@dataclass
class Frame:
    """A sampled frame: RGB uint8 ``[H, W, 3]``, its camera stamp (s) and frame_id."""

    rgb: np.ndarray
    stamp: float
    frame_id: str


@dataclass
class FeedCounters:
    """Per-camera counters since the last reset or time jump (MemoryState fields)."""

    frames_received: int = 0
    frames_sampled: int = 0
    frames_dropped_invalid: int = 0
    frames_dropped_queue: int = 0


class CameraFeed:
    """
    One camera's sampler (by header.stamp), bounded queue (newest wins) and counters.

    Thread-safe.

    Args:
        name: camera name (as listed in the ``cameras`` parameter).
        sample_fps: frames kept per second of camera time, Hz.
        queue_size: frames waiting at most; a push into a full queue drops the oldest.
    """

    def __init__(self, name: str, sample_fps: float, queue_size: int) -> None:
        self.name = name
        self.period = 1.0 / sample_fps
        self.counters = FeedCounters()
        self.time_jumps = 0
        self.frame_id = ''
        self.newest_stamp: Optional[float] = None
        self.reset_pending = False
        self.answer_latency = 0.0
        self._lock = threading.Lock()
        self._queue: deque[Frame] = deque(maxlen=queue_size)
        self._next_due: Optional[float] = None
        self._arrivals: deque[float] = deque()
        self._ingests: deque[float] = deque()
        self._stamps: deque[float] = deque(maxlen=STAMP_WINDOW)

    @property
    def queued(self) -> int:
        """Frames waiting for the worker."""
        with self._lock:
            return len(self._queue)

    def receive(self, stamp: float, now: float) -> tuple[bool, bool]:
        """
        Count a message and decide whether its frame is due.

        Args:
            stamp: header.stamp, s.
            now: node clock, s (for the input rate).

        Returns:
            ``(due, time_jump)``: convert and :meth:`push` the frame when due; on a time
            jump the queue has been cleared and the memory reset is pending.
        """
        with self._lock:
            _append_window(self._arrivals, now)
            self._stamps.append(stamp)
            jump = self.newest_stamp is not None and stamp < self.newest_stamp - self.period
            if jump:  # a memory reset: counters restart with this message
                self._queue.clear()
                self._next_due = None
                self.newest_stamp = None
                self.reset_pending = True
                self.counters = FeedCounters()
                self.time_jumps += 1
                self._stamps.clear()
            self.counters.frames_received += 1
            return self._next_due is None or stamp >= self._next_due, jump

    def set_sample_fps(self, sample_fps: float) -> None:
        """Sample at ``sample_fps`` (Hz, > 0) from the next due frame on."""
        with self._lock:
            self.period = 1.0 / sample_fps

    def camera_rate(self) -> float:
        """
        Rate the camera publishes at by its header.stamps, Hz (0: unknown).

        The inverse of the median interval between the stamps of the last
        :data:`STAMP_WINDOW` messages received: what the publisher sends, whatever is lost
        on the way (compare with the input rate of :meth:`rates`).
        """
        with self._lock:
            stamps = list(self._stamps)
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:]) if b > a)
        return 1.0 / steps[len(steps) // 2] if steps else 0.0

    def reject(self) -> None:
        """Count a due frame that failed conversion (its sample slot stays open)."""
        with self._lock:
            self.counters.frames_dropped_invalid += 1

    def push(self, frame: Frame) -> None:
        """Queue a converted, due frame; a full queue drops its oldest frame (counted)."""
        with self._lock:
            if self.newest_stamp is not None and frame.stamp <= self.newest_stamp:
                self.counters.frames_dropped_queue += 1  # sampled before a memory load
                return
            due = self._next_due if self._next_due is not None else frame.stamp
            due += self.period
            self._next_due = due if due > frame.stamp else frame.stamp + self.period
            self.newest_stamp = frame.stamp
            self.frame_id = frame.frame_id
            self.counters.frames_sampled += 1
            if len(self._queue) == self._queue.maxlen:
                self.counters.frames_dropped_queue += 1
            self._queue.append(frame)

    def pop(self) -> Optional[Frame]:
        """Take the oldest queued frame, or None (ingestion keeps camera order)."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def take_newest(self) -> Optional[Frame]:
        """Take the newest queued frame and drop the older ones (counted), or None."""
        with self._lock:
            if not self._queue:
                return None
            self.counters.frames_dropped_queue += len(self._queue) - 1
            newest = self._queue.pop()
            self._queue.clear()
            return newest

    def continue_from(self, stamp: Optional[float]) -> None:
        """
        Continue the timeline of a loaded memory whose newest frame is at ``stamp``, s.

        Queued frames are dropped (counted; they belong to the replaced memory); the next
        frame is due one period after ``stamp``, and a frame stamped earlier than ``stamp``
        by more than a period is a time jump (:meth:`receive`).
        """
        with self._lock:
            self.counters.frames_dropped_queue += len(self._queue)
            self._queue.clear()
            self.newest_stamp = stamp
            self._next_due = None if stamp is None else stamp + self.period

    def take_reset(self) -> bool:
        """Return True once after a time jump or a reset request (the worker resets)."""
        with self._lock:
            pending, self.reset_pending = self.reset_pending, False
            return pending

    def request_reset(self) -> None:
        """Forget queued frames, counters and sampler state; the worker resets the memory."""
        with self._lock:
            self._queue.clear()
            self._next_due = None
            self.newest_stamp = None
            self.counters = FeedCounters()
            self._arrivals.clear()
            self._ingests.clear()
            self._stamps.clear()
            self.reset_pending = True

    def note_ingested(self, now: float) -> None:
        """Record one ingested frame at node time ``now`` (s), for the ingest rate."""
        with self._lock:
            _append_window(self._ingests, now)

    def rates(self, now: float) -> tuple[float, float]:
        """Return ``(input_rate, ingest_rate)`` in Hz over the last :data:`RATE_WINDOW_S`."""
        with self._lock:
            return _rate(self._arrivals, now), _rate(self._ingests, now)


def _append_window(window: deque[float], now: float) -> None:
    window.append(now)
    while window and window[0] < now - RATE_WINDOW_S:
        window.popleft()


def _rate(window: deque[float], now: float) -> float:
    recent = [t for t in window if t >= now - RATE_WINDOW_S]
    if len(recent) < 2 or recent[-1] <= recent[0]:
        return 0.0
    return (len(recent) - 1) / (recent[-1] - recent[0])

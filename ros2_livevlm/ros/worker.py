# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Camera feeds (sampler, bounded queue, counters) and the one thread that owns the engines.

Callbacks convert and enqueue; the worker ingests frames and answers questions. Questions
take priority: between the layer steps of a clip prefill (``StreamingVLM.ingest_iter``)
the worker answers every queued question from the committed memory, then resumes.

Time going backwards (a looped bag, a restarted clock): a stamp earlier than the newest
sampled stamp of that camera by more than one sample period resets that camera's memory
(queued frames are discarded, ``time_jumps`` is counted and a warning logged); smaller
reorders are skipped by the sampler, so the engine only ever sees rising stamps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import field
import threading
from typing import Any
from typing import Callable
from typing import Optional
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the engine (torch) is imported by the node only once configured
    from ..engine import Answer
    from ..engine import MemoryStats
    from ..engine import StreamingVLM

RATE_WINDOW_S = 5.0
"""Span of the sliding windows behind input and ingest rates, s."""


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

    Thread-safe: the subscription callback samples and pushes, the worker pops.

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
            jump = self.newest_stamp is not None and stamp < self.newest_stamp - self.period
            if jump:  # a memory reset: counters restart with this message
                self._queue.clear()
                self._next_due = None
                self.newest_stamp = None
                self.reset_pending = True
                self.counters = FeedCounters()
                self.time_jumps += 1
            self.counters.frames_received += 1
            return self._next_due is None or stamp >= self._next_due, jump

    def reject(self) -> None:
        """Count a due frame that failed conversion (its sample slot stays open)."""
        with self._lock:
            self.counters.frames_dropped_invalid += 1

    def push(self, frame: Frame) -> None:
        """Queue a converted, due frame; a full queue drops its oldest frame."""
        with self._lock:
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
        """Take the oldest queued frame, or None."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

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


@dataclass
class Question:
    """
    A question for one camera's memory, answered by the worker.

    ``on_token(token_id, text_delta)`` is called from the worker thread per token and may
    return False to stop (cancel). The asker waits on ``done``; then exactly one of
    ``answer`` and ``error`` is set.
    """

    camera: str
    text: str
    max_new_tokens: Optional[int] = None
    time_window: Optional[tuple[float, float]] = None
    on_token: Optional[Callable[[int, str], Optional[bool]]] = None
    cancelled: Callable[[], bool] = lambda: False
    done: threading.Event = field(default_factory=threading.Event)
    answer: Optional[Answer] = None
    error: str = ''

    def fail(self, error: str) -> None:
        """Finish with an error."""
        self.error = error
        self.done.set()


class Worker:
    """
    The thread that owns the engines: ingests queued frames, answers questions first.

    Args:
        engines: camera name -> engine (one memory each, sharing one model).
        feeds: camera name -> feed.
        now: node clock in seconds (honours use_sim_time).
        logger: rclpy logger.
        clip_timeout: prefill a partial clip after this long without a sampled frame, s
            (0: never).
        flush_on_question: prefill a partial clip before answering (when no clip prefill
            is suspended).
        max_pending: questions queued or running at once; more are refused.
    """

    def __init__(self, engines: dict[str, StreamingVLM], feeds: dict[str, CameraFeed],
                 now: Callable[[], float], logger: Any, *, clip_timeout: float,
                 flush_on_question: bool, max_pending: int) -> None:
        self.engines = engines
        self.feeds = feeds
        self._now = now
        self._log = logger
        self._clip_timeout = clip_timeout
        self._flush_on_question = flush_on_question
        self._max_pending = max_pending
        self._questions: deque[Question] = deque()
        self._running = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_reason = ''
        self._thread: Optional[threading.Thread] = None
        self._stats = {name: engine.stats() for name, engine in engines.items()}
        self._last_sample = {name: now() for name in engines}

    def start(self) -> None:
        """Start the thread."""
        self._stop_reason = ''
        self._thread = threading.Thread(target=self._run, name='livevlm_worker', daemon=True)
        self._thread.start()

    def stop(self, reason: str) -> None:
        """
        Stop and join the thread; queued questions fail with ``reason``.

        A clip prefill under way is completed first (its memory stays consistent); a
        question being answered is cancelled at its next token.
        """
        with self._lock:
            self._stop_reason = reason
            pending, self._questions = list(self._questions), deque()
        for question in pending:
            question.fail(reason)
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, question: Question) -> bool:
        """Queue a question; False (with ``question.error`` set) if refused."""
        with self._lock:
            if self._stop_reason or self._thread is None:
                question.fail(self._stop_reason or 'the node is not active')
                return False
            if len(self._questions) + self._running >= self._max_pending:
                question.fail(f'busy: {self._max_pending} questions pending '
                              '(parameter max_pending_questions); retry later')
                return False
            self._questions.append(question)
        self._wake.set()
        return True

    def has_capacity(self) -> bool:
        """Whether :meth:`submit` would accept a question now."""
        with self._lock:
            busy = len(self._questions) + self._running >= self._max_pending
            return not busy and not self._stop_reason and self._thread is not None

    def wake(self) -> None:
        """Tell the thread that frames arrived."""
        self._wake.set()

    def stats(self, camera: str) -> MemoryStats:
        """Latest memory statistics of ``camera`` (a snapshot taken by the worker)."""
        with self._lock:
            return self._stats[camera]

    # ---- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop_reason:
            busy = False
            for name, feed in self.feeds.items():  # resets first: a question after ~/reset
                if feed.take_reset():              # must not see the old memory
                    self._reset(name)
                    busy = True
            busy = self._answer_questions(flush=True) or busy
            for name, feed in self.feeds.items():
                frame = feed.pop()
                if frame is not None:
                    self._ingest(name, frame)
                    busy = True
            busy = self._flush_idle() or busy
            if not busy:
                self._wake.wait(0.05)
                self._wake.clear()

    def _next_question(self) -> Optional[Question]:
        with self._lock:
            if not self._questions:
                return None
            self._running += 1
            return self._questions.popleft()

    def _answer_questions(self, *, flush: bool) -> bool:
        answered = False
        while (question := self._next_question()) is not None:
            answered = True
            try:
                self._answer(question, flush=flush)
            finally:
                with self._lock:
                    self._running -= 1
        return answered

    def _answer(self, question: Question, *, flush: bool) -> None:
        engine = self.engines[question.camera]
        on_token = question.on_token

        def guarded(token_id: int, delta: str) -> Optional[bool]:
            if self._stop_reason:
                return False
            return on_token(token_id, delta) if on_token is not None else None

        if question.cancelled():
            question.fail('cancelled before it was answered')
            return
        try:
            if flush and self._flush_on_question and engine.flush():
                self._snapshot(question.camera)
            question.answer = engine.ask(
                question.text, max_new_tokens=question.max_new_tokens,
                time_window=question.time_window, on_token=guarded)
        except ValueError as err:
            question.fail(str(err))
            return
        except Exception as err:  # noqa: B902 - a failed answer must not stop the worker
            self._log.error(f'answering on camera {question.camera} failed: {err!r}')
            question.fail(f'internal error: {err!r}')
            return
        if self._stop_reason and question.answer.stop_reason == 'cancelled':
            question.answer = None
            question.fail(self._stop_reason)
            return
        self.feeds[question.camera].answer_latency = question.answer.total_s
        question.done.set()

    def _ingest(self, camera: str, frame: Frame) -> None:
        engine = self.engines[camera]
        try:
            for _ in engine.ingest_iter(frame.rgb[None], [frame.stamp]):
                self._answer_questions(flush=False)
        except ValueError as err:
            self._log.warning(f'camera {camera}: {err}; resetting its memory')
            self._reset(camera)
            return
        self._last_sample[camera] = self._now()
        self.feeds[camera].note_ingested(self._now())
        self._snapshot(camera)

    def _flush_idle(self) -> bool:
        if self._clip_timeout <= 0:
            return False
        flushed = False
        for camera, engine in self.engines.items():
            idle = self._now() - self._last_sample[camera] >= self._clip_timeout
            if idle and self._stats[camera].frames_pending:
                for _ in engine.flush_iter():  # questions still go first between steps
                    self._answer_questions(flush=False)
                self._snapshot(camera)
                flushed = True
        return flushed

    def _reset(self, camera: str) -> None:
        self.engines[camera].reset()
        self._last_sample[camera] = self._now()
        self._snapshot(camera)

    def _snapshot(self, camera: str) -> None:
        stats = self.engines[camera].stats()
        with self._lock:
            self._stats[camera] = stats

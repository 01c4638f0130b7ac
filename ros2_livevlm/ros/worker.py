# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The one thread that owns the engines: it ingests queued frames and answers questions.

Questions take priority: between the layer steps of a clip prefill
(``StreamingVLM.ingest_iter``) the worker answers the waiting questions, then resumes.
With ``flush_on_question`` (the default) an answer sees the newest frame its camera had
sampled when the question arrived: a question about the camera being prefilled waits for
that clip to commit; then the newest queued frame of its camera is ingested (older queued
frames are dropped and counted: newest wins) and the partial clip is prefilled.

Supervision: an exception in an engine call (ingest, flush, reset, answer) is logged once
with its traceback, counted in :class:`CameraHealth`, and fails the questions it affects
with its message; after a failed ingest or flush that camera's memory is reset (it may be
inconsistent) and the worker keeps serving. A failure it cannot recover from (the reset
itself fails, or a defect in the loop) is fatal: queued questions fail with the message,
the thread ends and ``on_fatal`` is called, so the process exits non-zero. Every admitted
question is completed exactly once: answered, refused or failed.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
import threading
import traceback
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Optional
from typing import TYPE_CHECKING

from .errors import ErrorLog
from .feed import CameraFeed
from .feed import Frame
from .watches import WatchBoard
from ..msg import Answer as AnswerMessage

if TYPE_CHECKING:  # the engine (torch) is imported by the node only once configured
    from ..engine import Answer
    from ..engine import MemoryStats
    from ..engine import StreamingVLM

IDLE_WAIT_S = 0.05
"""Longest sleep of an idle worker between checks of its queues, s."""

JOIN_TIMEOUT_S = 5.0
"""How long :meth:`Worker.stop` waits for the thread to leave its current engine step, s."""


@dataclass
class Question:
    """
    A question for one camera's memory, completed once by the worker (or a refusal).

    ``on_token(token_id, text_delta)`` is called from the worker thread per token and may
    return False to stop (cancel). The asker waits on ``done``; then either ``answer`` is
    set, or ``error`` and ``error_code`` (an ``ERROR_*`` constant of ``msg/Answer``).
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
    error_code: int = AnswerMessage.ERROR_NONE
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def finish(self, answer: Answer) -> bool:
        """Complete with an answer; False if the question was already completed."""
        with self._lock:
            if self.done.is_set():
                return False
            self.answer = answer
            self.done.set()
            return True

    def fail(self, error: str, code: int) -> bool:
        """Complete with an error and its ``ERROR_*`` code; False if already completed."""
        with self._lock:
            if self.done.is_set():
                return False
            self.error, self.error_code = error, code
            self.done.set()
            return True


@dataclass
class CameraHealth:
    """
    Engine failures of one camera since the worker started.

    Attributes:
        errors: engine calls that raised (ingest, flush, reset, answer).
        last_error: the message of the latest one ('' if none).
        failing: the most recent engine call on this camera raised.
    """

    errors: int = 0
    last_error: str = ''
    failing: bool = False


class _Stopped(Exception):
    """Raised inside the worker thread to leave an engine iteration when the worker stops."""


class _Fatal(Exception):
    """A memory could not be reset after a failure: its state is unknown."""


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
        flush_on_question: answer from the newest sampled frame (see the module docstring);
            false: answer at once from whole committed clips.
        max_pending: questions queued or running at once; more are refused.
        on_fatal: called once, from the worker thread, with the message of a fatal error.
        watches: the standing questions, evaluated after each clip of their camera.
    """

    def __init__(self, engines: dict[str, StreamingVLM], feeds: dict[str, CameraFeed],
                 now: Callable[[], float], logger: Any, *, clip_timeout: float,
                 flush_on_question: bool, max_pending: int,
                 on_fatal: Callable[[str], None] = lambda message: None,
                 watches: Optional[WatchBoard] = None) -> None:
        self.engines = engines
        self.feeds = feeds
        self.fatal_error = ''
        self._now = now
        self._log = logger
        self._clip_timeout = clip_timeout
        self._flush_on_question = flush_on_question
        self._max_pending = max_pending
        self._on_fatal = on_fatal
        self._watches = watches
        self._tasks: deque[tuple[Callable[[], Any], Future]] = deque()
        self._questions: deque[Question] = deque()
        self._running: list[Question] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_reason = ''
        self._thread: Optional[threading.Thread] = None
        self._stats = {name: engine.stats() for name, engine in engines.items()}
        self._health = {name: CameraHealth() for name in engines}
        self._errors = ErrorLog(logger)
        self._last_sample = {name: now() for name in engines}

    def start(self) -> None:
        """Start the thread."""
        self._stop_reason = ''
        self._thread = threading.Thread(target=self._run, name='livevlm_worker', daemon=True)
        self._thread.start()

    def stop(self, reason: str) -> None:
        """
        Stop the thread within about :data:`JOIN_TIMEOUT_S`; questions fail with ``reason``.

        A clip prefill under way is abandoned at its next layer step (the memory keeps its
        committed clips); a question being answered stops at its next token.
        """
        with self._lock:
            self._stop_reason = reason
            pending, self._questions = list(self._questions), deque()
        for question in pending:
            question.fail(reason, AnswerMessage.ERROR_NOT_ACTIVE)
        self._fail_tasks(reason)
        if self._watches is not None:
            self._watches.end_all(reason)
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                self._log.warning(f'the worker did not stop within {JOIN_TIMEOUT_S:.0f} s (an '
                                  'engine step still runs); it is left to finish alone')
        with self._lock:
            running = list(self._running)
        for question in running:  # left behind by the thread, or interrupted by the stop
            question.fail(reason, AnswerMessage.ERROR_NOT_ACTIVE)

    @property
    def pending(self) -> int:
        """Questions queued or being answered."""
        with self._lock:
            return len(self._questions) + len(self._running)

    @property
    def alive(self) -> bool:
        """Tell whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, question: Question) -> bool:
        """Queue a question; False (and the question failed with the reason) if refused."""
        with self._lock:
            if self._stop_reason or self._thread is None or self.fatal_error:
                reason = self.fatal_error or self._stop_reason or 'the node is not active'
                question.fail(reason, AnswerMessage.ERROR_NOT_ACTIVE)
                return False
            if len(self._questions) + len(self._running) >= self._max_pending:
                question.fail(f'busy: {self._max_pending} questions pending (parameter '
                              'max_pending_questions); retry later', AnswerMessage.ERROR_BUSY)
                return False
            self._questions.append(question)
        self._wake.set()
        return True

    def run_task(self, task: Callable[[], Any]) -> Future:
        """
        Run ``task()`` on the worker thread between clips, where no engine is mid-prefill.

        For whole-memory operations (save, load). Returns its future: the task's result or
        exception, or a RuntimeError with the reason if the worker stops first.
        """
        future: Future = Future()
        with self._lock:
            refused = self.fatal_error or self._stop_reason or (
                'the node is not active' if self._thread is None else '')
            if not refused:
                self._tasks.append((task, future))
        if refused:
            future.set_exception(RuntimeError(refused))
        self._wake.set()
        return future

    def memory_replaced(self, camera: str) -> None:
        """Worker thread, in a task: ``camera``'s memory was loaded; its watches end."""
        self._last_sample[camera] = self._now()
        self._snapshot(camera)
        if self._watches is not None:
            self._watches.end_camera(camera, f'the memory of camera {camera} was loaded')

    def wake(self) -> None:
        """Tell the thread that frames arrived."""
        self._wake.set()

    def set_options(self, *, clip_timeout: float, flush_on_question: bool) -> None:
        """Change ``clip_timeout`` (s) and ``flush_on_question`` (from the next step on)."""
        self._clip_timeout, self._flush_on_question = clip_timeout, flush_on_question

    def stats(self, camera: str) -> MemoryStats:
        """Latest memory statistics of ``camera`` (a snapshot taken by the worker)."""
        with self._lock:
            return self._stats[camera]

    def health(self, camera: str) -> CameraHealth:
        """Engine failures of ``camera`` (a copy)."""
        with self._lock:
            return replace(self._health[camera])

    # ---- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop_reason:
                if not self._step():
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
        except _Stopped:
            pass
        except Exception as err:  # noqa: B902 - _Fatal or a defect in the loop: reported
            self._die(err)

    def _step(self) -> bool:
        """Run one round: resets, questions, one frame per camera, idle flushes."""
        busy = False
        for name, feed in self.feeds.items():  # resets first: a question after ~/reset
            if feed.take_reset():              # must not see the old memory
                self._reset(name)
                busy = True
        busy = self._run_tasks() or busy
        busy = self._answer_questions(prefilling=None) or busy
        for name, feed in self.feeds.items():
            frame = feed.pop()
            if frame is not None:
                self._ingest(name, frame, answer_between=True)
                busy = True
        return self._flush_idle() or busy

    def _die(self, err: Exception) -> None:
        cause = str(err) if isinstance(err, _Fatal) else f'{type(err).__name__}: {err}'
        message = f'the worker stopped after a fatal error: {cause}'
        trace = ''.join(traceback.format_exception(type(err), err, err.__traceback__))
        self._log.fatal(f'{message}\n{trace.rstrip()}')
        with self._lock:
            self.fatal_error = message
            pending, self._questions = list(self._questions) + self._running, deque()
        for question in pending:
            question.fail(message, AnswerMessage.ERROR_INTERNAL)
        self._fail_tasks(message)
        if self._watches is not None:
            self._watches.end_all(message)
        self._on_fatal(message)

    def _run_tasks(self) -> bool:
        """Run the queued tasks (:meth:`run_task`); True if there was one."""
        ran = False
        while True:
            with self._lock:
                if not self._tasks:
                    return ran
                task, future = self._tasks.popleft()
            ran = True
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task())
                except Exception as err:  # noqa: B902 - the caller gets it with its result
                    future.set_exception(err)

    def _fail_tasks(self, reason: str) -> None:
        with self._lock:
            tasks, self._tasks = list(self._tasks), deque()
        for _, future in tasks:
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError(reason))

    # ---- engine calls, supervised -----------------------------------------------------

    def _drive(self, camera: str, operation: str, steps: Iterator[None], *,
               answer_between: bool) -> bool:
        """
        Run an engine iteration to its end; False if the engine raised (handled).

        Between steps the worker stops if asked to and, with ``answer_between``, answers
        waiting questions. After a clip was prefilled the camera's watches are evaluated.
        """
        clips_before = self._stats[camera].clips_prefilled
        try:
            for _ in steps:
                if self._stop_reason:
                    raise _Stopped
                if answer_between:
                    self._answer_questions(prefilling=camera)
        except (_Stopped, _Fatal):
            raise
        except Exception as err:  # noqa: B902 - any engine failure is reported and survived
            steps.close()
            message = self._record_fault(camera, operation, err)
            self._reset(camera)  # before the questions fail: they see the memory reset
            self._fail_waiting(camera, f'{message}; the memory of camera {camera} was reset')
            return False
        finally:
            steps.close()  # an abandoned prefill leaves the committed memory as it was
        self._mark_healthy(camera)
        self._snapshot(camera)
        if self._watches is not None and self._stats[camera].clips_prefilled > clips_before:
            self._watches.after_clip(camera, self.engines[camera])
        return True

    def _ingest(self, camera: str, frame: Frame, *, answer_between: bool) -> bool:
        engine = self.engines[camera]
        steps = engine.ingest_iter(frame.rgb[None], [frame.stamp])
        if not self._drive(camera, 'ingest', steps, answer_between=answer_between):
            return False
        self._last_sample[camera] = self._now()
        self.feeds[camera].note_ingested(self._now())
        return True

    def _flush(self, camera: str, *, answer_between: bool) -> bool:
        steps = self.engines[camera].flush_iter()
        return self._drive(camera, 'flush', steps, answer_between=answer_between)

    def _flush_idle(self) -> bool:
        if self._clip_timeout <= 0:
            return False
        flushed = False
        for camera in self.engines:
            idle = self._now() - self._last_sample[camera] >= self._clip_timeout
            if idle and self.stats(camera).frames_pending:
                self._flush(camera, answer_between=True)
                flushed = True
        return flushed

    def _reset(self, camera: str) -> None:
        """Reset a memory; a failure leaves its state unknown: :class:`_Fatal`."""
        try:
            self.engines[camera].reset()
        except Exception as err:  # noqa: B902 - any failure here is fatal
            self._record_fault(camera, 'reset', err)
            raise _Fatal(f'reset failed on camera {camera}: {type(err).__name__}: {err}') from err
        self._last_sample[camera] = self._now()
        self._snapshot(camera)
        if self._watches is not None:
            self._watches.end_camera(camera, f'the memory of camera {camera} was reset')

    def _record_fault(self, camera: str, operation: str, err: Exception) -> str:
        """Count a failed engine call in its camera's health and log it (once in full)."""
        message = f'{operation} failed on camera {camera}: {type(err).__name__}: {err}'
        with self._lock:
            health = self._health[camera]
            health.errors += 1
            health.last_error, health.failing = message, True
        self._errors.report(message, err)
        return message

    def _mark_healthy(self, camera: str) -> None:
        with self._lock:
            self._health[camera].failing = False

    def _snapshot(self, camera: str) -> None:
        stats = self.engines[camera].stats()
        with self._lock:
            self._stats[camera] = stats

    # ---- questions --------------------------------------------------------------------

    def _answer_questions(self, *, prefilling: Optional[str]) -> bool:
        """
        Answer every waiting question; those about ``prefilling`` wait for its clip.

        Returns True if a question was answered.
        """
        answered, deferred = False, []
        while (question := self._next_question()) is not None:
            if question.camera == prefilling and self._flush_on_question:
                deferred.append(question)
                continue
            answered = True
            self._answer(question)  # if it raises (_Stopped, _Fatal) the question stays in
            with self._lock:        # _running, where stop() or _die() fails it
                self._running.remove(question)
        if deferred:
            with self._lock:
                for question in deferred:
                    self._running.remove(question)
                if not self._stop_reason:
                    self._questions.extendleft(reversed(deferred))
                    deferred = []
            for question in deferred:  # stopped meanwhile
                question.fail(self._stop_reason, AnswerMessage.ERROR_NOT_ACTIVE)
        return answered

    def _next_question(self) -> Optional[Question]:
        with self._lock:
            if not self._questions:
                return None
            question = self._questions.popleft()
            self._running.append(question)
            return question

    def _fail_waiting(self, camera: str, message: str) -> None:
        """Fail the queued questions about ``camera`` (an engine failure affects them)."""
        with self._lock:
            failed = [q for q in self._questions if q.camera == camera]
            self._questions = deque(q for q in self._questions if q.camera != camera)
        for question in failed:
            question.fail(message, AnswerMessage.ERROR_INTERNAL)

    def _catch_up(self, camera: str) -> bool:
        """Ingest the newest queued frame of ``camera`` and prefill its partial clip."""
        frame = self.feeds[camera].take_newest()
        if frame is not None and not self._ingest(camera, frame, answer_between=False):
            return False
        if self.stats(camera).frames_pending:
            return self._flush(camera, answer_between=False)
        return True

    def _answer(self, question: Question) -> None:
        camera, engine = question.camera, self.engines[question.camera]
        if question.cancelled():
            question.fail('cancelled before it was answered', AnswerMessage.ERROR_CANCELLED)
            return
        if self._flush_on_question and not self._catch_up(camera):
            question.fail(self.health(camera).last_error, AnswerMessage.ERROR_INTERNAL)
            return
        stats = self.stats(camera)
        if stats.frames_in_memory == 0:
            question.fail(self._empty_memory(camera, stats), AnswerMessage.ERROR_EMPTY_MEMORY)
            return
        on_token = question.on_token

        def guarded(token_id: int, delta: str) -> Optional[bool]:
            if self._stop_reason:
                return False
            return on_token(token_id, delta) if on_token is not None else None

        try:
            answer = engine.ask(question.text, max_new_tokens=question.max_new_tokens,
                                time_window=question.time_window, on_token=guarded)
        except ValueError as err:  # the engine's check of the question and its options
            question.fail(str(err), AnswerMessage.ERROR_BAD_REQUEST)
            return
        except Exception as err:  # noqa: B902 - a failed answer must not stop the worker
            question.fail(self._record_fault(camera, 'answer', err),
                          AnswerMessage.ERROR_INTERNAL)
            return
        self._mark_healthy(camera)
        if answer.stop_reason == 'cancelled' and self._stop_reason:
            question.fail(self._stop_reason, AnswerMessage.ERROR_NOT_ACTIVE)
        elif answer.stop_reason == 'cancelled':
            question.fail('cancelled', AnswerMessage.ERROR_CANCELLED)
        else:
            self.feeds[camera].answer_latency = answer.total_s
            question.finish(answer)

    def _empty_memory(self, camera: str, stats: MemoryStats) -> str:
        counters = self.feeds[camera].counters
        if stats.frames_pending:
            return (f'the memory of camera {camera} is empty: its {stats.frames_pending} '
                    'frames wait for a full clip (frames_per_clip); with flush_on_question '
                    'true they would be prefilled before answering')
        return (f'the memory of camera {camera} is empty: no frame since the node started or '
                f'was reset (received {counters.frames_received}, sampled '
                f'{counters.frames_sampled}, invalid {counters.frames_dropped_invalid}); '
                'check that the camera publishes on its topic (see /diagnostics)')

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The watches of one activation, evaluated by the worker after every clip of their camera.

Each ``~/watch`` goal (:mod:`.watch_server`) is an :class:`ActiveWatch` on the
:class:`WatchBoard`: a :class:`~ros2_livevlm.watch.Watch` (one first-token prompt prefill
per evaluation, hysteresis) plus its goal's limits. The worker calls
:meth:`WatchBoard.after_clip` on its own thread when a clip of a camera was committed (the
engines are idle then); events are queued on the watch, and the goal's executor thread
sends them.

Cost bound: watches never delay frame ingestion by more than one clip. After a clip the
due watches of its camera are evaluated in turn, the one waiting longest first; the first
always runs, each further one only while the time spent plus the latest evaluation's cost
stays within that clip's own time (encode + prefill). The rest are skipped (counted in
:class:`WatchStats`) and come first after the next clip. No rclpy here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import replace
import threading
from typing import Optional
from typing import TYPE_CHECKING

from .errors import ErrorLog
from ..watch import Watch
from ..watch import WatchEvent

if TYPE_CHECKING:
    from ..engine import StreamingVLM


@dataclass
class WatchStats:
    """
    Watch cost of one camera since activation.

    Attributes:
        watches: watches running on this camera.
        evaluations: evaluations run.
        skipped: due evaluations postponed to the next clip to keep the cost bound.
        clips: clips after which at least one watch was evaluated.
        last_cost_s: time spent on watches after the camera's latest such clip, s.
        total_cost_s: time spent on watches, s (``total_cost_s / clips``: cost per clip).
    """

    watches: int = 0
    evaluations: int = 0
    skipped: int = 0
    clips: int = 0
    last_cost_s: float = 0.0
    total_cost_s: float = 0.0


class ActiveWatch:
    """
    One ``~/watch`` goal: the watch, its limits, and the events waiting to be sent.

    Args:
        watch_id: the goal's UUID as 32 hex digits.
        camera: the camera whose memory it reads.
        watch: the question, window and hysteresis.
        min_period: camera seconds between evaluations at least (0: every clip).
        max_events: the watch ends (successfully) after this many events; 0: never.
    """

    def __init__(self, watch_id: str, camera: str, watch: Watch, *, min_period: float = 0.0,
                 max_events: int = 0) -> None:
        self.watch_id = watch_id
        self.camera = camera
        self.watch = watch
        self.min_period = min_period
        self.max_events = max_events
        self.events_sent = 0
        self.total_cost_s = 0.0
        self.last_stamp: Optional[float] = None
        self.ended: Optional[str] = None  # '' after max_events, else the reason
        self._events: deque[WatchEvent] = deque()
        self._changed = threading.Condition()

    def due(self, newest_stamp: Optional[float]) -> bool:
        """Tell whether ``min_period`` camera seconds passed since the last evaluation."""
        if self.last_stamp is None or newest_stamp is None:
            return True
        return newest_stamp - self.last_stamp >= self.min_period - 1e-9

    def end(self, reason: str) -> None:
        """End the watch (first reason wins); '' means it completed its ``max_events``."""
        with self._changed:
            if self.ended is None:
                self.ended = reason
            self._changed.notify_all()

    def take(self, timeout: float) -> tuple[list[WatchEvent], Optional[str]]:
        """Wait up to ``timeout`` s for events; return them and the end reason (None: runs)."""
        with self._changed:
            self._changed.wait_for(lambda: self._events or self.ended is not None, timeout)
            events, self._events = list(self._events), deque()
            return events, self.ended

    def post(self, event: WatchEvent) -> None:
        """Queue an event for the goal; the watch ends after its ``max_events``."""
        with self._changed:
            self._events.append(event)
            self.events_sent += 1
            if self.max_events and self.events_sent >= self.max_events and self.ended is None:
                self.ended = ''
            self._changed.notify_all()


class WatchBoard:
    """
    The running watches of one activation (thread-safe; evaluated on the worker thread).

    Args:
        max_watches: watches running at once; more are refused.
        errors: where an evaluation that raises is reported (that watch ends with it).
    """

    def __init__(self, max_watches: int, errors: ErrorLog) -> None:
        self.max_watches = max_watches
        self._errors = errors
        self._lock = threading.Lock()
        self._order: list[ActiveWatch] = []  # evaluation order, longest waiting first
        self._stats: dict[str, WatchStats] = {}

    def add(self, active: ActiveWatch) -> Optional[str]:
        """Start a watch; return why it cannot start (too many watches), or None."""
        with self._lock:
            if len(self._order) >= self.max_watches:
                return (f'too many watches: {self.max_watches} run already (parameter '
                        'max_watches); cancel one or raise the limit')
            self._order.append(active)
            return None

    def remove(self, active: ActiveWatch, reason: str) -> None:
        """Stop evaluating a watch and end it with ``reason`` (if it was still running)."""
        with self._lock:
            if active in self._order:
                self._order.remove(active)
        active.end(reason)

    def end_camera(self, camera: str, reason: str) -> None:
        """End every watch of ``camera`` (its memory was reset or replaced)."""
        with self._lock:
            ended = [w for w in self._order if w.camera == camera]
            self._order = [w for w in self._order if w.camera != camera]
        for active in ended:
            active.end(reason)

    def end_all(self, reason: str) -> None:
        """End every watch (the node stops)."""
        with self._lock:
            ended, self._order = self._order, []
        for active in ended:
            active.end(reason)

    def stats(self, camera: str) -> WatchStats:
        """Watch cost of ``camera`` (a copy, with the watches running now)."""
        with self._lock:
            running = sum(w.camera == camera for w in self._order)
            return replace(self._stats.get(camera, WatchStats()), watches=running)

    def after_clip(self, camera: str, engine: StreamingVLM) -> None:
        """
        Worker thread: evaluate ``camera``'s due watches after a clip, within the cost bound.

        An evaluation that raises ends its watch with the error (reported once to the
        error log); the others go on.
        """
        stats = engine.stats()
        budget_s = stats.last_encode_s + stats.last_prefill_s  # the clip's own time
        with self._lock:
            due = [w for w in self._order if w.camera == camera and w.due(stats.newest_stamp)]
            record = self._stats.setdefault(camera, WatchStats())
            estimate_s = record.total_cost_s / max(record.evaluations, 1)
        spent_s, done, evaluated = 0.0, [], 0
        for active in due:
            if done and spent_s + estimate_s > budget_s:
                break
            done.append(active)
            try:
                reading, event = active.watch.evaluate(engine)
            except Exception as err:  # noqa: B902 - one failing watch must not stop the worker
                message = f'watch {active.watch_id} failed: {type(err).__name__}: {err}'
                if not isinstance(err, ValueError):  # a question the engine refuses is not
                    self._errors.report(message, err)  # a fault of the node
                self.remove(active, message)
                continue
            evaluated += 1
            spent_s += reading.cost_s
            estimate_s = reading.cost_s
            active.last_stamp = reading.newest_stamp
            active.total_cost_s += reading.cost_s
            if event is not None:
                active.post(event)
            if active.ended is not None:
                self.remove(active, active.ended)
        with self._lock:
            for active in done:  # evaluated ones go last: skipped ones come first next time
                if active in self._order:
                    self._order.remove(active)
                    self._order.append(active)
            record.evaluations += evaluated
            record.skipped += len(due) - len(done)
            if done:
                record.clips += 1
                record.last_cost_s = spent_s
                record.total_cost_s += spent_s

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The ``~/watch`` action of one activation: a goal is a standing yes/no question on a camera.

Every goal is accepted while active (a goal callback cannot say why it refuses); a bad
goal (empty question, unknown camera, negative window, too many watches) ends ABORTED at
once with the reason in its result. A running goal holds an executor thread that sends
its events as feedback and publishes each on ``~/watch_events``; the worker evaluates the
watch (:mod:`.watches`). The goal ends CANCELED on a cancel, SUCCEEDED after
``max_events`` events, ABORTED when its camera's memory is reset or loaded or the node
stops (the reason in the result).
"""

from __future__ import annotations

from typing import Any, Callable

from rclpy.action import ActionServer
from rclpy.action import CancelResponse
from rclpy.action import GoalResponse
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node

from .errors import ErrorLog
from .errors import guarded
from .errors import InFlight
from .feed import CameraFeed
from .qos import REQUEST_QOS
from .status import to_time
from .watches import ActiveWatch
from .watches import WatchBoard
from .. import action as _action
from ..msg import WatchEvent as WatchEventMessage
from ..watch import Watch
from ..watch import WatchEvent

POLL_S = 0.1
"""How often a running goal checks for a cancel request, s."""

CLOSE_WAIT_S = 10.0
"""How long :meth:`WatchServer.close` waits for running goals to end, s."""


class WatchServer:
    """
    ``~/watch`` of one activation, on ``node``.

    Args:
        node: the node that owns the action server.
        feeds: camera name -> feed (the first camera is the default; frame ids).
        board: the watches the worker evaluates.
        default_hold: hysteresis of goals whose ``hold`` is 0, evaluations.
        publish_event: publishes a WatchEvent on ``~/watch_events``.
        errors: where exceptions caught in the callbacks are reported.
        group: callback group of the action server (reentrant).
    """

    def __init__(self, node: Node, feeds: dict[str, CameraFeed], board: WatchBoard,
                 default_hold: int, publish_event: Callable[[WatchEventMessage], None],
                 errors: ErrorLog, group: CallbackGroup) -> None:
        self._node = node
        self._feeds = feeds
        self._board = board
        self._default_hold = default_hold
        self._publish_event = publish_event
        self._closed = ''
        self._running = InFlight()
        self._server = ActionServer(
            node, _action.Watch, '~/watch', guarded(errors, '~/watch', self._execute,
                                                    _failed),
            goal_callback=guarded(errors, '~/watch goal', self._on_goal,
                                  lambda goal: GoalResponse.REJECT),
            cancel_callback=lambda goal_handle: CancelResponse.ACCEPT, callback_group=group,
            goal_service_qos_profile=REQUEST_QOS, result_service_qos_profile=REQUEST_QOS,
            cancel_service_qos_profile=REQUEST_QOS)

    def close(self, reason: str) -> None:
        """End every watch with ``reason``, wait for their goals to end, destroy the server."""
        self._closed = reason
        self._board.end_all(reason)
        self._running.drain(CLOSE_WAIT_S)
        self._server.destroy()

    def _on_goal(self, goal: Any) -> GoalResponse:
        if self._closed:
            self._node.get_logger().warning(f'Watch goal rejected: {self._closed}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _watch(self, goal_handle: Any) -> ActiveWatch:
        """
        Build the goal's watch.

        Raises:
            ValueError: a bad goal; the message says what to change.
        """
        goal = goal_handle.request
        names = list(self._feeds)
        camera = goal.camera or names[0]
        if camera not in self._feeds:
            raise ValueError(f'unknown camera {camera!r}; cameras: {", ".join(names)}')
        if not goal.question.strip():
            raise ValueError('the question is empty; give a yes/no question, e.g. "Did you '
                             'see a motorcycle?"')
        if not goal.min_period >= 0.0:
            raise ValueError(f'min_period must be >= 0 s, got {goal.min_period}')
        window = None if goal.whole_memory else float(goal.window)
        watch = Watch(goal.question, window_s=window, hold=goal.hold or self._default_hold)
        return ActiveWatch(bytes(goal_handle.goal_id.uuid).hex(), camera, watch,
                           min_period=goal.min_period, max_events=goal.max_events)

    def _execute(self, goal_handle: Any) -> Any:
        with self._running.track():
            try:
                active = self._watch(goal_handle)
            except ValueError as err:
                goal_handle.abort()
                return _action.Watch.Result(success=False, error=str(err))
            refused = self._closed or self._board.add(active)
            if refused:
                goal_handle.abort()
                return _action.Watch.Result(success=False, error=refused)
            self._node.get_logger().info(
                f'watch {active.watch_id} on camera {active.camera}: {active.watch.question!r}')
            ended = None
            while ended is None:
                events, ended = active.take(POLL_S)
                for event in events:
                    self._send(goal_handle, active, event)
                if ended is None and goal_handle.is_cancel_requested:
                    self._board.remove(active, 'canceled')
                    ended = 'canceled'
            self._board.remove(active, ended)
            return self._finish(goal_handle, active, ended)

    def _send(self, goal_handle: Any, active: ActiveWatch, event: WatchEvent) -> None:
        message = event_message(active, event, self._feeds[active.camera].frame_id)
        goal_handle.publish_feedback(_action.Watch.Feedback(event=message))
        self._publish_event(message)

    def _finish(self, goal_handle: Any, active: ActiveWatch, ended: str) -> Any:
        evaluations = active.watch.evaluations
        result = _action.Watch.Result(
            success=ended in ('', 'canceled'), error=ended if ended != '' else '',
            answer=active.watch.answer, evaluations=evaluations, events=active.events_sent,
            mean_evaluation_time=active.total_cost_s / evaluations if evaluations else 0.0)
        if ended == 'canceled' and goal_handle.is_cancel_requested:
            result.error = ''
            goal_handle.canceled()
        elif ended == '':
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result


def event_message(active: ActiveWatch, event: WatchEvent, frame_id: str) -> WatchEventMessage:
    """Build the WatchEvent message of ``event`` (header: newest frame's stamp, frame_id)."""
    reading = event.reading
    message = WatchEventMessage(
        watch_id=active.watch_id, camera=active.camera, question=event.question,
        answer=event.answer, confidence=event.confidence, p_yes=reading.p_yes,
        yes_no_mass=reading.yes_no_mass,
        evidence_start=[to_time(t0) for t0, _ in reading.evidence],
        evidence_end=[to_time(t1) for _, t1 in reading.evidence],
        evaluations=event.evaluations, evaluation_time=reading.cost_s)
    message.header.frame_id = frame_id
    if reading.newest_stamp is not None:
        message.header.stamp = to_time(reading.newest_stamp)
    return message


def _failed(goal_handle: Any) -> Any:
    if goal_handle.is_active:
        goal_handle.abort()
    return _action.Watch.Result(success=False, error='internal error (see the node log)')

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The node's requests: ``~/query``, ``~/ask`` and ``~/reset``, each answered exactly once.

A :class:`RequestServer` lives for one activation. It turns a Query request or an Ask goal
into a :class:`~ros2_livevlm.ros.worker.Question` for the worker, waits for it in the
executor thread that took the request (the executor has a thread per admissible
question), and sends back the Answer, publishing the same message on ``~/answers``: one
truth for the caller and the log. Refusals (not active, bad request, busy) come at once
with a reason and an ``ERROR_*`` code; nothing is dropped by the middleware
(:data:`~ros2_livevlm.ros.qos.REQUEST_QOS`). Every goal is accepted while active; an Ask
ends succeeded, canceled (a cancel was requested and honoured) or aborted, as its Answer
says. A callback that raises answers ``ERROR_INTERNAL`` (:func:`~.errors.guarded`).
:meth:`RequestServer.close` refuses new requests, lets those in flight send their
responses, then destroys the services.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from rclpy.action import ActionServer
from rclpy.action import CancelResponse
from rclpy.action import GoalResponse
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from .errors import ErrorLog
from .errors import guarded
from .errors import InFlight
from .feed import CameraFeed
from .qos import REQUEST_QOS
from .status import answer_message
from .worker import Question
from .worker import Worker
from .. import action as _action
from .. import srv as _srv
from ..msg import Answer

CLOSE_WAIT_S = 10.0
"""How long :meth:`RequestServer.close` waits for requests in flight to respond, s."""

RESET_TIMEOUT_S = 30.0
"""How long ``~/reset`` waits for the worker to reset every memory, s."""


class RequestServer:
    """
    ``~/query``, ``~/ask`` and ``~/reset`` of one activation, on ``node``.

    Args:
        node: the node that owns the services and the action server.
        feeds: camera name -> feed (the first camera is the default).
        worker: the started worker that answers the questions.
        publish_answer: publishes an Answer on ``~/answers`` (and, given the engine's
            answer, its evidence images on ``~/evidence``).
        errors: where exceptions caught in the callbacks are reported.
        group: callback group of the services and the action server (reentrant).
    """

    def __init__(self, node: Node, feeds: dict[str, CameraFeed], worker: Worker,
                 publish_answer: Callable[..., None], errors: ErrorLog,
                 group: CallbackGroup) -> None:
        self._node = node
        self._feeds = feeds
        self._worker = worker
        self._publish_answer = publish_answer
        self._closed = ''  # the reason new requests are refused
        self._inflight = InFlight()
        self._query = node.create_service(
            _srv.Query, '~/query', guarded(errors, '~/query', self._on_query, self._query_failed),
            qos_profile=REQUEST_QOS, callback_group=group)
        self._reset = node.create_service(
            Trigger, '~/reset', guarded(errors, '~/reset', self._on_reset, _reset_failed),
            qos_profile=REQUEST_QOS, callback_group=group)
        self._ask_server = ActionServer(
            node, _action.Ask, '~/ask', guarded(errors, '~/ask', self._execute_ask,
                                                self._ask_failed),
            goal_callback=guarded(errors, '~/ask goal', self._on_goal,
                                  lambda goal: GoalResponse.REJECT),
            cancel_callback=_accept_cancel, callback_group=group,
            goal_service_qos_profile=REQUEST_QOS, result_service_qos_profile=REQUEST_QOS,
            cancel_service_qos_profile=REQUEST_QOS)

    def close(self, reason: str) -> None:
        """
        Refuse new requests with ``reason``; wait for those in flight; destroy the services.

        Call after stopping the worker, so that the questions in flight complete.
        """
        self._closed = reason
        self._inflight.drain(CLOSE_WAIT_S)  # pending requests send their error responses
        time.sleep(0.2)  # results on their way to clients
        self._ask_server.destroy()
        self._node.destroy_service(self._query)
        self._node.destroy_service(self._reset)

    # ---- questions --------------------------------------------------------------------

    def _ask(self, request: Any, on_token: Optional[Callable[[int, str], bool]] = None,
             cancelled: Callable[[], bool] = lambda: False) -> Answer:
        """
        Answer a Query request or an Ask goal (same fields); publish the message on ~/answers.

        Returns the Answer message: the answer, or success false with the reason.
        """
        names = list(self._feeds)
        camera = request.camera or names[0]
        question = Question(camera, request.question, request.max_new_tokens or None,
                            on_token=on_token, cancelled=cancelled)
        if request.use_time_window:
            question.time_window = tuple(t.sec + t.nanosec * 1e-9
                                         for t in (request.window_start, request.window_end))
        if self._closed:
            question.fail(self._closed, Answer.ERROR_NOT_ACTIVE)
        elif not request.question.strip():
            question.fail('the question is empty; ask something, e.g. "What is on the table?"',
                          Answer.ERROR_BAD_REQUEST)
        elif camera not in self._feeds:
            question.fail(f'unknown camera {camera!r}; cameras: {", ".join(names)}',
                          Answer.ERROR_BAD_REQUEST)
        elif self._worker.submit(question):
            question.done.wait()
        feed = self._feeds.get(camera)
        stats = self._worker.stats(camera) if feed is not None else None
        message = answer_message(question, stats, feed.frame_id if feed else '')
        self._publish_answer(message, question.answer)
        return message

    def _on_query(self, request: Any, response: Any) -> Any:
        with self._inflight.track():
            response.answer = self._ask(request)
        return response

    def _query_failed(self, request: Any, response: Any) -> Any:
        response.answer = _internal_error(request)
        self._publish_answer(response.answer)
        return response

    def _on_goal(self, goal: Any) -> GoalResponse:
        if self._closed:  # while active every goal is accepted; refusals come
            self._node.get_logger().warning(f'Ask goal rejected: {self._closed}')
            return GoalResponse.REJECT  # as an aborted result with the reason
        return GoalResponse.ACCEPT

    def _execute_ask(self, goal_handle: Any) -> Any:
        partial: list[str] = []

        def on_token(token_id: int, delta: str) -> bool:
            if goal_handle.is_cancel_requested:
                return False
            partial.append(delta)
            goal_handle.publish_feedback(_action.Ask.Feedback(
                partial_text=''.join(partial), delta=delta, tokens_generated=len(partial)))
            return True

        with self._inflight.track():
            message = self._ask(goal_handle.request, on_token,
                                lambda: goal_handle.is_cancel_requested)
            _end_goal(goal_handle, message)
        return _action.Ask.Result(answer=message)

    def _ask_failed(self, goal_handle: Any) -> Any:
        message = _internal_error(goal_handle.request)
        self._publish_answer(message)
        if goal_handle.is_active:
            goal_handle.abort()
        return _action.Ask.Result(answer=message)

    # ---- reset ------------------------------------------------------------------------

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._inflight.track():
            if self._closed:
                response.message = self._closed
                return response
            for feed in self._feeds.values():
                feed.request_reset()
            self._worker.wake()
            deadline = time.monotonic() + RESET_TIMEOUT_S
            while any(feed.reset_pending for feed in self._feeds.values()):
                if time.monotonic() > deadline or not self._worker.alive:
                    response.message = 'the reset did not complete (the node is stopping)'
                    return response
                time.sleep(0.01)
            response.success = True
            response.message = f'memory reset: {", ".join(self._feeds)}'
        return response


def _accept_cancel(goal_handle: Any) -> CancelResponse:
    return CancelResponse.ACCEPT  # the answer stops at its next token


def _reset_failed(request: Any, response: Any) -> Any:
    response.success, response.message = False, 'the reset failed (see the node log)'
    return response


def _internal_error(request: Any) -> Answer:
    return Answer(success=False, error_code=Answer.ERROR_INTERNAL,
                  error='internal error (see the node log)', camera=request.camera,
                  question=request.question)


def _end_goal(goal_handle: Any, message: Answer) -> None:
    """End an Ask goal as its Answer says (one truth for the result and ``~/answers``)."""
    if message.success:
        goal_handle.succeed()
    elif message.error_code == Answer.ERROR_CANCELLED and goal_handle.is_cancel_requested:
        goal_handle.canceled()
    else:
        goal_handle.abort()

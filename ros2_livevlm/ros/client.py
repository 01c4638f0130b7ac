# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A blocking Python client of a livevlm node (used by the demo and the tests).

It owns an rclpy context, a node and an executor thread, so plain Python gets blocking
calls with timeouts: ``query``, ``ask`` (feedback callback, cancel), ``reset``,
``save_memory``/``load_memory``, ``watch`` (events as feedback), lifecycle
``change_state``/``get_state``, ``set_parameters``/``describe_parameters`` (what
``ros2 param set``/``describe`` do), and the latest ``MemoryState`` per camera.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Optional

from lifecycle_msgs.srv import ChangeState
from lifecycle_msgs.srv import GetState
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import DescribeParameters
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from std_srvs.srv import Trigger

from .qos import REQUEST_QOS
from .status import to_time
from ..action import Ask
from ..action import Watch
from ..msg import Answer
from ..msg import MemoryState
from ..srv import LoadMemory
from ..srv import Query
from ..srv import SaveMemory


class LiveVLMClient:
    """
    Client of the node ``target`` (fully qualified, e.g. ``/livevlm``).

    Args:
        target: the node's fully qualified name; its services are ``<target>/query`` etc.
        domain_id: ROS domain id (default: ``ROS_DOMAIN_ID`` or 0).
    """

    def __init__(self, target: str = '/livevlm', domain_id: Optional[int] = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f'livevlm_client_{os.getpid()}', context=self.context)
        self.states: dict[str, MemoryState] = {}
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        node = self.node
        self._query = node.create_client(Query, f'{target}/query', qos_profile=REQUEST_QOS)
        self._reset = node.create_client(Trigger, f'{target}/reset', qos_profile=REQUEST_QOS)
        self._save = node.create_client(SaveMemory, f'{target}/save_memory',
                                        qos_profile=REQUEST_QOS)
        self._load = node.create_client(LoadMemory, f'{target}/load_memory',
                                        qos_profile=REQUEST_QOS)
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self._set_parameters = node.create_client(SetParameters, f'{target}/set_parameters')
        self._describe = node.create_client(DescribeParameters,
                                            f'{target}/describe_parameters')
        self._ask = ActionClient(node, Ask, f'{target}/ask', goal_service_qos_profile=REQUEST_QOS,
                                 result_service_qos_profile=REQUEST_QOS,
                                 cancel_service_qos_profile=REQUEST_QOS)
        self._watch = ActionClient(node, Watch, f'{target}/watch',
                                   goal_service_qos_profile=REQUEST_QOS,
                                   result_service_qos_profile=REQUEST_QOS,
                                   cancel_service_qos_profile=REQUEST_QOS)
        node.create_subscription(MemoryState, f'{target}/memory_state', self._on_state,
                                 QoSProfile(depth=50))
        node.create_subscription(Answer, f'{target}/answers', self._on_answer,
                                 QoSProfile(depth=50))
        self._executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the executor and shut the context down."""
        self._executor.shutdown()
        self._thread.join(timeout=10.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def _on_state(self, msg: MemoryState) -> None:
        with self._lock:
            self.states[msg.camera] = msg

    def _on_answer(self, msg: Answer) -> None:
        with self._lock:
            self.answers.append(msg)

    def state(self, camera: str) -> Optional[MemoryState]:
        """Latest MemoryState received for ``camera``, or None."""
        with self._lock:
            return self.states.get(camera)

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """
        Poll ``predicate`` every 50 ms until truthy; return its value.

        Raises:
            TimeoutError: still falsy after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f'condition not met within {timeout} s')
            time.sleep(0.05)

    def _call(self, client: Any, request: Any, timeout: float, *, retry: bool = False) -> Any:
        """
        Call a service; ``retry`` re-sends an idempotent request every 2 s.

        Right after discovery a response can be lost (the server may not yet know this
        client's response reader although the request went through); retrying covers it.
        """
        deadline = time.monotonic() + timeout
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {client.srv_name} not available within {timeout} s')
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self._wait(client.call_async(request),
                                  min(remaining, 2.0) if retry else remaining)
            except TimeoutError:
                if not retry or time.monotonic() >= deadline:
                    raise

    @staticmethod
    def _wait(future: Any, timeout: float) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f'no response within {timeout} s')
        return future.result()

    @staticmethod
    def _fill(request: Any, question: str, camera: str, max_new_tokens: int,
              time_window: Optional[tuple[float, float]]) -> Any:
        request.question, request.camera, request.max_new_tokens = question, camera, max_new_tokens
        if time_window is not None:
            request.use_time_window = True
            request.window_start, request.window_end = (to_time(t) for t in time_window)
        return request

    def query(self, question: str, camera: str = '', *, max_new_tokens: int = 0,
              time_window: Optional[tuple[float, float]] = None,
              timeout: float = 120.0) -> Answer:
        """Call ``~/query``; returns the Answer message."""
        return self._wait(self.query_async(question, camera, max_new_tokens=max_new_tokens,
                                           time_window=time_window, timeout=timeout),
                          timeout).answer

    def query_async(self, question: str, camera: str = '', *, max_new_tokens: int = 0,
                    time_window: Optional[tuple[float, float]] = None,
                    timeout: float = 30.0) -> Any:
        """
        Send a ``~/query`` request without waiting; returns its future (``Query.Response``).

        Raises:
            TimeoutError: the service is not available within ``timeout`` s.
        """
        if not self._query.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {self._query.srv_name} not available within {timeout} s')
        request = self._fill(Query.Request(), question, camera, max_new_tokens, time_window)
        return self._query.call_async(request)

    def send_ask(self, question: str, camera: str = '', *, max_new_tokens: int = 0,
                 on_feedback: Optional[Callable[[Any], None]] = None,
                 timeout: float = 30.0) -> Any:
        """Send an ``~/ask`` goal; returns its ClientGoalHandle (``accepted`` may be False)."""
        future = self.send_ask_async(question, camera, max_new_tokens=max_new_tokens,
                                     on_feedback=on_feedback, timeout=timeout)
        return self._wait(future, timeout)

    def send_ask_async(self, question: str, camera: str = '', *, max_new_tokens: int = 0,
                       on_feedback: Optional[Callable[[Any], None]] = None,
                       timeout: float = 30.0) -> Any:
        """
        Send an ``~/ask`` goal without waiting; returns the future of its ClientGoalHandle.

        Raises:
            TimeoutError: the action server is not available within ``timeout`` s.
        """
        if not self._ask.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f'action server not available within {timeout} s')
        goal = self._fill(Ask.Goal(), question, camera, max_new_tokens, None)
        callback = (lambda msg: on_feedback(msg.feedback)) if on_feedback else None
        return self._ask.send_goal_async(goal, feedback_callback=callback)

    def result(self, goal_handle: Any, timeout: float = 120.0) -> tuple[int, Answer]:
        """Wait for an accepted goal; returns ``(GoalStatus code, Answer)``."""
        response = self._wait(goal_handle.get_result_async(), timeout)
        return response.status, response.result.answer

    def send_watch(self, question: str, camera: str = '', *, whole_memory: bool = False,
                   window: float = 0.0, hold: int = 0, min_period: float = 0.0,
                   max_events: int = 0, on_event: Optional[Callable[[Any], None]] = None,
                   timeout: float = 30.0) -> Any:
        """
        Send a ``~/watch`` goal (fields as ``action/Watch``); returns its ClientGoalHandle.

        ``on_event`` gets each ``WatchEvent`` (feedback); :meth:`watch_result` waits for the end.
        """
        if not self._watch.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f'action server not available within {timeout} s')
        goal = Watch.Goal(question=question, camera=camera, whole_memory=whole_memory,
                          window=window, hold=hold, min_period=min_period,
                          max_events=max_events)
        callback = (lambda msg: on_event(msg.feedback.event)) if on_event else None
        return self._wait(self._watch.send_goal_async(goal, feedback_callback=callback),
                          timeout)

    def watch_result(self, goal_handle: Any, timeout: float = 120.0) -> tuple[int, Any]:
        """Wait for a watch goal to end; returns ``(GoalStatus code, Watch.Result)``."""
        response = self._wait(goal_handle.get_result_async(), timeout)
        return response.status, response.result

    def cancel(self, goal_handle: Any, timeout: float = 30.0) -> Any:
        """Request cancellation of a goal; returns the CancelGoal response."""
        return self._wait(goal_handle.cancel_goal_async(), timeout)

    def reset(self, timeout: float = 60.0) -> Trigger.Response:
        """Call ``~/reset``."""
        return self._call(self._reset, Trigger.Request(), timeout)

    def save_memory(self, path: str = '', camera: str = '',
                    timeout: float = 120.0) -> SaveMemory.Response:
        """Call ``~/save_memory`` (empty path: the node's ``memory_file``; empty camera: all)."""
        return self._call(self._save, SaveMemory.Request(path=path, camera=camera), timeout)

    def load_memory(self, path: str = '', camera: str = '',
                    timeout: float = 120.0) -> LoadMemory.Response:
        """Call ``~/load_memory`` (empty path: the node's ``memory_file``; empty camera: all)."""
        return self._call(self._load, LoadMemory.Request(path=path, camera=camera), timeout)

    def change_state(self, transition_id: int, timeout: float = 120.0) -> bool:
        """Trigger a lifecycle transition (``lifecycle_msgs/Transition`` id); True on success."""
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self._change, request, timeout).success

    def get_state(self, timeout: float = 30.0) -> str:
        """Return the lifecycle state label (``unconfigured``, ``inactive``, ``active``...)."""
        return self._call(self._get, GetState.Request(), timeout,
                          retry=True).current_state.label

    def set_parameters(self, timeout: float = 30.0, **values: Any) -> list[SetParametersResult]:
        """Set parameters of the node (``ros2 param set``); one result (reason) per value."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in values.items()])
        return list(self._call(self._set_parameters, request, timeout, retry=True).results)

    def describe_parameters(self, *names: str,
                            timeout: float = 30.0) -> list[ParameterDescriptor]:
        """Describe parameters of the node (``ros2 param describe``)."""
        request = DescribeParameters.Request(names=list(names))
        return list(self._call(self._describe, request, timeout, retry=True).descriptors)

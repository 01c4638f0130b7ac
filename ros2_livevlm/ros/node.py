# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm lifecycle node: camera topics in, questions answered from visual memory.

Configure loads the model (one memory per camera, one shared model); activate creates the
subscriptions, ``~/query``, ``~/ask``, ``~/reset`` and the state timer and starts the
worker; deactivate stops them (pending questions fail with an error); cleanup frees the
model. Outputs: ``~/answers``, ``~/memory_state`` and ``/diagnostics``. Camera callbacks
only sample and convert; the worker thread owns the engines. Services and the action
server run in their own reentrant callback group on a MultiThreadedExecutor.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from dataclasses import asdict
import importlib.util
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional
import warnings

from action_msgs.msg import GoalStatus
from ament_index_python.packages import get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.action import ActionServer
from rclpy.action import CancelResponse
from rclpy.action import GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import Clock
from rclpy.clock import ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import State
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from .image import ImageConversionError
from .image import to_rgb
from .params import declare_parameters
from .params import NodeSettings
from .params import read_settings
from .status import answer_message
from .status import diagnostics_message
from .status import memory_state_message
from .worker import CameraFeed
from .worker import Frame
from .worker import Question
from .worker import Worker
from .. import action as _action
from .. import msg as _msg
from .. import srv as _srv

REQUIRED_MODULES = ('numpy', 'PIL', 'torch', 'transformers', 'tokenizers', 'safetensors')
"""Python modules the engine needs at start-up (pip requirements, not rosdep keys)."""


def missing_requirements() -> list[str]:
    """Return the :data:`REQUIRED_MODULES` that cannot be imported."""
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


class LiveVLMNode(LifecycleNode):
    """Lifecycle node ``livevlm``; see the module docstring and README for its interface."""

    def __init__(self, **kwargs: Any) -> None:
        self._node_settings: Optional[NodeSettings] = None
        self._engines: dict = {}
        self._worker = None
        self._feeds: dict = {}
        self._camera_subs: dict = {}
        self._serving: list = []
        self._outputs: dict = {}
        self._inflight = 0
        self._inflight_done = threading.Condition()
        super().__init__('livevlm', **kwargs)
        declare_parameters(self)
        self._serve_group = ReentrantCallbackGroup()  # services and action server
        self._qos_events: dict[str, int] = {}
        if self.get_parameter('autostart').value is True:
            self._autostart_timer = self.create_timer(0.0, self._on_autostart)
        else:
            self.get_logger().info(
                'unconfigured, waiting for the lifecycle transitions (`ros2 lifecycle set '
                f'{self.get_fully_qualified_name()} configure`, then activate) or restart '
                'with -p autostart:=true (after any --params-file)')

    def _on_autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # ---- lifecycle ------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Check settings and requirements, load the model; SUCCESS -> inactive."""
        log = self.get_logger()
        missing = missing_requirements()
        if missing:
            log.error(f'missing Python packages: {", ".join(missing)}. Install the pinned set: '
                      '`python3 -m pip install -r <prefix>/share/ros2_livevlm/requirements.txt`'
                      ' (scripts/requirements.txt in the source tree)')
            return TransitionCallbackReturn.FAILURE
        try:
            settings = read_settings(self)
        except ValueError as err:
            log.error(f'bad parameter: {err}')
            return TransitionCallbackReturn.FAILURE
        from ..engine import StreamingVLM  # torch is imported only once configured
        knobs = {**asdict(settings.memory), **asdict(settings.engine)}
        device, dtype = knobs.pop('device'), knobs.pop('dtype')
        log.info(f'loading model {settings.model_path!r} on {device} ({dtype})')
        try:
            engine = StreamingVLM.from_pretrained(
                settings.model_path, device=device, dtype=dtype, **knobs)
        except (ValueError, OSError, RuntimeError) as err:
            log.error(f'cannot load model_path={settings.model_path!r}: {err}')
            return TransitionCallbackReturn.FAILURE
        per_frame = engine.model.tokens_per_frame
        if settings.memory.policy != 'full' and settings.memory.budget_tokens < 4 * per_frame:
            log.warning(
                f'budget_tokens={settings.memory.budget_tokens} holds fewer than 4 frames of '
                f'this model ({per_frame} tokens per frame); for a real checkpoint apply '
                'config/llava_onevision.yaml (launch argument model_params_file)')
        names = [camera.name for camera in settings.cameras]
        self._engines = {name: engine if i == 0 else engine.new_stream()
                         for i, name in enumerate(names)}
        self._node_settings = settings
        self._outputs = {
            'state': self.create_lifecycle_publisher(_msg.MemoryState, '~/memory_state', 10),
            'answers': self.create_lifecycle_publisher(_msg.Answer, '~/answers', 10),
            'diagnostics': self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics', 10),
        }
        log.info(f'configured: cameras {", ".join(names)}; policy {settings.memory.policy}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe, serve and start the worker; SUCCESS -> active."""
        settings = self._node_settings
        self._feeds = {camera.name: CameraFeed(camera.name, settings.sample_fps,
                                               settings.queue_size)
                       for camera in settings.cameras}
        self._worker = Worker(self._engines, self._feeds, self._now, self.get_logger(),
                              clip_timeout=settings.clip_timeout,
                              flush_on_question=settings.flush_on_question,
                              max_pending=settings.max_pending_questions)
        self._worker.start()
        self._camera_subs = {camera.name: self._subscribe(camera) for camera in settings.cameras}
        group = self._serve_group
        self._serving = [
            self.create_service(_srv.Query, '~/query', self._on_query, callback_group=group),
            self.create_service(Trigger, '~/reset', self._on_reset, callback_group=group),
            ActionServer(self, _action.Ask, '~/ask', self._execute_ask,
                         goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                         callback_group=group),
            # steady clock: state keeps flowing while sim time stands still (a paused bag)
            self.create_timer(settings.state_period, self._publish_state,
                              clock=Clock(clock_type=ClockType.STEADY_TIME)),
        ]
        self.get_logger().info('active: ~/query, ~/ask, ~/reset ready')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop the worker (pending questions fail) and tear down; SUCCESS -> inactive."""
        self._stop('the node was deactivated')
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the model and the publishers; SUCCESS -> unconfigured."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop whatever runs and free everything; SUCCESS -> finalized."""
        self.close('the node is shutting down')
        return TransitionCallbackReturn.SUCCESS

    def close(self, reason: str) -> None:
        """Stop the worker, answer pending requests with ``reason``, free everything."""
        self._stop(reason)
        self._release()

    def _stop(self, reason: str) -> None:
        if self._worker is not None:
            self._worker.stop(reason)
            self._worker = None
        with self._inflight_done:  # let pending requests send their error responses
            self._inflight_done.wait_for(lambda: self._inflight == 0, timeout=10.0)
        time.sleep(0.2 if self._serving else 0.0)  # results on their way to clients
        for subscription in self._camera_subs.values():
            self.destroy_subscription(subscription)
        service_query, service_reset, action_server, timer = self._serving or (None,) * 4
        if action_server is not None:
            action_server.destroy()
            self.destroy_service(service_query)
            self.destroy_service(service_reset)
            self.destroy_timer(timer)
        self._camera_subs, self._serving = {}, []

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self._engines = {}
        self._node_settings = None

    # ---- cameras ----------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _subscribe(self, camera: Any) -> Any:
        with warnings.catch_warnings():  # the Humble name; Kilted keeps it as an alias
            warnings.simplefilter('ignore', UserWarning)
            from rclpy.qos_event import SubscriptionEventCallbacks
        msg_type = CompressedImage if camera.compressed else Image

        def on_incompatible(event: Any) -> None:
            self._qos_events[camera.name] = event.total_count
            self.get_logger().warning(
                f'camera {camera.name}: a publisher offers QoS incompatible with this '
                f'subscription ({event.last_policy_kind}); a reliable subscriber never '
                'receives from a best-effort camera: set qos_reliability to best_effort',
                throttle_duration_sec=10.0)

        return self.create_subscription(
            msg_type, camera.name, lambda msg: self._on_image(camera.name, msg), camera.qos,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=on_incompatible))

    def _on_image(self, camera: str, msg: Any) -> None:
        feed, now = self._feeds[camera], self._now()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp == 0.0:
            self.get_logger().warning(f'camera {camera}: header.stamp is zero; using the '
                                      'node clock instead', throttle_duration_sec=10.0)
            stamp = now
        due, jump = feed.receive(stamp, now)
        if jump:
            self.get_logger().warning(
                f'camera {camera}: time went backwards to {stamp:.3f} s (a looped bag or a '
                'restarted clock); its memory is reset')
        if not due:
            return
        try:
            rgb = to_rgb(msg)
        except ImageConversionError as err:
            feed.reject()
            self.get_logger().warning(f'camera {camera}: frame dropped: {err}',
                                      throttle_duration_sec=5.0)
            return
        feed.push(Frame(rgb, stamp, msg.header.frame_id))
        self._worker.wake()

    # ---- questions --------------------------------------------------------------------

    @contextmanager
    def _request(self) -> Iterator[None]:
        with self._inflight_done:
            self._inflight += 1
        try:
            yield
        finally:
            with self._inflight_done:
                self._inflight -= 1
                self._inflight_done.notify_all()

    def _answer(self, request: Any, on_token: Optional[Callable] = None,
                cancelled: Callable[[], bool] = lambda: False) -> Any:
        """Answer a Query request or an Ask goal (same fields); returns an Answer message."""
        worker, names = self._worker, list(self._engines)
        camera = request.camera or (names[0] if names else '')
        question = Question(camera, request.question, request.max_new_tokens or None,
                            on_token=on_token, cancelled=cancelled)
        if request.use_time_window:
            question.time_window = tuple(t.sec + t.nanosec * 1e-9
                                         for t in (request.window_start, request.window_end))
        if worker is None:
            question.fail('the node is not active')
        elif not request.question.strip():
            question.fail('the question is empty; ask something, e.g. "What is on the table?"')
        elif camera not in self._engines:
            question.fail(f'unknown camera {camera!r}; cameras: {", ".join(names)}')
        elif worker.submit(question):
            question.done.wait()
        feed = self._feeds.get(camera)
        stats = worker.stats(camera) if worker is not None and feed is not None else None
        message = answer_message(question, stats, feed.frame_id if feed else '')
        publisher = self._outputs.get('answers')
        if publisher is not None and publisher.is_activated:
            publisher.publish(message)
        return message

    def _on_query(self, request: Any, response: Any) -> Any:
        with self._request():
            response.answer = self._answer(request)
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._request():
            for feed in self._feeds.values():
                feed.request_reset()
            self._worker.wake()
            deadline = time.monotonic() + 30.0
            while any(f.reset_pending for f in self._feeds.values()):
                if time.monotonic() > deadline or self._worker is None:
                    response.message = 'the reset did not complete (the node is stopping)'
                    return response
                time.sleep(0.01)
            response.success = True
            response.message = f'memory reset: {", ".join(self._feeds)}'
        return response

    def _on_goal(self, goal: Any) -> GoalResponse:
        worker = self._worker
        if worker is None or not worker.has_capacity():
            reason = 'max_pending_questions reached' if worker else 'the node is not active'
            self.get_logger().warning(f'Ask goal rejected: {reason}')
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        return CancelResponse.ACCEPT

    def _execute_ask(self, goal_handle: Any) -> Any:
        partial: list[str] = []

        def on_token(token_id: int, delta: str) -> bool:
            if goal_handle.is_cancel_requested:
                return False
            partial.append(delta)
            goal_handle.publish_feedback(_action.Ask.Feedback(
                partial_text=''.join(partial), delta=delta, tokens_generated=len(partial)))
            return True

        with self._request():
            message = self._answer(goal_handle.request, on_token,
                                   lambda: goal_handle.is_cancel_requested)
            if goal_handle.is_cancel_requested:
                message.success, message.error, message.text = False, 'cancelled', ''
                goal_handle.canceled()
            elif message.success:
                goal_handle.succeed()
            elif goal_handle.status != GoalStatus.STATUS_CANCELED:
                goal_handle.abort()
        return _action.Ask.Result(answer=message)

    # ---- state ------------------------------------------------------------------------

    def _publish_state(self) -> None:
        worker, now = self._worker, self.get_clock().now()
        if worker is None:
            return
        states = []
        for camera, feed in self._feeds.items():
            topic = self._camera_subs[camera].topic_name
            state = memory_state_message(camera, topic, self._node_settings.memory.policy, feed,
                                         worker.stats(camera), now)
            self._outputs['state'].publish(state)
            states.append((state, self.count_publishers(topic),
                           self._qos_events.get(camera, 0),
                           feed.time_jumps))
        self._outputs['diagnostics'].publish(
            diagnostics_message(self.get_fully_qualified_name(), states, now))

    def executor_threads(self) -> int:
        """Threads the executor needs: one per pending question, plus callbacks and lifecycle."""
        value = self.get_parameter('max_pending_questions').value
        return 4 + (value if isinstance(value, int) and 0 < value < 64 else 4)


def parse_arguments(args: Optional[list[str]] = None) -> None:
    """
    Answer ``--help`` and refuse unknown options before rclpy starts; ROS arguments pass.

    ``args`` is the whole command line, program name first (default ``sys.argv``).
    Exits with code 0 after printing the help, 2 on an option that is not a ROS argument.
    """
    try:
        params_file = os.path.join(get_package_share_directory('ros2_livevlm'), 'config',
                                   'livevlm.yaml')
    except PackageNotFoundError:
        params_file = 'config/livevlm.yaml of the ros2_livevlm package'
    parser = argparse.ArgumentParser(
        prog='livevlm_node', usage='%(prog)s [-h] [--ros-args ...]',
        description=__doc__.strip().split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f'parameters: each one with its default and unit in\n  {params_file}\n'
        'and described by the running node: ros2 param describe /livevlm <name>\n\n'
        'examples (ROS arguments after --ros-args):\n'
        '  livevlm_node --ros-args -p autostart:=true -p cameras:=[/camera/image_raw]\n'
        '  livevlm_node --ros-args --params-file my_params.yaml -r __ns:=/robot1')
    parser.parse_args(remove_ros_args(sys.argv if args is None else args)[1:])


def main(args: Optional[list[str]] = None) -> int:
    """
    Run the node until SIGINT or SIGTERM, then stop cleanly (exit code 0).

    On a signal the worker stops and pending questions are answered with an error before
    the executor and the context shut down. rclpy's own signal handlers are not installed,
    so the executor keeps serving those last responses.
    """
    parse_arguments(args)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = LiveVLMNode()
    executor = MultiThreadedExecutor(num_threads=node.executor_threads())
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        finally:
            stop.set()

    spinner = threading.Thread(target=spin, name='livevlm_executor')
    spinner.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        node.close('the node is shutting down')
        executor.shutdown()
        spinner.join()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

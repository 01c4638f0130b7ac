# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm lifecycle node: camera topics in, questions answered from visual memory.

Configure loads the model (one memory per camera, one shared model); activate creates the
camera subscriptions (QoS chosen from their publishers, :mod:`.subscription`),
``~/query``, ``~/ask``, ``~/reset``, the timers, and starts the worker; deactivate stops
them (pending questions fail with an error); cleanup frees the model. Outputs:
``~/answers`` (exactly what each caller got), ``~/memory_state`` and ``/diagnostics``.

Everything that runs while active lives in one :class:`_Session`, replaced as a whole:
a callback takes the session once and works on it, so tearing down under a running
callback (Ctrl-C while a camera streams) never leaves it half a node. Camera callbacks
only sample and convert; the worker thread owns the engines. Services and the action
server run in their own reentrant callback group on a MultiThreadedExecutor with a thread
per admissible question plus :data:`SPARE_THREADS`; a waiting question holds its thread,
every other request is answered at once (refusals included), and requests are never
dropped by the middleware (:data:`~ros2_livevlm.ros.qos.REQUEST_QOS`). Every callback is
guarded: an exception is logged with its traceback, counted in diagnostics, and the
executor keeps running.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
import functools
import importlib.util
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterator, Optional, TYPE_CHECKING

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
from std_srvs.srv import Trigger

from .feed import CameraFeed
from .feed import Frame
from .image import ImageConversionError
from .image import to_rgb
from .params import declare_parameters
from .params import MAX_PENDING_LIMIT
from .params import NodeSettings
from .params import read_settings
from .qos import REQUEST_QOS
from .status import answer_message
from .status import CameraReport
from .status import diagnostics_message
from .status import memory_state_message
from .status import NodeReport
from .status import transport_problem
from .subscription import CameraSubscription
from .subscription import REFRESH_PERIOD_S
from .worker import Question
from .worker import Worker
from .. import action as _action
from .. import msg as _msg
from .. import srv as _srv

if TYPE_CHECKING:
    from ..engine import StreamingVLM

REQUIRED_MODULES = ('numpy', 'PIL', 'torch', 'transformers', 'tokenizers', 'safetensors')
"""Python modules the engine needs at start-up (pip requirements, not rosdep keys)."""

SPARE_THREADS = 4
"""Executor threads beyond ``max_pending_questions``: cameras, timers, lifecycle, refusals."""

PROBLEM_LOG_PERIOD_S = 30.0
"""A camera's transport problem is logged at most this often, s."""


def missing_requirements() -> list[str]:
    """Return the :data:`REQUIRED_MODULES` that cannot be imported."""
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def load_engine(settings: NodeSettings) -> StreamingVLM:
    """
    Load the engine of the first camera from the node's settings (the others share its model).

    Raises:
        ValueError, OSError, RuntimeError: the checkpoint cannot be loaded.
    """
    from ..engine import StreamingVLM  # torch is imported only once configured
    knobs = {**asdict(settings.memory), **asdict(settings.engine)}
    device, dtype = knobs.pop('device'), knobs.pop('dtype')
    return StreamingVLM.from_pretrained(settings.model_path, device=device, dtype=dtype,
                                        **knobs)


@dataclass
class _Session:
    """What runs while the node is active."""

    settings: NodeSettings
    feeds: dict[str, CameraFeed]
    worker: Worker
    cameras: dict[str, CameraSubscription]
    services: list[Any]
    timers: list[Any]


class LiveVLMNode(LifecycleNode):
    """
    Lifecycle node ``livevlm``; see the module docstring and README for its interface.

    Args:
        load_engine: builds the first camera's engine from the settings at configure
            (default :func:`load_engine`); for embedding the node, and for tests that inject
            faults at the engine boundary.
        **kwargs: passed to ``rclpy.lifecycle.LifecycleNode``.
    """

    def __init__(self, *, load_engine: Callable[[NodeSettings], Any] = load_engine,
                 **kwargs: Any) -> None:
        self._load_engine = load_engine
        self._node_settings: Optional[NodeSettings] = None
        self._engines: dict = {}
        self._session: Optional[_Session] = None
        self._outputs: dict = {}
        self._inflight = 0
        self._inflight_done = threading.Condition()
        self._closing = False
        self._callback_errors = 0
        self._last_callback_error = ''
        self._logged_errors: set[tuple[str, ...]] = set()
        self._problem_logged: dict[str, float] = {}
        self.fatal_error = ''
        self.stop_requested = threading.Event()
        super().__init__('livevlm', **kwargs)
        declare_parameters(self)
        self._serve_group = ReentrantCallbackGroup()  # services and action server
        if self.get_parameter('autostart').value is True:
            self._autostart_timer = self.create_timer(
                0.0, self._guarded('autostart', self._on_autostart))
        else:
            self.get_logger().info(
                'unconfigured, waiting for the lifecycle transitions (`ros2 lifecycle set '
                f'{self.get_fully_qualified_name()} configure`, then activate) or restart '
                'with -p autostart:=true (after any --params-file)')

    def _on_autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        if not self._closing and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
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
        log.info(f'loading model {settings.model_path!r} on {settings.engine.device} '
                 f'({settings.engine.dtype})')
        try:
            engine = self._load_engine(settings)
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
        if self._closing:
            return TransitionCallbackReturn.FAILURE
        settings = self._node_settings
        feeds = {camera.name: CameraFeed(camera.name, settings.sample_fps, settings.queue_size)
                 for camera in settings.cameras}
        worker = Worker(self._engines, feeds, self._now, self.get_logger(),
                        clip_timeout=settings.clip_timeout,
                        flush_on_question=settings.flush_on_question,
                        max_pending=settings.max_pending_questions, on_fatal=self._on_fatal)
        session = _Session(settings, feeds, worker, {}, [], [])
        worker.start()
        for camera in settings.cameras:
            session.cameras[camera.name] = CameraSubscription(
                self, camera.name, compressed=camera.compressed, setting=camera.reliability,
                depth=camera.depth, on_message=self._guarded(
                    f'camera {camera.name}', functools.partial(self._on_image, session,
                                                               camera.name)))
        group = self._serve_group
        session.services = [
            self.create_service(_srv.Query, '~/query',
                                self._guarded('~/query', self._on_query, self._query_failed),
                                qos_profile=REQUEST_QOS, callback_group=group),
            self.create_service(Trigger, '~/reset',
                                self._guarded('~/reset', self._on_reset, _reset_failed),
                                qos_profile=REQUEST_QOS, callback_group=group),
            ActionServer(self, _action.Ask, '~/ask',
                         self._guarded('~/ask', self._execute_ask, self._ask_failed),
                         goal_callback=self._guarded('~/ask goal', self._on_goal,
                                                     lambda goal: GoalResponse.REJECT),
                         cancel_callback=_accept_cancel, callback_group=group,
                         goal_service_qos_profile=REQUEST_QOS,
                         result_service_qos_profile=REQUEST_QOS,
                         cancel_service_qos_profile=REQUEST_QOS),
        ]
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # runs while sim time stands still
        session.timers = [
            self.create_timer(settings.state_period, self._guarded(
                'state', functools.partial(self._publish_state, session)), clock=steady),
            self.create_timer(REFRESH_PERIOD_S, self._guarded(
                'qos', functools.partial(_refresh_cameras, session)), clock=steady),
        ]
        self._session = session
        self.get_logger().info(
            'active: ~/query, ~/ask, ~/reset ready; cameras ' + ', '.join(
                f'{c.topic} ({c.reliability.name.lower()})' for c in session.cameras.values()))
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
        self._closing = True
        self._stop(reason)
        self._release()

    def _stop(self, reason: str) -> None:
        session, self._session = self._session, None  # new requests: "not active"
        if session is None:
            return
        for timer in session.timers:
            self.destroy_timer(timer)
        for camera in session.cameras.values():
            camera.destroy()
        session.worker.stop(reason)  # queued questions fail, a running answer stops
        with self._inflight_done:  # let pending requests send their error responses
            self._inflight_done.wait_for(lambda: self._inflight == 0, timeout=10.0)
        time.sleep(0.2)  # results on their way to clients
        query, reset, action_server = session.services
        action_server.destroy()
        self.destroy_service(query)
        self.destroy_service(reset)

    def _release(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self._engines = {}
        self._node_settings = None

    def _on_fatal(self, message: str) -> None:
        """Worker thread: a fatal error; the process stops and exits non-zero."""
        self.fatal_error = message
        self.get_logger().fatal(f'{message}; the node stops (exit code 1): restart it (a '
                                'launch file with respawn=True does)')
        self.stop_requested.set()

    # ---- guarded callbacks ----------------------------------------------------------

    def _guarded(self, name: str, callback: Callable[..., Any],
                 fallback: Callable[..., Any] = lambda *args: None) -> Callable[..., Any]:
        """Wrap a callback: an exception is reported and ``fallback(*args)`` returned."""
        @functools.wraps(callback)
        def run(*args: Any) -> Any:
            try:
                return callback(*args)
            except Exception as err:  # noqa: B902 - no callback may end the executor
                self.report_error(name, err)
                return fallback(*args)
        return run

    def report_error(self, where: str, err: Exception) -> None:
        """Log an exception caught in ``where`` (traceback the first time) and count it."""
        message = f'{where}: {type(err).__name__}: {err}'
        key = (where, type(err).__name__, str(err))
        self._callback_errors += 1
        self._last_callback_error = message
        if key not in self._logged_errors and len(self._logged_errors) < 100:
            self._logged_errors.add(key)
            trace = ''.join(traceback.format_exception(type(err), err, err.__traceback__))
            self.get_logger().error(f'unexpected error in {message}\n{trace.rstrip()}')
        else:
            self.get_logger().error(f'unexpected error in {message} (again)',
                                    throttle_duration_sec=10.0)

    # ---- cameras ----------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, session: _Session, camera: str, msg: Any) -> None:
        feed, now = session.feeds[camera], self._now()
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
        session.worker.wake()

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

    def _ask(self, request: Any, on_token: Optional[Callable] = None,
             cancelled: Callable[[], bool] = lambda: False) -> _msg.Answer:
        """
        Answer a Query request or an Ask goal (same fields); publish the message on ~/answers.

        Returns the Answer message: the answer, or success false with the reason.
        """
        session = self._session
        names = list(session.feeds) if session is not None else []
        camera = request.camera or (names[0] if names else '')
        question = Question(camera, request.question, request.max_new_tokens or None,
                            on_token=on_token, cancelled=cancelled)
        if request.use_time_window:
            question.time_window = tuple(t.sec + t.nanosec * 1e-9
                                         for t in (request.window_start, request.window_end))
        bad = _msg.Answer.ERROR_BAD_REQUEST
        if session is None:
            question.fail('the node is not active', _msg.Answer.ERROR_NOT_ACTIVE)
        elif not request.question.strip():
            question.fail('the question is empty; ask something, e.g. "What is on the table?"',
                          bad)
        elif camera not in session.feeds:
            question.fail(f'unknown camera {camera!r}; cameras: {", ".join(names)}', bad)
        elif session.worker.submit(question):
            question.done.wait()
        feed = session.feeds.get(camera) if session is not None else None
        stats = session.worker.stats(camera) if feed is not None else None
        message = answer_message(question, stats, feed.frame_id if feed else '')
        self._publish_answer(message)
        return message

    def _publish_answer(self, message: _msg.Answer) -> None:
        publisher = self._outputs.get('answers')
        if publisher is not None and publisher.is_activated:
            publisher.publish(message)

    def _on_query(self, request: Any, response: Any) -> Any:
        with self._request():
            response.answer = self._ask(request)
        return response

    def _query_failed(self, request: Any, response: Any) -> Any:
        response.answer = _internal_error(request)
        self._publish_answer(response.answer)
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._request():
            session = self._session
            if session is None:
                response.message = 'the node is not active'
                return response
            for feed in session.feeds.values():
                feed.request_reset()
            session.worker.wake()
            deadline = time.monotonic() + 30.0
            while any(f.reset_pending for f in session.feeds.values()):
                if time.monotonic() > deadline or not session.worker.alive:
                    response.message = 'the reset did not complete (the node is stopping)'
                    return response
                time.sleep(0.01)
            response.success = True
            response.message = f'memory reset: {", ".join(session.feeds)}'
        return response

    def _on_goal(self, goal: Any) -> GoalResponse:
        if self._session is None:  # while active every goal is accepted; refusals come
            self.get_logger().warning('Ask goal rejected: the node is not active')
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

        with self._request():
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

    # ---- state ------------------------------------------------------------------------

    def _publish_state(self, session: _Session) -> None:
        now = self.get_clock().now()
        reports = []
        for camera, feed in session.feeds.items():
            transport = session.cameras[camera].transport()
            state = memory_state_message(camera, session.settings.memory.policy, feed,
                                         transport, session.worker.stats(camera), now)
            self._outputs['state'].publish(state)
            reports.append(CameraReport(state, transport, session.worker.health(camera),
                                        feed.time_jumps))
            self._log_problem(camera, transport_problem(transport))
        node = NodeReport(session.worker.alive, session.worker.fatal_error,
                          self._callback_errors, self._last_callback_error,
                          session.worker.pending)
        self._outputs['diagnostics'].publish(
            diagnostics_message(self.get_fully_qualified_name(), reports, node, now))

    def _log_problem(self, camera: str, problem: Optional[str]) -> None:
        now = time.monotonic()
        if problem is not None and now - self._problem_logged.get(camera, -1e9) >= \
                PROBLEM_LOG_PERIOD_S:
            self._problem_logged[camera] = now
            self.get_logger().warning(f'camera {camera}: {problem}')

    def executor_threads(self) -> int:
        """Threads the executor needs: one per pending question, plus :data:`SPARE_THREADS`."""
        value = self.get_parameter('max_pending_questions').value
        pending = value if isinstance(value, int) and 0 < value <= MAX_PENDING_LIMIT else 4
        return pending + SPARE_THREADS


def _refresh_cameras(session: _Session) -> None:
    for camera in session.cameras.values():
        camera.refresh()


def _accept_cancel(goal_handle: Any) -> CancelResponse:
    return CancelResponse.ACCEPT


def _reset_failed(request: Any, response: Any) -> Any:
    response.success, response.message = False, 'the reset failed (see the node log)'
    return response


def _internal_error(request: Any) -> _msg.Answer:
    return _msg.Answer(success=False, error_code=_msg.Answer.ERROR_INTERNAL,
                       error='internal error (see the node log)', camera=request.camera,
                       question=request.question)


def _end_goal(goal_handle: Any, message: _msg.Answer) -> None:
    """End an Ask goal as its Answer says (one truth for the result and ~/answers)."""
    if message.success:
        goal_handle.succeed()
    elif message.error_code == _msg.Answer.ERROR_CANCELLED and goal_handle.is_cancel_requested:
        goal_handle.canceled()
    else:
        goal_handle.abort()


def _spin(executor: MultiThreadedExecutor, node: LiveVLMNode, running: threading.Event) -> None:
    """Spin until ``running`` is cleared; an exception out of the executor is reported."""
    while running.is_set():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return
        except Exception as err:  # noqa: B902 - the executor must outlive any callback
            node.report_error('executor', err)


def main(args: Optional[list[str]] = None,
         make_node: Callable[[], LiveVLMNode] = LiveVLMNode) -> int:
    """
    Run the node until SIGINT, SIGTERM or a fatal error, then stop cleanly.

    On a signal the worker stops and pending questions are answered with an error while
    the executor still spins, then the executor and the context shut down. rclpy's own
    signal handlers are not installed, so those last responses go out.

    Returns:
        0 after a signal, 1 after a fatal error (the worker could not recover).
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: node.stop_requested.set())
    executor = MultiThreadedExecutor(num_threads=node.executor_threads())
    executor.add_node(node)
    running = threading.Event()
    running.set()
    spinner = threading.Thread(target=_spin, args=(executor, node, running),
                               name='livevlm_executor')
    spinner.start()
    try:
        while not node.stop_requested.wait(1.0):
            pass
    finally:
        node.close(node.fatal_error or 'the node is shutting down')
        running.clear()
        spinner.join()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if node.fatal_error else 0


if __name__ == '__main__':
    sys.exit(main())

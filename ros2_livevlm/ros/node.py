# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm lifecycle node: camera topics in, questions answered from visual memory.

Configure loads the model (one memory per camera, one shared model); activate creates the
camera subscriptions (QoS chosen from their publishers, :mod:`.subscription`),
``~/query``, ``~/ask``, ``~/reset``, the timers, and starts the worker; deactivate stops
them (pending questions fail with an error); cleanup frees the model. Outputs:
``~/answers`` (exactly what each caller got), ``~/memory_state`` and ``/diagnostics``.

Everything that runs while active lives in one :class:`Session`, replaced as a whole:
a callback takes the session once and works on it, so tearing down under a running
callback (Ctrl-C while a camera streams) never leaves it half a node. Camera callbacks
only sample and convert; the worker thread owns the engines; requests are served by
:class:`~ros2_livevlm.ros.serving.RequestServer` in their own reentrant callback group,
on a MultiThreadedExecutor with a thread per admissible question plus
:data:`SPARE_THREADS`. Every callback is guarded (:func:`~ros2_livevlm.ros.errors.guarded`):
an exception is logged with its traceback, counted in diagnostics, and the executor keeps
running. :func:`main` exits 0 after SIGINT or SIGTERM, 1 after a fatal worker error.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
import functools
import importlib.util
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional, TYPE_CHECKING

from ament_index_python.packages import get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from diagnostic_msgs.msg import DiagnosticArray
import rclpy
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

from .errors import ErrorLog
from .errors import guarded
from .feed import CameraFeed
from .feed import Frame
from .image import ImageConversionError
from .image import to_rgb
from .params import declare_parameters
from .params import MAX_PENDING_LIMIT
from .params import MAX_WATCHES_LIMIT
from .params import NodeSettings
from .params import read_settings
from .persistence_services import load_at_configure
from .persistence_services import MemoryFileServer
from .serving import RequestServer
from .status import CameraReport
from .status import diagnostics_message
from .status import memory_state_message
from .status import NodeReport
from .status import transport_problem
from .subscription import CameraSubscription
from .subscription import REFRESH_PERIOD_S
from .watch_server import WatchServer
from .watches import WatchBoard
from .worker import Worker
from .. import msg as _msg

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
class Session:
    """What runs while the node is active (created by activate, torn down by deactivate)."""

    settings: NodeSettings
    feeds: dict[str, CameraFeed]
    worker: Worker
    requests: RequestServer
    memory_files: MemoryFileServer
    watches: WatchServer
    board: WatchBoard
    cameras: dict[str, CameraSubscription] = field(default_factory=dict)
    timers: list[Any] = field(default_factory=list)

    def refresh_cameras(self) -> None:
        """Re-read every camera topic's publishers (QoS ``auto``)."""
        for camera in self.cameras.values():
            camera.refresh()


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
        self._session: Optional[Session] = None
        self._outputs: dict = {}
        self._closing = False
        self._problem_logged: dict[str, float] = {}
        self._refused_files: dict[str, str] = {}  # memory files refused at load: path -> reason
        self.fatal_error = ''
        self.stop_requested = threading.Event()
        super().__init__('livevlm', **kwargs)
        self.errors = ErrorLog(self.get_logger())  # exceptions caught in callbacks
        declare_parameters(self)
        self._serve_group = ReentrantCallbackGroup()  # services and action server
        if self.get_parameter('autostart').value is True:
            self._autostart_timer = self.create_timer(
                0.0, guarded(self.errors, 'autostart', self._on_autostart))
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
        load_at_configure(settings, self._engines, log, self._refused_files)
        self._node_settings = settings
        self._outputs = {
            'state': self.create_lifecycle_publisher(_msg.MemoryState, '~/memory_state', 10),
            'answers': self.create_lifecycle_publisher(_msg.Answer, '~/answers', 10),
            'diagnostics': self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics', 10),
            'watch_events': self.create_lifecycle_publisher(_msg.WatchEvent, '~/watch_events',
                                                            10),
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
        for name, feed in feeds.items():  # a loaded memory's timeline goes on
            feed.continue_from(self._engines[name].stats().newest_stamp)
        board = WatchBoard(settings.max_watches, self.errors)
        worker = Worker(self._engines, feeds, self._now, self.get_logger(),
                        clip_timeout=settings.clip_timeout,
                        flush_on_question=settings.flush_on_question,
                        max_pending=settings.max_pending_questions, on_fatal=self._on_fatal,
                        watches=board)
        worker.start()
        group = self._serve_group
        session = Session(
            settings, feeds, worker,
            RequestServer(self, feeds, worker, self._publish_answer, self.errors, group),
            MemoryFileServer(self, settings, feeds, worker, self._refused_files, self.errors,
                             group),
            WatchServer(self, feeds, board, settings.watch_hold,
                        functools.partial(self._publish, 'watch_events'), self.errors, group),
            board)
        for camera in settings.cameras:
            session.cameras[camera.name] = CameraSubscription(
                self, camera.name, compressed=camera.compressed, setting=camera.reliability,
                depth=camera.depth, on_message=guarded(
                    self.errors, f'camera {camera.name}',
                    functools.partial(self._on_image, session, camera.name)))
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # runs while sim time stands still
        session.timers = [
            self.create_timer(settings.state_period, guarded(
                self.errors, 'state', functools.partial(self._publish_state, session)),
                clock=steady),
            self.create_timer(REFRESH_PERIOD_S, guarded(
                self.errors, 'qos', session.refresh_cameras),
                clock=steady),
        ]
        self._session = session
        self.get_logger().info(
            'active: ~/query, ~/ask, ~/reset, ~/save_memory, ~/load_memory, ~/watch ready; '
            'cameras ' + ', '.join(
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
        session, self._session = self._session, None
        if session is None:
            return
        for timer in session.timers:
            self.destroy_timer(timer)
        for camera in session.cameras.values():
            camera.destroy()
        session.memory_files.save_on_stop()  # on the worker, after its current clip
        session.worker.stop(reason)  # queued questions fail, a running answer stops
        session.requests.close(reason)  # after their responses went out
        session.watches.close(reason)
        session.memory_files.close()

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

    # ---- cameras ----------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, session: Session, camera: str, msg: Any) -> None:
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

    def _publish_answer(self, message: _msg.Answer) -> None:
        self._publish('answers', message)

    def _publish(self, output: str, message: Any) -> None:
        publisher = self._outputs.get(output)
        if publisher is not None and publisher.is_activated:
            publisher.publish(message)

    # ---- state ------------------------------------------------------------------------

    def _publish_state(self, session: Session) -> None:
        now = self.get_clock().now()
        reports = []
        for camera, feed in session.feeds.items():
            transport = session.cameras[camera].transport()
            watches = session.board.stats(camera)
            state = memory_state_message(camera, session.settings.memory.policy, feed,
                                         transport, session.worker.stats(camera), watches, now)
            self._outputs['state'].publish(state)
            reports.append(CameraReport(state, transport, session.worker.health(camera),
                                        feed.time_jumps, watches))
            self._log_problem(camera, transport_problem(transport))
        node = NodeReport(session.worker.alive, session.worker.fatal_error,
                          self.errors.count, self.errors.last,
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
        """Threads the executor needs: one per pending question and watch, plus spares."""
        pending = self.get_parameter('max_pending_questions').value
        watches = self.get_parameter('max_watches').value
        pending = pending if isinstance(pending, int) and 0 < pending <= MAX_PENDING_LIMIT else 4
        watches = watches if isinstance(watches, int) and 0 < watches <= MAX_WATCHES_LIMIT else 8
        return pending + watches + SPARE_THREADS


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


def _spin(executor: MultiThreadedExecutor, node: LiveVLMNode, running: threading.Event) -> None:
    """Spin until ``running`` is cleared; an exception out of the executor is reported."""
    while running.is_set():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return
        except Exception as err:  # noqa: B902 - the executor must outlive any callback
            node.errors.report(f'unexpected error in the executor: {type(err).__name__}: '
                               f'{err}', err)


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
    parse_arguments(args)
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

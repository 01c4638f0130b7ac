# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm lifecycle node: camera topics in, questions answered from visual memory.

Configure loads the model (one memory per camera, one shared model); activate creates the
camera subscriptions (QoS chosen from their publishers, :mod:`.subscription`),
``~/query``, ``~/ask``, ``~/reset``, the timers, and starts the worker; deactivate stops
them (pending questions fail with an error); cleanup frees the model. Outputs:
``~/answers`` (exactly what each caller got), ``~/evidence`` (the frames each answer drew
on), ``~/memory_state`` and ``/diagnostics`` (in every lifecycle state, from a timer that
lives as long as the node). Parameters are typed; runtime ones apply at once
(:mod:`.tuning`), the others at the next configure (:mod:`.params`).

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
from sensor_msgs.msg import CompressedImage

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
from .status import evidence_messages
from .status import memory_state_message
from .status import NodeReport
from .status import Thresholds
from .status import transport_problem
from .subscription import CameraSubscription
from .subscription import REFRESH_PERIOD_S
from .tuning import apply_settings
from .tuning import ParameterTuning
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
        self._configure_error = ''
        self.fatal_error = ''
        self.stop_requested = threading.Event()
        super().__init__('livevlm', **kwargs)
        self.errors = ErrorLog(self.get_logger())  # exceptions caught in callbacks
        self._tuning = ParameterTuning(self, lambda: self._node_settings, self._apply_settings,
                                       declare_parameters(self))
        self.add_on_set_parameters_callback(self._tuning)
        self._serve_group = ReentrantCallbackGroup()  # services and action server
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._status_timer = self.create_timer(  # steady: runs while sim time stands still
            self.get_parameter('state_period').value,
            guarded(self.errors, 'state', self._publish_status),
            clock=Clock(clock_type=ClockType.STEADY_TIME))
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
        self._configure_error = ''
        missing = missing_requirements()
        if missing:
            return self._configure_failed(
                f'missing Python packages: {", ".join(missing)}. Install them beside ROS: '
                '`python3 -m pip install -r <prefix>/share/ros2_livevlm/'
                'requirements-distro.txt -c <prefix>/share/ros2_livevlm/constraints-<platform>'
                '.txt` (scripts/ in the source tree; README "On a machine with ROS 2 '
                'installed")')
        try:
            settings = read_settings(self, self._tuning.refused)
        except ValueError as err:
            return self._configure_failed(f'bad {err}')
        log.info(f'loading model {settings.model_path!r} on {settings.engine.device} '
                 f'({settings.engine.dtype})')
        try:
            engine = self._load_engine(settings)
        except (ValueError, OSError, RuntimeError) as err:
            return self._configure_failed(f'cannot load model_path={settings.model_path!r}: '
                                          f'{err}')
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
            'watch_events': self.create_lifecycle_publisher(_msg.WatchEvent, '~/watch_events',
                                                            10),
            'evidence': self.create_lifecycle_publisher(CompressedImage, '~/evidence', 10),
        }
        log.info('configured: cameras ' + ', '.join(self.resolve_topic_name(n) for n in names)
                 + f'; policy {settings.memory.policy}')
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        """Log why configure failed; /diagnostics shows it until the next configure."""
        self._configure_error = reason
        self.get_logger().error(reason)
        return TransitionCallbackReturn.FAILURE

    def _apply_settings(self, settings: NodeSettings) -> None:
        """Parameters callback: runtime settings changed while configured."""
        self._node_settings = settings
        apply_settings(settings, self._engines, self._session)

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
        session.timers = [self.create_timer(  # steady: runs while sim time stands still
            REFRESH_PERIOD_S, guarded(self.errors, 'qos', session.refresh_cameras),
            clock=Clock(clock_type=ClockType.STEADY_TIME))]
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
        topic = session.cameras[camera].topic
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp == 0.0:
            self.get_logger().warning(f'camera {topic}: header.stamp is zero; using the '
                                      'node clock instead', throttle_duration_sec=10.0)
            stamp = now
        due, jump = feed.receive(stamp, now)
        if jump:
            self.get_logger().warning(
                f'camera {topic}: time went backwards to {stamp:.3f} s (a looped bag or a '
                'restarted clock); its memory is reset')
        if not due:
            return
        try:
            rgb = to_rgb(msg)
        except ImageConversionError as err:
            feed.reject()
            self.get_logger().warning(f'camera {topic}: frame dropped: {err}',
                                      throttle_duration_sec=5.0)
            return
        feed.push(Frame(rgb, stamp, msg.header.frame_id))
        session.worker.wake()

    def _publish_answer(self, message: _msg.Answer, answer: Any = None) -> None:
        """Publish an Answer on ~/answers, after the evidence images of ``answer``."""
        publisher, evidence = self._outputs.get('answers'), self._outputs.get('evidence')
        if publisher is None or not publisher.is_activated:
            return
        for image in evidence_messages(answer, message.header.frame_id):
            evidence.publish(image)
        publisher.publish(message)

    def _publish(self, output: str, message: Any) -> None:
        publisher = self._outputs.get(output)
        if publisher is not None and publisher.is_activated:
            publisher.publish(message)

    # ---- state ------------------------------------------------------------------------

    def _publish_status(self) -> None:
        """Publish /diagnostics (every state) and, while active, ~/memory_state."""
        now = self.get_clock().now()
        session, reports = self._session, []
        for camera, feed in (session.feeds.items() if session else ()):
            subscription = session.cameras[camera]
            transport = subscription.transport()
            watches = session.board.stats(camera)
            state = memory_state_message(camera, session.settings.memory.policy, feed,
                                         transport, session.worker.stats(camera), watches, now)
            self._outputs['state'].publish(state)
            setting = next(c for c in session.settings.cameras if c.name == camera)
            reports.append(CameraReport(
                state, transport, session.worker.health(camera), feed.time_jumps, watches,
                feed.camera_rate(), f'{transport.reliability} (qos_reliability '
                f'{setting.reliability}), keep last {setting.depth}'))
            self._log_problem(camera, transport_problem(transport))
        self._diagnostics.publish(diagnostics_message(
            self.get_fully_qualified_name(), reports, self._node_report(),
            self._thresholds(), now))

    def _thresholds(self) -> Optional[Thresholds]:
        settings = self._node_settings
        return settings and Thresholds(settings.stale_s, settings.min_rate_ratio,
                                       settings.max_drop_ratio)

    def _node_report(self) -> NodeReport:
        settings, session = self._node_settings, self._session
        stats = [engine.stats() for engine in list(self._engines.values())] if session is None \
            else [session.worker.stats(camera) for camera in session.feeds]
        return NodeReport(
            lifecycle=self._state_machine.current_state[1],
            model=settings.model_path if settings else self.get_parameter('model_path').value,
            device=settings.engine.device if settings else self.get_parameter('device').value,
            worker_alive=session.worker.alive if session else None,
            fatal_error=session.worker.fatal_error if session else '',
            configure_error=self._configure_error, callback_errors=self.errors.count,
            last_callback_error=self.errors.last,
            questions_pending=session.worker.pending if session else 0,
            kv_bytes=sum(s.kv_bytes for s in stats),
            thumbnail_bytes=sum(s.thumbnail_bytes for s in stats))

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

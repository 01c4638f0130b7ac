# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Messages the node publishes: Answer, MemoryState and DiagnosticArray, built from state.

Diagnostics (the semantics of ``diagnostic_updater``: one ``DiagnosticStatus`` per
subject, named ``<node>: <subject>``, published every ``state_period`` in every
lifecycle state) hold one status for the node and, while active, one per camera.

- The node (``hardware_id``: the device, e.g. ``cpu`` or ``cuda:0 (NVIDIA H100)``): ERROR
  after a fatal worker error, when the worker is not running while active, or when the
  last configure failed (the reason is shown, also while unconfigured); WARN after an
  exception in one of its callbacks. Values: lifecycle state, model, device, worker,
  queue depth, last error, memory use (process RSS, KV cache, thumbnails).
- A camera (``hardware_id``: its resolved topic on the node): ERROR while its latest
  engine call failed; WARN on a transport problem (:func:`transport_problem`: no
  publisher, incompatible QoS, frames lost, publishers but no frame), on a stale camera
  (newest frame older than ``diagnostics_stale_s``), an input rate below
  ``diagnostics_min_rate_ratio`` of the rate the camera's stamps say it publishes at, or
  more than ``diagnostics_max_drop_ratio`` of its frames dropped. Values: rates, frame
  age, drops by cause, QoS, thresholds, latencies, occupancy.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import resource
import sys
from typing import Optional
from typing import TYPE_CHECKING

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rclpy.time import Time as RclpyTime
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from .feed import CameraFeed
from .qos import large_frames_fix
from .subscription import STALL_S
from .subscription import TransportState
from .watches import WatchStats
from .worker import CameraHealth
from .worker import Question
from ..msg import Answer
from ..msg import MemoryState

if TYPE_CHECKING:
    from ..engine import Answer as EngineAnswer
    from ..engine import MemoryStats


def to_time(seconds: float) -> Time:
    """Convert seconds (float, >= 0) to ``builtin_interfaces/Time``."""
    nanoseconds = max(int(round(seconds * 1e9)), 0)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def answer_message(question: Question, stats: Optional[MemoryStats], frame_id: str) -> Answer:
    """
    Build the Answer message of a completed question (``success`` false with the reason).

    Header: stamp = camera time of the newest frame in that memory, frame_id = the camera's.
    """
    message = Answer(camera=question.camera, question=question.text)
    message.header.frame_id = frame_id
    if stats is not None and stats.newest_stamp is not None:
        message.header.stamp = to_time(stats.newest_stamp)
    answer = question.answer
    if answer is None:
        message.success, message.error = False, question.error or 'no answer'
        message.error_code = question.error_code or Answer.ERROR_INTERNAL
        return message
    message.success, message.text = True, answer.text
    message.evidence_start = [to_time(t0) for t0, _ in answer.evidence]
    message.evidence_end = [to_time(t1) for _, t1 in answer.evidence]
    message.evidence_frames = [to_time(image.stamp) for image in answer.evidence_images]
    message.frames_in_memory = answer.frames_in_memory
    message.tokens_attended = int(answer.tokens_attended)
    message.tokens_generated = len(answer.token_ids)
    message.ttft, message.total_time = float(answer.ttft_s), float(answer.total_s)
    return message


def evidence_messages(answer: Optional[EngineAnswer], frame_id: str) -> list[CompressedImage]:
    """
    Build the ``~/evidence`` images of an answer: one JPEG thumbnail per evidence frame.

    Each has the frame's own stamp and the camera's frame_id; the Answer lists the same
    stamps in ``evidence_frames`` (that ties them to it). None (no answer): no images.
    """
    if answer is None:
        return []
    return [CompressedImage(header=Header(stamp=to_time(image.stamp), frame_id=frame_id),
                            format='jpeg', data=image.jpeg)
            for image in answer.evidence_images]


def memory_state_message(camera: str, policy: str, feed: CameraFeed, transport: TransportState,
                         stats: MemoryStats, watches: WatchStats,
                         now: RclpyTime) -> MemoryState:
    """Build the MemoryState of one camera at node time ``now``."""
    now_s = now.nanoseconds * 1e-9
    counters = feed.counters
    input_rate, ingest_rate = feed.rates(now_s)
    message = MemoryState(
        camera=camera, topic=transport.topic, reliability=transport.reliability, policy=policy,
        frames_received=counters.frames_received, frames_lost=transport.lost,
        frames_sampled=counters.frames_sampled, frames_ingested=stats.frames_ingested,
        frames_dropped_invalid=counters.frames_dropped_invalid,
        frames_dropped_queue=counters.frames_dropped_queue, frames_queued=feed.queued,
        frames_in_memory=stats.frames_in_memory, tokens_init=stats.tokens_init,
        tokens_long_term=stats.tokens_long_term, tokens_short_term=stats.tokens_short_term,
        budget_tokens=stats.budget_tokens or 0, kv_bytes=stats.kv_bytes,
        input_rate=input_rate, ingest_rate=ingest_rate,
        frame_age=now_s - feed.newest_stamp if feed.newest_stamp is not None else 0.0,
        encode_latency=stats.last_encode_s, prefill_latency=stats.last_prefill_s,
        answer_latency=feed.answer_latency, watches=watches.watches,
        watch_time=watches.last_cost_s)
    message.header.stamp = now.to_msg()
    message.header.frame_id = feed.frame_id
    return message


def transport_problem(transport: TransportState) -> Optional[str]:
    """Say what is wrong with a camera topic's delivery, its likely cause and the fix; or None."""
    t = transport
    if t.publishers and t.incompatible:
        return (f'a publisher on {t.topic} offers QoS incompatible with this {t.reliability} '
                'subscription: nothing arrives from it; set qos_reliability to auto')
    if not t.publishers:
        return f'no publisher on {t.topic}'
    if t.lost_recent:
        return (f'{t.lost_recent} frames lost in transport on {t.topic} in the last '
                f'{STALL_S:.0f} s ({t.reliability}): {large_frames_fix()}')
    if t.silent_s is not None and t.silent_s >= STALL_S:
        cause = (f'or its frames are lost in transport: {large_frames_fix()}'
                 if t.reliability == 'best_effort' else 'or it is blocked')
        return (f'{t.publishers} publisher(s) on {t.topic} but no frame for {t.silent_s:.0f} '
                f's: the camera is not publishing, {cause}')
    return None


@dataclass(frozen=True)
class CameraReport:
    """
    Everything the diagnostics say about one camera.

    Attributes:
        state: its MemoryState of this period.
        transport: what its topic delivers.
        health: engine failures.
        time_jumps: times its time went backwards.
        watches: its watches' counts and cost.
        camera_rate: rate its header.stamps say it publishes at, Hz (0: unknown).
        qos: the subscription's QoS as text (setting, reliability, depth).
    """

    state: MemoryState
    transport: TransportState
    health: CameraHealth
    time_jumps: int
    watches: WatchStats
    camera_rate: float
    qos: str


@dataclass(frozen=True)
class Thresholds:
    """Diagnostics thresholds (the ``diagnostics_*`` parameters)."""

    stale_s: float
    min_rate_ratio: float
    max_drop_ratio: float


@dataclass(frozen=True)
class NodeReport:
    """
    What the diagnostics say about the node itself.

    Attributes:
        lifecycle: lifecycle state label (``unconfigured``, ``inactive``, ``active``...).
        model: ``model_path`` of the loaded (or, unconfigured, the next) model.
        device: its torch device.
        worker_alive: the worker thread runs (None: not active, no worker).
        fatal_error: the worker's fatal error ('' if none).
        configure_error: why the last configure failed ('' if it did not).
        callback_errors: exceptions caught in the node's callbacks since start.
        last_callback_error: the latest of those ('' if none).
        questions_pending: questions queued or being answered.
        kv_bytes: KV cache of every camera's memory, bytes.
        thumbnail_bytes: frame thumbnails of every memory, bytes.
    """

    lifecycle: str
    model: str
    device: str
    worker_alive: Optional[bool]
    fatal_error: str
    configure_error: str
    callback_errors: int
    last_callback_error: str
    questions_pending: int
    kv_bytes: int = 0
    thumbnail_bytes: int = 0


def process_memory_bytes() -> int:
    """Resident memory of this process, bytes (Linux: now; elsewhere: the peak)."""
    try:
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_name(device: str) -> str:
    """Describe a torch device: ``cpu``, or ``cuda:0 (<GPU name>)`` once torch is loaded."""
    torch = sys.modules.get('torch')
    if torch is None or not device.startswith('cuda') or not torch.cuda.is_available():
        return device
    return f'{device} ({torch.cuda.get_device_name(torch.device(device))})'


def diagnostics_message(node_name: str, cameras: list[CameraReport], node: NodeReport,
                        thresholds: Optional[Thresholds], now: RclpyTime) -> DiagnosticArray:
    """Build the DiagnosticArray: one status for the node, one per camera."""
    array = DiagnosticArray()
    array.header.stamp = now.to_msg()
    array.status.append(_node_status(node_name, node))
    for report in cameras:
        array.status.append(_camera_status(node_name, report, thresholds))
    return array


def _node_status(node_name: str, node: NodeReport) -> DiagnosticStatus:
    status = DiagnosticStatus(name=f'{node_name}: node', hardware_id=device_name(node.device),
                              level=DiagnosticStatus.OK,
                              message=f'{node.lifecycle}: model {node.model} on {node.device}')
    if node.fatal_error or node.worker_alive is False:
        status.level = DiagnosticStatus.ERROR
        status.message = node.fatal_error or 'the worker thread is not running'
    elif node.configure_error:
        status.level = DiagnosticStatus.ERROR
        status.message = f'{node.lifecycle}: configure failed: {node.configure_error}'
    elif node.callback_errors:
        status.level = DiagnosticStatus.WARN
        status.message = (f'{node.callback_errors} callback errors, last: '
                          f'{node.last_callback_error}')
    values = {
        'lifecycle_state': node.lifecycle, 'model_path': node.model, 'device': node.device,
        'worker_alive': '-' if node.worker_alive is None else node.worker_alive,
        'questions_pending': node.questions_pending,
        'last_error': node.fatal_error or node.configure_error or node.last_callback_error,
        'callback_errors': node.callback_errors, 'rss_bytes': process_memory_bytes(),
        'kv_bytes': node.kv_bytes, 'thumbnail_bytes': node.thumbnail_bytes,
    }
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status


def camera_problems(report: CameraReport, thresholds: Thresholds) -> list[str]:
    """Say what is wrong with a camera beyond engine failures (empty: nothing)."""
    state, limits = report.state, thresholds
    problems = []
    transport = transport_problem(report.transport)
    if transport is not None:
        problems.append(transport)
    if state.frames_received and state.frame_age > limits.stale_s:
        problems.append(f'stale: the newest frame is {state.frame_age:.1f} s old '
                        f'(diagnostics_stale_s {limits.stale_s:g})')
    if (report.camera_rate > 0 and state.input_rate > 0
            and state.input_rate < limits.min_rate_ratio * report.camera_rate):
        problems.append(f'frames arrive at {state.input_rate:.2f} Hz of the '
                        f'{report.camera_rate:.2f} Hz the camera stamps (frames lost on the '
                        f'way; diagnostics_min_rate_ratio {limits.min_rate_ratio:g})')
    dropped = state.frames_dropped_invalid + state.frames_dropped_queue + state.frames_lost
    seen = state.frames_received + state.frames_lost
    if seen and dropped / seen > limits.max_drop_ratio:
        problems.append(f'{dropped} of {seen} frames dropped (invalid '
                        f'{state.frames_dropped_invalid}, queue {state.frames_dropped_queue}, '
                        f'lost {state.frames_lost}; diagnostics_max_drop_ratio '
                        f'{limits.max_drop_ratio:g})')
    return problems


def _camera_status(node_name: str, report: CameraReport,
                   thresholds: Thresholds) -> DiagnosticStatus:
    state, health = report.state, report.health
    status = DiagnosticStatus(name=f'{node_name}: camera {state.camera}',
                              hardware_id=f'{state.topic} on {node_name}',
                              level=DiagnosticStatus.OK, message='ok')
    problems = camera_problems(report, thresholds)
    if health.failing:
        status.level, status.message = DiagnosticStatus.ERROR, health.last_error
    elif problems:
        status.level, status.message = DiagnosticStatus.WARN, '; '.join(problems)
    values = {
        'topic': state.topic,
        'qos': report.qos,
        'publishers': report.transport.publishers,
        'input_rate_hz': f'{state.input_rate:.2f}',
        'camera_rate_hz': f'{report.camera_rate:.2f}',
        'ingest_rate_hz': f'{state.ingest_rate:.2f}',
        'frame_age_s': f'{state.frame_age:.3f}',
        'frames_received': state.frames_received,
        'frames_lost': state.frames_lost,
        'frames_dropped_invalid': state.frames_dropped_invalid,
        'frames_dropped_queue': state.frames_dropped_queue,
        'frames_queued': state.frames_queued,
        'time_jumps': report.time_jumps,
        'engine_errors': health.errors,
        'last_engine_error': health.last_error,
        'encode_latency_s': f'{state.encode_latency:.3f}',
        'prefill_latency_s': f'{state.prefill_latency:.3f}',
        'answer_latency_s': f'{state.answer_latency:.3f}',
        'frames_in_memory': state.frames_in_memory,
        'tokens_in_memory': state.tokens_init + state.tokens_long_term
        + state.tokens_short_term,
        'kv_bytes': state.kv_bytes,
        'watches': report.watches.watches,
        'watch_evaluations': report.watches.evaluations,
        'watch_skipped': report.watches.skipped,
        'watch_ms_per_clip':
            f'{1e3 * report.watches.total_cost_s / max(report.watches.clips, 1):.2f}',
        'stale_after_s': f'{thresholds.stale_s:g}',
        'min_rate_ratio': f'{thresholds.min_rate_ratio:g}',
        'max_drop_ratio': f'{thresholds.max_drop_ratio:g}',
    }
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status

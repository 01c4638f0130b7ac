# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Messages the node publishes: Answer, MemoryState and DiagnosticArray, built from state.

Diagnostics: one status per camera and one for the node. A camera is ERROR while its
latest engine call failed (the message is shown), WARN when its topic has no publisher, a
publisher with incompatible QoS, frames lost in transport, or publishers but no frame for
:data:`~ros2_livevlm.ros.subscription.STALL_S` (:func:`transport_problem` names the
likely cause and the fix); the node is ERROR after a fatal worker error, WARN after an
exception in one of its callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from typing import TYPE_CHECKING

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rclpy.time import Time as RclpyTime

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
    message.frames_in_memory = answer.frames_in_memory
    message.tokens_attended = int(answer.tokens_attended)
    message.tokens_generated = len(answer.token_ids)
    message.ttft, message.total_time = float(answer.ttft_s), float(answer.total_s)
    return message


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
    """Everything the diagnostics say about one camera."""

    state: MemoryState
    transport: TransportState
    health: CameraHealth
    time_jumps: int
    watches: WatchStats


@dataclass(frozen=True)
class NodeReport:
    """
    What the diagnostics say about the node itself.

    Attributes:
        worker_alive: the worker thread runs.
        fatal_error: the worker's fatal error ('' if none).
        callback_errors: exceptions caught in the node's callbacks since start.
        last_callback_error: the latest of those ('' if none).
        questions_pending: questions queued or being answered.
    """

    worker_alive: bool
    fatal_error: str
    callback_errors: int
    last_callback_error: str
    questions_pending: int


def diagnostics_message(node_name: str, cameras: list[CameraReport], node: NodeReport,
                        now: RclpyTime) -> DiagnosticArray:
    """Build the DiagnosticArray: one status for the node, one per camera."""
    array = DiagnosticArray()
    array.header.stamp = now.to_msg()
    array.status.append(_node_status(node_name, node))
    for report in cameras:
        array.status.append(_camera_status(node_name, report))
    return array


def _node_status(node_name: str, node: NodeReport) -> DiagnosticStatus:
    status = DiagnosticStatus(name=f'{node_name}: node', hardware_id=node_name,
                              level=DiagnosticStatus.OK, message='ok')
    if node.fatal_error or not node.worker_alive:
        status.level = DiagnosticStatus.ERROR
        status.message = node.fatal_error or 'the worker thread is not running'
    elif node.callback_errors:
        status.level = DiagnosticStatus.WARN
        status.message = (f'{node.callback_errors} callback errors, last: '
                          f'{node.last_callback_error}')
    values = {'worker_alive': node.worker_alive, 'questions_pending': node.questions_pending,
              'callback_errors': node.callback_errors}
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status


def _camera_status(node_name: str, report: CameraReport) -> DiagnosticStatus:
    state, health = report.state, report.health
    status = DiagnosticStatus(name=f'{node_name}: camera {state.camera}',
                              hardware_id=state.topic, level=DiagnosticStatus.OK,
                              message='ok')
    problem = transport_problem(report.transport)
    if health.failing:
        status.level, status.message = DiagnosticStatus.ERROR, health.last_error
    elif problem is not None:
        status.level, status.message = DiagnosticStatus.WARN, problem
    values = {
        'reliability': state.reliability,
        'publishers': report.transport.publishers,
        'input_rate_hz': f'{state.input_rate:.2f}',
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
    }
    status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
    return status

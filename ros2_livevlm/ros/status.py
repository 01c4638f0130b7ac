# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Messages the node publishes: Answer, MemoryState and DiagnosticArray, built from state."""

from __future__ import annotations

from typing import Optional
from typing import TYPE_CHECKING

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rclpy.time import Time as RclpyTime

from .worker import CameraFeed
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
    Build the Answer message of a finished question (``success`` false with ``error`` if failed).

    Header: stamp = camera time of the newest frame in that memory, frame_id = the camera's.
    """
    message = Answer(camera=question.camera, question=question.text)
    message.header.frame_id = frame_id
    if stats is not None and stats.newest_stamp is not None:
        message.header.stamp = to_time(stats.newest_stamp)
    answer = question.answer
    if answer is None:
        message.success, message.error = False, question.error or 'no answer'
        return message
    message.success, message.text = True, answer.text
    message.evidence_start = [to_time(t0) for t0, _ in answer.evidence]
    message.evidence_end = [to_time(t1) for _, t1 in answer.evidence]
    message.frames_in_memory = answer.frames_in_memory
    message.tokens_attended = int(answer.tokens_attended)
    message.tokens_generated = len(answer.token_ids)
    message.ttft, message.total_time = float(answer.ttft_s), float(answer.total_s)
    return message


def memory_state_message(camera: str, topic: str, policy: str, feed: CameraFeed,
                         stats: MemoryStats, now: RclpyTime) -> MemoryState:
    """Build the MemoryState of one camera at node time ``now``."""
    now_s = now.nanoseconds * 1e-9
    counters = feed.counters
    input_rate, ingest_rate = feed.rates(now_s)
    message = MemoryState(
        camera=camera, topic=topic, policy=policy,
        frames_received=counters.frames_received, frames_sampled=counters.frames_sampled,
        frames_ingested=stats.frames_ingested,
        frames_dropped_invalid=counters.frames_dropped_invalid,
        frames_dropped_queue=counters.frames_dropped_queue,
        frames_in_memory=stats.frames_in_memory, tokens_init=stats.tokens_init,
        tokens_long_term=stats.tokens_long_term, tokens_short_term=stats.tokens_short_term,
        budget_tokens=stats.budget_tokens or 0, kv_bytes=stats.kv_bytes,
        input_rate=input_rate, ingest_rate=ingest_rate,
        frame_age=now_s - feed.newest_stamp if feed.newest_stamp is not None else 0.0,
        encode_latency=stats.last_encode_s, prefill_latency=stats.last_prefill_s,
        answer_latency=feed.answer_latency)
    message.header.stamp = now.to_msg()
    message.header.frame_id = feed.frame_id
    return message


def diagnostics_message(node_name: str, states: list[tuple[MemoryState, int, int, int]],
                        now: RclpyTime) -> DiagnosticArray:
    """
    Build one DiagnosticStatus per camera from ``(state, publishers, qos_incompatible, jumps)``.

    WARN when the camera topic has no publisher or one with incompatible QoS.
    """
    array = DiagnosticArray()
    array.header.stamp = now.to_msg()
    for state, publishers, incompatible, jumps in states:
        status = DiagnosticStatus(name=f'{node_name}: camera {state.camera}',
                                  hardware_id=state.topic, level=DiagnosticStatus.OK,
                                  message='ok')
        if incompatible:
            status.level = DiagnosticStatus.WARN
            status.message = 'a publisher offers incompatible QoS (see qos_reliability)'
        elif publishers == 0:
            status.level = DiagnosticStatus.WARN
            status.message = f'no publisher on {state.topic}'
        values = {
            'input_rate_hz': f'{state.input_rate:.2f}',
            'ingest_rate_hz': f'{state.ingest_rate:.2f}',
            'frame_age_s': f'{state.frame_age:.3f}',
            'frames_received': state.frames_received,
            'frames_dropped_invalid': state.frames_dropped_invalid,
            'frames_dropped_queue': state.frames_dropped_queue,
            'time_jumps': jumps,
            'encode_latency_s': f'{state.encode_latency:.3f}',
            'prefill_latency_s': f'{state.prefill_latency:.3f}',
            'answer_latency_s': f'{state.answer_latency:.3f}',
            'frames_in_memory': state.frames_in_memory,
            'tokens_in_memory': state.tokens_init + state.tokens_long_term
            + state.tokens_short_term,
            'kv_bytes': state.kv_bytes,
        }
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        array.status.append(status)
    return array

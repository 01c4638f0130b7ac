# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Offline replay: a bag's camera topic through the engine at bag stamps, questions at their times.

What the node does, without ROS and deterministically: messages in log-time order, each
converted by the node's own image conversion (:func:`ros2_livevlm.ros.image.to_rgb`) and
sampled at ``sample_fps`` by ``header.stamp`` by the node's own sampler
(:class:`ros2_livevlm.ros.worker.CameraFeed`: same rule for time jumps), ingested frame
by frame; a question asked at bag time ``t`` sees every message logged at or before
``t``, after the partial clip is prefilled (the node's ``flush_on_question``).

:class:`QuestionResult` and :class:`PolicyRun` are what both replays (this one and the
live one in :mod:`ros2_livevlm.eval.live`) hand to the report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
import time
from typing import Any

import numpy as np

from .bag import CameraTopic
from .bag import read_camera
from .bag import stamp_seconds
from .questions import is_correct
from .questions import Question
from ..bench.records import engine_setup
from ..bench.records import peak_bytes
from ..bench.records import reset_peak
from ..engine import Answer
from ..engine import StreamingVLM
from ..ros.feed import CameraFeed
from ..ros.feed import Frame
from ..ros.image import ImageConversionError
from ..ros.image import to_rgb

OnResult = Callable[['QuestionResult'], None]


@dataclass
class QuestionResult:
    """
    One question answered by one policy.

    Attributes:
        question: the question as read from its file.
        asked_ns: bag-clock time it was asked at, ns.
        text: the answer text ("" when ``error``).
        correct: scored by :func:`~ros2_livevlm.eval.questions.is_correct`.
        evidence: camera time spans ``(t0, t1)`` (header.stamp, s) the answer drew on most.
        ttft_s / answer_s / tpot_s: one sample per repeat, s (TPOT only for answers of 2+ tokens).
        tokens_generated: answer tokens.
        tokens_attended: context length attended.
        frames_seen: frames ingested into the memory so far.
        frames_in_memory: frames with a token in the memory.
        kv_tokens / kv_bytes: memory occupancy when asked (all segments; K and V bytes, all
            layers).
        error: why there is no answer ("" when answered).
    """

    question: Question
    asked_ns: int
    text: str
    correct: bool
    evidence: list[tuple[float, float]]
    ttft_s: list[float]
    answer_s: list[float]
    tpot_s: list[float]
    tokens_generated: int
    tokens_attended: int
    frames_seen: int
    frames_in_memory: int
    kv_tokens: int | None
    kv_bytes: int | None
    error: str = ''


@dataclass
class PolicyRun:
    """
    Everything one policy's replay measured.

    Attributes:
        policy: memory policy name.
        mode: ``offline`` or ``live``.
        results: one per question, in asking order.
        trace: ``(frames_seen, kv_tokens, kv_bytes)`` after each ingested frame (offline)
            or per received MemoryState (live).
        frames_received / frames_sampled / frames_dropped: camera messages read or
            received, kept by the sampler, and lost (invalid, queue overflow, transport).
        ingest_fps: frames per second through encode + prefill + memory update (offline),
            None live (the node is paced by the player; see ``ingest_rate_hz``).
        peak_bytes: peak resident memory of the process that held the model, bytes
            (None when unknown, e.g. an attached node).
        info: model, memory and run settings for the records (see :mod:`.report`).
    """

    policy: str
    mode: str
    results: list[QuestionResult] = field(default_factory=list)
    trace: list[tuple[int, int, int]] = field(default_factory=list)
    frames_received: int = 0
    frames_sampled: int = 0
    frames_dropped: int = 0
    ingest_fps: float | None = None
    peak_bytes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


def answer_result(
    question: Question,
    asked_ns: int,
    answers: Sequence[Answer],
    frames_seen: int,
    kv_tokens: int,
    kv_bytes: int,
) -> QuestionResult:
    """Build a :class:`QuestionResult` from the repeats of one question (text of the first)."""
    first = answers[0]
    return QuestionResult(
        question=question,
        asked_ns=asked_ns,
        text=first.text,
        correct=is_correct(first.text, question),
        evidence=[(float(a), float(b)) for a, b in first.evidence],
        ttft_s=[a.ttft_s for a in answers],
        answer_s=[a.total_s for a in answers],
        tpot_s=[
            (a.total_s - a.ttft_s) / (len(a.token_ids) - 1)
            for a in answers
            if len(a.token_ids) > 1
        ],
        tokens_generated=len(first.token_ids),
        tokens_attended=first.tokens_attended,
        frames_seen=frames_seen,
        frames_in_memory=first.frames_in_memory,
        kv_tokens=kv_tokens,
        kv_bytes=kv_bytes,
    )


def replay_offline(
    base: StreamingVLM,
    policy: str,
    bag: str | Path,
    camera: CameraTopic,
    questions: Sequence[tuple[int, Question]],
    *,
    sample_fps: float,
    clip_timeout: float = 0.0,
    repeats: int = 1,
    progress: Any = None,
    on_result: OnResult | None = None,
) -> PolicyRun:
    """
    Replay ``camera`` of ``bag`` into a fresh memory of ``policy`` and answer ``questions``.

    Args:
        base: a loaded engine; its model is shared (:meth:`StreamingVLM.new_stream`).
        policy: memory policy of the fresh memory.
        bag: rosbag2 path.
        camera: the topic to replay (:func:`~ros2_livevlm.eval.bag.select_camera`).
        questions: ``(asked_ns, question)`` sorted by time (bag clock, ns).
        sample_fps: frames kept per second of ``header.stamp`` time, Hz.
        clip_timeout: a partial clip is prefilled when the next sampled frame comes this
            much bag time after the last one, s (the node's idle-clip rule; 0: never).
        repeats: times each question is asked (timings of all, text of the first).
        progress: a tqdm bar advanced per camera message (or None).
        on_result: called with each result as soon as it is known.

    Raises:
        BagError: the bag or topic cannot be read.
    """
    engine = base.new_stream(policy=policy)
    device = engine.engine_config.device
    reset_peak(device)
    feed = CameraFeed(camera.topic, sample_fps, queue_size=1)
    run = PolicyRun(policy=policy, mode='offline', info={'setup': engine_setup(engine)})
    pending = deque(questions)
    ingest_s = 0.0
    last_ingest_s = -float('inf')

    def ask_due(before_ns: int | None) -> None:
        nonlocal ingest_s
        while pending and (before_ns is None or pending[0][0] < before_ns):
            asked_ns, question = pending.popleft()
            start = time.perf_counter()
            engine.flush()
            ingest_s += time.perf_counter() - start
            answers = [engine.ask(question.question) for _ in range(repeats)]
            stats = engine.stats()
            kv_tokens = stats.tokens_init + stats.tokens_long_term + stats.tokens_short_term
            result = answer_result(
                question, asked_ns, answers, stats.frames_ingested, kv_tokens, stats.kv_bytes
            )
            run.results.append(result)
            if on_result is not None:
                on_result(result)

    for message in read_camera(bag, camera.topic):
        ask_due(message.log_ns)
        msg = message.decode()
        stamp = stamp_seconds(msg) or message.log_ns * 1e-9  # the node's rule for a zero stamp
        due, _ = feed.receive(stamp, message.log_ns * 1e-9)
        if feed.take_reset():
            engine.reset()
        run.frames_received += 1
        if progress is not None:
            progress.update()
        if not due:
            continue
        try:
            rgb = to_rgb(msg)
        except ImageConversionError:
            feed.reject()
            run.frames_dropped += 1
            continue
        run.frames_sampled += 1
        feed.push(Frame(rgb, stamp, msg.header.frame_id))
        frame = feed.pop()
        now_s = message.log_ns * 1e-9
        start = time.perf_counter()
        if 0 < clip_timeout <= now_s - last_ingest_s:
            engine.flush()
        engine.ingest(frame.rgb[None], [frame.stamp])
        ingest_s += time.perf_counter() - start
        last_ingest_s = now_s
        stats = engine.stats()
        kv_tokens = stats.tokens_init + stats.tokens_long_term + stats.tokens_short_term
        run.trace.append((stats.frames_ingested, kv_tokens, stats.kv_bytes))
    ask_due(None)
    run.ingest_fps = run.frames_sampled / ingest_s if ingest_s > 0 else None
    run.peak_bytes = peak_bytes(device)
    return run


def warm_up(engine: StreamingVLM, frame_shape: tuple[int, int] = (96, 128)) -> None:
    """One ingest and answer on a throw-away memory, so lazy initialisation is not timed."""
    stream = engine.new_stream(policy='full')
    stream.ingest(np.zeros((1, *frame_shape, 3), dtype=np.uint8), [0.0])
    stream.flush()
    stream.ask('What do you see now?', max_new_tokens=2)

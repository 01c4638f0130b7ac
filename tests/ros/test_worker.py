# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The worker under faults and overload: the real engine on a tiny model, faults injected.

Each test gives the worker a :class:`~engine_faults.FaultyEngine` (failing or slow engine
calls) and camera-sized frames (640 x 480 photos), and checks that every question is
completed with an answer or a reason, that failures are contained and reported, that the
newest frame wins, and that stopping does not wait for a long prefill.
"""

from __future__ import annotations

import time
from typing import Iterator

from engine_faults import FaultyEngine
import pytest
import rclpy.logging
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.models import make_tiny_checkpoint
from ros2_livevlm.msg import Answer
from ros2_livevlm.ros.feed import CameraFeed
from ros2_livevlm.ros.feed import Frame
from ros2_livevlm.ros.worker import Question
from ros2_livevlm.ros.worker import Worker
from ros_messages import photo

WAIT_S = 60.0
"""Longest wait for a question; a worker that hangs fails the test instead of hanging it."""


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> StreamingVLM:
    """Load a tiny random LLaVA-OneVision (2 LLM layers), clips of 2 frames, short answers."""
    path = make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny')
    return StreamingVLM.from_pretrained(path, frames_per_clip=2, budget_tokens=4000,
                                        max_new_tokens=3)


@pytest.fixture
def start_worker(tiny: StreamingVLM) -> Iterator:
    """Yield ``start(**options) -> (worker, engine, feed)`` on one camera ``cam``; stop after."""
    workers: list[Worker] = []
    fatal: list[str] = []

    def start(queue_size: int = 8, max_pending: int = 4,
              flush_on_question: bool = True) -> tuple[Worker, FaultyEngine, CameraFeed]:
        engine = FaultyEngine.sharing(tiny)
        feed = CameraFeed('cam', sample_fps=100.0, queue_size=queue_size)
        worker = Worker({'cam': engine}, {'cam': feed}, time.monotonic,
                        rclpy.logging.get_logger('test_worker'), clip_timeout=0.0,
                        flush_on_question=flush_on_question, max_pending=max_pending,
                        on_fatal=fatal.append)
        worker.fatal = fatal
        worker.start()
        workers.append(worker)
        return worker, engine, feed

    yield start
    for worker in workers:
        worker.stop('test over')


def push(worker: Worker, feed: CameraFeed, stamps: list[float]) -> None:
    """Sample and queue 640 x 480 photos stamped ``stamps`` (s), as the camera callback does."""
    frames = [Frame(photo(int(stamp)), stamp, 'front') for stamp in stamps]
    for frame in frames:
        assert feed.receive(frame.stamp, time.monotonic())[0]
        feed.push(frame)
    worker.wake()


def ask(worker: Worker, text: str = 'What do you see now?') -> Question:
    question = Question('cam', text)
    worker.submit(question)
    assert question.done.wait(WAIT_S), 'the question was never completed'
    return question


def wait_until(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'condition not met'
        time.sleep(0.01)


def test_a_failed_prefill_fails_its_questions_resets_and_the_worker_keeps_serving(
        start_worker, capfd):
    worker, engine, feed = start_worker()
    engine.step_s = 0.3  # a slow prefill, so the question arrives during it
    engine.faults['ingest'].append(RuntimeError('CUDA out of memory'))
    push(worker, feed, [1.0, 2.0])
    wait_until(lambda: engine._ingesting)
    question = ask(worker)
    assert question.error_code == Answer.ERROR_INTERNAL and question.answer is None
    assert 'ingest failed on camera cam: RuntimeError: CUDA out of memory' in question.error
    health = worker.health('cam')
    assert (health.errors, health.failing) == (1, True)
    assert 'CUDA out of memory' in health.last_error
    assert worker.stats('cam').frames_ingested == 0  # the memory was reset

    engine.step_s = 0.0
    engine.faults['ingest'].append(RuntimeError('CUDA out of memory'))  # the same again
    push(worker, feed, [3.0, 4.0])
    wait_until(lambda: worker.health('cam').errors == 2)
    push(worker, feed, [5.0, 6.0])
    answered = ask(worker)
    assert answered.answer is not None, answered.error
    assert worker.alive and not worker.health('cam').failing
    assert worker.health('cam').errors == 2
    assert capfd.readouterr().err.count('Traceback') == 1  # logged once with its traceback


def test_a_failed_answer_fails_that_question_only(start_worker):
    worker, engine, feed = start_worker()
    push(worker, feed, [1.0, 2.0])
    wait_until(lambda: worker.stats('cam').frames_in_memory == 2)
    engine.faults['answer'].append(RuntimeError('kernel launch failed'))
    failed = ask(worker)
    assert failed.error_code == Answer.ERROR_INTERNAL and 'kernel launch failed' in failed.error
    assert ask(worker).answer is not None
    assert worker.stats('cam').frames_in_memory == 2  # an answer never touches the memory


def test_a_memory_that_cannot_be_reset_is_fatal(start_worker):
    worker, engine, feed = start_worker()
    engine.faults['ingest'].append(RuntimeError('device lost'))
    engine.faults['reset'].append(RuntimeError('device lost'))
    engine.step_s = 0.3
    push(worker, feed, [1.0, 2.0])
    wait_until(lambda: engine._ingesting)
    waiting = ask(worker)
    assert waiting.error_code == Answer.ERROR_INTERNAL
    wait_until(lambda: not worker.alive)
    assert worker.fatal == [worker.fatal_error] and 'reset failed' in worker.fatal_error
    refused = Question('cam', 'Still there?')
    assert not worker.submit(refused) and refused.error == worker.fatal_error


def test_under_overload_the_newest_frame_wins(start_worker):
    worker, engine, feed = start_worker(queue_size=4)
    engine.step_s = 0.3  # 0.9 s per clip of 2 frames: slower than the camera
    push(worker, feed, [1.0, 2.0])
    wait_until(lambda: engine._ingesting)
    push(worker, feed, [float(t) for t in range(3, 11)])  # 8 frames into a queue of 4
    assert feed.counters.frames_dropped_queue == 4
    question = ask(worker)
    assert question.answer is not None, question.error
    newest, pending = engine.asked[-1]
    assert (newest, pending) == (10.0, 0)  # the answer saw the newest frame, in memory
    assert feed.queued == 0 and feed.counters.frames_dropped_queue == 7


def test_questions_beyond_max_pending_are_refused_at_once(start_worker):
    worker, engine, feed = start_worker(max_pending=2)
    push(worker, feed, [1.0, 2.0])
    engine.step_s = 0.5
    push(worker, feed, [3.0, 4.0])
    wait_until(lambda: engine._ingesting)
    questions = [Question('cam', f'Question {i}?') for i in range(5)]
    admitted = [worker.submit(q) for q in questions]
    assert admitted == [True, True, False, False, False]
    assert all(q.error_code == Answer.ERROR_BUSY and 'busy' in q.error for q in questions[2:])
    assert all(q.done.wait(WAIT_S) and q.answer is not None for q in questions[:2])


def test_stop_abandons_a_long_prefill_and_fails_waiting_questions(start_worker):
    worker, engine, feed = start_worker()
    engine.step_s = 4.0  # a clip prefill of 3 steps: 12 s
    push(worker, feed, [1.0, 2.0])
    wait_until(lambda: engine._ingesting)
    waiting = Question('cam', 'Are you there?')
    assert worker.submit(waiting)
    started = time.monotonic()
    worker.stop('the node is shutting down')
    assert time.monotonic() - started < 6.0  # one step, not the whole clip
    assert waiting.error_code == Answer.ERROR_NOT_ACTIVE
    assert waiting.error == 'the node is shutting down'
    assert not engine._ingesting and engine.stats().clips_prefilled == 0


def test_stop_during_the_flush_for_a_question_fails_that_question(start_worker):
    worker, engine, feed = start_worker()
    push(worker, feed, [1.0])  # half a clip: prefilled only when a question flushes it
    engine.step_s = 4.0
    question = Question('cam', 'What do you see now?')
    assert worker.submit(question)
    wait_until(lambda: engine._ingesting)  # the question's flush is under way
    worker.stop('the node is shutting down')
    assert question.done.is_set(), 'the question being answered was lost'
    assert (question.error_code, question.error) == (Answer.ERROR_NOT_ACTIVE,
                                                     'the node is shutting down')

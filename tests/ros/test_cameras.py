# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A node started with its default parameters, fed camera-sized frames over the default rmw.

Only ``autostart`` is set: the reference model, camera ``image``, ``qos_reliability``
auto, ``sample_fps`` 1 Hz. Frames are 640 x 480 (and 1920 x 1080) photos from reliable
publishers (in this process) and from a best-effort camera in its own process with the
shipped Fast DDS profile; a best-effort publisher without it is diagnosed. Then a burst of
50 queries and 50 goals while a camera streams, and SIGINT while streaming and asking.
"""

from __future__ import annotations

from contextlib import contextmanager
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticStatus
import pytest
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from ros2_livevlm.msg import Answer
from ros2_livevlm.ros.qos import large_frames_environment
from ros2_livevlm.ros.status import to_time
from ros_messages import encoded_photo
from ros_messages import photo
from sensor_msgs.msg import Image

BURST = 50


@pytest.fixture(scope='module')
def node(start_node, client):
    """Start the node with its defaults; the last test stops it."""
    process = start_node(model_path='reference', autostart=True)  # model_path: its default
    client.wait_for(lambda: (process.check_alive(), client.state('image'))[1], timeout=180.0)
    yield process
    process.stop()


def reliable_camera(client):
    """
    Return a reliable publisher on /image that reaches the node; its memory is then reset.

    The node (qos_reliability auto) replaces its subscription with a reliable one when the
    publisher appears, and ``get_subscription_count`` can still count the old one: samples
    sent before the new one matched never reach it. So a probe frame is published until
    the node counts it (after a reset), and a second reset clears the probe.
    """
    camera = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
    client.wait_for(lambda: client.state('image').reliability == 'reliable', 30.0)
    reset(client)
    probe = encoded_photo(photo(0), 'rgb8', stamp=1.0)

    def reached() -> bool:
        if client.state('image').frames_received > 0:
            return True
        camera.publish(probe)
        time.sleep(0.2)
        return False
    client.wait_for(reached, 30.0)
    reset(client)
    return camera


def reset(client) -> None:
    """Reset the memory; wait for a MemoryState that shows it."""
    assert client.reset().success
    client.wait_for(lambda: client.state('image').frames_received == 0, 10.0)


def settle(client, received: int) -> None:
    """Wait until the node received ``received`` frames and ingested every sampled one."""
    client.wait_for(lambda: client.state('image').frames_received >= received, 30.0)
    since = time.time() + 1.1  # a MemoryState published after the last frame

    def done() -> bool:
        state = client.state('image')
        stamp = state.header.stamp.sec + state.header.stamp.nanosec * 1e-9
        return stamp > since and state.frames_ingested >= state.frames_sampled
    client.wait_for(done, 30.0)


@contextmanager
def streaming(camera, start: float) -> Iterator[None]:
    """Publish 640 x 480 frames at 10 Hz (stamps 0.5 s apart) from a thread while inside."""
    frames = [encoded_photo(photo(i), 'rgb8') for i in range(4)]
    stop = threading.Event()

    def run() -> None:
        index = 0
        while not stop.wait(0.1):
            frame = frames[index % len(frames)]
            frame.header.stamp = to_time(start + index * 0.5)
            camera.publish(frame)
            index += 1
    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_a_question_before_any_frame_says_the_memory_is_empty(node, client):
    answer = client.query('What do you see?')
    assert not answer.success and answer.error_code == Answer.ERROR_EMPTY_MEMORY
    assert 'the memory of camera image is empty: no frame' in answer.error
    client.wait_for(lambda: client.answers, 10.0)
    copy = client.answers[-1]  # ~/answers carries what the caller got
    assert (copy.success, copy.error_code, copy.error) == (False, answer.error_code, answer.error)


def test_camera_sized_frames_from_a_reliable_camera_arrive(node, client):
    camera = reliable_camera(client)
    frames = [encoded_photo(photo(i), 'rgb8', stamp=100.0 + i) for i in range(4)]
    frames += [encoded_photo(photo(i, (1080, 1920)), 'bgr8', stamp=104.0 + i) for i in range(2)]
    for frame in frames:
        camera.publish(frame)
        time.sleep(0.05)
    settle(client, len(frames))
    state = client.state('image')
    assert (state.frames_received, state.frames_sampled, state.frames_lost) == (6, 6, 0)
    answer = client.query('What are you looking at now?')
    assert answer.success, answer.error
    assert answer.frames_in_memory == 6 and answer.header.stamp.sec == 105
    client.node.destroy_publisher(camera)


def test_a_best_effort_camera_with_the_shipped_profile_arrives(node, client):
    reset(client)
    command = [sys.executable, '-m', 'ros2_livevlm.ros.camera', '--topic', '/image',
               '--reliability', 'best_effort', '--frames', '10', '--rate', '2', '--speed', '4',
               '--start', '200']
    camera = subprocess.run(command, env={**os.environ, **large_frames_environment()},
                            timeout=120, capture_output=True, text=True)
    assert camera.returncode == 0, camera.stderr
    settle(client, 10)
    state = client.state('image')
    assert state.reliability == 'best_effort'
    assert (state.frames_received, state.frames_sampled, state.frames_lost) == (10, 5, 0)


def test_best_effort_frames_lost_without_the_profile_are_diagnosed(node, client, diagnostics):
    camera = client.node.create_publisher(Image, '/image', qos_profile_sensor_data)
    client.wait_for(camera.get_subscription_count, 30.0)
    frame = encoded_photo(photo(0), 'rgb8')

    def diagnosed() -> bool:
        frame.header.stamp.sec += 1
        camera.publish(frame)
        status = diagnostics.get('camera image')
        return status is not None and 'lost in transport' in status.message
    client.wait_for(diagnosed, 30.0)
    status = diagnostics['camera image']
    assert status.level == DiagnosticStatus.WARN
    assert 'FASTDDS_DEFAULT_PROFILES_FILE=' in status.message
    assert 'config/fastdds_large_frames.xml' in status.message
    assert client.state('image').frames_lost > 0
    client.node.destroy_publisher(camera)


def test_a_burst_of_50_queries_and_50_goals_while_streaming_is_answered(node, client):
    camera = reliable_camera(client)
    with streaming(camera, start=300.0):
        client.wait_for(lambda: client.state('image').frames_ingested > 0, 30.0)
        queries, goals = [], []
        for i in range(BURST):  # interleaved, though which arrives first is up to DDS
            queries.append(client.query_async(f'Did you see a cat? ({i})'))
            goals.append(client.send_ask_async(f'What did you see first? ({i})'))
        client.wait_for(lambda: all(f.done() for f in queries + goals), 120.0)
        handles = [goal.result() for goal in goals]
        assert all(handle.accepted for handle in handles)
        results = [client.result(handle) for handle in handles]
    answers = [q.result().answer for q in queries] + [answer for _, answer in results]
    assert len(answers) == 2 * BURST
    for answer in answers:  # answered, or refused at once with the reason
        assert answer.success or (answer.error_code, answer.error[:5]) == (
            Answer.ERROR_BUSY, 'busy:'), answer
    assert any(a.success for a in answers)
    for status, answer in results:
        assert status == (GoalStatus.STATUS_SUCCEEDED if answer.success
                          else GoalStatus.STATUS_ABORTED)
    # after the burst both kinds are served (the order of arrival decided who got a slot)
    assert client.query('Did you see a cat?').success
    assert client.result(client.send_ask('What did you see first?'))[1].success
    client.node.destroy_publisher(camera)


def test_sigint_while_streaming_and_asking_exits_cleanly(node, client):
    camera = reliable_camera(client)
    received = client.state('image').frames_received
    with streaming(camera, start=400.0):  # frames arrive while the node stops
        client.wait_for(lambda: client.state('image').frames_received >= received + 5, 30.0)
        pending = [client.query_async('What is it?') for _ in range(8)]
        started = time.monotonic()
        node.process.send_signal(signal.SIGINT)
        code = node.stop(timeout_s=30.0)
    assert code == 0 and time.monotonic() - started < 10.0
    assert 'Traceback' not in node.log(), node.log()
    client.wait_for(lambda: all(f.done() for f in pending), 10.0)  # every one got a response
    client.node.destroy_publisher(camera)

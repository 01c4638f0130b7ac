# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Node processes whose engine fails or stalls (faults at the engine boundary, faulty_node.py).

An engine failure is an ERROR with its message in /diagnostics and the node keeps serving;
an exception in a node callback does not end the executor; a memory that cannot be reset
ends the process with a non-zero code; SIGTERM in the middle of a long clip prefill exits
with code 0 within 10 s. Camera-sized frames (640 x 480) from a reliable publisher; the
QoS parameters keep their defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
import signal
import time

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import QoSProfile
from ros2_livevlm.msg import Answer
from ros_messages import encoded_photo
from ros_messages import photo
from ros_messages import values
from sensor_msgs.msg import Image

PROGRAM = (str(Path(__file__).with_name('faulty_node.py')),)
PARAMETERS = {'autostart': True, 'frames_per_clip': 2, 'sample_fps': 100.0,
              'max_new_tokens': 4, 'state_period': 0.2,
              'diagnostics_stale_s': 1e10}  # stamps of 10 s: not stale for this test


def start_faulty(start_node, client, **spec):
    client.states.clear()  # states of the previous test's node
    node = start_node(env={'LIVEVLM_TEST_FAULTS': json.dumps(spec)}, program=PROGRAM,
                      **PARAMETERS)
    client.wait_for(lambda: (node.check_alive(), client.state('image'))[1], timeout=180.0)
    camera = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
    client.wait_for(lambda: client.state('image').reliability == 'reliable', 30.0)
    client.wait_for(camera.get_subscription_count, 30.0)
    return node, camera


def send(client, camera, stamps, *, wait: bool = True) -> None:
    """Publish 640 x 480 photos stamped ``stamps`` (s); wait until the node received them."""
    before = client.state('image').frames_received
    for stamp in stamps:
        camera.publish(encoded_photo(photo(int(stamp)), 'rgb8', stamp=stamp))
        time.sleep(0.05)
    if wait:
        client.wait_for(lambda: client.state('image').frames_received >= before + len(stamps),
                        30.0)


def test_engine_and_callback_errors_are_reported_and_the_node_keeps_serving(
        start_node, client, diagnostics):
    node, camera = start_faulty(start_node, client, faults={'ingest': ['CUDA out of memory']},
                                state_error='defect in a state publication')
    send(client, camera, [10.0, 11.0])  # the first clip prefill fails
    client.wait_for(lambda: diagnostics.get('camera image') is not None and diagnostics[
        'camera image'].level == DiagnosticStatus.ERROR, 30.0)
    status = diagnostics['camera image']
    assert 'ingest failed on camera image: RuntimeError: CUDA out of memory' in status.message
    assert values(status)['engine_errors'] == '1'
    assert diagnostics['node'].level == DiagnosticStatus.WARN
    assert 'defect in a state publication' in diagnostics['node'].message

    send(client, camera, [12.0, 13.0])
    answer = client.query('What do you see?')
    assert answer.success, answer.error
    assert answer.frames_in_memory == 2  # the memory was reset after the failure
    client.wait_for(lambda: diagnostics['camera image'].level == DiagnosticStatus.OK, 30.0)
    client.node.destroy_publisher(camera)
    assert node.stop(signal.SIGINT) == 0
    log = node.log()
    assert log.count('Traceback') == 2  # each error once, with its traceback
    assert 'CUDA out of memory' in log and 'defect in a state publication' in log


def test_a_memory_that_cannot_be_reset_ends_the_process_non_zero(start_node, client):
    faults = {'ingest': ['device lost'], 'reset': ['device lost']}
    node, camera = start_faulty(start_node, client, faults=faults)
    send(client, camera, [10.0, 11.0], wait=False)  # the node ends before it reports them
    node.process.wait(timeout=30.0)
    client.node.destroy_publisher(camera)
    assert node.stop() == 1
    assert 'the worker stopped after a fatal error: reset failed on camera image' in node.log()


def test_sigterm_in_the_middle_of_a_long_clip_exits_cleanly_within_10_s(start_node, client):
    node, camera = start_faulty(start_node, client, step_s=5.0)  # one clip prefill: 15 s
    send(client, camera, [10.0, 11.0])
    asked = client.query_async('What are you doing?')  # waits for that clip
    time.sleep(2.0)
    started = time.monotonic()
    node.process.send_signal(signal.SIGTERM)
    code = node.stop(timeout_s=30.0)
    assert time.monotonic() - started < 10.0 and code == 0
    client.wait_for(asked.done, 10.0)
    answer = asked.result().answer
    assert answer.error_code == Answer.ERROR_NOT_ACTIVE and 'shutting down' in answer.error
    client.node.destroy_publisher(camera)
    assert 'Traceback' not in node.log(), node.log()

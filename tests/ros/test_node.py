# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The node end to end: its own process, real photos over DDS, the tiny model.

One node serves the whole module, with four cameras: ``image`` (raw Image, every
encoding), ``image/compressed`` (CompressedImage, JPEG and PNG from a best-effort
publisher), ``cam_b`` (a second memory) and ``bad`` (malformed frames). Frames are 640 x 480
photos; raw ones come from reliable publishers, as most camera drivers publish. Every
frame a test sends must count, so the node's reliability is set per camera to match the
publishers (with ``auto``, tests/ros/test_cameras.py, the node replaces its subscription
when a publisher appears, and frames sent before the new one matched are lost), and its
history depth holds a whole burst (with the default 5, a frame is overwritten when a burst
arrives while the callback group is busy: the newest frames win).
"""

from __future__ import annotations

import signal
import threading
import time

from action_msgs.msg import GoalStatus
import pytest
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from ros2_livevlm.msg import Answer
from ros_messages import compressed_image
from ros_messages import encoded_bytes
from ros_messages import encoded_photo
from ros_messages import photo
from ros_messages import publish
from ros_messages import RAW_ENCODINGS
from ros_messages import raw_image
from ros_messages import settle
from ros_messages import values
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image


CAMERAS = ('image', 'image/compressed', 'cam_b', 'bad')
PARAMETERS = {
    'autostart': True, 'cameras': ['image', 'image/compressed', 'cam_b', 'bad'],
    'compressed': [False, True, False, False], 'sample_fps': 100.0, 'queue_size': 64,
    'qos_reliability': ['reliable', 'best_effort', 'reliable', 'reliable'], 'qos_depth': [20],
    'frames_per_clip': 2, 'budget_tokens': 4000, 'max_new_tokens': 8,
    'clip_timeout': 0.3, 'state_period': 0.2,
}


@pytest.fixture(scope='module')
def node(start_node, client):
    """Start the node process; at the end SIGINT must stop it with exit code 0, no traceback."""
    process = start_node(**PARAMETERS)
    client.wait_for(lambda: all(client.state(c) for c in CAMERAS), timeout=180.0)
    yield process
    assert process.stop(signal.SIGINT) == 0
    assert 'Traceback' not in process.log(), process.log()


@pytest.fixture(scope='module')
def publishers(node, client):
    """Create reliable publishers for raw frames, a best-effort one for compressed frames."""
    make = client.node.create_publisher
    pubs = {
        'image': make(Image, '/image', QoSProfile(depth=10)),
        'image/compressed': make(CompressedImage, '/image/compressed', qos_profile_sensor_data),
        'cam_b': make(Image, '/cam_b', QoSProfile(depth=10)),
        'bad': make(Image, '/bad', QoSProfile(depth=10)),
    }
    for camera, publisher in pubs.items():
        reliability = 'best_effort' if camera == 'image/compressed' else 'reliable'
        client.wait_for(lambda: client.state(camera).reliability == reliability, 30.0)
        client.wait_for(publisher.get_subscription_count, timeout=30.0)
    return pubs


def reset(client) -> None:
    assert client.reset().success
    client.wait_for(lambda: all(client.state(c).frames_received == 0 for c in CAMERAS), 10.0)


def test_every_encoding_and_jpeg_png_reach_memory(client, publishers):
    reset(client)
    raw = [encoded_photo(photo(i), encoding, padding=2 * (i % 3), bigendian=i % 2 == 1,
                         stamp=10.0 + 0.1 * i, frame_id='front')
           for i, encoding in enumerate(RAW_ENCODINGS)]
    publish(client, publishers['image'], 'image', raw)
    packed = [compressed_image(encoded_bytes(photo(i), fmt), fmt.lower(), stamp=20.0 + 0.1 * i)
              for i, fmt in enumerate(('JPEG', 'PNG'))]
    publish(client, publishers['image/compressed'], 'image/compressed', packed)
    for camera, count in (('image', len(RAW_ENCODINGS)), ('image/compressed', 2)):
        settle(client, camera)
        state = client.state(camera)
        assert (state.frames_sampled, state.frames_dropped_invalid) == (count, 0)
        answer = client.query('What is in the pictures?', camera)
        assert answer.success, answer.error
        assert answer.text and answer.tokens_generated > 0
        assert answer.frames_in_memory == count
        assert answer.camera == camera and answer.evidence_start
    # outputs keep the camera's frame_id and stamps
    assert answer.header.frame_id == 'camera' and answer.header.stamp.sec == 20
    assert client.query('Which colour?', 'image').header.frame_id == 'front'


def test_bad_frames_are_dropped_counted_and_the_node_still_answers(
        client, publishers, diagnostics):
    good = photo(1)
    unknown = raw_image(good, '32FC1', stamp=30.0)
    short_step = raw_image(good, 'rgb8', stamp=30.1)
    short_step.step -= 1
    empty = raw_image(good, 'rgb8', stamp=30.2)
    empty.height = empty.width = empty.step = 0
    empty.data = b''
    before = client.state('bad').frames_dropped_invalid
    publish(client, publishers['bad'], 'bad',
            [unknown, short_step, empty, raw_image(good, 'rgb8', stamp=30.3)])
    truncated = compressed_image(encoded_bytes(good, 'JPEG')[:3000], 'jpeg', stamp=40.0)
    before_jpeg = client.state('image/compressed').frames_dropped_invalid
    publish(client, publishers['image/compressed'], 'image/compressed', [truncated])
    client.wait_for(lambda: client.state('bad').frames_dropped_invalid == before + 3, 10.0)
    client.wait_for(lambda: client.state('image/compressed').frames_dropped_invalid
                    == before_jpeg + 1, 10.0)
    client.wait_for(lambda: 'camera bad' in diagnostics and values(
        diagnostics['camera bad'])['frames_dropped_invalid'] == str(before + 3), 10.0)
    settle(client, 'bad')
    answer = client.query('What is there?', 'bad')
    assert answer.success and answer.frames_in_memory >= 1

    empty_question = client.query('   ', 'bad')
    assert not empty_question.success and 'empty' in empty_question.error
    unknown_camera = client.query('What?', 'nope')
    assert not unknown_camera.success and 'cam_b' in unknown_camera.error


def test_ask_streams_tokens_and_cancel_ends_it_early(client, publishers):
    feedback = []
    goal = client.send_ask('Describe it.', 'image', max_new_tokens=6, on_feedback=feedback.append)
    status, answer = client.result(goal)
    assert status == GoalStatus.STATUS_SUCCEEDED and answer.success
    assert len(feedback) == answer.tokens_generated == 6
    assert [f.tokens_generated for f in feedback] == list(range(1, 7))
    assert feedback[-1].partial_text == ''.join(f.delta for f in feedback)

    first_token = threading.Event()
    streamed = []

    def on_feedback(message) -> None:
        streamed.append(message)
        first_token.set()
    limit = 20000
    goal = client.send_ask('Tell a long story.', 'image', max_new_tokens=limit,
                           on_feedback=on_feedback)
    assert goal.accepted and first_token.wait(60.0)
    assert client.cancel(goal).return_code == 0  # ERROR_NONE
    status, answer = client.result(goal)
    assert status == GoalStatus.STATUS_CANCELED
    assert not answer.success and answer.error == 'cancelled' and not answer.text
    assert answer.error_code == Answer.ERROR_CANCELLED
    assert len(streamed) < limit
    client.wait_for(lambda: [a for a in client.answers if a.question == 'Tell a long story.'],
                    10.0)
    (copy,) = [a for a in client.answers if a.question == 'Tell a long story.']
    assert (copy.success, copy.error_code, copy.error, copy.text) == (
        False, Answer.ERROR_CANCELLED, 'cancelled', '')  # ~/answers: what the caller got


def test_query_while_streaming_and_two_cameras(client, publishers):
    reset(client)
    publish(client, publishers['image'], 'image',
            [encoded_photo(photo(i), 'rgb8', stamp=50.0 + i) for i in range(3)])
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            publishers['cam_b'].publish(encoded_photo(photo(i), 'bgr8', stamp=60.0 + 0.1 * i))
            i += 1
            time.sleep(0.05)
    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        client.wait_for(lambda: client.state('cam_b').frames_ingested >= 5, 30.0)
        answer = client.query('What happens now?', 'cam_b')
        assert answer.success and answer.camera == 'cam_b' and answer.frames_in_memory >= 2
        at_answer = client.state('cam_b').frames_ingested
        client.wait_for(lambda: client.state('cam_b').frames_ingested > at_answer + 5, 30.0)
    finally:
        stop.set()
        streamer.join()
    settle(client, 'cam_b')
    settle(client, 'image')
    # one memory per camera: each answer counts only its own camera's frames
    first = client.query('What did you see?', 'image')
    second = client.query('What did you see?', 'cam_b')
    assert first.frames_in_memory == 3 == client.state('image').frames_sampled
    assert second.frames_in_memory == client.state('cam_b').frames_sampled > 3
    default = client.query('And by default?')
    assert default.camera == 'image' and default.frames_in_memory == 3


def test_time_going_backwards_resets_that_camera(client, publishers, diagnostics):
    reset(client)
    publish(client, publishers['cam_b'], 'cam_b',
            [encoded_photo(photo(i), 'rgb8', stamp=500.0 + i) for i in range(4)])
    settle(client, 'cam_b')
    assert client.query('Before?', 'cam_b').frames_in_memory == 4
    for i in range(2):  # the bag looped: stamps start over
        publishers['cam_b'].publish(encoded_photo(photo(i), 'rgb8', stamp=100.0 + i))
        time.sleep(0.03)
    client.wait_for(lambda: 'camera cam_b' in diagnostics and values(
        diagnostics['camera cam_b'])['time_jumps'] == '1', 10.0)
    client.wait_for(lambda: client.state('cam_b').frames_received == 2, 10.0)
    settle(client, 'cam_b')
    after = client.query('After?', 'cam_b')
    assert after.success and after.frames_in_memory == 2
    assert after.header.stamp.sec == 101
    other = client.query('Other camera?', 'image')  # untouched: empty since the reset
    assert other.error_code == Answer.ERROR_EMPTY_MEMORY

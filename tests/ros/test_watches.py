# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``~/watch`` through the node: events when the scene changes, none while it holds.

The node runs in its own process on the reference model (trained on the photos of
``ros2_livevlm/reference/scenes.py``) with clips of one frame; the camera dwells on grass,
then a motorcycle, then grass again, in 640 x 480 frames one second apart. A watch asks
"Did you see a motorcycle?" about the present with a hold of 2 evaluations.
"""

from __future__ import annotations


from action_msgs.msg import GoalStatus
import numpy as np
import pytest
from rclpy.qos import QoSProfile
from ros2_livevlm.msg import WatchEvent
from ros2_livevlm.reference.task import render_run
from ros2_livevlm.ros.status import to_time
from ros_messages import publish
from ros_messages import running_node
from ros_messages import settle
from sensor_msgs.msg import Image

SCENES = (('grass', 4), ('motorcycle', 5), ('grass', 4))
PARAMETERS = {
    'autostart': True, 'model_path': 'reference', 'sample_fps': 100.0, 'frames_per_clip': 1,
    'queue_size': 32, 'clip_timeout': 0.0, 'state_period': 0.2, 'max_watches': 2,
    'qos_reliability': ['reliable'], 'qos_depth': [20],  # every frame of a burst counts
}


def tour(start: float) -> list[Image]:
    """Return the scenes as rgb8 Images, one per second of camera time from ``start``."""
    rng = np.random.default_rng(0)
    frames = np.concatenate([render_run(rng, scene, n, (480, 640)) for scene, n in SCENES])
    messages = []
    for index, rgb in enumerate(frames):
        message = Image(height=480, width=640, encoding='rgb8', step=640 * 3,
                        data=rgb.tobytes())
        message.header.stamp, message.header.frame_id = to_time(start + index), 'tour'
        messages.append(message)
    return messages


@pytest.fixture(scope='module')
def node(start_node, client):
    yield from running_node(start_node, client, PARAMETERS)


@pytest.fixture(scope='module')
def camera(node, client):
    publisher = client.node.create_publisher(Image, '/image', QoSProfile(depth=20))
    client.wait_for(lambda: client.state('image').reliability == 'reliable', timeout=30.0)
    client.wait_for(publisher.get_subscription_count, timeout=30.0)
    return publisher


def test_a_watch_fires_once_per_change_and_not_while_the_answer_holds(client, camera):
    topic: list[WatchEvent] = []
    client.node.create_subscription(WatchEvent, '/livevlm/watch_events', topic.append,
                                    QoSProfile(depth=50))
    events: list[WatchEvent] = []
    goal = client.send_watch('Did you see a motorcycle?', hold=2, on_event=events.append)
    assert goal.accepted
    start = 1000.0
    publish(client, camera, 'image', tour(start))
    settle(client, 'image')
    client.wait_for(lambda: len(topic) >= 2, timeout=10.0)
    assert client.state('image').watches == 1
    assert client.cancel(goal).return_code == 0
    status, result = client.watch_result(goal)
    assert status == GoalStatus.STATUS_CANCELED and result.success
    stamps = [e.header.stamp.sec - start for e in events]
    # the present is the short-term window of 2 frames: yes once it shows the motorcycle
    # twice (frames 4 and 5 of the motorcycle at 4-8), no once it shows grass twice (10, 11)
    assert [(e.answer, s) for e, s in zip(events, stamps)] == [(True, 5), (False, 11)]
    assert result.events == 2 and result.evaluations == sum(n for _, n in SCENES)
    assert [(e.watch_id, e.answer) for e in topic] == [(e.watch_id, e.answer) for e in events]
    yes = events[0]
    assert yes.confidence == pytest.approx(yes.p_yes) and yes.p_yes > 0.5
    assert yes.header.frame_id == 'tour' and yes.evidence_start and yes.evaluation_time > 0
    client.wait_for(lambda: client.state('image').watches == 0, timeout=10.0)


def test_bad_goals_are_aborted_with_a_reason_and_max_events_ends_a_watch(client, camera):
    for goal_fields, reason in (({'question': ' '}, 'question is empty'),
                                ({'question': 'Cat?', 'camera': 'nope'}, 'unknown camera'),
                                ({'question': 'Cat?', 'window': -1.0}, 'window_s')):
        goal = client.send_watch(**goal_fields)
        status, result = client.watch_result(goal)
        assert status == GoalStatus.STATUS_ABORTED and reason in result.error
    first = client.send_watch('Did you see a motorcycle?', max_events=1, hold=1)
    second = client.send_watch('Did you see grass?')
    client.wait_for(lambda: client.state('image').watches == 2, timeout=10.0)
    third = client.send_watch('Did you see a cat?')
    status, result = client.watch_result(third)
    assert status == GoalStatus.STATUS_ABORTED and 'too many watches' in result.error
    frames = tour(2000.0)[4:6]  # the motorcycle, after older stamps: the timeline goes on
    publish(client, camera, 'image', frames)
    status, result = client.watch_result(first)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.events == 1 and result.answer
    assert client.cancel(second).return_code == 0
    assert client.watch_result(second)[0] == GoalStatus.STATUS_CANCELED

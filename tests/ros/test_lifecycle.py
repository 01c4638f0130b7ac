# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Lifecycle transitions through the standard lifecycle services, sim time, SIGTERM.

The node starts unconfigured (autostart false) with use_sim_time; this test publishes
/clock. At the end a SIGTERM arrives while an Ask goal is being answered: the goal must
end with an error result and the process with exit code 0.
"""

from __future__ import annotations

import signal
import threading

from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Time
from lifecycle_msgs.msg import Transition
import pytest
from rclpy.qos import QoSProfile
from ros2_livevlm.msg import Answer
from ros_messages import encoded_photo
from ros_messages import photo
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image


SIM_TIME = 5000


@pytest.fixture(scope='module')
def node(start_node, client):
    process = start_node(use_sim_time=True, frames_per_clip=2, sample_fps=10.0,
                         max_new_tokens=4, state_period=0.2)
    assert client.get_state(timeout=60.0) == 'unconfigured'
    return process


def send_frames(client, camera) -> None:
    """Publish three 640 x 480 frames once the (re)activated node subscribes reliable."""
    client.states.clear()
    client.wait_for(lambda: client.state('image'), 30.0)
    client.wait_for(lambda: client.state('image').reliability == 'reliable', 30.0)
    client.wait_for(camera.get_subscription_count, 30.0)
    for i in range(3):
        camera.publish(encoded_photo(photo(i), 'rgb8', stamp=SIM_TIME - 10.0 + i))
    client.wait_for(lambda: client.state('image').frames_sampled == 3, 30.0)


def test_transitions_sim_time_and_sigterm(node, client):
    clock = client.node.create_publisher(Clock, '/clock', 10)
    ticking = threading.Event()

    def tick() -> None:
        while not ticking.wait(0.05):
            clock.publish(Clock(clock=Time(sec=SIM_TIME)))
    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        assert client.change_state(Transition.TRANSITION_CONFIGURE)
        assert client.get_state() == 'inactive'
        assert client.change_state(Transition.TRANSITION_ACTIVATE)
        assert client.get_state() == 'active'
        camera = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
        send_frames(client, camera)
        answer = client.query('What is it?')
        assert answer.success and answer.frames_in_memory == 3
        state = client.state('image')
        assert state.header.stamp.sec == SIM_TIME  # the node clock follows /clock
        assert 8.0 <= state.frame_age <= 10.0  # sim now - newest header.stamp

        assert client.change_state(Transition.TRANSITION_DEACTIVATE)
        assert client.get_state() == 'inactive'
        client.wait_for(lambda: not client._query.service_is_ready(), 30.0)
        assert client.change_state(Transition.TRANSITION_CLEANUP)
        assert client.change_state(Transition.TRANSITION_CONFIGURE)
        assert client.change_state(Transition.TRANSITION_ACTIVATE)
        assert client.query('Again?').error_code == Answer.ERROR_EMPTY_MEMORY  # a new model
        send_frames(client, camera)
        assert client.query('Again?').success

        started = threading.Event()
        goal = client.send_ask('Go on and on.', max_new_tokens=20000,
                               on_feedback=lambda _: started.set())
        assert goal.accepted and started.wait(60.0)
        node.process.send_signal(signal.SIGTERM)
        status, answer = client.result(goal, timeout=60.0)
        assert status == GoalStatus.STATUS_ABORTED
        assert not answer.success and 'shutting down' in answer.error
        assert node.stop() == 0
        assert 'Traceback' not in node.log(), node.log()
    finally:
        ticking.set()
        ticker.join()

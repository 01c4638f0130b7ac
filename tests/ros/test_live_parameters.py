# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
A node as a ROS user runs it: parameters set live, evidence images, diagnostics that tell.

One node process (tiny model, one camera of 640 x 480 frames) serves the module, in order:
every runtime parameter set to a good value and a bad one; the frames an answer drew on
on ``~/evidence``; a stale camera; then cleanup, a model path that fails configure (shown
in /diagnostics while unconfigured), and another model through cleanup, set, configure.
"""

from __future__ import annotations

import io
import time

from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
import numpy as np
from PIL import Image as PILImage
import pytest
from rclpy.qos import QoSProfile
from ros_messages import encoded_photo
from ros_messages import photo
from ros_messages import running_node
from ros_messages import values
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image

PARAMETERS = {
    'autostart': True, 'cameras': ['image'], 'sample_fps': 100.0, 'frames_per_clip': 2,
    'short_term_frames': 2, 'max_new_tokens': 4, 'clip_timeout': 0.3, 'state_period': 0.2,
}

RUNTIME = {  # name: (a good value, a bad value, the reason it is refused)
    'sample_fps': (50.0, 0.0, 'sample_fps=0.0 must be > 0.0'),
    'clip_timeout': (0.5, -1.0, 'out of range'),
    'flush_on_question': (True, 'yes', 'Wrong parameter type'),
    'retrieval_ratio': (0.5, 0.0, 'retrieval_ratio=0.0 must be > 0.0'),
    'max_new_tokens': (2, 0, 'out of range'),
    'thumbnail_size': (64, 2000, 'out of range'),
    'max_thumbnails': (32, 0, 'out of range'),
    'diagnostics_stale_s': (2.0, 0.0, 'diagnostics_stale_s=0.0 must be > 0.0'),
    'diagnostics_min_rate_ratio': (0.25, 1.5, 'out of range'),
    'diagnostics_max_drop_ratio': (0.5, -0.1, 'out of range'),
}


@pytest.fixture(scope='module')
def node(start_node, client):
    yield from running_node(start_node, client, PARAMETERS)


@pytest.fixture(scope='module')
def evidence(client) -> list[CompressedImage]:
    """Collect the images published on ~/evidence."""
    images: list[CompressedImage] = []
    client.node.create_subscription(CompressedImage, '/livevlm/evidence', images.append,
                                    QoSProfile(depth=50))
    return images


def test_runtime_parameters_apply_and_bad_values_are_refused(node, client):
    results = client.set_parameters(**{name: good for name, (good, _, _) in RUNTIME.items()})
    assert all(r.successful for r in results), [r.reason for r in results]
    for name, (_, bad, reason) in RUNTIME.items():
        [result] = client.set_parameters(**{name: bad})
        assert not result.successful and reason in result.reason, (name, result.reason)
    [fixed] = client.set_parameters(budget_tokens=100)
    assert not fixed.successful
    assert 'set it while unconfigured: cleanup, set, configure' in fixed.reason
    [restart] = client.set_parameters(autostart=False)
    assert not restart.successful and 'read-only' in restart.reason
    budget, fps = client.describe_parameters('budget_tokens', 'sample_fps')
    assert budget.integer_range[0].from_value == 1 and not budget.read_only
    assert fps.floating_point_range[0].from_value == 0.0 and 'at once' in fps.description


def test_an_answer_publishes_the_frames_it_drew_on(node, client, evidence, diagnostics):
    camera = client.node.create_publisher(Image, '/image', QoSProfile(depth=10))
    client.wait_for(lambda: client.state('image').reliability == 'reliable', 30.0)
    client.wait_for(camera.get_subscription_count, timeout=30.0)
    start = time.time()
    stamps = [round(start, 3) - 1.0, round(start, 3)]
    for i, stamp in enumerate(stamps):  # one clip: the short-term window, the evidence
        camera.publish(encoded_photo(photo(i), 'rgb8', stamp=stamp, frame_id='front_optical'))
    client.wait_for(lambda: client.state('image').frames_in_memory == 2, timeout=60.0)
    answer = client.query('What do you see?')
    assert answer.success and answer.tokens_generated <= 2  # max_new_tokens set to 2
    assert [t.sec + t.nanosec * 1e-9 for t in answer.evidence_frames] == pytest.approx(stamps)
    client.wait_for(lambda: len(evidence) >= 2, timeout=10.0)
    for i, image in enumerate(evidence[:2]):
        assert image.header.frame_id == 'front_optical' and image.format == 'jpeg'
        stamp = image.header.stamp.sec + image.header.stamp.nanosec * 1e-9
        assert stamp == pytest.approx(stamps[i])
        thumbnail = PILImage.open(io.BytesIO(bytes(image.data)))
        assert thumbnail.size == (64, 48)  # thumbnail_size set to 64
        expected = np.asarray(PILImage.fromarray(photo(i)).resize((64, 48)), float)
        assert np.abs(np.asarray(thumbnail, float) - expected).mean() < 12  # that frame
    client.set_parameters(diagnostics_stale_s=0.5)  # no frame since: the camera is stale
    status = client.wait_for(lambda: _warn(diagnostics.get('camera image'), 'stale'), 30.0)
    assert status.hardware_id == '/image on /livevlm'
    assert values(status)['stale_after_s'] == '0.5'


def _warn(status, text):
    return status if status is not None and status.level == DiagnosticStatus.WARN \
        and text in status.message else None


def test_a_failed_configure_shows_and_model_path_changes_by_cleanup_set_configure(
        node, client, diagnostics):
    [refused] = client.set_parameters(model_path='tiny')
    assert 'set it while unconfigured' in refused.reason
    assert client.change_state(Transition.TRANSITION_DEACTIVATE)
    assert client.change_state(Transition.TRANSITION_CLEANUP)
    [result] = client.set_parameters(model_path='/nonexistent/checkpoint')
    assert result.successful
    assert not client.change_state(Transition.TRANSITION_CONFIGURE)

    def failed():
        status = diagnostics.get('node')
        return status if status and status.level == DiagnosticStatus.ERROR else None
    status = client.wait_for(failed, timeout=10.0)
    assert 'configure failed' in status.message and '/nonexistent/checkpoint' in status.message
    assert values(status)['lifecycle_state'] == 'unconfigured'
    assert status.hardware_id == 'cpu'
    [result] = client.set_parameters(model_path='reference')
    assert result.successful
    assert client.change_state(Transition.TRANSITION_CONFIGURE)
    assert client.change_state(Transition.TRANSITION_ACTIVATE)

    def reference_active():
        status = diagnostics.get('node')
        return status if status and values(status)['model_path'] == 'reference' \
            and values(status)['lifecycle_state'] == 'active' else None
    status = client.wait_for(reference_active, timeout=10.0)
    assert status.level == DiagnosticStatus.OK and values(status)['worker_alive'] == 'True'

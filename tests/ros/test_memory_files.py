# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Memory files through the node: saved on SIGINT, loaded at configure, refused when damaged.

The node runs in its own process on the reference model with two cameras fed 640 x 480
photos. The first process saves both memories on SIGINT (``save_on_shutdown``); a second
process loads them at configure (``memory_file``) and must answer exactly as the first
did, for every policy. The node subscribes reliable (as the publishers are) with a depth
that holds a burst, so every frame sent counts. Damaged files and another model's file go
through ``~/load_memory``: each is refused with its reason while the node keeps its
memory and keeps running; a refused ``memory_file`` is not overwritten at shutdown.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import shutil
import signal

import pytest
from rclpy.qos import QoSProfile
from ros2_livevlm.config import POLICIES
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.models import make_tiny_checkpoint
from ros2_livevlm.persistence import INDEX_KEY
from ros2_livevlm.persistence import INDEX_SHA_KEY
from ros2_livevlm.persistence import save_memories
from ros_messages import encoded_photo
from ros_messages import photo
from ros_messages import publish
from ros_messages import settle
from safetensors import safe_open
from safetensors.torch import save_file
from sensor_msgs.msg import Image

CAMERAS = ('image', 'cam_b')
PARAMETERS = {
    'autostart': True, 'model_path': 'reference', 'cameras': list(CAMERAS),
    'sample_fps': 100.0, 'frames_per_clip': 2, 'max_new_tokens': 4, 'clip_timeout': 0.3,
    'state_period': 0.2, 'save_on_shutdown': True, 'qos_reliability': ['reliable'],
    'qos_depth': [20],
}
QUESTIONS = (('What did you see first?', 'image'), ('Did you see the cat?', 'cam_b'))


def answers(client) -> list[tuple]:
    """Ask :data:`QUESTIONS`; return what must survive a restart: tokens, evidence, counts."""
    found = []
    for question, camera in QUESTIONS:
        answer = client.query(question, camera)
        assert answer.success, answer.error
        found.append((answer.text, answer.tokens_generated, answer.frames_in_memory,
                      answer.tokens_attended,
                      [(t.sec, t.nanosec) for t in answer.evidence_start],
                      [(t.sec, t.nanosec) for t in answer.evidence_end]))
    return found


def start(start_node, client, publishers, **parameters):
    """Start a node process and wait until it publishes state and receives our cameras."""
    with client._lock:
        client.states.clear()
    node = start_node(**{**PARAMETERS, **parameters})
    client.wait_for(lambda: all(client.state(c) for c in CAMERAS), timeout=120.0)
    for camera, publisher in publishers.items():
        client.wait_for(lambda: client.state(camera).reliability == 'reliable', timeout=30.0)
        client.wait_for(publisher.get_subscription_count, timeout=30.0)
    return node


def stream(client, publishers, count: int) -> None:
    """Publish ``count`` photos (stamps 100 s on) to each camera and wait for its memory."""
    for index, camera in enumerate(CAMERAS):
        frames = [encoded_photo(photo(index + i), 'rgb8', stamp=100.0 + i) for i in range(count)]
        publish(client, publishers[camera], camera, frames)
        settle(client, camera)


def stop(node) -> str:
    """SIGINT the node; it must exit 0 without a traceback; return its log."""
    assert node.stop(signal.SIGINT) == 0
    log = node.log()
    assert 'Traceback' not in log, log
    return log


@pytest.fixture(scope='module')
def publishers(client):
    make = client.node.create_publisher
    return {camera: make(Image, f'/{camera}', QoSProfile(depth=10)) for camera in CAMERAS}


@pytest.fixture(scope='module')
def memory_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('memory') / 'memory.safetensors'


@pytest.mark.parametrize('policy', [p for p in POLICIES if p != 'livevlm'])  # livevlm below
def test_every_policy_answers_alike_after_a_process_restart(
        start_node, client, publishers, policy, tmp_path):
    memory = tmp_path / 'memory.safetensors'
    parameters = {'policy': policy, 'budget_tokens': 32,  # evicts: 2 frames
                  'short_term_frames': 1, 'memory_file': str(memory)}
    found = []
    for count in (6, 0):  # the second process gets no frame: its memory is loaded
        node = start(start_node, client, publishers, **parameters)
        if count:
            stream(client, publishers, count)
        found.append(answers(client))
        stop(node)
    assert memory.exists() and found[1] == found[0]


@pytest.fixture(scope='module')
def restarted(start_node, client, publishers, memory_file):
    """Stream, ask, SIGINT (saved), start again (loaded at configure); yield the answers."""
    first = start(start_node, client, publishers, memory_file=str(memory_file))
    stream(client, publishers, 5)
    before = answers(client)
    log = stop(first)
    assert 'save_on_shutdown: saved the memory of image, cam_b' in log and memory_file.exists()
    second = start(start_node, client, publishers, memory_file=str(memory_file))
    yield before, second
    stop(second)


def test_memory_saved_on_sigint_is_loaded_at_configure_and_answers_alike(
        client, publishers, restarted):
    before, node = restarted
    assert 'loaded the memory of image, cam_b' in node.log()
    assert answers(client) == before
    # the timeline continues: a later frame joins the loaded memory
    publish(client, publishers['image'], 'image', [encoded_photo(photo(9), 'rgb8', stamp=105.0)])
    settle(client, 'image')
    after = client.query('What are you looking at now?', 'image')
    assert after.frames_in_memory == before[0][2] + 1 and after.header.stamp.sec == 105


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def flip_bit_in_tensor(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # tensor bytes come last
    path.write_bytes(bytes(data))


def future_version(path: Path) -> None:
    with safe_open(str(path), framework='pt') as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
        metadata = file.metadata()
    index = json.loads(metadata[INDEX_KEY])
    index['format_version'] += 1
    text = json.dumps(index)
    digest = hashlib.sha256(text.encode()).hexdigest()
    save_file(tensors, str(path), metadata={INDEX_KEY: text, INDEX_SHA_KEY: digest})


def other_model(path: Path) -> None:
    engine = StreamingVLM.from_pretrained(make_tiny_checkpoint(path.parent / 'tiny'),
                                          frames_per_clip=2)
    save_memories({camera: engine for camera in CAMERAS}, path)


def test_refused_files_leave_the_memory_and_the_node_running(client, restarted, tmp_path):
    _, node = restarted
    good = tmp_path / 'good.safetensors'
    saved = client.save_memory(str(good))
    assert saved.success, saved.error
    assert saved.cameras == list(CAMERAS) and saved.file_size == good.stat().st_size
    loaded = client.load_memory(str(good))
    assert loaded.success and loaded.cameras == list(CAMERAS), loaded.error
    kept = answers(client)
    cases = [(truncate, 'truncated', 'is truncated'),
             (flip_bit_in_tensor, 'corrupt', 'SHA-256'),
             (future_version, 'newer_format', 'format version'),
             (other_model, 'other_model', 'was made by model')]
    for damage, reason, message in cases:
        path = tmp_path / f'{damage.__name__}.safetensors'
        shutil.copy(good, path)
        damage(path)
        response = client.load_memory(str(path))
        assert (response.success, response.reason) == (False, reason), response.error
        assert message in response.error
    missing = client.load_memory(str(tmp_path / 'none'))
    assert missing.reason == 'missing'
    unknown = client.load_memory(str(good), camera='nope')
    assert unknown.reason == 'bad_request' and 'cam_b' in unknown.error
    node.check_alive()
    assert answers(client) == kept


def test_a_refused_memory_file_is_kept_at_shutdown(
        start_node, client, publishers, tmp_path, memory_file, restarted):
    stop(restarted[1])  # one node named livevlm at a time
    path = tmp_path / 'future.safetensors'
    shutil.copy(memory_file, path)
    future_version(path)
    content = path.read_bytes()
    node = start(start_node, client, publishers, memory_file=str(path))
    assert client.query('Anything?', 'image').error_code != 0  # started empty
    log = stop(node)
    assert 'memory_file refused (newer_format)' in log
    assert f'{path} is kept as it is, not overwritten' in log
    assert path.read_bytes() == content

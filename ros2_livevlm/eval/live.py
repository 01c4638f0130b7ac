# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Live replay: the bag played over DDS into the livevlm node, questions asked on ``~/query``.

For each policy a node is started in its own process (``python -m ros2_livevlm.ros.node``
with a parameter file: ``use_sim_time``, ``autostart``, the camera topic, a deep camera
queue, the memory and engine settings; its QoS stays ``auto``), or an already running
node is attached to (any settings, its defaults included: the bag's camera is published
on the node's camera topic of the same message type, and flow control follows the node's
``qos_depth`` and ``state_period``). The
:class:`~ros2_livevlm.eval.player.BagPlayer` publishes the camera topic (reliable, so
``auto`` subscribes reliable and camera-sized frames arrive) and ``/clock``;
at each question's time playback pauses (the clock stands still), the evaluation waits
until the node has received and ingested everything published, asks through the node's
client (:class:`ros2_livevlm.ros.client.LiveVLMClient`) and reads the memory from
``~/memory_state``. The answer's ``header.stamp`` (newest frame in memory) is checked
against the stamp the node's sampler must have kept (the same
:class:`~ros2_livevlm.ros.feed.CameraFeed` run here on the published stamps), so an
answer given before the node caught up is asked again, not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
import json
import math
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np

from .bag import CameraMessage
from .bag import CameraTopic
from .bag import stamp_seconds
from .player import BagPlayer
from .questions import Question
from .replay import answer_result
from .replay import OnResult
from .replay import PolicyRun
from .replay import QuestionResult
from ..bench.records import peak_rss_bytes
from ..checkpoints import resolve_model_path
from ..config import split_settings
from ..engine import Answer as EngineAnswer
from ..msg import MemoryState
from ..ros.client import LiveVLMClient
from ..ros.feed import CameraFeed
from ..ros.feed import Frame
from ..ros.process import NodeProcess
from ..ros.process import NodeProcessError

STATE_PERIOD_S = 0.1
"""``state_period`` of a started node: MemoryState every 0.1 s of wall time."""

STALL_PERIODS = 3
"""
``frames_received`` of the node unchanged for this many state periods (and at least 1 s):
the rest was lost in transport."""

QOS_DEPTH = 100
"""Camera subscription depth of a started node (keep last)."""

IN_FLIGHT = QOS_DEPTH // 2
"""
Flow control: the player waits while more messages than this are published but not yet
received by the node (per its MemoryState); for an attached node, its ``qos_depth`` - 1."""

RELIABLE_WAIT_S = 10.0
"""How long the player waits for the node's subscription to turn reliable (auto), s."""

MAX_BACKLOG = 2
"""
Flow control: the player waits while more sampled frames than this are not yet ingested
(the node's queue holds 8). Playback never outruns the node, so the memory it builds is
the one the offline replay builds; a slow node makes the replay slower, it loses nothing."""


class LiveError(RuntimeError):
    """The node could not be started or reached, or stopped answering; the message says why."""


@dataclass
class LiveOptions:
    """
    How the live replay runs.

    Attributes:
        node_name: name of the node to start, or of the running node to attach to.
        attach: use a running node (its policy and settings; its memory is reset first)
            instead of starting one.
        topic: publish the bag's camera on this topic (None: the bag's own name).
        in_flight: messages published but not yet received by the node, at most.
        state_period: the node's ``state_period``, s.
        rate: playback speed, x recorded.
        ready_timeout_s: wait for a started node to become active (model load), s.
        answer_timeout_s: wait for one answer, s.
        log_dir: where started nodes write their output (``node-<policy>.log``).
    """

    node_name: str = 'livevlm_eval'
    attach: bool = False
    topic: str | None = None
    in_flight: int = IN_FLIGHT
    state_period: float = STATE_PERIOD_S
    rate: float = 10.0
    ready_timeout_s: float = 300.0
    answer_timeout_s: float = 300.0
    log_dir: Path = Path('.')


def node_parameters(
    settings: dict[str, Any],
    policy: str,
    camera: CameraTopic,
    *,
    model_path: str,
    sample_fps: float,
    clip_timeout: float,
) -> dict[str, Any]:
    """Parameters of a started node: the evaluation's settings, sim time, one camera."""
    return {
        **settings,
        'policy': policy,
        'model_path': model_path,
        'cameras': [camera.topic],
        'compressed': [camera.compressed],
        'qos_depth': [QOS_DEPTH],
        'sample_fps': float(sample_fps),
        'clip_timeout': float(clip_timeout),
        'flush_on_question': True,
        'state_period': STATE_PERIOD_S,
        'autostart': True,
        'use_sim_time': True,
    }


def model_fields(model_path: str) -> dict[str, Any]:
    """Return the ``model`` field of a record from the checkpoint's ``config.json``."""
    path = resolve_model_path(model_path)
    config = json.loads((path / 'config.json').read_text())
    text, vision = config['text_config'], config['vision_config']
    grid = vision['image_size'] // vision['patch_size']
    return {
        'name': path.name,
        'layers': text['num_hidden_layers'],
        'hidden': text['hidden_size'],
        'heads': text['num_attention_heads'],
        'kv_heads': text['num_key_value_heads'],
        'tokens_per_frame': math.ceil(grid / 2)
        ** 2,  # 2x2 pooling, as LlavaOnevision.tokens_per_frame
    }


def live_setup(settings: dict[str, Any], policy: str, model_path: str) -> dict[str, Any]:
    """Return the ``device``, ``dtype``, ``model``, ``policy``, ``memory`` of records of a node."""
    from ..bench.records import device_name
    from ..models import resolve_dtype

    memory, engine = split_settings({**settings, 'policy': policy})
    return {
        'device': device_name(engine.device),
        'dtype': str(resolve_dtype(engine.dtype, engine.device)).removeprefix('torch.'),
        'model': model_fields(model_path),
        'policy': policy,
        'memory': {
            'budget_tokens': None if policy == 'full' else memory.budget_tokens,
            'page_size': memory.page_size,
            'retrieval_ratio': memory.retrieval_ratio,
            'short_term_frames': memory.short_term_frames,
            'frames_per_clip': engine.frames_per_clip,
        },
    }


@dataclass(frozen=True)
class AttachedNode:
    """
    A running node as the evaluation sees it.

    Attributes:
        values: the parameters asked for, by name.
        topics: camera name -> ``(resolved topic, compressed)``, from its MemoryState.
    """

    values: dict[str, Any]
    topics: dict[str, tuple[str, bool]]

    def topic_for(self, camera: CameraTopic) -> str:
        """
        Return the node's camera topic to publish ``camera`` on.

        Its own name if the node subscribes it, else the node's first camera of the same
        message type.

        Raises:
            LiveError: the node has no camera of that message type.
        """
        matching = [topic for topic, compressed in self.topics.values()
                    if compressed == camera.compressed]
        if camera.topic in matching:
            return camera.topic
        if not matching:
            kind = 'CompressedImage' if camera.compressed else 'Image'
            raise LiveError(
                f'the node subscribes no sensor_msgs/{kind} camera (its cameras: '
                f'{", ".join(t for t, _ in self.topics.values())}); start it with a camera '
                f'of that type, e.g. -p cameras:=[{camera.topic}] -p compressed:=['
                f'{str(camera.compressed).lower()}]')
        return matching[0]

    def options(self, options: LiveOptions, camera: CameraTopic) -> LiveOptions:
        """Return ``options`` for this node: its camera topic, flow control by its settings."""
        depth = min(self.values['qos_depth'])
        return replace(options, topic=self.topic_for(camera),
                       in_flight=max(1, min(IN_FLIGHT, depth - 1)),
                       state_period=float(self.values['state_period']))


def attach_to_node(node_name: str, names: Sequence[str], timeout_s: float = 30.0) -> AttachedNode:
    """
    Read parameters (``rcl_interfaces/srv/GetParameters``) and camera topics of a running node.

    ``cameras``, ``compressed``, ``qos_depth`` and ``state_period`` are read besides ``names``.

    Raises:
        LiveError: the node does not answer, or publishes no MemoryState, within ``timeout_s``.
    """
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    target = f'/{node_name.lstrip("/")}'
    names = [*names, 'cameras', 'compressed', 'qos_depth', 'state_period']
    client = LiveVLMClient(target)
    try:
        service = client.node.create_client(GetParameters, f'{target}/get_parameters')
        if not service.wait_for_service(timeout_sec=timeout_s):
            raise LiveError(
                f'no node {node_name} to attach to (its get_parameters service is not there)'
            )
        future = service.call_async(GetParameters.Request(names=list(names)))
        client.wait_for(future.done, timeout_s)
        values = {
            name: parameter_value_to_python(value)
            for name, value in zip(names, future.result().values)
        }
        cameras, compressed = list(values['cameras']), list(values['compressed'])
        compressed = compressed * len(cameras) if len(compressed) == 1 else compressed
        client.wait_for(lambda: all(client.state(c) for c in cameras),
                        timeout_s + 3 * values['state_period'])
        topics = {c: (client.state(c).topic, flag) for c, flag in zip(cameras, compressed)}
        return AttachedNode(values, topics)
    except TimeoutError as err:
        raise LiveError(f'node {node_name} did not return its parameters and memory state '
                        f'(is it active?): {err}') from err
    finally:
        client.close()


def _seconds(time_msg: Any) -> float:
    return time_msg.sec + time_msg.nanosec * 1e-9


def _engine_answer(message: Any) -> EngineAnswer:
    """Convert the Answer message of ``~/query`` to the engine's :class:`Answer`."""
    evidence = [
        (_seconds(a), _seconds(b)) for a, b in zip(message.evidence_start, message.evidence_end)
    ]
    return EngineAnswer(
        text=message.text,
        token_ids=[0] * message.tokens_generated,  # only the count crosses the service
        evidence=evidence,
        ttft_s=message.ttft,
        total_s=message.total_time,
        tokens_attended=message.tokens_attended,
        frames_in_memory=message.frames_in_memory,
        stop_reason='',
    )


NO_PIXELS = np.empty((0, 0, 3), dtype=np.uint8)
"""The sampler replica keeps stamps only."""


class LiveSession:
    """One policy's live replay: node (started or attached), client, player, sampler replica."""

    def __init__(
        self,
        bag: str | Path,
        camera: CameraTopic,
        start_ns: int,
        sample_fps: float,
        options: LiveOptions,
    ) -> None:
        self.camera = camera
        self.topic = options.topic or camera.topic  # where the node listens
        self.options = options
        self.stall_s = max(1.0, STALL_PERIODS * options.state_period)
        self.client = LiveVLMClient(f'/{options.node_name.lstrip("/")}')
        self.states: list[Any] = []  # every MemoryState of the camera (the memory trace)
        self._latest: Any = None
        self.client.node.create_subscription(
            MemoryState, f'/{options.node_name.lstrip("/")}/memory_state', self._on_state, 100
        )
        self.replica = CameraFeed(camera.topic, sample_fps, queue_size=1)
        self.expected_stamp: float | None = None  # newest frame the node must have sampled
        self.expected_ingested = 0  # frames the node must have ingested since its last reset
        self.published_since_reset = (
            0  # messages published since the node's last reset (time jump)
        )
        self.sampled = 0  # frames the node must have sampled, in all
        self.progress: Any = None
        self.player = BagPlayer(
            self.client.node,
            bag,
            camera,
            start_ns,
            topic=self.topic,
            rate=options.rate,
            on_message=self._on_published,
            throttle=self._throttle,
        )

    def _on_published(self, message: CameraMessage) -> None:
        msg = message.decode()
        stamp = stamp_seconds(msg) or message.log_ns * 1e-9
        due, jump = self.replica.receive(stamp, message.log_ns * 1e-9)
        if jump:  # the node resets that camera's memory and counters, starting with this message
            self.expected_stamp, self.expected_ingested, self.published_since_reset = None, 0, 0
        self.published_since_reset += 1
        if due:
            self.replica.push(Frame(NO_PIXELS, stamp, ''))
            self.replica.pop()
            self.expected_stamp = stamp
            self.expected_ingested += 1
            self.sampled += 1
        if self.progress is not None:
            self.progress.update()

    def _throttle(self) -> None:
        """Flow control before each publish: ``options.in_flight`` and :data:`MAX_BACKLOG`."""
        deadline = time.monotonic() + self.options.answer_timeout_s
        while (state := self.latest_state()) is not None and (
            self.published_since_reset - state.frames_received > self.options.in_flight
            or self.expected_ingested - state.frames_ingested > MAX_BACKLOG
        ):
            if time.monotonic() > deadline:
                raise LiveError(f'the node stalled: {state}')
            time.sleep(0.005)

    def _on_state(self, state: Any) -> None:
        if state.topic == self.topic:  # the node may call the camera otherwise (remapped)
            self.states.append(state)
            self._latest = state

    def wait_reliable(self, check: Any) -> None:
        """
        Wait until the node subscribes the camera reliable (``auto`` follows the player).

        A node set to best_effort stays so: the replay goes on, with a warning (Fast DDS
        loses camera-sized frames on a best-effort link; see ros2_livevlm.ros.qos).
        """
        deadline = time.monotonic() + RELIABLE_WAIT_S
        while (state := self.latest_state()) is None or state.reliability != 'reliable':
            check()
            if time.monotonic() > deadline:
                print(f'evaluate: warning: the node subscribes {self.topic} '
                      f'{state.reliability if state else "?"}; frames may be lost in transport '
                      '(set its qos_reliability to auto or reliable)', file=sys.stderr)
                return
            time.sleep(0.02)

    def latest_state(self) -> Any:
        """Return the newest MemoryState of the node's camera on the played topic, or None."""
        return self._latest

    def wait_caught_up(self, timeout_s: float, check: Any) -> Any:
        """
        Wait until the node received what was published and ingested every frame it sampled.

        Messages lost in transport are given up on once ``frames_received`` has not moved
        for :data:`STALL_PERIODS` state periods. Returns the last MemoryState.
        """
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while True:
            check()
            state = self.latest_state()
            if state is not None:
                if state.frames_received != last:
                    last, since = state.frames_received, time.monotonic()
                received = (
                    state.frames_received >= self.published_since_reset
                    or time.monotonic() - since > self.stall_s
                )
                if received and state.frames_ingested >= self.expected_ingested:
                    return state
            if time.monotonic() > deadline:
                raise LiveError(
                    f'the node did not catch up within {timeout_s:.0f} s (last state: {state})'
                )
            time.sleep(0.02)

    def next_state(self, after: Any, check: Any) -> Any:
        """Wait for the first MemoryState received after ``after`` (a state object)."""
        deadline = time.monotonic() + 10 * self.options.state_period + 5.0
        while (state := self.latest_state()) is after or state is None:
            check()
            if time.monotonic() > deadline:
                raise LiveError('no ~/memory_state from the node (is it active?)')
            time.sleep(0.01)
        return state

    def ask(self, asked_ns: int, question: Question, repeats: int, check: Any) -> QuestionResult:
        """Ask ``question`` ``repeats`` times once the node caught up; read the memory after."""
        timeout = self.options.answer_timeout_s
        self.wait_caught_up(timeout, check)
        answers = []
        for attempt in range(100):
            camera = self.latest_state().camera
            message = self.client.query(question.question, camera, timeout=timeout)
            if not message.success:
                return QuestionResult(
                    question=question,
                    asked_ns=asked_ns,
                    text='',
                    correct=False,
                    evidence=[],
                    ttft_s=[],
                    answer_s=[],
                    tpot_s=[],
                    tokens_generated=0,
                    tokens_attended=0,
                    frames_seen=0,
                    frames_in_memory=0,
                    kv_tokens=None,
                    kv_bytes=None,
                    error=message.error,
                )
            newest = _seconds(message.header.stamp)
            if self.expected_stamp is None or newest >= self.expected_stamp - 1e-6:
                answers.append(_engine_answer(message))
                break
            time.sleep(
                0.05 * (attempt + 1)
            )  # answered before the last sampled frame was ingested: again
        else:
            raise LiveError(
                f'the node never ingested the frame stamped {self.expected_stamp:.3f} s'
            )
        for _ in range(repeats - 1):
            answers.append(
                _engine_answer(self.client.query(question.question, camera, timeout=timeout))
            )
        state = self.next_state(self.latest_state(), check)
        kv_tokens = state.tokens_init + state.tokens_long_term + state.tokens_short_term
        return answer_result(
            question, asked_ns, answers, state.frames_ingested, kv_tokens, state.kv_bytes
        )

    def trace(self) -> list[tuple[int, int, int]]:
        """Return ``(frames_ingested, kv_tokens, kv_bytes)`` per MemoryState, repeats dropped."""
        points: list[tuple[int, int, int]] = []
        for s in self.states:
            point = (
                s.frames_ingested,
                s.tokens_init + s.tokens_long_term + s.tokens_short_term,
                s.kv_bytes,
            )
            if not points or point != points[-1]:
                points.append(point)
        return points

    def close(self) -> None:
        """Shut the client down."""
        self.client.close()


def replay_live(
    policy: str,
    bag: str | Path,
    camera: CameraTopic,
    start_ns: int,
    questions: Sequence[tuple[int, Question]],
    *,
    settings: dict[str, Any],
    model_path: str,
    sample_fps: float,
    clip_timeout: float,
    repeats: int,
    options: LiveOptions,
    progress: Any = None,
    on_result: OnResult | None = None,
) -> PolicyRun:
    """
    Replay ``camera`` of ``bag`` into a node of ``policy`` over DDS; ask on ``~/query``.

    Args:
        policy: memory policy of the started node (ignored when attaching: the node's own).
        bag / camera / start_ns: what to play; ``start_ns`` is the bag start (clock zero).
        questions: ``(asked_ns, question)`` sorted by time (bag clock, ns).
        settings: MemoryConfig / EngineConfig fields for a started node.
        model_path: ``tiny`` or a checkpoint directory, for a started node.
        sample_fps / clip_timeout: the node's sampling rate (Hz) and idle-clip timeout (s).
        repeats: times each question is asked.
        options: node name, attach, playback rate, timeouts, log directory.
        progress / on_result: as :func:`~ros2_livevlm.eval.replay.replay_offline`.

    Raises:
        LiveError: the node failed to start, exited, or stopped answering.
    """
    node = None
    if not options.attach:
        params = node_parameters(
            settings,
            policy,
            camera,
            model_path=model_path,
            sample_fps=sample_fps,
            clip_timeout=clip_timeout,
        )
        try:
            node = NodeProcess(params, options.log_dir / f'node-{policy}.log',
                               name=options.node_name)
        except NodeProcessError as err:
            raise LiveError(str(err)) from err
    check = node.check_alive if node is not None else (lambda: None)
    session = LiveSession(bag, camera, start_ns, sample_fps, options)
    session.progress = progress
    run = PolicyRun(policy=policy, mode='live')
    exit_code = None
    try:
        state = session.client.wait_for(
            lambda: (check(), session.latest_state())[1], options.ready_timeout_s
        )
        run.policy = state.policy
        if options.attach:  # a running node may hold frames of another stream
            session.client.reset(timeout=options.answer_timeout_s)
        run.info['setup'] = live_setup(settings, state.policy, model_path)
        session.wait_reliable(check)
        session.client.wait_for(lambda: (check(), session.player.subscribers())[1], 30.0)
        for asked_ns, question in questions:
            session.player.play_until(asked_ns)
            result = session.ask(asked_ns, question, repeats, check)
            run.results.append(result)
            if on_result is not None:
                on_result(result)
        session.player.play_until(None)
        state = session.wait_caught_up(options.answer_timeout_s, check)
        lost = session.published_since_reset - state.frames_received
        run.frames_received, run.frames_sampled = session.player.published - lost, session.sampled
        run.frames_dropped = (
            lost + state.frames_dropped_invalid + state.frames_dropped_queue
        )  # since the last reset
        run.trace = session.trace()
        run.info['extra'] = {
            'playback_rate': options.rate,
            'ingest_rate_hz': round(float(state.ingest_rate), 3),
        }
        if node is not None:
            run.peak_bytes = peak_rss_bytes(node.process.pid)
    except TimeoutError as err:
        raise LiveError(f'waiting for the node {options.node_name}: {err}') from err
    except NodeProcessError as err:
        raise LiveError(str(err)) from err
    finally:
        session.close()
        if node is not None:
            exit_code = node.stop()
    if exit_code not in (None, 0):
        raise LiveError(f'the node exited with code {exit_code} (log: {node.log_path})')
    return run

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The node's parameters: each declared once, with a descriptor; read into typed settings.

The node's own parameters are listed in :data:`NODE_PARAMETERS`; the memory and engine
knobs are the fields of :class:`~ros2_livevlm.config.MemoryConfig` and
:class:`~ros2_livevlm.config.EngineConfig`, declared by walking those dataclasses (their
docstrings give the descriptions), so each knob is defined in one place. All are
read-only: a change needs a restart of the node. Values are checked when the node is
configured; a bad one fails the transition with a message that names the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
import os
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from .qos import QOS_RELIABILITY
from ..config import EngineConfig
from ..config import field_docs
from ..config import MemoryConfig
from ..config import split_settings
from ..reference import MEMORY_SETTINGS

MAX_PENDING_LIMIT = 64
"""Largest ``max_pending_questions``: each waiting question holds an executor thread."""

MAX_WATCHES_LIMIT = 64
"""Largest ``max_watches``: each running watch holds an executor thread."""

NODE_PARAMETERS: dict[str, tuple[Any, str]] = {
    'model_path': (
        'reference', 'checkpoint: "reference" (the project\'s tiny model trained on a few '
        'photos, a stand-in shipped with the package), "tiny" (random weights, for tests) or '
        'a local Hugging Face LLaVA-OneVision directory; never downloaded'),
    'cameras': (
        ['image'], 'image topics, one memory each; a question names one of them (empty: '
        'the first). Relative names resolve in the node namespace, so remapping works'),
    'compressed': (
        [False], 'per camera (one value for all cameras, or one per camera): subscribe '
        'sensor_msgs/CompressedImage (JPEG/PNG) instead of sensor_msgs/Image'),
    'qos_reliability': (
        ['auto'], 'per camera: auto (match the publishers of the topic: reliable when all are '
        'reliable, else best_effort; re-decided when they change), best_effort (receives '
        'from both kinds; Fast DDS loses frames over ~0.5 MB unless the camera process uses '
        'config/fastdds_large_frames.xml) or reliable (receives only from reliable '
        'publishers)'),
    'qos_depth': ([5], 'per camera: subscription history depth (keep last), messages'),
    'sample_fps': (1.0, 'frames kept per second of camera time (header.stamp), Hz'),
    'queue_size': (
        8, 'sampled frames waiting per camera for the worker; when full the oldest is '
        'dropped (newest wins) and counted in frames_dropped_queue'),
    'clip_timeout': (
        2.0, 'prefill a partial clip when no frame of that camera was sampled for this long '
        '(node clock), s; 0: only full clips'),
    'flush_on_question': (
        True, 'before answering, prefill the partial clip (when no clip prefill is under '
        'way) so the answer sees every sampled frame; false: only whole clips'),
    'max_pending_questions': (
        4, f'questions (service and action) queued or being answered at once, 1 to '
        f'{MAX_PENDING_LIMIT}; more are refused at once with error_code ERROR_BUSY'),
    'state_period': (1.0, 'period of ~/memory_state and /diagnostics, s'),
    'memory_file': (
        '', 'memory file of every camera (safetensors + JSON index): loaded at configure when '
        'it exists, the default path of ~/save_memory and ~/load_memory, written by '
        'save_on_shutdown; empty: none'),
    'save_on_shutdown': (
        False, "save every camera's memory to memory_file on deactivate, shutdown and "
        'SIGINT/SIGTERM (never over a memory_file that was refused at load)'),
    'watch_hold': (
        2, "evaluations a watch's answer must hold before it becomes an event, for goals "
        'that leave hold at 0'),
    'max_watches': (
        8, f'watches (~/watch goals) running at once, 1 to {MAX_WATCHES_LIMIT}; more are '
        'aborted at once with the reason'),
    'autostart': (
        False, 'configure and activate right after start (for plain `ros2 run`; the launch '
        'file sets it from its autostart argument)'),
}
"""Name -> (default, description) of the parameters that are not config fields."""


@dataclass(frozen=True)
class CameraSettings:
    """
    One camera.

    Attributes:
        name: topic as listed in ``cameras``.
        compressed: ``sensor_msgs/CompressedImage`` instead of ``Image``.
        reliability: ``auto``, ``best_effort`` or ``reliable``.
        depth: subscription history depth (keep last), messages.
    """

    name: str
    compressed: bool
    reliability: str
    depth: int


@dataclass(frozen=True)
class NodeSettings:
    """
    Everything the node reads from its parameters, checked.

    Attributes:
        model_path: ``reference``, ``tiny`` or a checkpoint directory.
        cameras: one entry per camera, in parameter order (the first is the default).
        sample_fps: frames kept per second of camera time, Hz.
        queue_size: frames waiting per camera.
        clip_timeout: idle time after which a partial clip is prefilled, s (0: never).
        flush_on_question: prefill the partial clip before answering.
        max_pending_questions: questions queued or running at once.
        state_period: publication period of memory state and diagnostics, s.
        memory_file: the memory file ('' none), user directory expanded.
        save_on_shutdown: save to ``memory_file`` when the node stops.
        watch_hold: default hysteresis of a watch, evaluations.
        max_watches: watches running at once.
        memory: memory knobs.
        engine: engine knobs.
    """

    model_path: str
    cameras: tuple[CameraSettings, ...]
    sample_fps: float
    queue_size: int
    clip_timeout: float
    flush_on_question: bool
    max_pending_questions: int
    state_period: float
    memory_file: str
    save_on_shutdown: bool
    watch_hold: int
    max_watches: int
    memory: MemoryConfig
    engine: EngineConfig


def _config_parameters() -> dict[str, tuple[Any, str]]:
    table: dict[str, tuple[Any, str]] = {}
    for cls in (MemoryConfig, EngineConfig):
        docs = field_docs(cls)
        for field in fields(cls):
            # sized for the default model_path, the reference model (16 tokens per frame);
            # config/llava_onevision.yaml sets LiveVLM's values for a real checkpoint
            default = MEMORY_SETTINGS.get(field.name, field.default)
            table[field.name] = (default, docs.get(field.name, ''))
    return table


def declare_parameters(node: Node) -> None:
    """
    Declare every parameter of the node once, each with a read-only descriptor.

    Types are checked when the settings are read (:func:`read_settings`), not here, so a
    YAML ``1`` for a float or a wrong type fails configuration with a clear message
    instead of an exception at construction.
    """
    for name, (default, description) in {**NODE_PARAMETERS, **_config_parameters()}.items():
        node.declare_parameter(name, default, ParameterDescriptor(
            description=description, read_only=True, dynamic_typing=True))


def _typed(name: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` (int -> float allowed)."""
    kind = type(default)
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) and not hasattr(value, 'tolist'):
            raise ValueError(f'parameter {name}: expected a list like {default!r}, got {value!r}')
        items = value.tolist() if hasattr(value, 'tolist') else list(value)
        return [_typed(f'{name}[{i}]', item, default[0]) for i, item in enumerate(items)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ValueError(f'parameter {name}: expected {kind.__name__} like {default!r}, '
                         f'got {value!r} ({type(value).__name__})')
    return value


def _per_camera(name: str, values: list[Any], count: int) -> list[Any]:
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(f'parameter {name}: give one value for all cameras or one per camera '
                         f'({count}), got {len(values)}')
    return values


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise ValueError(f'parameter {name}: must be {bound}, got {value!r}')


def read_settings(node: Node) -> NodeSettings:
    """
    Read and check the declared parameters.

    Raises:
        ValueError: a wrong type or value; the message names the parameter and the fix.
    """
    table = {**NODE_PARAMETERS, **_config_parameters()}
    values = {name: _typed(name, node.get_parameter(name).value, default)
              for name, (default, _) in table.items()}
    names = values['cameras']
    if not names or len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise ValueError(f'parameter cameras: give unique, non-empty topic names, got {names!r}')
    count = len(names)
    reliabilities = _per_camera('qos_reliability', values['qos_reliability'], count)
    depths = _per_camera('qos_depth', values['qos_depth'], count)
    for reliability in reliabilities:
        if reliability not in QOS_RELIABILITY:
            raise ValueError(f'parameter qos_reliability: {reliability!r} is not one of '
                             f'{", ".join(QOS_RELIABILITY)}')
    for depth in depths:
        _positive('qos_depth', depth)
    cameras = tuple(
        CameraSettings(name, compressed, reliability, depth)
        for name, compressed, reliability, depth in zip(
            names, _per_camera('compressed', values['compressed'], count), reliabilities, depths))
    for name in ('sample_fps', 'queue_size', 'max_pending_questions', 'state_period',
                 'watch_hold', 'max_watches'):
        _positive(name, values[name])
    for name, limit in (('max_pending_questions', MAX_PENDING_LIMIT),
                        ('max_watches', MAX_WATCHES_LIMIT)):
        if values[name] > limit:
            raise ValueError(f'parameter {name}: at most {limit}, got {values[name]}')
    if values['save_on_shutdown'] and not values['memory_file'].strip():
        raise ValueError('parameter save_on_shutdown: needs memory_file, the file to save to')
    _positive('clip_timeout', values['clip_timeout'], allow_zero=True)
    if not values['model_path'].strip():
        raise ValueError('parameter model_path: give "reference", "tiny" or a checkpoint '
                         'directory')
    try:
        memory, engine = split_settings({name: values[name] for name in _config_parameters()})
    except ValueError as err:
        raise ValueError(f'parameter {err}') from err
    return NodeSettings(
        model_path=values['model_path'], cameras=cameras, sample_fps=values['sample_fps'],
        queue_size=values['queue_size'], clip_timeout=values['clip_timeout'],
        flush_on_question=values['flush_on_question'],
        max_pending_questions=values['max_pending_questions'],
        state_period=values['state_period'],
        memory_file=os.path.expanduser(values['memory_file'].strip()),
        save_on_shutdown=values['save_on_shutdown'], watch_hold=values['watch_hold'],
        max_watches=values['max_watches'], memory=memory, engine=engine)

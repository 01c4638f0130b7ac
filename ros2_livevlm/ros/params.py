# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The node's parameters: each declared once, typed, with its range and when it applies.

The node's own parameters are :data:`NODE_PARAMETERS`; the memory and engine knobs are
the fields of :class:`~ros2_livevlm.config.MemoryConfig` and
:class:`~ros2_livevlm.config.EngineConfig`, walked into :class:`Spec` entries (their
docstrings give the descriptions, their metadata the ranges, choices and whether they
may change while streaming), so each knob is defined in one place. To add a parameter,
add a :class:`Spec` to :data:`NODE_PARAMETERS` (or a field to a config class).

When a change applies (:attr:`Spec.applies`):

- ``runtime``: at once, in every lifecycle state (:func:`check_changes` validates it
  against all other values; :mod:`.tuning` applies it to the running parts);
- ``configure``: set while unconfigured, applied by the next configure (while configured
  a change is refused: ``cleanup``, set, ``configure``);
- ``restart``: read-only, fixed when the process starts.

A bad value is refused with the reason (``budget_tokens=-5 must be >= 1``); out-of-range
numbers are refused by rclpy itself from the descriptor's range. A bad value in a
parameter file or on the command line does not stop the node: the default is kept and
configure fails naming the parameter until a good value is set (:func:`declare_parameters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
import os
from typing import Any, Iterable, Optional

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import ParameterType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

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

INT_MAX = 2**31 - 1
"""Upper end of an integer range without a bound of its own."""

FLOAT_MAX = 1e10
"""Upper end of a floating-point range without a bound of its own."""

UNCONFIGURE_FIRST = 'set it while unconfigured: cleanup, set, configure'
"""Why a ``configure`` parameter is refused while the node is configured."""


@dataclass(frozen=True)
class Spec:
    """
    One parameter: its default, description, allowed values and when a change applies.

    Attributes:
        name: parameter name.
        default: default value; its type is the parameter's type (lists: of the first item).
        description: what it is, with its unit.
        low: smallest allowed value (of each item, for lists), None for no bound.
        high: largest allowed value, None for no bound.
        above: the value must be strictly greater than ``low``.
        choices: allowed values of a string (of each item, for lists).
        applies: ``runtime``, ``configure`` or ``restart`` (see the module docstring).
    """

    name: str
    default: Any
    description: str
    low: Optional[float] = None
    high: Optional[float] = None
    above: bool = False
    choices: Optional[tuple[str, ...]] = None
    applies: str = 'configure'

    def check(self, value: Any) -> Optional[str]:
        """Say why ``value`` is not allowed (``name=value must be ...``), or None."""
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            reason = None
            if self.choices is not None and item not in self.choices:
                reason = f'must be one of {", ".join(self.choices)}'
            elif self.low is not None and (item <= self.low if self.above else item < self.low):
                reason = f'must be {">" if self.above else ">="} {self.low}'
            elif self.high is not None and item > self.high:
                reason = f'must be <= {self.high}'
            if reason is not None:
                return f'{self.name}={value!r} {reason}'
        return None

    def descriptor(self) -> ParameterDescriptor:
        """Return the typed ``ParameterDescriptor``: type, range, choices, read-only."""
        when = {'runtime': 'Applies at once, in any state.',
                'configure': f'Applies at the next configure ({UNCONFIGURE_FIRST}).',
                'restart': 'Read-only: restart the node to change it.'}[self.applies]
        constraints = []
        if self.choices is not None:
            constraints.append(f'one of: {", ".join(self.choices)}')
        if isinstance(self.default, list):
            constraints.append('one value for all cameras or one per camera'
                               if self.name != 'cameras' else 'unique topic names')
        if self.above:
            constraints.append(f'> {self.low}')
        descriptor = ParameterDescriptor(
            name=self.name, type=_TYPES[_kind(self.default)],
            description=f'{self.description.rstrip(".")}. {when}',
            additional_constraints='; '.join(constraints), read_only=self.applies == 'restart')
        if isinstance(self.default, bool) or isinstance(self.default, list):
            return descriptor
        if isinstance(self.default, int) and self.low is not None:
            high = INT_MAX if self.high is None else int(self.high)
            descriptor.integer_range = [IntegerRange(from_value=int(self.low), to_value=high,
                                                     step=1)]
        elif isinstance(self.default, float) and self.low is not None:
            high = FLOAT_MAX if self.high is None else float(self.high)
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=high, step=0.0)]
        return descriptor


def _kind(default: Any) -> str:
    if isinstance(default, list):
        return f'{type(default[0]).__name__}[]'
    return type(default).__name__


_TYPES = {
    'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
    'float': ParameterType.PARAMETER_DOUBLE, 'str': ParameterType.PARAMETER_STRING,
    'bool[]': ParameterType.PARAMETER_BOOL_ARRAY,
    'int[]': ParameterType.PARAMETER_INTEGER_ARRAY,
    'str[]': ParameterType.PARAMETER_STRING_ARRAY,
}


NODE_PARAMETERS: tuple[Spec, ...] = (
    Spec('model_path', 'reference',
         'checkpoint: "reference" (the project\'s tiny model trained on a few photos, a '
         'stand-in shipped with the package), "tiny" (random weights, for tests) or a local '
         'Hugging Face LLaVA-OneVision directory; never downloaded'),
    Spec('cameras', ['image'],
         'image topics, one memory each; a question names one of them (empty: the first). '
         'Relative names resolve in the node namespace, so remapping works'),
    Spec('compressed', [False],
         'per camera (one value for all cameras, or one per camera): subscribe '
         'sensor_msgs/CompressedImage (JPEG/PNG) instead of sensor_msgs/Image'),
    Spec('qos_reliability', ['auto'],
         'per camera: auto (match the publishers of the topic: reliable when all are '
         'reliable, else best_effort; re-decided when they change), best_effort (receives '
         'from both kinds; Fast DDS loses frames over ~0.5 MB unless the camera process uses '
         'config/fastdds_large_frames.xml) or reliable (receives only from reliable '
         'publishers)', choices=tuple(QOS_RELIABILITY)),
    Spec('qos_depth', [5], 'per camera: subscription history depth (keep last), messages',
         low=1),
    Spec('sample_fps', 1.0, 'frames kept per second of camera time (header.stamp), Hz',
         low=0.0, above=True, applies='runtime'),
    Spec('queue_size', 8,
         'sampled frames waiting per camera for the worker; when full the oldest is dropped '
         '(newest wins) and counted in frames_dropped_queue', low=1),
    Spec('clip_timeout', 2.0,
         'prefill a partial clip when no frame of that camera was sampled for this long '
         '(node clock), s; 0: only full clips', low=0.0, applies='runtime'),
    Spec('flush_on_question', True,
         'before answering, prefill the partial clip (when no clip prefill is under way) so '
         'the answer sees every sampled frame; false: only whole clips', applies='runtime'),
    Spec('max_pending_questions', 4,
         'questions (service and action) queued or being answered at once; more are refused '
         'at once with error_code ERROR_BUSY (the executor has a thread for each)',
         low=1, high=MAX_PENDING_LIMIT, applies='restart'),
    Spec('state_period', 1.0, 'period of ~/memory_state and /diagnostics, s', low=0.0,
         above=True, applies='restart'),
    Spec('diagnostics_stale_s', 3.0,
         'a camera whose newest frame (header.stamp, node clock) is older than this is WARN '
         '(stale), s', low=0.0, above=True, applies='runtime'),
    Spec('diagnostics_min_rate_ratio', 0.5,
         'a camera is WARN when frames arrive at less than this share of the rate its '
         'header.stamps say the camera publishes at (frames lost on the way); 0: off',
         low=0.0, high=1.0, applies='runtime'),
    Spec('diagnostics_max_drop_ratio', 0.2,
         'a camera is WARN when more than this share of its frames was dropped (invalid, '
         'queue overflow, lost in transport) since the last reset; 1: off',
         low=0.0, high=1.0, applies='runtime'),
    Spec('memory_file', '',
         'memory file of every camera (safetensors + JSON index): loaded at configure when it '
         'exists, the default path of ~/save_memory and ~/load_memory, written by '
         'save_on_shutdown; empty: none'),
    Spec('save_on_shutdown', False,
         "save every camera's memory to memory_file on deactivate, shutdown and SIGINT/SIGTERM "
         '(never over a memory_file that was refused at load)'),
    Spec('watch_hold', 2,
         "evaluations a watch's answer must hold before it becomes an event, for goals that "
         'leave hold at 0', low=1),
    Spec('max_watches', 8,
         'watches (~/watch goals) running at once; more are aborted at once with the reason '
         '(the executor has a thread for each)', low=1, high=MAX_WATCHES_LIMIT,
         applies='restart'),
    Spec('autostart', False,
         'configure and activate right after start (for plain `ros2 run`; the launch file '
         'sets it from its autostart argument)', applies='restart'),
)
"""The parameters that are not config fields."""


def config_parameters() -> tuple[Spec, ...]:
    """Return the :class:`MemoryConfig` and :class:`EngineConfig` fields as :class:`Spec`."""
    specs = []
    for cls in (MemoryConfig, EngineConfig):
        docs = field_docs(cls)
        for f in fields(cls):
            meta = f.metadata
            # sized for the default model_path, the reference model (16 tokens per frame);
            # config/llava_onevision.yaml sets LiveVLM's values for a real checkpoint
            specs.append(Spec(
                f.name, MEMORY_SETTINGS.get(f.name, f.default), docs.get(f.name, ''),
                low=meta.get('low'), high=meta.get('high'), above=bool(meta.get('above')),
                choices=meta.get('choices'),
                applies='runtime' if meta.get('runtime') else 'configure'))
    return tuple(specs)


def all_parameters() -> dict[str, Spec]:
    """Return every parameter of the node by name."""
    return {spec.name: spec for spec in (*NODE_PARAMETERS, *config_parameters())}


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
        stale_s: diagnostics WARN when a camera's newest frame is older, s.
        min_rate_ratio: diagnostics WARN below this share of the camera's own rate.
        max_drop_ratio: diagnostics WARN above this share of frames dropped.
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
    stale_s: float
    min_rate_ratio: float
    max_drop_ratio: float
    memory: MemoryConfig
    engine: EngineConfig


def declare_parameters(node: Node) -> dict[str, str]:
    """
    Declare every parameter of the node once, each with its typed descriptor.

    An integer given for a float parameter is taken as that float. A value of the wrong
    type or out of range (parameter file, command line) is not fatal: the parameter keeps
    its default and the returned reason makes configure fail until a good value is set.

    Returns:
        parameter name -> why its given value was refused (empty: none refused).
    """
    overrides = getattr(node, '_parameter_overrides', {})
    refused: dict[str, str] = {}
    for spec in all_parameters().values():
        given = overrides.get(spec.name)
        if (given is not None and isinstance(spec.default, float)
                and given.type_ == Parameter.Type.INTEGER):
            overrides[spec.name] = Parameter(spec.name, Parameter.Type.DOUBLE,
                                             float(given.value))
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            refused[spec.name] = (f'{spec.name}: the given value was refused ({err}); set a '
                                  'good value')
            node.declare_parameter(spec.name, spec.default, spec.descriptor(),
                                   ignore_override=True)
    return refused


def check_changes(node: Node, changes: Iterable[Parameter], *,
                  configured: bool) -> tuple[Optional[str], Optional[NodeSettings]]:
    """
    Decide whether parameter changes are allowed now (an on-set parameters callback).

    Each value must pass its :class:`Spec`; a ``configure`` parameter is refused while the
    node is configured; with the node configured, the new values must make valid
    settings together with all the others.

    Returns:
        ``(reason, None)`` to refuse; ``(None, settings)``: allowed, with the settings to
        apply now (None while unconfigured: the next configure reads them).
    """
    specs = all_parameters()
    values = {}
    for change in changes:
        spec = specs.get(change.name)
        if spec is None:  # not ours
            continue
        value = change.value.tolist() if hasattr(change.value, 'tolist') else change.value
        reason = spec.check(value)
        if reason is None and configured and spec.applies != 'runtime':
            reason = f'{spec.name} applies at configure: {UNCONFIGURE_FIRST}'
        if reason is not None:
            return reason, None
        values[change.name] = value
    if not configured:
        return None, None
    try:
        return None, settings_from({**_values(node), **values})
    except ValueError as err:
        return str(err).removeprefix('parameter '), None


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


def _values(node: Node) -> dict[str, Any]:
    return {name: _typed(name, node.get_parameter(name).value, spec.default)
            for name, spec in all_parameters().items()}


def read_settings(node: Node, refused: Optional[dict[str, str]] = None) -> NodeSettings:
    """
    Read and check the declared parameters.

    Args:
        refused: values refused at declaration (:func:`declare_parameters`): the first
            is raised.

    Raises:
        ValueError: a wrong type or value; the message names the parameter and the fix.
    """
    for reason in (refused or {}).values():
        raise ValueError(f'parameter {reason}')
    return settings_from(_values(node))


def settings_from(values: dict[str, Any]) -> NodeSettings:
    """
    Check a complete set of parameter values and build the settings.

    Raises:
        ValueError: a value its :class:`Spec` refuses or values that do not fit together;
            the message names the parameter (``parameter budget_tokens=-5 must be >= 1``).
    """
    for name, spec in all_parameters().items():
        reason = spec.check(values[name])
        if reason is not None:
            raise ValueError(f'parameter {reason}')
    names = values['cameras']
    if not names or len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise ValueError(f'parameter cameras: give unique, non-empty topic names, got {names!r}')
    count = len(names)
    cameras = tuple(
        CameraSettings(name, compressed, reliability, depth)
        for name, compressed, reliability, depth in zip(
            names, _per_camera('compressed', values['compressed'], count),
            _per_camera('qos_reliability', values['qos_reliability'], count),
            _per_camera('qos_depth', values['qos_depth'], count)))
    if values['save_on_shutdown'] and not values['memory_file'].strip():
        raise ValueError('parameter save_on_shutdown: needs memory_file, the file to save to')
    if not values['model_path'].strip():
        raise ValueError('parameter model_path: give "reference", "tiny" or a checkpoint '
                         'directory')
    try:
        memory, engine = split_settings({spec.name: values[spec.name]
                                         for spec in config_parameters()})
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
        max_watches=values['max_watches'], stale_s=values['diagnostics_stale_s'],
        min_rate_ratio=values['diagnostics_min_rate_ratio'],
        max_drop_ratio=values['diagnostics_max_drop_ratio'], memory=memory, engine=engine)

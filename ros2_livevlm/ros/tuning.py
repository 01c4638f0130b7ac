# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Runtime parameters: checked by an on-set callback, applied to the parts that run.

:class:`ParameterTuning` is the node's on-set parameters callback. It refuses a bad
value with the reason (:func:`~ros2_livevlm.ros.params.check_changes`) and applies an
accepted ``runtime`` change at once (inside the callback, which works on Humble; the
descriptor checks of rclpy run before it, so nothing refuses the change afterwards): to
the engines (:meth:`~ros2_livevlm.engine.StreamingVLM.retune`), the camera feeds
(``sample_fps``) and the worker (``clip_timeout``, ``flush_on_question``). Diagnostics
thresholds are read from the settings at each publication.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import fields
from typing import Any, Callable, Optional

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from .params import check_changes
from .params import NodeSettings
from ..config import EngineConfig
from ..config import MemoryConfig

ENGINE_RUNTIME = tuple(f.name for c in (MemoryConfig, EngineConfig) for f in fields(c)
                       if f.metadata.get('runtime'))
"""Config fields a running engine takes at once (``StreamingVLM.retune``)."""


def apply_settings(settings: NodeSettings, engines: dict[str, Any], session: Any) -> None:
    """
    Apply the runtime part of ``settings`` to the engines and to an active session.

    Args:
        settings: the checked settings (all parameters).
        engines: camera name -> engine (empty while unconfigured).
        session: the node's active :class:`~ros2_livevlm.ros.node.Session`, or None.
    """
    knobs = {**asdict(settings.memory), **asdict(settings.engine)}
    for engine in engines.values():
        engine.retune(**{name: knobs[name] for name in ENGINE_RUNTIME})
    if session is None:
        return
    session.settings = settings
    for feed in session.feeds.values():
        feed.set_sample_fps(settings.sample_fps)
    session.worker.set_options(clip_timeout=settings.clip_timeout,
                               flush_on_question=settings.flush_on_question)


class ParameterTuning:
    """
    The node's on-set parameters callback: refuse with a reason, or accept and apply.

    Args:
        node: the node whose parameters these are.
        configured: returns the node's settings while it is configured (None otherwise).
        apply: called with the new settings of an accepted change while configured.
        refused: values refused at declaration; a good value set later clears its entry.
    """

    def __init__(self, node: Node, configured: Callable[[], Optional[NodeSettings]],
                 apply: Callable[[NodeSettings], None], refused: dict[str, str]) -> None:
        self._node = node
        self._configured = configured
        self._apply = apply
        self.refused = refused

    def __call__(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check ``parameters`` (set together); apply them when the node is configured."""
        reason, settings = check_changes(self._node, parameters,
                                         configured=self._configured() is not None)
        if reason is not None:
            self._node.get_logger().warning(f'parameter change refused: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        for parameter in parameters:
            self.refused.pop(parameter.name, None)
        if settings is not None:
            self._apply(settings)
        return SetParametersResult(successful=True)

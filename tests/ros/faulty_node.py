# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The livevlm node in its own process, with faults injected at the engine boundary.

``python tests/ros/faulty_node.py --ros-args ...`` runs :func:`ros2_livevlm.ros.node.main`
with a node whose engine is a :class:`~engine_faults.FaultyEngine` on the configured model.
``LIVEVLM_TEST_FAULTS`` (JSON) says what fails: ``{"faults": {"ingest": ["message", ...]},
"step_s": 0.0, "state_error": "message"}``; ``state_error`` makes the first state
publication raise (a defect in a node callback, which must not end the executor).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from engine_faults import FaultyEngine
from ros2_livevlm.ros.node import LiveVLMNode
from ros2_livevlm.ros.node import load_engine
from ros2_livevlm.ros.node import main

SPEC = json.loads(os.environ.get('LIVEVLM_TEST_FAULTS', '{}'))


def load_faulty_engine(settings: Any) -> FaultyEngine:
    engine = FaultyEngine.sharing(load_engine(settings))
    engine.step_s = SPEC.get('step_s', 0.0)
    for operation, messages in SPEC.get('faults', {}).items():
        engine.faults[operation] = [RuntimeError(message) for message in messages]
    return engine


class FaultyNode(LiveVLMNode):
    """A livevlm node whose first state publication raises when ``state_error`` is set."""

    def _publish_status(self) -> None:
        if SPEC.get('state_error') and not getattr(self, 'state_failed', False):
            self.state_failed = True
            raise RuntimeError(SPEC['state_error'])
        super()._publish_status()


if __name__ == '__main__':
    sys.exit(main(make_node=lambda: FaultyNode(load_engine=load_faulty_engine)))

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The streaming KV memory: ``[init | long-term | short-term]`` per layer, VSB, PaR, policies.

Imports only torch (and the settings dataclasses). See :mod:`.store` for the layout.
"""

from .context import AnswerContext
from .context import ClipPrefill
from .policies import make_policy
from .policies import MemoryPolicy
from .policies import POLICY_CLASSES
from .rope import Rope
from .store import VideoMemory


__all__ = [
    'AnswerContext',
    'ClipPrefill',
    'MemoryPolicy',
    'POLICY_CLASSES',
    'Rope',
    'VideoMemory',
    'make_policy',
]

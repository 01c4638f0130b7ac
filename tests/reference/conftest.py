# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the reference-model tests: a random model of the reference shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from ros2_livevlm.config import EngineConfig
from ros2_livevlm.models import LlavaOnevision
from ros2_livevlm.models.tiny import make_tiny_model
from ros2_livevlm.models.tiny import save_checkpoint
from ros2_livevlm.reference.train_reference import REFERENCE_SPEC
from ros2_livevlm.reference.train_reference import reference_tokenizer


@pytest.fixture(scope='session')
def untrained_reference(tmp_path_factory: pytest.TempPathFactory) -> LlavaOnevision:
    """Load a randomly initialised model of the reference shape and tokenizer from disk."""
    tokenizer = reference_tokenizer(EngineConfig().system_prompt)
    hf = make_tiny_model(REFERENCE_SPEC, tokenizer, seed=1)
    path: Path = tmp_path_factory.mktemp('models') / 'untrained-reference'
    return LlavaOnevision.from_pretrained(
        save_checkpoint(path, hf, tokenizer, REFERENCE_SPEC.image_size))

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
What a ``model_path`` setting names: ``"reference"``, ``"tiny"`` or a local checkpoint.

The backbones (:mod:`.models`) load any Hugging Face directory and know nothing of the
project's stand-ins; this module maps the two reserved names to theirs (the committed
reference model of :mod:`.reference`, a tiny random checkpoint built into the cache) and
gives the memory settings sized for the reference model.
"""

from __future__ import annotations

from pathlib import Path

from .config import cache_dir
from .models import check_model_dir
from .models import make_tiny_checkpoint
from .models import ModelDirectoryError
from .models import TinySpec
from .models.tiny import spec_tag
from .reference import CHECKPOINT_DIR
from .reference import MEMORY_SETTINGS
from .reference import TRAIN_COMMAND


TINY = 'tiny'
"""``model_path`` value that selects a tiny random checkpoint (built once into the cache)."""

REFERENCE = 'reference'
"""``model_path`` value that selects the project's trained reference model
(:mod:`ros2_livevlm.reference`: tiny, trained on a handful of photos, committed)."""


def tiny_checkpoint(spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """Directory of the cached tiny random checkpoint for ``spec``/``seed``, built on first use."""
    path = cache_dir('models') / spec_tag(spec, seed)
    if not (path / 'config.json').is_file():
        make_tiny_checkpoint(path, spec, seed)
    return path


def default_settings(model_path: str | Path) -> dict[str, int]:
    """
    Memory/engine settings sized for ``model_path`` where the config defaults do not fit it.

    The reference model's (:data:`~ros2_livevlm.reference.MEMORY_SETTINGS`, 16 tokens per
    frame); none for other models (the config defaults are LiveVLM's, for 196 tokens per
    frame). Settings given explicitly go on top.
    """
    return dict(MEMORY_SETTINGS) if str(model_path) == REFERENCE else {}


def default_settings_help() -> str:
    """One line for a CLI's ``--help``: the defaults that change with the reference model."""
    options = ', '.join(f'--{k.replace("_", "-")} {v}' for k, v in MEMORY_SETTINGS.items())
    return f'With --model-path {REFERENCE} the defaults are sized for it: {options}.'


def resolve_model_path(model_path: str | Path) -> Path:
    """
    Turn a ``model_path`` setting into a checked checkpoint directory.

    Args:
        model_path: ``"tiny"`` (a tiny random LLaVA-OneVision, built into the cache on
            first use), ``"reference"`` (the project's trained tiny model, committed
            with the package) or a local Hugging Face directory.

    Raises:
        ModelDirectoryError: the directory is missing or incomplete (names what is missing;
            for ``"reference"`` also the command that regenerates it).
    """
    if str(model_path) == TINY:
        return tiny_checkpoint()
    if str(model_path) == REFERENCE:
        try:
            return check_model_dir(CHECKPOINT_DIR)
        except ModelDirectoryError as error:
            raise ModelDirectoryError(f'{error}; regenerate it with: {TRAIN_COMMAND}') from error
    return check_model_dir(model_path)


__all__ = [
    'REFERENCE',
    'TINY',
    'default_settings',
    'default_settings_help',
    'resolve_model_path',
    'tiny_checkpoint',
]

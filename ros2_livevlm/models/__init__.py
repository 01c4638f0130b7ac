# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Backbones: HF-format checkpoints from a local directory, driven by our own layer loop."""

from __future__ import annotations

from pathlib import Path

import torch

from .llava_onevision import AttendFn
from .llava_onevision import check_model_dir
from .llava_onevision import LlavaOnevision
from .llava_onevision import ModelDirectoryError
from .tiny import make_tiny_checkpoint
from .tiny import spec_tag
from .tiny import TinySpec
from ..config import cache_dir
from ..reference import CHECKPOINT_DIR
from ..reference import MEMORY_SETTINGS
from ..reference import TRAIN_COMMAND


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


def check_device(device: str) -> torch.device:
    """
    Parse ``device`` and check that this torch build can use it.

    Raises:
        ValueError: not a torch device string, or a CUDA device that torch cannot see (a
            CPU-only build, no GPU, an index past the last GPU); the message says what to set.
    """
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f'device={device!r} is not a torch device (cpu, cuda, cuda:N)') from error
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(
                f'device={device!r}, but torch {torch.__version__} sees no CUDA device (a '
                'CPU-only build or no GPU); set device: cpu or install a CUDA build of torch'
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f'device={device!r}, but torch sees {torch.cuda.device_count()} CUDA device(s)'
            )
    elif parsed.type != 'cpu':
        raise ValueError(f'device={device!r} is not supported; use cpu or cuda[:N]')
    return parsed


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` -> bfloat16 on CUDA, float32 elsewhere; otherwise the named torch dtype."""
    if dtype == 'auto':
        return torch.bfloat16 if torch.device(device).type == 'cuda' else torch.float32
    return getattr(torch, dtype)


__all__ = [
    'AttendFn',
    'LlavaOnevision',
    'ModelDirectoryError',
    'TinySpec',
    'REFERENCE',
    'TINY',
    'check_device',
    'check_model_dir',
    'default_settings',
    'default_settings_help',
    'make_tiny_checkpoint',
    'resolve_dtype',
    'resolve_model_path',
    'tiny_checkpoint',
]

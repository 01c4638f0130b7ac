# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Backbones: HF-format checkpoints from a local directory, driven by our own layer loop."""

from __future__ import annotations

import torch

from .llava_onevision import AttendFn
from .llava_onevision import check_model_dir
from .llava_onevision import DecoderParts
from .llava_onevision import LlavaOnevision
from .llava_onevision import ModelDirectoryError
from .tiny import make_tiny_checkpoint
from .tiny import TinySpec


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
    'DecoderParts',
    'LlavaOnevision',
    'ModelDirectoryError',
    'TinySpec',
    'check_device',
    'check_model_dir',
    'make_tiny_checkpoint',
    'resolve_dtype',
]

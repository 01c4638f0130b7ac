# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the model, memory and engine tests: one tiny real checkpoint per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ros2_livevlm.models import make_tiny_checkpoint
from skimage import data


PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'coins')


@pytest.fixture(scope='session')
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a tiny random LLaVA-OneVision with save_pretrained (16 tokens/frame, GQA 4:2)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny')


@pytest.fixture(scope='session')
def photos() -> np.ndarray:
    """Real photos from scikit-image, RGB uint8 [6, 96, 128, 3]."""
    from skimage.color import gray2rgb
    from skimage.transform import resize

    frames = []
    for name in PHOTOS:
        image = getattr(data, name)()
        image = gray2rgb(image) if image.ndim == 2 else image[..., :3]
        frames.append(
            (resize(image, (96, 128), anti_aliasing=True) * 255).round().astype(np.uint8)
        )
    return np.stack(frames)


@pytest.fixture(scope='session')
def stream(photos: np.ndarray) -> Callable[..., np.ndarray]:
    """
    Return a frame maker ``make(num_frames, seed=0)`` that cycles the photos, with noise.

    Frames are uint8 ``[N, 96, 128, 3]``.
    """

    def make(num_frames: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        frames = photos[np.arange(num_frames) % len(photos)].astype(np.int16)
        frames += rng.integers(-8, 9, size=frames.shape, dtype=np.int16)
        return frames.clip(0, 255).astype(np.uint8)

    return make

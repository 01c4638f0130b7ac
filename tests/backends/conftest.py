# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Fixtures of the backend tests.

Part A (vision encoder: ONNX, onnxruntime, TensorRT cache) uses the ``vision_*`` fixtures;
add others below (append only).
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path


# The Triton tests run the kernels in Triton's CPU interpreter, chosen when triton.language
# defines its own jit functions: set it before any module here imports the package (the
# engine does, through transformers), not only in the Triton test modules
os.environ['TRITON_INTERPRET'] = '1'

import pytest  # noqa: E402
from ros2_livevlm.models import LlavaOnevision  # noqa: E402
from ros2_livevlm.models import make_tiny_checkpoint  # noqa: E402
from ros2_livevlm.models import TinySpec  # noqa: E402
from ros2_livevlm.reference.scenes import scene_image  # noqa: E402
from ros2_livevlm.reference.scenes import SCENE_NAMES  # noqa: E402
import torch  # noqa: E402


VISION_SPEC = TinySpec(image_size=56, patch_size=8)
"""7x7 patches: an odd grid like SigLIP's 27x27, so 2x2 pooling interpolates (16 tokens/frame)."""


@pytest.fixture(scope='session')
def vision_tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a tiny random LLaVA-OneVision with save_pretrained, odd patch grid (VISION_SPEC)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny-odd-grid', VISION_SPEC)


@pytest.fixture(scope='module')
def vision_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """
    Point ``ROS2_LIVEVLM_CACHE`` at a fresh package cache for one test module.

    It holds the module's ONNX exports, fingerprints and engines.
    """
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('ROS2_LIVEVLM_CACHE', str(root))
        yield root


@pytest.fixture(scope='module')
def vision_model(vision_tiny_path: Path) -> LlavaOnevision:
    """Load the tiny checkpoint in float32 on the CPU."""
    return LlavaOnevision.from_pretrained(vision_tiny_path)


@pytest.fixture(scope='module')
def vision_pixels(vision_model: LlavaOnevision) -> torch.Tensor:
    """Preprocess six real photos (scikit-image), float32 ``[6, 3, 56, 56]``."""
    frames = [torch.from_numpy(scene_image(name).copy())[None] for name in SCENE_NAMES[:6]]
    return torch.cat([vision_model.preprocess(frame) for frame in frames])

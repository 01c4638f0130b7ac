"""Compute backends: the vision encoder (torch, onnxruntime, TensorRT) and the memory kernels
(torch, Triton). The torch paths are the reference every other backend is tested against.

The engine asks this module for its vision encoder and kernel set; heavy or optional
dependencies (onnxruntime, tensorrt, triton) are imported only when selected.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..config import EngineConfig
from ..memory.kernels import TORCH_KERNELS, MemoryKernels
from ..models import LlavaOnevision

VisionEncoder = Callable[[torch.Tensor], torch.Tensor]
"""``pixel_values [N, 3, S, S] -> frame tokens [N, P, D]`` on the model's device and dtype."""


def make_vision_encoder(model: LlavaOnevision, config: EngineConfig) -> VisionEncoder:
    """The vision encoder named by ``config.vision_backend``.

    Raises:
        RuntimeError: the backend's runtime is missing or its engine/model file is
            missing or stale (the message says how to fix it).
    """
    if config.vision_backend == "torch":
        return model.encode_frames
    raise RuntimeError(f"vision_backend={config.vision_backend!r} is not available in this build")


def memory_kernels(config: EngineConfig) -> MemoryKernels:
    """The memory kernel set named by ``config.kernels``.

    Raises:
        RuntimeError: the kernels' runtime (e.g. Triton) is missing.
    """
    if config.kernels == "torch":
        return TORCH_KERNELS
    raise RuntimeError(f"kernels={config.kernels!r} is not available in this build")

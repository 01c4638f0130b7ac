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
    """The vision encoder named by ``config.vision_backend``, validated now (configure time).

    ``torch``: the model's own :meth:`~LlavaOnevision.encode_frames`. ``onnxruntime``: the
    cached ONNX export, exported on first use with a log line (:mod:`.onnx`).
    ``tensorrt``: the engine built by ``build_engines`` for this model, precision (the
    model dtype), TensorRT version and GPU; never built here (:mod:`.tensorrt`).

    Raises:
        ValueError: a setting the backend cannot serve (e.g. bfloat16 on onnxruntime, a
            relative ``engine_cache_dir``), or a model not loaded from a directory.
        RuntimeError: the backend's runtime is missing (``TensorRTUnavailable``) or its
            engine is missing, stale or built for another TensorRT/GPU
            (``EngineCacheError``); the message says how to fix it.
    """
    if config.vision_backend == "torch":
        return model.encode_frames
    if config.vision_backend == "onnxruntime":
        from .onnx import onnxruntime_encoder

        return onnxruntime_encoder(model)
    if config.vision_backend == "tensorrt":
        from .tensorrt import tensorrt_encoder

        return tensorrt_encoder(model, config.engine_cache_dir)
    raise RuntimeError(f"vision_backend={config.vision_backend!r} is not available in this build")


def memory_kernels(config: EngineConfig) -> MemoryKernels:
    """The memory kernel set named by ``config.kernels``.

    Raises:
        RuntimeError: the kernels' runtime (e.g. Triton) is missing.
    """
    if config.kernels == "torch":
        return TORCH_KERNELS
    raise RuntimeError(f"kernels={config.kernels!r} is not available in this build")

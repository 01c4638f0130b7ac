# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Compute backends: the vision encoder, the LLM and the memory kernels.

The vision encoder and the LLM run on torch, onnxruntime or TensorRT; the memory kernels
on torch or Triton. The torch paths are the reference every other backend is tested
against.

The engine asks this module for its vision encoder, LLM and kernel set; heavy or optional
dependencies (onnxruntime, tensorrt, triton) are imported only when selected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from ..config import EngineConfig
from ..memory.kernels import MemoryKernels
from ..memory.kernels import TORCH_KERNELS
from ..models import LlavaOnevision
from ..models.llava_onevision import DecoderParts


VisionEncoder = Callable[[torch.Tensor], torch.Tensor]
"""``pixel_values [N, 3, S, S] -> frame tokens [N, P, D]`` on the model's device and dtype."""


def make_vision_encoder(model: LlavaOnevision, config: EngineConfig) -> VisionEncoder:
    """
    Return the vision encoder named by ``config.vision_backend``, validated now (configure time).

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
    if config.vision_backend == 'torch':
        return model.encode_frames
    if config.vision_backend == 'onnxruntime':
        from .onnx import onnxruntime_encoder

        return onnxruntime_encoder(model)
    if config.vision_backend == 'tensorrt':
        from .tensorrt import tensorrt_encoder

        return tensorrt_encoder(model, config.engine_cache_dir)
    raise RuntimeError(f'vision_backend={config.vision_backend!r} is not available in this build')


def make_llm(model: LlavaOnevision, config: EngineConfig) -> DecoderParts:
    """
    Return the LLM named by ``config.llm_backend``, validated now (configure time).

    ``torch``: the model's own layers. ``onnxruntime``: the four cached ONNX graphs of
    :mod:`.llm` (norm + q/k/v, attention, o_proj + MLP, final norm + LM head), exported on
    first use with a log line. ``tensorrt``: their engines built by ``build_engines`` for
    this model, precision, TensorRT version and GPU; never built here. The memory still
    chooses what every layer attends to; the compiled attention becomes its kernel
    (:func:`memory_kernels`).

    Raises:
        ValueError: a setting the backend cannot serve (bfloat16 or a CUDA device without
            onnxruntime-gpu on onnxruntime, a relative ``engine_cache_dir``), or a model
            not loaded from a directory.
        RuntimeError: TensorRT or a GPU is missing (``TensorRTUnavailable``) or an engine
            is missing, stale or built for another TensorRT/GPU (``EngineCacheError``);
            the message says how to fix it.
    """
    if config.llm_backend == 'torch':
        return model
    if config.llm_backend == 'onnxruntime':
        from .llm_onnxruntime import onnxruntime_decoder

        return onnxruntime_decoder(model)
    if config.llm_backend == 'tensorrt':
        from .llm_tensorrt import tensorrt_decoder

        return tensorrt_decoder(model, config.engine_cache_dir)
    raise RuntimeError(f'llm_backend={config.llm_backend!r} is not available in this build')


def memory_kernels(config: EngineConfig, llm: DecoderParts | None = None) -> MemoryKernels:
    """
    Return the memory kernel set named by ``config.kernels``, with ``llm``'s attention.

    A compiled LLM (``llm.attention`` set) replaces the set's ``attention`` (clip prefill,
    and the answer unless the set reads pages in place with ``paged_attention``).

    ``torch``: the reference set (:data:`~ros2_livevlm.memory.kernels.TORCH_KERNELS`), any
    device. ``triton``: Triton kernels for the VSB scores, the PaR page scores
    (:mod:`.triton_scores`) and the answer's decode attention over the selected pages read
    in place through a page table (:mod:`.triton_attention`); clip-prefill attention stays
    torch's SDPA. Triton needs a CUDA device, or ``TRITON_INTERPRET=1`` set before the
    first use (Triton's CPU interpreter: slow, for tests).

    Raises:
        RuntimeError: Triton is not installed, or ``kernels=triton`` on a device Triton
            cannot run on (the message says what to set instead).
    """
    kernels = _named_kernels(config)
    if llm is None or llm.attention is None:
        return kernels
    return replace(kernels, name=f'{kernels.name}+{llm.name}', attention=llm.attention)


def _named_kernels(config: EngineConfig) -> MemoryKernels:
    if config.kernels == 'torch':
        return TORCH_KERNELS
    try:
        from . import triton_attention
        from . import triton_scores
        from .triton_common import interpreted
    except ImportError as error:
        raise RuntimeError(
            f'kernels=triton needs the triton package ({error}); install the pinned one from '
            'scripts/requirements.txt or set kernels: torch'
        ) from error
    if torch.device(config.device).type != 'cuda' and not interpreted():
        raise RuntimeError(
            f'kernels=triton runs on CUDA devices, not device={config.device!r}; '
            'set kernels: torch '
            "(or TRITON_INTERPRET=1 before start, Triton's slow CPU interpreter, for tests)"
        )
    return MemoryKernels(
        'triton',
        TORCH_KERNELS.attention,
        triton_scores.vsb_scores,
        triton_scores.page_scores,
        triton_attention.paged_attention,
    )

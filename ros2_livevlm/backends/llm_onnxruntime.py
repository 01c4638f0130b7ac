# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The LLM's four exported graphs (:mod:`.llm`) run by onnxruntime, on the CPU or its CUDA provider.

Inputs and outputs are torch tensors bound in place with onnxruntime's I/O binding
(``IOBinding.bind_input`` / ``bind_output`` with the tensor's device, dtype, shape and data
pointer): the layer weights, the residual stream and the outputs are never copied to or
from onnxruntime, on the CPU as on a GPU (a K/V context that is a strided view, as the
answer's growing buffer is, is made contiguous first: one copy per call). This is the CPU
stand-in that proves the export, and the compiled LLM of a robot without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .llm import cached_llm_onnx
from .llm import CompiledDecoder
from .llm import Part
from .llm import PARTS
from ..models import LlavaOnevision


NUMPY_TYPES = {torch.float32: np.float32, torch.float16: np.float16}
"""Element types onnxruntime can bind (no bfloat16 in numpy, nor in its CPU kernels here)."""


def check_onnxruntime_model(model: LlavaOnevision) -> None:
    """
    Check that onnxruntime can run the LLM of ``model`` where it is loaded.

    Raises:
        ValueError: a bfloat16 model, or a CUDA model without onnxruntime's CUDA provider.
    """
    import onnxruntime

    if model.dtype not in NUMPY_TYPES:
        raise ValueError(
            'llm_backend=onnxruntime runs float32 or float16 graphs (onnxruntime has no '
            'bfloat16 kernels for them); set dtype to float32 or float16, or use llm_backend '
            'torch or tensorrt'
        )
    if (
        model.device.type == 'cuda'
        and 'CUDAExecutionProvider' not in onnxruntime.get_available_providers()
    ):
        raise ValueError(
            'llm_backend=onnxruntime with a CUDA device needs onnxruntime-gpu (the CUDA '
            'execution provider): install it, or set device: cpu, or llm_backend torch or '
            'tensorrt'
        )


class OnnxRuntimeDecoder(CompiledDecoder):
    """
    The LLM parts on onnxruntime sessions, one per graph.

    Args:
        model: the loaded model (float32 or float16) whose parameters are bound as weights.
        directory: the export (:func:`~.llm.cached_llm_onnx`).

    Raises:
        ValueError: as :func:`check_onnxruntime_model`.
    """

    name = 'onnxruntime'

    def __init__(self, model: LlavaOnevision, directory: str | Path) -> None:
        import onnxruntime

        check_onnxruntime_model(model)
        super().__init__(model)
        on_cuda = self.device.type == 'cuda'
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        # torch runs between the calls (RoPE, the memory's selection): ORT's worker threads
        # must not spin-wait on the cores it needs
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        providers = ['CUDAExecutionProvider'] if on_cuda else ['CPUExecutionProvider']
        self.sessions = {
            part.name: onnxruntime.InferenceSession(
                str(Path(directory) / part.file_name), options, providers=providers
            )
            for part in PARTS
        }
        self.device_type = 'cuda' if on_cuda else 'cpu'
        self.device_id = (self.device.index or 0) if on_cuda else 0

    def run(
        self, part: Part, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> None:
        """Run ``part`` with ``inputs`` and ``outputs`` bound in place (contiguous tensors)."""
        session = self.sessions[part.name]
        binding = session.io_binding()
        for bind, tensors in ((binding.bind_input, inputs), (binding.bind_output, outputs)):
            for name, tensor in tensors.items():
                bind(
                    name,
                    self.device_type,
                    self.device_id,
                    NUMPY_TYPES[tensor.dtype],
                    tuple(tensor.shape),
                    tensor.data_ptr(),
                )
        if self.device_type == 'cuda':  # inputs written on torch's stream; onnxruntime has its own
            torch.cuda.current_stream(self.device).synchronize()
        session.run_with_iobinding(binding)


def onnxruntime_decoder(model: LlavaOnevision) -> OnnxRuntimeDecoder:
    """
    Return the onnxruntime LLM of ``model`` at the model's dtype, exported on first use.

    Raises:
        ValueError: as :func:`check_onnxruntime_model`, or a model not loaded from a
            directory.
    """
    check_onnxruntime_model(model)  # before a long export
    return OnnxRuntimeDecoder(model, cached_llm_onnx(model, model.dtype))


__all__ = ['OnnxRuntimeDecoder', 'check_onnxruntime_model', 'onnxruntime_decoder']

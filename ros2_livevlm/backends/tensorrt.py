# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
TensorRT vision encoder: build a serialized engine from the ONNX export; run it on CUDA tensors.

Written against TensorRT's Python API (10.x; older releases are refused): ``Builder`` ->
strongly typed ``INetworkDefinition`` filled by ``OnnxParser.parse_from_file`` ->
``IBuilderConfig`` with one optimization profile for the frames axis ->
``build_serialized_network``; at run time
``Runtime.deserialize_cuda_engine`` -> ``IExecutionContext`` with ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` on the current torch CUDA stream.

The network is strongly typed: TensorRT keeps the types of the ONNX graph, so precision
is chosen by the export (:func:`~.onnx.export_vision_onnx` at fp32/fp16/bf16, with
LayerNorm, softmax and the patch convolution in float32) rather than by builder flags.

Engines are built only by ``build_engines`` (:mod:`.build_engines`), never when a node
starts; :func:`tensorrt_encoder` validates the cached engine at configure time. The key,
the cache layout and the validation live in :mod:`.cache` (testable without TensorRT).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import torch

from .cache import BatchProfile
from .cache import engine_cache_root
from .cache import EngineCacheError
from .cache import EngineEntry
from .cache import EngineKey
from .cache import find_engine
from .cache import model_fingerprint
from .cache import precision_of
from ..models import LlavaOnevision


log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    """TensorRT's Python package or a CUDA GPU is missing; the message says what to do instead."""


MIN_TENSORRT_MAJOR = 10
"""Strongly typed bf16 networks, ``execute_async_v3``, named tensors: TensorRT 10 (JetPack 6)."""


def import_tensorrt() -> ModuleType:
    """
    Import the ``tensorrt`` module, version 10 or newer.

    Raises:
        TensorRTUnavailable: it is not importable or too old (naming how to install it,
            or to choose another vision backend).
    """
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTUnavailable(
            "vision_backend=tensorrt and build_engines need TensorRT's Python package, "
            f'which is not importable ({error}). Install it: on Jetson with JetPack '
            '(apt install python3-libnvinfer), on a desktop GPU with pip install tensorrt '
            '(matching your CUDA). Or set vision_backend to torch or onnxruntime.'
        ) from error
    if int(tensorrt.__version__.split('.')[0]) < MIN_TENSORRT_MAJOR:
        raise TensorRTUnavailable(
            f'TensorRT {tensorrt.__version__} is too old; {MIN_TENSORRT_MAJOR} or newer is needed '
            '(JetPack 6 on Jetson). Or set vision_backend to torch or onnxruntime.'
        )
    return tensorrt


def cuda_device(device: str | torch.device) -> torch.device:
    """
    ``device`` as a CUDA device with an index.

    Raises:
        TensorRTUnavailable: torch sees no CUDA GPU.
        ValueError: ``device`` is not a CUDA device.
    """
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            'TensorRT engines run on an NVIDIA GPU, but torch sees none '
            '(torch.cuda.is_available() is False): check the driver and that torch is a CUDA '
            'build, or set vision_backend to torch or onnxruntime'
        )
    device = torch.device(device)
    if device.type != 'cuda':
        raise ValueError(
            f'vision_backend=tensorrt needs device=cuda (or cuda:N), got device={device}'
        )
    return torch.device(
        'cuda', torch.cuda.current_device() if device.index is None else device.index
    )


def engine_key(
    model_path: str | Path, precision: str, device: torch.device, trt: ModuleType
) -> EngineKey:
    """Return the :class:`EngineKey` of a checkpoint at ``precision`` for this TensorRT and GPU."""
    major, minor = torch.cuda.get_device_capability(device)
    return EngineKey(
        model_hash=model_fingerprint(model_path),
        precision=precision,
        tensorrt_version=trt.__version__,
        compute_capability=f'{major}.{minor}',
    )


def build_serialized_engine(onnx_path: Path, batch: BatchProfile, trt: ModuleType) -> bytes:
    """
    Build a serialized engine from an ONNX export (on the current CUDA device).

    Args:
        onnx_path: a file from :func:`~.onnx.export_vision_onnx` (external weights beside it).
        batch: min/opt/max frames of the optimization profile.
        trt: the ``tensorrt`` module (:func:`import_tensorrt`).

    Returns:
        the serialized engine (a plan).

    Raises:
        RuntimeError: the ONNX parser rejected the file (with its errors), or the build failed.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    pixels = network.get_input(0)  # [N, 3, S, S], N dynamic
    _, channels, height, width = tuple(pixels.shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        pixels.name,
        min=(batch.min_batch, channels, height, width),
        opt=(batch.opt_batch, channels, height, width),
        max=(batch.max_batch, channels, height, width),
    )
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f'TensorRT could not build an engine from {onnx_path}; see the TensorRT log above'
        )
    return bytes(serialized)


class TensorRTVisionEncoder:
    """
    A deserialized vision engine: ``pixel_values [N, 3, S, S] -> frame tokens [N, P, D]``.

    Inputs are copied to ``device`` in the engine's input dtype; more frames than the
    profile's maximum run in chunks. Work is enqueued on the current torch CUDA stream
    (``execute_async_v3``), so the returned tensor is ordered like any torch result.

    Args:
        entry: a validated cache entry (:func:`~.cache.find_engine`).
        device: the CUDA device the engine was validated for.
        dtype: dtype of the returned tokens (the model's).

    Raises:
        EngineCacheError: TensorRT cannot deserialize the file (rebuild it).
        RuntimeError: the engine does not have one input and one output.
    """

    def __init__(self, entry: EngineEntry, device: torch.device, dtype: torch.dtype) -> None:
        trt = import_tensorrt()
        self.device = device
        self.dtype = dtype
        torch_dtypes = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.BF16: torch.bfloat16,
        }
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(entry.engine_path.read_bytes())
            if self.engine is None:
                raise EngineCacheError(
                    f'TensorRT could not deserialize {entry.engine_path}; '
                    'delete it and rebuild with build_engines'
                )
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(
                f'{entry.engine_path} has inputs {inputs} and outputs {outputs}; '
                'expected one of each'
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_dtype = torch_dtypes[self.engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = torch_dtypes[self.engine.get_tensor_dtype(self.output_name)]
        self.max_frames = self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0]

    def _run(self, pixels: torch.Tensor) -> torch.Tensor:
        """
        Run one enqueue of at most ``max_frames`` frames.

        ``[n, 3, S, S] -> [n, P, D]`` in the engine's output dtype.
        """
        pixels = pixels.to(device=self.device, dtype=self.input_dtype).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(pixels.shape)):
            raise RuntimeError(
                f"input shape {tuple(pixels.shape)} is outside the engine's optimization profile"
            )
        shape = tuple(self.context.get_tensor_shape(self.output_name))  # [n, P, D]
        tokens = torch.empty(shape, dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, pixels.data_ptr())
        self.context.set_tensor_address(self.output_name, tokens.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError('TensorRT execute_async_v3 failed; see the TensorRT log above')
        return tokens

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = [self._run(chunk) for chunk in pixel_values.split(self.max_frames)]
        return torch.cat(tokens).to(self.dtype)


def tensorrt_encoder(model: LlavaOnevision, engine_cache_dir: str) -> TensorRTVisionEncoder:
    """
    Return the TensorRT vision encoder of ``model``, validated against the engine cache.

    Called at configure time.

    The engine must have been built by ``build_engines`` for this checkpoint's files, the
    model's dtype as precision, this TensorRT version and this GPU's compute capability.

    Raises:
        TensorRTUnavailable: TensorRT is not importable or there is no CUDA GPU.
        ValueError: the model is not on a CUDA device, not loaded from a directory, or
            ``engine_cache_dir`` is relative.
        EngineCacheError: the engine is missing, stale or built for another precision,
            TensorRT or GPU (the message names which and gives the build command).
    """
    trt = import_tensorrt()
    device = cuda_device(model.device)
    if model.path is None:
        raise ValueError(
            'vision_backend=tensorrt needs a model loaded from a directory '
            '(LlavaOnevision.from_pretrained)'
        )
    root = engine_cache_root(engine_cache_dir)
    key = engine_key(model.path, precision_of(model.dtype), device, trt)
    entry = find_engine(root, key, model.path)
    log.info(
        'vision encoder: TensorRT engine %s (built %s on %s)',
        entry.engine_path,
        entry.built_at,
        entry.gpu_name,
    )
    return TensorRTVisionEncoder(entry, device, model.dtype)

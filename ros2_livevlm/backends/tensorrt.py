# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
TensorRT: build serialized engines from the ONNX exports; run them on CUDA tensors.

Written against TensorRT's Python API (10.x; older releases are refused): ``Builder`` ->
strongly typed ``INetworkDefinition`` filled by ``OnnxParser.parse_from_file`` ->
``IBuilderConfig`` with one ``IOptimizationProfile`` per shape regime (``set_shape`` of
every dynamic input, its axes named by the ONNX ``dim_param``) -> ``build_serialized_network``;
at run time ``Runtime.deserialize_cuda_engine`` -> one ``IExecutionContext`` per profile
(``set_optimization_profile_async``) with ``set_input_shape``, ``set_tensor_address`` and
``execute_async_v3`` on the current torch CUDA stream (:class:`TensorRTEngine`).

The network is strongly typed: TensorRT keeps the types of the ONNX graph, so precision
is chosen by the export (fp32/fp16/bf16, with norms and softmax in float32) rather than by
builder flags. Two users: the vision encoder here (:class:`TensorRTVisionEncoder`) and the
LLM's four parts (:mod:`.llm_tensorrt`).

Engines are built only by ``build_engines`` (:mod:`.build_engines`), never when a node
starts; :func:`tensorrt_encoder` validates the cached engine at configure time. The key,
the cache layout and the validation live in :mod:`.cache` (testable without TensorRT).
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
from pathlib import Path
from types import ModuleType

import onnx
import torch

from .cache import engine_cache_root
from .cache import EngineCacheError
from .cache import EngineEntry
from .cache import EngineKey
from .cache import find_engine
from .cache import model_fingerprint
from .cache import precision_of
from .cache import Profile
from ..models import LlavaOnevision


log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    """TensorRT's Python package or a CUDA GPU is missing; the message says what to do instead."""


MIN_TENSORRT_MAJOR = 10
"""Strongly typed bf16 networks, ``execute_async_v3``, named tensors: TensorRT 10 (JetPack 6)."""
OTHER_BACKENDS = 'Or set vision_backend and llm_backend to torch or onnxruntime.'


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
            "vision_backend/llm_backend tensorrt and build_engines need TensorRT's Python "
            f'package, which is not importable ({error}). Install it: on Jetson with JetPack '
            '(apt install python3-libnvinfer), on a desktop GPU with pip install tensorrt '
            f'(matching your CUDA). {OTHER_BACKENDS}'
        ) from error
    if int(tensorrt.__version__.split('.')[0]) < MIN_TENSORRT_MAJOR:
        raise TensorRTUnavailable(
            f'TensorRT {tensorrt.__version__} is too old; {MIN_TENSORRT_MAJOR} or newer is needed '
            f'(JetPack 6 on Jetson). {OTHER_BACKENDS}'
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
            f'build. {OTHER_BACKENDS}'
        )
    device = torch.device(device)
    if device.type != 'cuda':
        raise ValueError(
            f'the tensorrt backends need device=cuda (or cuda:N), got device={device}'
        )
    return torch.device(
        'cuda', torch.cuda.current_device() if device.index is None else device.index
    )


def engine_key(
    model_path: str | Path,
    precision: str,
    device: torch.device,
    trt: ModuleType,
    engine: str = 'vision',
) -> EngineKey:
    """Return the :class:`EngineKey` of ``engine`` of a checkpoint for this TensorRT and GPU."""
    major, minor = torch.cuda.get_device_capability(device)
    return EngineKey(
        model_hash=model_fingerprint(model_path),
        precision=precision,
        tensorrt_version=trt.__version__,
        compute_capability=f'{major}.{minor}',
        engine=engine,
    )


def onnx_axes(onnx_path: Path) -> dict[str, list[str | int]]:
    """Each graph input's dimensions: the ``dim_param`` name of a dynamic axis, else its size."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {
        value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in graph.input
    }


def build_serialized_engine(
    onnx_path: Path, profiles: Sequence[Profile], trt: ModuleType
) -> bytes:
    """
    Build a serialized engine from an ONNX export (on the current CUDA device).

    Args:
        onnx_path: an exported graph (external weights, if any, beside it).
        profiles: the optimization profiles, in order: each gives the range of every
            dynamic axis, by its ONNX ``dim_param`` name (``frames``, ``tokens``,
            ``queries``, ``keys``).
        trt: the ``tensorrt`` module (:func:`import_tensorrt`).

    Returns:
        the serialized engine (a plan).

    Raises:
        ValueError: a dynamic axis of the graph has no range in a profile.
        RuntimeError: the ONNX parser rejected the file (with its errors), or the build failed.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    axes = onnx_axes(onnx_path)
    config = builder.create_builder_config()
    for ranges in profiles:
        profile = builder.create_optimization_profile()
        for name, dims in axes.items():
            if all(isinstance(dim, int) for dim in dims):
                continue  # static (e.g. a weight): no range needed
            missing = [dim for dim in dims if isinstance(dim, str) and dim not in ranges]
            if missing:
                raise ValueError(f'{onnx_path}: no range for axis {missing} of input {name}')
            shapes = [
                tuple(getattr(ranges[d], bound) if isinstance(d, str) else d for d in dims)
                for bound in ('min_size', 'opt_size', 'max_size')
            ]
            profile.set_shape(name, min=shapes[0], opt=shapes[1], max=shapes[2])
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f'TensorRT could not build an engine from {onnx_path}; see the TensorRT log above'
        )
    return bytes(serialized)


class TensorRTEngine:
    """
    A deserialized engine with one execution context per optimization profile.

    :meth:`run` picks the first profile whose ranges hold the input shapes (build the
    narrow ones first, e.g. decode before prefill) and enqueues on the current torch CUDA
    stream (``execute_async_v3``), so results are ordered like any torch result.

    Args:
        entry: a validated cache entry (:func:`~.cache.find_engine`).
        device: the CUDA device the engine was validated for.

    Raises:
        EngineCacheError: TensorRT cannot deserialize the file (rebuild it).
    """

    def __init__(self, entry: EngineEntry, device: torch.device) -> None:
        trt = import_tensorrt()
        self.device = device
        self.path = entry.engine_path
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
            stream = torch.cuda.current_stream(device)
            self.contexts = []
            for index in range(self.engine.num_optimization_profiles):
                context = self.engine.create_execution_context()
                if index and not context.set_optimization_profile_async(index, stream.cuda_stream):
                    raise EngineCacheError(
                        f'{self.path}: cannot select optimization profile {index}'
                    )
                self.contexts.append(context)
            stream.synchronize()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self.inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        self.dtypes = {name: torch_dtypes[self.engine.get_tensor_dtype(name)] for name in names}
        dynamic = [n for n in self.inputs if -1 in tuple(self.engine.get_tensor_shape(n))]
        self.ranges = [  # per profile: dynamic input -> (min shape, max shape)
            {
                name: tuple(
                    tuple(self.engine.get_tensor_profile_shape(name, index)[bound])
                    for bound in (0, 2)
                )
                for name in dynamic
            }
            for index in range(len(self.contexts))
        ]

    def max_size(self, name: str, axis: int) -> int:
        """Return the largest size of dimension ``axis`` of input ``name`` over all profiles."""
        return max(int(ranges[name][1][axis]) for ranges in self.ranges)

    def _context(self, shapes: dict[str, tuple[int, ...]]) -> object:
        """Return the execution context of the first profile holding ``shapes`` (by input)."""
        for context, ranges in zip(self.contexts, self.ranges):
            if all(
                all(low <= size <= high for size, low, high in zip(shapes[name], *bounds))
                for name, bounds in ranges.items()
            ):
                return context
        dynamic = {name: shapes[name] for name in self.ranges[0]}
        raise ValueError(
            f'input shapes {dynamic} are outside every optimization profile of {self.path} '
            f'({self.ranges}); rebuild it with build_engines and larger limits'
        )

    def run(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """
        Enqueue the engine on contiguous CUDA ``inputs`` in the engine's dtypes.

        Args:
            inputs: every input tensor by name.
            outputs: preallocated outputs by name; missing ones are allocated from the
                shapes TensorRT infers.

        Returns:
            the outputs by name.

        Raises:
            ValueError: shapes outside every optimization profile.
            RuntimeError: TensorRT rejected a shape or the enqueue failed.
        """
        context = self._context({name: tuple(t.shape) for name, t in inputs.items()})
        for name, tensor in inputs.items():
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise RuntimeError(
                    f'{self.path}: TensorRT rejected shape {tuple(tensor.shape)} of {name}'
                )
            context.set_tensor_address(name, tensor.data_ptr())
        outputs = dict(outputs or {})
        for name in self.outputs:
            if name not in outputs:
                shape = tuple(context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            context.set_tensor_address(name, outputs[name].data_ptr())
        if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError(
                f'TensorRT execute_async_v3 failed for {self.path}; see its log above'
            )
        return outputs


class TensorRTVisionEncoder:
    """
    A deserialized vision engine: ``pixel_values [N, 3, S, S] -> frame tokens [N, P, D]``.

    Inputs are copied to ``device`` in the engine's input dtype; more frames than the
    profile's maximum run in chunks.

    Args:
        entry: a validated cache entry (:func:`~.cache.find_engine`).
        device: the CUDA device the engine was validated for.
        dtype: dtype of the returned tokens (the model's).

    Raises:
        EngineCacheError: TensorRT cannot deserialize the file (rebuild it).
        RuntimeError: the engine does not have one input and one output.
    """

    def __init__(self, entry: EngineEntry, device: torch.device, dtype: torch.dtype) -> None:
        self.engine = TensorRTEngine(entry, device)
        self.dtype = dtype
        if len(self.engine.inputs) != 1 or len(self.engine.outputs) != 1:
            raise RuntimeError(
                f'{entry.engine_path} has inputs {self.engine.inputs} and outputs '
                f'{self.engine.outputs}; expected one of each'
            )
        (self.input_name,), (self.output_name,) = self.engine.inputs, self.engine.outputs
        self.max_frames = self.engine.max_size(self.input_name, 0)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        engine = self.engine
        tokens = [
            engine.run(
                {
                    self.input_name: chunk.to(
                        device=engine.device, dtype=engine.dtypes[self.input_name]
                    ).contiguous()
                }
            )[self.output_name]
            for chunk in pixel_values.split(self.max_frames)
        ]
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


__all__ = [
    'TensorRTEngine',
    'TensorRTUnavailable',
    'TensorRTVisionEncoder',
    'build_serialized_engine',
    'cuda_device',
    'engine_key',
    'import_tensorrt',
    'onnx_axes',
    'tensorrt_encoder',
]

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
ONNX export of the vision path, and the onnxruntime vision encoder.

The exported graph computes what :meth:`LlavaOnevision.encode_frames` computes, with HF's
own modules: SigLIP vision tower (hidden state of ``vision_feature_layer``) -> multi-modal
projector -> bilinear 2x2 pooling (LLaVA-OneVision's video path, ``apply_pooling``)::

    pixel_values  float32 [N, 3, S, S]  ->  frame_tokens  <precision> [N, P, D]

with a dynamic batch axis ``N`` (frames), opset :data:`OPSET`, exported by torch's dynamo
exporter (``torch.export`` + onnxscript) and checked with ``onnx.checker``.

Reduced precision (fp16, bf16): the matrix products run in the precision; LayerNorm, the
attention softmax and the patch-embedding convolution stay float32. How:

- the export works on copies of the vision tower and projector cast to the precision (the
  loaded model is not touched); every ``LayerNorm`` and ``Conv2d`` copy is cast back to
  float32 and wrapped by forward hooks that cast its input to float32 and its output to
  the precision, so the graph has explicit ``Cast`` nodes around them (the convolution
  stays float32 because ONNX ``Conv`` before opset 22 has no bfloat16);
- attention uses HF's ``eager`` implementation, whose softmax is
  ``softmax(scores, dtype=float32)``. onnxscript 0.7 translates that dtype as a cast
  *after* the Softmax (pytorch/pytorch#153393), so :func:`_aten_softmax` replaces the
  translation with the cast first, as torch computes it;
- :func:`low_precision_nodes` checks the result on the graph; the export raises if a
  LayerNormalization or Softmax has a non-float32 input.

TensorRT builds strongly typed networks from these files (:mod:`.tensorrt`), so the
float32 islands survive into the engine.

Exported files are cached per (model fingerprint, precision, recipe) under
``<cache>/onnx`` (:mod:`.cache`); the onnxruntime backend exports on first use, with a
log line, and ``build_engines --onnx-only`` does it ahead of time.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import onnx
from onnxscript import opset18 as op
import torch

from .cache import model_fingerprint
from .cache import onnx_export_dir
from .cache import ONNX_FILE
from .cache import precision_of
from ..config import staged_directory
from ..models import LlavaOnevision


log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = 'pixel_values'
OUTPUT_NAME = 'frame_tokens'
EXPORT_BATCH = 2
"""Frames in the export's example input; N stays dynamic (not 1: torch.export would specialize)."""
FP32_OPS = ('LayerNormalization', 'Softmax')
"""ONNX ops whose inputs must be float32 in every precision."""


def _keep_fp32(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Run ``module`` in float32 inside a ``dtype`` network: cast weights, input and output."""
    module.float()
    module.register_forward_pre_hook(lambda _, args: tuple(a.float() for a in args))
    module.register_forward_hook(lambda _, args, out: out.to(dtype))


class VisionPath(torch.nn.Module):
    """
    The vision path as one module to export: ``pixel_values [N, 3, S, S] -> [N, P, D]``.

    Holds copies of ``model``'s vision tower and projector in ``dtype`` (fp32 islands as in
    the module docstring); the pooling is HF's ``apply_pooling`` of the loaded model.
    """

    def __init__(self, model: LlavaOnevision, dtype: torch.dtype) -> None:
        super().__init__()
        hf = model.hf.model
        self.vision_tower = copy.deepcopy(hf.vision_tower).to(dtype)
        self.vision_tower.set_attn_implementation('eager')  # softmax in float32
        self.projector = copy.deepcopy(hf.multi_modal_projector).to(dtype)
        if dtype != torch.float32:
            for module in self.modules():
                if isinstance(module, (torch.nn.LayerNorm, torch.nn.Conv2d)):
                    _keep_fp32(module, dtype)
        self.pool = hf.apply_pooling
        layer = model.config.vision_feature_layer
        self.feature_layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
        self.drop_first_token = model.config.vision_feature_select_strategy == 'default'

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        features = torch.cat(
            [hidden_states[i] for i in self.feature_layers], dim=-1
        )  # [N, grid * grid, C]
        if self.drop_first_token:
            features = features[:, 1:]
        return self.pool(self.projector(features))  # [N, P, D]


def _aten_softmax(self, dim: int, dtype: int = -1):
    """Translate aten ``softmax(Tensor self, int dim, ScalarType? dtype)``: cast, then Softmax."""
    if dtype != -1 and dtype is not None:
        self = op.Cast(self, to=dtype)
    return op.Softmax(self, axis=dim)


def low_precision_nodes(model: onnx.ModelProto) -> list[str]:
    """
    Nodes of :data:`FP32_OPS` whose first input is not float32, as ``"op_type name (TYPE)"``.

    Types come from ONNX shape inference over the graph.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {
        value.name: value.type.tensor_type.elem_type
        for value in [*graph.value_info, *graph.input, *graph.output]
    }
    types.update({init.name: init.data_type for init in graph.initializer})
    found = []
    for node in graph.node:
        elem_type = types.get(node.input[0], onnx.TensorProto.UNDEFINED)
        if node.op_type in FP32_OPS and elem_type != onnx.TensorProto.FLOAT:
            found.append(
                f'{node.op_type} {node.name} ({onnx.TensorProto.DataType.Name(elem_type)})'
            )
    return found


def export_vision_onnx(
    model: LlavaOnevision, path: str | Path, *, dtype: torch.dtype = torch.float32
) -> Path:
    """
    Export the vision path of ``model`` to ``path`` (weights beside it in ``<path>.data``).

    Args:
        model: a loaded LLaVA-OneVision (any device and dtype; it is not modified).
        path: the ``.onnx`` file to write; its directory must exist.
        dtype: float32, float16 or bfloat16: the precision of the matrix products
            (LayerNorm, softmax and the patch convolution stay float32).

    Returns:
        ``path``. Graph: input ``pixel_values`` float32 ``[N, 3, S, S]``, output
        ``frame_tokens`` in ``dtype`` ``[N, P, D]``, ``N`` dynamic, opset :data:`OPSET`.

    Raises:
        ValueError: a dtype other than the three above.
        onnx.checker.ValidationError: the exported file is not valid ONNX.
        RuntimeError: a LayerNormalization or Softmax did not stay float32.
    """
    precision_of(dtype)  # raises ValueError for other dtypes
    path = Path(path)
    height, width = model.frame_size
    example = torch.zeros(EXPORT_BATCH, 3, height, width, device=model.device)
    module = VisionPath(model, dtype).eval()
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=True,
        opset_version=OPSET,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={'pixel_values': {0: torch.export.Dim('frames', min=1)}},
        custom_translation_table={torch.ops.aten.softmax.int: _aten_softmax},
        external_data=True,
        verbose=False,
    )
    onnx.checker.check_model(str(path), full_check=True)
    if dtype != torch.float32:
        wrong = low_precision_nodes(onnx.load(str(path), load_external_data=False))
        if wrong:
            raise RuntimeError(
                f'export of {path} left these nodes below float32: {", ".join(wrong)}'
            )
    return path


def cached_vision_onnx(model: LlavaOnevision, dtype: torch.dtype) -> Path:
    """
    Return the cached ONNX export of ``model``'s vision path at ``dtype``, exported on first use.

    Keyed by the model fingerprint, precision and export recipe (:mod:`.cache`). A first
    use logs a warning and exports into a staging directory that is renamed into place,
    so concurrent users never see half an export.

    Raises:
        ValueError: ``model`` was not loaded from a directory (no fingerprint).
        RuntimeError, onnx.checker.ValidationError: as :func:`export_vision_onnx`.
    """
    if model.path is None:
        raise ValueError(
            'the compiled vision backends need a model loaded from a directory '
            '(LlavaOnevision.from_pretrained)'
        )
    target = onnx_export_dir(model_fingerprint(model.path), precision_of(dtype))
    if (target / ONNX_FILE).is_file():
        return target / ONNX_FILE
    log.warning(
        'exporting the vision encoder of %s to ONNX (%s) into %s; once per model and precision',
        model.path,
        precision_of(dtype),
        target,
    )
    with staged_directory(target) as staging:
        export_vision_onnx(model, staging / ONNX_FILE, dtype=dtype)
    return target / ONNX_FILE


def default_providers(device: torch.device) -> list[str]:
    """
    Return the onnxruntime execution providers for ``device``.

    CUDA (then CPU) on a GPU when onnxruntime has the CUDA provider, else CPU.
    """
    import onnxruntime

    if device.type == 'cuda':
        if 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
            return ['CUDAExecutionProvider', 'CPUExecutionProvider']
        log.warning(
            'onnxruntime has no CUDA execution provider here (install onnxruntime-gpu); '
            'the vision encoder runs on the CPU'
        )
    return ['CPUExecutionProvider']


class OnnxVisionEncoder:
    """
    The exported vision path run by onnxruntime: ``pixel_values [N, 3, S, S] -> [N, P, D]``.

    Inputs of any dtype and device are copied to float32 host memory (onnxruntime copies
    them to the GPU itself under the CUDA provider); the output comes back as a torch
    tensor on ``device`` in ``dtype``.

    Args:
        path: an ONNX file from :func:`export_vision_onnx`.
        device: where outputs go (and the provider choice, :func:`default_providers`).
        dtype: output dtype (default: the graph's output type).
        providers: onnxruntime execution providers, overriding the default.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | torch.device = 'cpu',
        dtype: torch.dtype | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime

        self.device = torch.device(device)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=providers or default_providers(self.device)
        )
        graph_dtype = {'tensor(float)': torch.float32, 'tensor(float16)': torch.float16}
        self.dtype = dtype or graph_dtype.get(self.session.get_outputs()[0].type, torch.float32)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.detach().to('cpu', torch.float32).contiguous().numpy()
        (tokens,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
        return torch.from_numpy(tokens).to(device=self.device, dtype=self.dtype)


def onnxruntime_encoder(model: LlavaOnevision) -> OnnxVisionEncoder:
    """
    Return the onnxruntime vision encoder of ``model`` at the model's dtype (float32 or float16).

    Raises:
        ValueError: a bfloat16 model (onnxruntime has no bfloat16 kernels for this graph:
            use dtype float16 or float32, or vision_backend torch or tensorrt), or a model
            not loaded from a directory.
    """
    if model.dtype == torch.bfloat16:
        raise ValueError(
            'vision_backend=onnxruntime runs float32 or float16 graphs (onnxruntime has no '
            'bfloat16 kernels for them); set dtype to float32 or float16, or use vision_backend '
            'torch or tensorrt'
        )
    path = cached_vision_onnx(model, model.dtype)
    return OnnxVisionEncoder(path, device=model.device, dtype=model.dtype)


__all__ = [
    'OPSET',
    'VisionPath',
    'OnnxVisionEncoder',
    'cached_vision_onnx',
    'export_vision_onnx',
    'low_precision_nodes',
    'onnxruntime_encoder',
]

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of the vision path and the onnxruntime backend vs torch, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from ros2_livevlm.backends import make_vision_encoder
from ros2_livevlm.backends.onnx import default_providers
from ros2_livevlm.backends.onnx import export_vision_onnx
from ros2_livevlm.backends.onnx import low_precision_nodes
from ros2_livevlm.backends.onnx import onnxruntime_encoder
from ros2_livevlm.backends.onnx import OnnxVisionEncoder
from ros2_livevlm.config import EngineConfig
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.models import LlavaOnevision
from ros2_livevlm.reference.scenes import scene_image
from ros2_livevlm.reference.scenes import SCENE_NAMES
import torch


QUESTION = 'What did the robot see on the table?'


def op_input_types(path: Path) -> dict[str, set[str]]:
    """Element types of the first input of every node, per op type, from ONNX shape inference."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False)).graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*graph.value_info, *graph.input, *graph.output]
    }
    found: dict[str, set[str]] = {}
    for node in graph.node:
        name = onnx.TensorProto.DataType.Name(types.get(node.input[0], onnx.TensorProto.UNDEFINED))
        found.setdefault(node.op_type, set()).add(name)
    return found


def test_fp32_onnx_matches_torch_on_photos_at_any_batch(
    vision_cache: Path, vision_model: LlavaOnevision, vision_pixels: torch.Tensor
) -> None:
    encoder = make_vision_encoder(vision_model, EngineConfig(vision_backend='onnxruntime'))
    (path,) = (vision_cache / 'onnx').glob(
        '*-fp32-v*/vision.onnx'
    )  # exported on first use, into the cache
    onnx.checker.check_model(str(path), full_check=True)
    exported = onnx.load(str(path), load_external_data=False)
    assert exported.opset_import[0].version >= 17
    assert exported.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic frames axis
    for frames in (1, 2, 3, 6):  # the export used 2
        tokens = encoder(vision_pixels[:frames])
        reference = vision_model.encode_frames(vision_pixels[:frames])
        assert tokens.shape == reference.shape == (frames, 16, vision_model.hidden_size)
        assert tokens.dtype == torch.float32
        error = (tokens - reference).abs().max().item()
        assert (
            error <= 1e-4 and error <= 1e-4 * reference.abs().max().item()
        )  # tiny-model tokens are ~0.04
    mtime = path.stat().st_mtime_ns
    onnxruntime_encoder(vision_model)
    assert path.stat().st_mtime_ns == mtime  # the second use reads the cache


def test_fp16_export_keeps_norms_and_softmax_in_fp32(
    tmp_path: Path, vision_model: LlavaOnevision, vision_pixels: torch.Tensor
) -> None:
    path = export_vision_onnx(vision_model, tmp_path / 'vision.onnx', dtype=torch.float16)
    types = op_input_types(path)
    assert types['LayerNormalization'] == {'FLOAT'}
    assert types['Softmax'] == {'FLOAT'}
    assert types['MatMul'] == {'FLOAT16'}  # the matrix products are in half precision
    encoder = OnnxVisionEncoder(path)  # runs on onnxruntime's CPU provider
    tokens = encoder(vision_pixels)
    reference = vision_model.encode_frames(vision_pixels)
    assert tokens.dtype == torch.float16
    assert (tokens.float() - reference).abs().max().item() <= 2e-3 * reference.abs().max().item()


def test_low_precision_check_finds_half_norms_and_softmax() -> None:
    """The export's guard: a LayerNormalization or Softmax fed float16 is reported by name."""
    helper = onnx.helper
    half = onnx.TensorProto.FLOAT16
    graph = helper.make_graph(
        [
            helper.make_node('LayerNormalization', ['x', 'scale'], ['normed'], name='norm_half'),
            helper.make_node('Cast', ['normed'], ['normed32'], to=onnx.TensorProto.FLOAT),
            helper.make_node('Softmax', ['normed32'], ['probs'], name='softmax_float'),
        ],
        'islands',
        [helper.make_tensor_value_info('x', half, [2, 4])],
        [helper.make_tensor_value_info('probs', onnx.TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor('scale', half, [4], np.ones(4, np.float16).tobytes(), raw=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    assert low_precision_nodes(model) == ['LayerNormalization norm_half (FLOAT16)']


def test_cuda_device_without_cuda_provider_falls_back_to_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert default_providers(torch.device('cuda')) == [
        'CPUExecutionProvider'
    ]  # plain onnxruntime: CPU only
    assert 'install onnxruntime-gpu' in caplog.text


def test_bf16_export_is_valid_and_refused_by_onnxruntime(
    tmp_path: Path, vision_model: LlavaOnevision, vision_tiny_path: Path
) -> None:
    path = export_vision_onnx(
        vision_model, tmp_path / 'vision.onnx', dtype=torch.bfloat16
    )  # runs onnx.checker
    types = op_input_types(path)
    assert types['LayerNormalization'] == types['Softmax'] == types['Conv'] == {'FLOAT'}
    assert types['MatMul'] == {'BFLOAT16'}
    bf16_model = LlavaOnevision.from_pretrained(vision_tiny_path, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match='set dtype to float32 or float16'):
        onnxruntime_encoder(bf16_model)


def test_engine_with_onnxruntime_vision_answers_like_torch(
    vision_cache: Path, vision_tiny_path: Path
) -> None:
    settings = {
        'frames_per_clip': 2,
        'short_term_frames': 1,
        'policy': 'livevlm',
        'budget_tokens': 64,
        'page_size': 8,
    }
    engines = {
        backend: StreamingVLM.from_pretrained(vision_tiny_path, vision_backend=backend, **settings)
        for backend in ('torch', 'onnxruntime')
    }
    frames = np.stack(
        [np.asarray(scene_image(name)[:240, :320]) for name in SCENE_NAMES[:6]]
    )  # real photos
    for engine in engines.values():
        engine.ingest(frames, [0.5 * i for i in range(len(frames))])
    logits = {backend: engine.next_token_logits(QUESTION) for backend, engine in engines.items()}
    assert (logits['onnxruntime'] - logits['torch']).abs().max().item() <= 1e-4
    answers = {
        backend: engine.ask(QUESTION, max_new_tokens=8) for backend, engine in engines.items()
    }
    assert answers['onnxruntime'].token_ids == answers['torch'].token_ids
    assert len(answers['torch'].token_ids) >= 1

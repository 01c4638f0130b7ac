# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The LLM's four ONNX graphs on onnxruntime against torch: export, every policy, precision, chunks.

Real tiny checkpoints (the random tiny one and the committed reference model), real photos;
the engine runs with ``llm_backend=onnxruntime`` beside one with ``llm_backend=torch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from ros2_livevlm.backends.build_engines import main as build_engines
from ros2_livevlm.backends.cache import model_fingerprint
from ros2_livevlm.backends.cache import onnx_export_dir
from ros2_livevlm.backends.llm import ATTENTION
from ros2_livevlm.backends.llm import cached_llm_onnx
from ros2_livevlm.backends.llm import gqa_attention
from ros2_livevlm.backends.llm import Part
from ros2_livevlm.backends.llm import PARTS
from ros2_livevlm.backends.llm_onnxruntime import OnnxRuntimeDecoder
from ros2_livevlm.backends.tensorrt import onnx_axes
from ros2_livevlm.checkpoints import resolve_model_path
from ros2_livevlm.config import POLICIES
from ros2_livevlm.config import split_settings
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.memory.attention import attention
from ros2_livevlm.models import LlavaOnevision
from ros2_livevlm.reference.scenes import scene_image
from ros2_livevlm.reference.scenes import SCENE_NAMES
from test_vision_onnx import op_input_types  # one helper for both exports
import torch


SETTINGS = {
    'frames_per_clip': 2,
    'short_term_frames': 1,
    'budget_tokens': 48,
    'observation_tokens': 16,
    'page_size': 8,
}
"""16 tokens per frame: a 3-frame budget, so every policy evicts (and differs) over 8 frames."""
QUESTIONS = ('What did the robot see on the table?', 'Did you see a cat?')
FP16_TOLERANCE = 2e-3
"""
Max abs next-token logit difference of float16 graphs against float16 torch, relative to
the largest logit. Measured on 8 photos, every policy, tiny and reference checkpoints: at
most 9.3e-4 (the same greedy answers). Against float32 torch both float16 paths differ by
up to 1.0e-2 (``vsb``, ``livevlm``: float16 scores move a few evictions), so float32 is
not the reference here."""


def photo_frames(num_frames: int) -> np.ndarray:
    """Real photos (scikit-image), cropped to 240x320 and cycled: uint8 ``[N, 240, 320, 3]``."""
    photos = [np.asarray(scene_image(name)[:240, :320]) for name in SCENE_NAMES[:6]]
    return np.stack([photos[i % len(photos)] for i in range(num_frames)])


def stream_and_answer(engine: StreamingVLM) -> dict[str, list]:
    """Stream 8 photos into ``engine``; next-token logits, answers, evidence per question."""
    engine.ingest(photo_frames(8), [0.5 * i for i in range(8)])
    return {
        'logits': [engine.next_token_logits(q) for q in QUESTIONS],
        'answers': [engine.ask(q, max_new_tokens=6) for q in QUESTIONS],
    }


def max_diff(got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    return max((a.float() - b.float()).abs().max().item() for a, b in zip(got, expected))


def test_export_is_four_weightless_graphs_with_named_axes(
    vision_cache: Path, vision_model: LlavaOnevision
) -> None:
    directory = cached_llm_onnx(vision_model, torch.float32)  # first use: exported
    assert sorted(p.name for p in directory.glob('*.onnx')) == sorted(p.file_name for p in PARTS)
    heads, kv_heads, head_dim = (
        vision_model.num_heads,
        vision_model.num_kv_heads,
        vision_model.head_dim,
    )
    assert onnx_axes(directory / ATTENTION.file_name) == {
        'query': [heads, 'queries', head_dim],
        'key': [kv_heads, 'keys', head_dim],
        'value': [kv_heads, 'keys', head_dim],
    }
    qkv = onnx_axes(directory / 'llm_qkv.onnx')
    assert qkv['hidden'] == ['tokens', vision_model.hidden_size]
    assert qkv['self_attn.q_proj.weight'] == [heads * head_dim, vision_model.hidden_size]
    for part in PARTS:  # the weights are inputs: only small constants are stored
        graph = onnx.load(str(directory / part.file_name)).graph
        assert max((int(np.prod(t.dims)) for t in graph.initializer), default=0) <= 16
        assert [o.name for o in graph.output] == list(part.outputs)
    mtime = (directory / 'llm_qkv.onnx').stat().st_mtime_ns
    assert cached_llm_onnx(vision_model, torch.float32) == directory
    assert (directory / 'llm_qkv.onnx').stat().st_mtime_ns == mtime  # read from the cache


@pytest.mark.parametrize('num_queries, num_keys', [(1, 1), (1, 37), (5, 5), (9, 40)])
def test_attention_graph_function_is_the_memory_reference(num_queries: int, num_keys: int) -> None:
    generator = torch.Generator().manual_seed(num_keys)
    q = torch.randn(4, num_queries, 16, generator=generator)
    k, v = torch.randn(2, 2, num_keys, 16, generator=generator)
    torch.testing.assert_close(gqa_attention(q, k, v), attention(q, k, v), atol=1e-6, rtol=0)


@pytest.mark.parametrize('checkpoint', ['tiny', 'reference'])
def test_onnxruntime_llm_answers_like_torch_for_every_policy(
    vision_cache: Path, vision_tiny_path: Path, checkpoint: str
) -> None:
    path = vision_tiny_path if checkpoint == 'tiny' else resolve_model_path('reference')
    bases = {
        backend: StreamingVLM.from_pretrained(path, llm_backend=backend, **SETTINGS)
        for backend in ('torch', 'onnxruntime')
    }
    assert bases['onnxruntime'].kernels.name == 'torch+onnxruntime'
    for policy in POLICIES:
        results = {
            backend: stream_and_answer(base.new_stream(policy=policy))
            for backend, base in bases.items()
        }
        got, expected = results['onnxruntime'], results['torch']
        assert max_diff(got['logits'], expected['logits']) <= 1e-4, policy
        for answer, reference in zip(got['answers'], expected['answers']):
            assert answer.token_ids == reference.token_ids, policy
            assert answer.evidence == reference.evidence, policy
            assert answer.tokens_attended == reference.tokens_attended, policy


class SmallCallsDecoder(OnnxRuntimeDecoder):
    """Run every graph on at most 3 tokens (2 queries): the chunking a TensorRT profile forces."""

    def token_limit(self, part: Part) -> int:
        return 2 if part is ATTENTION else 3


def test_chunked_graph_calls_are_exact(vision_cache: Path, vision_tiny_path: Path) -> None:
    model = LlavaOnevision.from_pretrained(vision_tiny_path)
    memory_config, engine_config = split_settings(
        {**SETTINGS, 'policy': 'livevlm', 'llm_backend': 'onnxruntime'}
    )
    whole = StreamingVLM(model, memory_config, engine_config)
    chunked = StreamingVLM(
        model,
        memory_config,
        engine_config,
        llm=SmallCallsDecoder(model, cached_llm_onnx(model, model.dtype)),
    )
    got, expected = stream_and_answer(chunked), stream_and_answer(whole)
    assert max_diff(got['logits'], expected['logits']) <= 1e-5
    assert [a.token_ids for a in got['answers']] == [a.token_ids for a in expected['answers']]


def test_fp16_graphs_keep_norms_and_softmax_in_float32_and_stay_close(
    vision_cache: Path, vision_tiny_path: Path
) -> None:
    reference = stream_and_answer(
        StreamingVLM.from_pretrained(
            vision_tiny_path, policy='livevlm', dtype='float16', **SETTINGS
        )
    )
    engine = StreamingVLM.from_pretrained(
        vision_tiny_path, policy='livevlm', dtype='float16', llm_backend='onnxruntime', **SETTINGS
    )
    directory = cached_llm_onnx(engine.model, torch.float16)
    for name in ('llm_qkv.onnx', 'llm_output.onnx', 'llm_head.onnx'):
        types = op_input_types(directory / name)
        assert types['ReduceMean'] == {'FLOAT'}  # RMSNorm's variance in float32
        assert types['Gemm'] == {'FLOAT16'}  # the products in half precision
    types = op_input_types(directory / ATTENTION.file_name)
    assert types['Softmax'] == {'FLOAT'} and types['MatMul'] == {'FLOAT16'}
    got = stream_and_answer(engine)
    scale = max(x.abs().max().item() for x in reference['logits'])
    assert max_diff(got['logits'], reference['logits']) <= FP16_TOLERANCE * scale
    assert [a.token_ids for a in got['answers']] == [a.token_ids for a in reference['answers']]


def test_bf16_is_refused_by_onnxruntime(vision_cache: Path, vision_tiny_path: Path) -> None:
    with pytest.raises(ValueError, match='set dtype to float32 or float16'):
        StreamingVLM.from_pretrained(
            vision_tiny_path, dtype='bfloat16', llm_backend='onnxruntime', **SETTINGS
        )


def test_build_engines_exports_the_llm_without_tensorrt(
    vision_cache: Path, vision_tiny_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['--model-path', str(vision_tiny_path), '--precision', 'fp32', '--onnx-only']
    assert build_engines([*args, '--components', 'llm']) == 0
    directory = onnx_export_dir(model_fingerprint(vision_tiny_path), 'fp32', 'llm')
    assert f'ONNX: {directory}' in capsys.readouterr().out
    assert sorted(p.name for p in directory.glob('*.onnx')) == sorted(p.file_name for p in PARTS)
    assert build_engines([*args, '--max-context', '0']) == 2
    assert '--max-context must be at least 1' in capsys.readouterr().err

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The LLM's TensorRT engines in the engine cache: profiles, per-part validation, absent TensorRT.

No TensorRT and no GPU here (ENVIRONMENT.md): engines are placeholder bytes stored through
the real :func:`store_engine`; validation reads the sidecars and sizes only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from ros2_livevlm.backends.cache import AxisProfile
from ros2_livevlm.backends.cache import engine_cache_root
from ros2_livevlm.backends.cache import EngineCacheError
from ros2_livevlm.backends.cache import EngineKey
from ros2_livevlm.backends.cache import model_fingerprint
from ros2_livevlm.backends.cache import store_engine
from ros2_livevlm.backends.llm import PARTS
from ros2_livevlm.backends.llm import QUERY_BLOCK
from ros2_livevlm.backends.llm_tensorrt import engine_name
from ros2_livevlm.backends.llm_tensorrt import find_llm_engines
from ros2_livevlm.backends.llm_tensorrt import HEAD_TOKENS
from ros2_livevlm.backends.llm_tensorrt import llm_profiles
from ros2_livevlm.backends.tensorrt import TensorRTUnavailable
from ros2_livevlm.engine import StreamingVLM


PLACEHOLDER_ENGINE = b'placeholder bytes: not a TensorRT plan'


def test_profiles_put_decode_first_and_bound_every_axis() -> None:
    profiles = llm_profiles(max_tokens=6272, max_context=18728)
    one = AxisProfile(1, 1, 1)
    keys = AxisProfile(1, 18728, 18728)
    for name in ('qkv', 'output'):
        assert profiles[name] == ({'tokens': one}, {'tokens': AxisProfile(1, 6272, 6272)})
    assert profiles['attention'] == (
        {'queries': one, 'keys': keys},
        {'queries': AxisProfile(1, QUERY_BLOCK, QUERY_BLOCK), 'keys': keys},
    )
    assert profiles['head'] == ({'tokens': AxisProfile(1, 1, HEAD_TOKENS)},)
    assert llm_profiles(max_tokens=64, max_context=512)['attention'][1]['queries'].max_size == 64
    with pytest.raises(ValueError, match='1 <= min <= opt <= max'):
        llm_profiles(max_tokens=0, max_context=512)


@pytest.fixture
def llm_engines(
    vision_cache: Path, vision_tiny_path: Path, tmp_path: Path
) -> tuple[Path, EngineKey]:
    """Make an engine cache with a placeholder bf16 engine per LLM part (TensorRT 10.3, sm 8.7)."""
    root = engine_cache_root(str(tmp_path / 'engines'))
    key = EngineKey(
        model_fingerprint(vision_tiny_path),
        'bf16',
        tensorrt_version='10.3.0.30',
        compute_capability='8.7',
    )
    profiles = llm_profiles(max_tokens=512, max_context=4096)
    for part in PARTS:
        store_engine(
            root,
            replace(key, engine=engine_name(part)),
            PLACEHOLDER_ENGINE,
            model_path=vision_tiny_path,
            gpu_name='Orin',
            profiles=profiles[part.name],
        )
    return root, key


def test_every_part_is_found_with_its_profiles(
    llm_engines: tuple[Path, EngineKey], vision_tiny_path: Path
) -> None:
    root, key = llm_engines
    entries = find_llm_engines(root, key, vision_tiny_path)
    profiles = llm_profiles(max_tokens=512, max_context=4096)
    assert list(entries) == [part.name for part in PARTS]
    for part in PARTS:
        entry = entries[part.name]
        assert entry.engine_path.name == (
            f'llm_{part.name}-{key.model_hash[:16]}-bf16-v1-trt10.3.0.30-sm87.engine'
        )
        assert entry.profiles == profiles[part.name]  # the sidecar keeps every profile


def test_a_missing_or_stale_part_names_itself_and_the_build_command(
    llm_engines: tuple[Path, EngineKey], vision_tiny_path: Path
) -> None:
    root, key = llm_engines
    with pytest.raises(EngineCacheError) as error:
        find_llm_engines(root, replace(key, tensorrt_version='10.7.0.23'), vision_tiny_path)
    message = str(error.value)
    assert 'no usable TensorRT engine llm_qkv' in message
    assert 'built with TensorRT 10.3.0.30, this is TensorRT 10.7.0.23' in message
    assert f'build_engines --model-path {vision_tiny_path.resolve()} --precision bf16' in message
    (root / f'{replace(key, engine="llm_output").stem}.json').unlink()  # an unfinished build
    with pytest.raises(EngineCacheError, match='no usable TensorRT engine llm_output'):
        find_llm_engines(root, key, vision_tiny_path)


def test_llm_on_tensorrt_without_tensorrt_fails_at_configure(
    vision_cache: Path, vision_tiny_path: Path
) -> None:
    """Fail at configure time: TensorRT is not installed here, so the real import fails."""
    with pytest.raises(
        TensorRTUnavailable,
        match="need TensorRT's Python package(.|\n)*Or set vision_backend and llm_backend to "
        'torch or onnxruntime',
    ):
        StreamingVLM.from_pretrained(vision_tiny_path, llm_backend='tensorrt')

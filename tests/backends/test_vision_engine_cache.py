# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Engine cache key and configure-time validation, the TensorRT-absent errors and ``build_engines``.

These machines have no TensorRT and no GPU (ENVIRONMENT.md): the engine files stored here
are placeholder bytes written through the real :func:`store_engine`; validation reads only
the sidecar and the file size, and TensorRT never parses them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import shutil

import pytest
from ros2_livevlm.backends.build_engines import main as build_engines
from ros2_livevlm.backends.cache import AxisProfile
from ros2_livevlm.backends.cache import engine_cache_root
from ros2_livevlm.backends.cache import EngineCacheError
from ros2_livevlm.backends.cache import EngineKey
from ros2_livevlm.backends.cache import find_engine
from ros2_livevlm.backends.cache import model_fingerprint
from ros2_livevlm.backends.cache import store_engine
from ros2_livevlm.backends.tensorrt import cuda_device
from ros2_livevlm.backends.tensorrt import import_tensorrt
from ros2_livevlm.backends.tensorrt import TensorRTUnavailable
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.models import make_tiny_checkpoint


PLACEHOLDER_ENGINE = b'placeholder bytes: not a TensorRT plan'


def test_fingerprint_follows_file_contents_not_paths(
    vision_cache: Path, vision_tiny_path: Path, tmp_path: Path
) -> None:
    fingerprint = model_fingerprint(vision_tiny_path)
    assert (
        len(fingerprint) == 64 and model_fingerprint(vision_tiny_path) == fingerprint
    )  # memoized
    copy = shutil.copytree(vision_tiny_path, tmp_path / 'copy')
    assert model_fingerprint(copy) == fingerprint  # same bytes elsewhere: same key
    make_tiny_checkpoint(copy, seed=1)  # other weights written in place
    retrained = model_fingerprint(copy)
    assert retrained != fingerprint
    (copy / 'tokenizer.json').write_text('{}')  # not part of the compiled graph
    assert model_fingerprint(copy) == retrained
    with pytest.raises(FileNotFoundError, match='config.json and \\*.safetensors'):
        model_fingerprint(tmp_path)


@pytest.fixture
def cached_engine(
    vision_cache: Path, vision_tiny_path: Path, tmp_path: Path
) -> tuple[Path, EngineKey]:
    """
    Make an engine cache holding one (placeholder) engine of the tiny checkpoint.

    fp16, for TensorRT 10.3 on sm 8.7.
    """
    root = engine_cache_root(str(tmp_path / 'engines'))
    key = EngineKey(
        model_fingerprint(vision_tiny_path),
        'fp16',
        tensorrt_version='10.3.0.30',
        compute_capability='8.7',
    )
    profiles = ({'frames': AxisProfile(1, 8, 32)},)
    store_engine(
        root,
        key,
        PLACEHOLDER_ENGINE,
        model_path=vision_tiny_path,
        gpu_name='Orin',
        profiles=profiles,
    )
    return root, key


def test_cached_engine_is_found_with_its_sidecar(
    cached_engine: tuple[Path, EngineKey], vision_tiny_path: Path
) -> None:
    root, key = cached_engine
    entry = find_engine(root, key, vision_tiny_path)
    assert entry.engine_path == root / f'{key.stem}.engine'
    assert (
        entry.engine_path.name == f'vision-{key.model_hash[:16]}-fp16-v1-trt10.3.0.30-sm87.engine'
    )
    assert (entry.key, entry.profiles, entry.gpu_name) == (
        key,
        ({'frames': AxisProfile(1, 8, 32)},),
        'Orin',
    )
    assert entry.model_path == str(vision_tiny_path.resolve()) and entry.engine_bytes == len(
        PLACEHOLDER_ENGINE
    )


@pytest.mark.parametrize(
    'change, reason',
    [
        ({'model_hash': '0' * 64}, 'stale: the model files changed since it was built'),
        (
            {'tensorrt_version': '10.7.0.23'},
            'built with TensorRT 10.3.0.30, this is TensorRT 10.7.0.23',
        ),
        ({'compute_capability': '9.0'}, 'built for compute capability 8.7, this GPU has 9.0'),
        ({'precision': 'bf16'}, 'precision fp16, needed bf16'),
        ({'export_version': 2}, 'ONNX export recipe v1, this package writes v2'),
    ],
    ids=['stale-model', 'other-tensorrt', 'other-gpu', 'other-precision', 'other-export-recipe'],
)
def test_unusable_engine_says_why_and_how_to_rebuild(
    cached_engine: tuple[Path, EngineKey], vision_tiny_path: Path, change: dict, reason: str
) -> None:
    root, key = cached_engine
    needed = replace(key, **change)
    with pytest.raises(EngineCacheError) as error:
        find_engine(root, needed, vision_tiny_path)
    message = str(error.value)
    assert f'{key.stem}.engine: {reason}' in message
    assert (
        f'ros2 run ros2_livevlm build_engines --model-path {vision_tiny_path.resolve()} '
        f'--precision {needed.precision} --engine-cache-dir {root}' in message
    )


def test_missing_or_truncated_engine_says_how_to_build(
    cached_engine: tuple[Path, EngineKey], tmp_path: Path, vision_tiny_path: Path
) -> None:
    root, key = cached_engine
    empty = engine_cache_root(str(tmp_path / 'empty'))
    with pytest.raises(
        EngineCacheError,
        match=f'no engine of this model in {empty}(.|\n)*build_engines --model-path',
    ):
        find_engine(empty, key, vision_tiny_path)
    (root / f'{key.stem}.engine').write_bytes(PLACEHOLDER_ENGINE[:10])  # an interrupted copy
    (root / 'vision-garbage.json').write_text('{not json')
    with pytest.raises(EngineCacheError) as error:
        find_engine(root, key, vision_tiny_path)
    assert f'missing or truncated (10 of {len(PLACEHOLDER_ENGINE)} bytes)' in str(error.value)
    assert 'vision-garbage.json: unreadable sidecar' in str(error.value)


def test_engine_cache_dir_must_be_absolute(vision_cache: Path) -> None:
    assert engine_cache_root('') == vision_cache / 'engines'
    with pytest.raises(ValueError, match='must be an absolute path'):
        engine_cache_root('engines')


def test_tensorrt_backend_without_tensorrt_fails_at_configure(
    vision_cache: Path, vision_tiny_path: Path
) -> None:
    """
    Fail at configure time without TensorRT, saying what to do.

    TensorRT is not installed on these machines: the real import fails.
    """
    with pytest.raises(TensorRTUnavailable, match='pip install tensorrt'):
        import_tensorrt()
    with pytest.raises(
        TensorRTUnavailable, match='Or set vision_backend and llm_backend to torch or onnxruntime'
    ):
        StreamingVLM.from_pretrained(vision_tiny_path, vision_backend='tensorrt')


def test_no_gpu_is_a_clear_error() -> None:
    """No CUDA GPU on these machines either: the device check names cause and alternatives."""
    with pytest.raises(
        TensorRTUnavailable,
        match='torch sees none .*set vision_backend and llm_backend to torch or onnxruntime',
    ):
        cuda_device('cuda')


def test_build_engines_cli(
    vision_cache: Path, vision_tiny_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        build_engines(
            [
                '--model-path',
                str(vision_tiny_path),
                '--onnx-only',
                '--precision',
                'fp32',
                '--components',
                'vision',
            ]
        )
        == 0
    )
    (onnx_file,) = (vision_cache / 'onnx').glob('vision-*-fp32-v1/vision.onnx')
    assert f'ONNX: {onnx_file.parent}' in capsys.readouterr().out
    assert not list((vision_cache / 'onnx').glob('llm-*'))  # only the component asked for
    assert build_engines(['--model-path', str(vision_tiny_path)]) == 1  # no TensorRT here
    assert "TensorRT's Python package" in capsys.readouterr().err
    assert (
        build_engines(
            ['--model-path', str(vision_tiny_path), '--min-batch', '8', '--max-batch', '4']
        )
        == 2
    )
    assert '1 <= min <= opt <= max' in capsys.readouterr().err
    assert build_engines(['--model-path', str(vision_tiny_path / 'missing')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert build_engines(['--model-path', str(vision_tiny_path), '--components', 'llm,gpu']) == 2
    assert "--components 'llm,gpu': choose from vision, llm" in capsys.readouterr().err

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Where compiled models live, what they are keyed by, and when one is stale.

Two components are compiled: the vision encoder (``vision``) and the LLM's parts
(``llm``: one graph per part, :mod:`.llm`). One fingerprint of a checkpoint keys everything
compiled from it: a SHA-256 over its ``config.json`` and ``*.safetensors`` files
(:func:`model_fingerprint`). ONNX exports are keyed by (component, fingerprint, precision,
export recipe version); TensorRT engines additionally by the TensorRT version and the GPU's
compute capability, because an engine deserializes only on the TensorRT release, and by
default the GPU architecture, it was built for::

  <cache>/onnx/vision-<fingerprint[:16]>-<precision>-v<EXPORT_VERSION>/vision.onnx (+ .data)
  <cache>/onnx/llm-<fingerprint[:16]>-<precision>-v<EXPORT_VERSION>/llm_<part>.onnx, one per part
  <engine cache>/<engine>-<fingerprint[:16]>-<precision>-v<EXPORT_VERSION>-trt<ver>-sm<cc>.engine
  <engine cache>/<engine>-...-sm<cc>.json   the sidecar: full key, model path, GPU, profiles

where ``<engine>`` is ``vision`` or ``llm_<part>`` (``llm_qkv``, ``llm_attention``,
``llm_output``, ``llm_head``).

``<cache>`` is :func:`~ros2_livevlm.config.cache_dir`; the engine cache is
``EngineConfig.engine_cache_dir`` (default ``<cache>/engines``), never the working
directory. The sidecar is written last, so an engine without one is an unfinished build.

Nothing here imports TensorRT: the key, the file names, the sidecar and the validation are
plain Python and are tested on machines without TensorRT or a GPU.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
import hashlib
import json
from pathlib import Path

import torch

from ..config import cache_dir
from ..config import write_atomic


PRECISIONS: dict[str, torch.dtype] = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16,
}
"""Precision names of exports and engines and the torch dtype of their matrix products."""

EXPORT_VERSION = 1
"""
Version of the ONNX export recipes (graphs, names, fp32 islands); bump it when an exported
graph changes, so every cached export and engine built from an older recipe is rebuilt."""

MODEL_FILE_PATTERNS = ('config.json', '*.safetensors')
"""Checkpoint files whose bytes define the compiled graphs' outputs (the fingerprint's input)."""

ONNX_FILE = 'vision.onnx'


class EngineCacheError(RuntimeError):
    """No usable engine in the cache; the message says what was found and how to rebuild."""


def precision_of(dtype: torch.dtype) -> str:
    """
    ``fp32``, ``fp16`` or ``bf16`` for a torch dtype.

    Raises:
        ValueError: a dtype without a precision name.
    """
    for name, candidate in PRECISIONS.items():
        if candidate == dtype:
            return name
    names = ', '.join(map(str, PRECISIONS.values()))
    raise ValueError(f'dtype {dtype} has no compiled precision; use one of {names}')


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as file:
        for chunk in iter(lambda: file.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """
    SHA-256 (64 hex digits) of a checkpoint's ``config.json`` and ``*.safetensors`` files.

    The one cache key of everything compiled from a checkpoint. Hashing reads every byte
    (about a second per GB); the result is memoized under ``<cache>/fingerprints`` by the
    files' absolute paths, sizes and modification times (ns), so an unchanged checkpoint is
    read once. Tokenizer and preprocessor files are not part of it: the compiled graph
    starts at normalized pixel values.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json`` or no ``*.safetensors``.
    """
    root = Path(model_dir).expanduser().resolve()
    files = sorted(
        {path for pattern in MODEL_FILE_PATTERNS for path in root.glob(pattern) if path.is_file()}
    )
    if not (root / 'config.json').is_file() or not any(
        path.suffix == '.safetensors' for path in files
    ):
        raise FileNotFoundError(
            f'{root} needs config.json and *.safetensors to be fingerprinted '
            '(a save_pretrained directory)'
        )
    stats = [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files]
    memo = cache_dir('fingerprints') / (
        hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:32] + '.txt'
    )
    if memo.is_file() and len(memo.read_text().strip()) == 64:
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for path in files:
        digest.update(f'{path.name}\0{_file_sha256(path)}\0'.encode())
    fingerprint = digest.hexdigest()
    write_atomic(memo, fingerprint.encode())
    return fingerprint


def onnx_export_dir(fingerprint: str, precision: str, component: str = 'vision') -> Path:
    """Directory of the cached ONNX export of ``component`` (``vision`` or ``llm``) for a key."""
    return cache_dir('onnx') / f'{component}-{fingerprint[:16]}-{precision}-v{EXPORT_VERSION}'


def engine_cache_root(engine_cache_dir: str) -> Path:
    """
    Return the engine cache directory of ``EngineConfig.engine_cache_dir``, created if missing.

    Raises:
        ValueError: a relative path (engines never live relative to the working directory).
    """
    if not engine_cache_dir:
        return cache_dir('engines')
    root = Path(engine_cache_dir).expanduser()
    if not root.is_absolute():
        raise ValueError(
            f'engine_cache_dir={engine_cache_dir!r} must be an absolute path '
            f'(or empty for {cache_dir("engines")})'
        )
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class AxisProfile:
    """
    The range of one dynamic axis in a TensorRT optimization profile.

    ``min_size <= opt_size <= max_size``; TensorRT tunes its kernels for ``opt_size``. The
    sidecar stores them as ``[min, opt, max]``.

    Raises:
        ValueError: a bound below 1 or out of order.
    """

    min_size: int = 1
    opt_size: int = 32
    max_size: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min_size <= self.opt_size <= self.max_size:
            raise ValueError(
                'an optimization profile needs 1 <= min <= opt <= max, '
                f'got {self.min_size}, {self.opt_size}, {self.max_size}'
            )


Profile = dict[str, AxisProfile]
"""One optimization profile: dynamic axis name (the ONNX ``dim_param``) -> its range."""


@dataclass(frozen=True)
class EngineKey:
    """
    Everything a serialized engine depends on.

    Attributes:
        model_hash: :func:`model_fingerprint` of the checkpoint.
        precision: ``fp32``, ``fp16`` or ``bf16`` (the ONNX export it was built from).
        tensorrt_version: ``tensorrt.__version__`` of the builder, e.g. ``10.3.0.30``.
        compute_capability: of the GPU it was built on, e.g. ``8.7`` (Jetson Orin).
        export_version: :data:`EXPORT_VERSION` of the ONNX recipe.
        engine: what the engine computes: ``vision`` or ``llm_<part>`` (:mod:`.llm`).
    """

    model_hash: str
    precision: str
    tensorrt_version: str
    compute_capability: str
    export_version: int = EXPORT_VERSION
    engine: str = 'vision'

    @property
    def stem(self) -> str:
        """File name without suffix, e.g. ``vision-3f2a9c1e7b5d4a60-fp16-v1-trt10.3.0.30-sm87``."""
        sm = self.compute_capability.replace('.', '')
        model = f'{self.model_hash[:16]}-{self.precision}-v{self.export_version}'
        return f'{self.engine}-{model}-trt{self.tensorrt_version}-sm{sm}'

    def mismatches(self, other: EngineKey) -> list[str]:
        """List why an engine built for ``self`` does not serve ``other``, a phrase per field."""
        reasons = []
        if self.model_hash != other.model_hash:
            reasons.append(
                'stale: the model files changed since it was built '
                f'(hash {self.model_hash[:12]}, now {other.model_hash[:12]})'
            )
        if self.precision != other.precision:
            reasons.append(f'precision {self.precision}, needed {other.precision}')
        if self.export_version != other.export_version:
            reasons.append(
                f'ONNX export recipe v{self.export_version}, '
                f'this package writes v{other.export_version}'
            )
        if self.tensorrt_version != other.tensorrt_version:
            reasons.append(
                f'built with TensorRT {self.tensorrt_version}, '
                f'this is TensorRT {other.tensorrt_version}'
            )
        if self.compute_capability != other.compute_capability:
            reasons.append(
                f'built for compute capability {self.compute_capability}, '
                f'this GPU has {other.compute_capability}'
            )
        return reasons


@dataclass(frozen=True)
class EngineEntry:
    """
    A built engine and its sidecar.

    Attributes:
        key: what it was built for.
        engine_path: the serialized engine (``<key.stem>.engine``).
        model_path: absolute checkpoint directory it was built from.
        gpu_name: ``torch.cuda.get_device_name`` of the builder's GPU.
        profiles: the optimization profiles, in the engine's order.
        engine_bytes: size of the serialized engine, bytes (a truncated file is refused).
        built_at: UTC time of the build, ISO 8601.
    """

    key: EngineKey
    engine_path: Path
    model_path: str
    gpu_name: str
    profiles: tuple[Profile, ...]
    engine_bytes: int
    built_at: str


def store_engine(
    root: Path,
    key: EngineKey,
    serialized: bytes,
    *,
    model_path: str | Path,
    gpu_name: str,
    profiles: tuple[Profile, ...],
) -> EngineEntry:
    """
    Write a serialized engine and then its sidecar into the cache ``root`` (each atomically).

    Returns:
        the stored entry (``engine_path`` is ``root / f"{key.stem}.engine"``).
    """
    engine_path = root / f'{key.stem}.engine'
    entry = EngineEntry(
        key=key,
        engine_path=engine_path,
        model_path=str(Path(model_path).expanduser().resolve()),
        gpu_name=gpu_name,
        profiles=profiles,
        engine_bytes=len(serialized),
        built_at=datetime.now(timezone.utc).isoformat(timespec='seconds'),
    )
    write_atomic(engine_path, serialized)
    sidecar = {
        'key': asdict(key),
        'model_path': entry.model_path,
        'gpu_name': gpu_name,
        'profiles': [
            {axis: [r.min_size, r.opt_size, r.max_size] for axis, r in profile.items()}
            for profile in profiles
        ],
        'engine_bytes': entry.engine_bytes,
        'built_at': entry.built_at,
    }
    write_atomic(engine_path.with_suffix('.json'), json.dumps(sidecar, indent=2).encode())
    return entry


def _read_sidecar(path: Path) -> EngineEntry:
    """
    Read the sidecar at ``path``.

    Raises:
        KeyError, TypeError or ValueError (incl. JSON errors): a malformed sidecar.
    """
    data = json.loads(path.read_text())
    return EngineEntry(
        key=EngineKey(**data['key']),
        engine_path=path.with_suffix('.engine'),
        model_path=data['model_path'],
        gpu_name=data['gpu_name'],
        profiles=tuple(
            {axis: AxisProfile(*bounds) for axis, bounds in profile.items()}
            for profile in data['profiles']
        ),
        engine_bytes=int(data['engine_bytes']),
        built_at=data['built_at'],
    )


def build_command(model_path: str | Path, precision: str, root: Path) -> str:
    """Return the command that builds the engine of ``model_path`` at ``precision`` in ``root``."""
    command = (
        f'ros2 run ros2_livevlm build_engines --model-path {model_path} --precision {precision}'
    )
    if root != cache_dir('engines'):
        command += f' --engine-cache-dir {root}'
    return command


def find_engine(root: Path, key: EngineKey, model_path: str | Path) -> EngineEntry:
    """
    Find the cached engine for ``key``, validated against its sidecar.

    Args:
        root: the engine cache directory (:func:`engine_cache_root`).
        key: what the running process needs (model hash, precision, TensorRT, GPU).
        model_path: the checkpoint directory, to find engines built from an older version
            of the same files.

    Raises:
        EngineCacheError: no engine for ``key``, or a truncated one. The message lists every
            engine of the same checkpoint with why it does not fit (stale model, other
            precision, TensorRT version or compute capability) and the command to rebuild.
    """
    model_path = str(Path(model_path).expanduser().resolve())
    found: list[str] = []
    for sidecar in sorted(root.glob(f'{key.engine}-*.json')):
        try:
            entry = _read_sidecar(sidecar)
        except (KeyError, TypeError, ValueError) as error:
            found.append(f'{sidecar.name}: unreadable sidecar ({error!r}); delete it and rebuild')
            continue
        if entry.key == key:
            size = entry.engine_path.stat().st_size if entry.engine_path.is_file() else None
            if size == entry.engine_bytes:
                return entry
            found.append(
                f'{entry.engine_path.name}: missing or truncated '
                f'({size} of {entry.engine_bytes} bytes)'
            )
        elif entry.model_path == model_path or entry.key.model_hash == key.model_hash:
            found.append(f'{entry.engine_path.name}: ' + '; '.join(entry.key.mismatches(key)))
    needed = (
        f'{key.precision}, TensorRT {key.tensorrt_version}, '
        f'compute capability {key.compute_capability}, '
        f'model hash {key.model_hash[:12]}'
    )
    lines = found or [f'no engine of this model in {root}']
    raise EngineCacheError(
        f'no usable TensorRT engine {key.engine} for {model_path} ({needed}):\n'
        + ''.join(f'  - {line}\n' for line in lines)
        + 'Build it once per model, precision, TensorRT version and GPU '
        '(engines are never built at node start):\n'
        + f'  {build_command(model_path, key.precision, root)}'
    )

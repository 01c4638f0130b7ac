# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Memory files: the streaming memories of one or more cameras, kept across restarts.

    save_memories({'front': front, 'rear': rear}, 'memory.safetensors')  # one engine a camera
    load_memories('memory.safetensors', {'front': front, 'rear': rear})
    engine.save(path); engine.load(path)      # one memory, named 'default'

A file holds named memories, each everything its engine needs to go on streaming and
answering as if it had never stopped (:meth:`StreamingVLM.state`): per layer the KV of
every segment with original positions, frame indices and stamps, the policy's state, the
frames buffered for an unfinished clip (kept, not flushed: a restored engine cuts the same
clips), and the counters (frames ingested, clips, newest stamp, next position). One
safetensors file; the index is JSON inside its header, so one rename replaces both::

    [8-byte header length | header JSON | tensor bytes]
    header: 'm0/memory/k', 'm0/memory/v', ..., 'm1/stream/pending_pixels': dtype, shape, offsets
            '__metadata__': {'ros2_livevlm.index': INDEX, 'ros2_livevlm.index_sha256': hex}
    INDEX = {'format': 'ros2_livevlm.memory', 'format_version': 1, 'memories': [
               {'name': 'front',
                'model': {'fingerprint', 'dtype', 'path', 'num_layers', 'num_kv_heads', ...},
                'memory_config': {every MemoryConfig field},
                'engine_config': {'frames_per_clip', 'system_prompt'},
                'state': the state, each tensor replaced by {'__tensor__': 'm0/memory/k'}}],
             'tensors': {'m0/memory/k': {'dtype', 'shape', 'sha256'}, ...}}

The state is walked generically (:func:`_split`): whatever a memory or a policy adds to its
``state()`` (cluster centroids, offloaded blocks) is saved without a format change.

Safety:

- Written atomically (:func:`~ros2_livevlm.config.atomic_file`: temporary sibling, fsync,
  rename, fsync of the directory): a crash leaves the previous file intact.
- Loading never runs code: safetensors and JSON only, no pickle.
- Every check runs before any engine changes, and all named memories load or none does.
  Each refusal is a :class:`MemoryFileError` whose ``reason`` says which:

  ====================  ==================================================================
  reason                when
  ====================  ==================================================================
  ``missing``           no file at the path (or it cannot be read)
  ``not_memory_file``   not a safetensors file, or one without a memory index (weights)
  ``truncated``         shorter than its header says (an interrupted copy)
  ``corrupt``           a damaged header or index, a tensor whose SHA-256, dtype or shape
                        differs from the index, or a state that does not fit together
  ``newer_format``      ``format_version`` above :data:`FORMAT_VERSION`
  ``other_model``       another checkpoint (fingerprint) or another dtype
  ``incompatible``      settings that shaped the stored memory differ (lists each field)
  ``unknown_memory``    no memory of a requested name in the file (lists the names)
  ====================  ==================================================================

Model identity: :func:`~ros2_livevlm.backends.cache.model_fingerprint`, the SHA-256 of the
checkpoint's ``config.json`` and ``*.safetensors`` that also keys compiled engines. It
reads every weight byte once per checkpoint (about 1 s per GB: 15 s for a 7B model in
fp16) and is memoized on disk by path, size and modification time, so later saves and
loads cost a ``stat`` per file. Plus the model dtype: a memory computed in float16 does not
continue in float32.

Settings: every :class:`~ros2_livevlm.config.MemoryConfig` field shaped the stored memory
or steers how it evolves (policy, budget, short-term window, VSB and window parameters,
page size, positions) and must be equal, as must ``frames_per_clip`` (clip boundaries)
and ``system_prompt`` (the init segment), except :data:`ANSWER_TIME_SETTINGS`, which only
steer how an answer reads the memory. A field a file does not name (written before the
field existed) counts as its default; a field this version does not know is refused.

Time after a load: the engine's newest stamp is restored and stamps must not go
backwards (:meth:`StreamingVLM.ingest_iter` refuses older ones). ROS time is the system
clock and moves on across a reboot, so the timeline simply continues, with a gap. A
camera clock that restarted (a bag replayed from its start under ``use_sim_time``, a
clock without RTC) is a time jump: the node's rule for time going backwards applies (it
resets that camera's memory, counts a time jump and warns), so the node seeds its
sampler's newest stamp from ``stats().newest_stamp`` after a load. Shifting stamps was
rejected: evidence spans and time windows would no longer be the camera's header.stamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
import hashlib
import json
from pathlib import Path
import time
from typing import Any
from typing import TYPE_CHECKING

from safetensors import safe_open
from safetensors import SafetensorError
from safetensors.torch import save_file
import torch

from .backends.cache import model_fingerprint
from .config import atomic_file
from .config import MemoryConfig

if TYPE_CHECKING:  # the engine imports this module
    from .engine import StreamingVLM


FORMAT = 'ros2_livevlm.memory'
FORMAT_VERSION = 1
"""Version of the memory file layout; bump it when a reader of the old one cannot read it."""

INDEX_KEY = 'ros2_livevlm.index'
INDEX_SHA_KEY = 'ros2_livevlm.index_sha256'
TENSOR_REF = '__tensor__'
MEMORY_KEYS = frozenset({'name', 'model', 'memory_config', 'engine_config', 'state'})
DEFAULT_MEMORY_NAME = 'default'

ANSWER_TIME_SETTINGS = frozenset({'retrieval_ratio'})
"""
MemoryConfig fields that may differ between a file and the engine loading it.

Not ``retrieval_keys`` nor ``retrieval``: key clusters are stored as clustered (with or
without RoPE) and only for cluster retrieval.
"""

ENGINE_SETTINGS = ('frames_per_clip', 'system_prompt')
"""EngineConfig fields that must be equal (clip boundaries, the stored init segment)."""

REASONS = (
    'missing',
    'not_memory_file',
    'truncated',
    'corrupt',
    'newer_format',
    'other_model',
    'incompatible',
    'unknown_memory',
)


class MemoryFileError(ValueError):
    """
    A memory file that cannot be loaded; ``reason`` is one of :data:`REASONS`.

    The message says what is wrong and what to do; no engine was changed.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MemoryFileInfo:
    """
    A memory file that was written or loaded.

    Attributes:
        path: the file.
        num_bytes: its size, bytes.
        names: the memories saved, or loaded (in the order given).
        elapsed_s: time to save or load, s.
    """

    path: Path
    num_bytes: int
    names: tuple[str, ...]
    elapsed_s: float


# ---- save ---------------------------------------------------------------------------


def save_memories(engines: Mapping[str, StreamingVLM], path: str | Path) -> MemoryFileInfo:
    """
    Write the memories of ``engines`` (name -> engine, e.g. one per camera) into one file.

    Atomic: the file at ``path`` is replaced only when the new one is complete on disk.

    Raises:
        ValueError: no engines, an empty name, or a model without a checkpoint directory.
        RuntimeError: an engine's ``ingest_iter`` is suspended (a clip is half prefilled).
        OSError: the file could not be written (the previous file is intact).
    """
    start = time.perf_counter()
    if not engines or not all(isinstance(name, str) and name for name in engines):
        raise ValueError(f'save_memories needs named engines, got {list(engines)}')
    tensors: dict[str, torch.Tensor] = {}
    memories = []
    for number, (name, engine) in enumerate(engines.items()):
        memories.append(
            {
                'name': name,
                'model': _model_identity(engine),
                'memory_config': asdict(engine.memory_config),
                'engine_config': {k: getattr(engine.engine_config, k) for k in ENGINE_SETTINGS},
                'state': _split(engine.state(), f'm{number}', tensors),
            }
        )
    index = json.dumps(
        {
            'format': FORMAT,
            'format_version': FORMAT_VERSION,
            'memories': memories,
            'tensors': {key: _describe(tensor) for key, tensor in tensors.items()},
        },
        allow_nan=False,
    )
    metadata = {INDEX_KEY: index, INDEX_SHA_KEY: _sha256(index.encode())}
    path = Path(path)
    with atomic_file(path) as staging:
        save_file(tensors, str(staging), metadata=metadata)
    return MemoryFileInfo(
        path, path.stat().st_size, tuple(engines), time.perf_counter() - start
    )


def _model_identity(engine: StreamingVLM) -> dict[str, Any]:
    model = engine.model
    if model.path is None:
        raise ValueError(
            'this model was not loaded from a checkpoint directory, so a memory file could '
            'not name it; load it with StreamingVLM.from_pretrained(model_path)'
        )
    return {
        'fingerprint': model_fingerprint(model.path),
        'dtype': str(model.dtype).removeprefix('torch.'),
        'path': str(model.path),
        'num_layers': model.num_layers,
        'num_kv_heads': model.num_kv_heads,
        'head_dim': model.head_dim,
        'tokens_per_frame': model.tokens_per_frame,
    }


def _split(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """
    Return ``value`` as JSON with its tensors moved into ``tensors`` under path-like keys.

    Raises:
        TypeError: a value that is neither a tensor nor JSON (names its key).
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to('cpu').contiguous()
        storage = tensor.untyped_storage().data_ptr()
        stored = {t.untyped_storage().data_ptr() for t in tensors.values()}
        if tensor.numel() and storage in stored:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory
        tensors[key] = tensor
        return {TENSOR_REF: key}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and '/' not in k for k in value):
            raise TypeError(f'state keys under {key} must be strings without "/"')
        return {k: _split(v, f'{key}/{k}', tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, f'{key}/{i}', tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f'state entry {key} is a {type(value).__name__}; a state holds tensors and JSON values'
    )


def _describe(tensor: torch.Tensor) -> dict[str, Any]:
    return {
        'dtype': str(tensor.dtype).removeprefix('torch.'),
        'shape': list(tensor.shape),
        'sha256': _tensor_sha256(tensor),
    }


def _tensor_sha256(tensor: torch.Tensor) -> str:
    return _sha256(tensor.reshape(-1).view(torch.uint8).numpy())


def _sha256(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- load ---------------------------------------------------------------------------


def load_memories(path: str | Path, engines: Mapping[str, StreamingVLM], *,
                  held_only: bool = False) -> MemoryFileInfo:
    """
    Replace the memory of each engine in ``engines`` with the file's memory of that name.

    Memories of the file that are not requested are left alone. Everything is read and
    checked (integrity, model, settings, names) before any engine changes; then all
    requested memories are restored, or, if one does not fit, none.

    Args:
        path: the memory file.
        engines: name -> engine to restore.
        held_only: restore only the requested names the file holds (e.g. a node that
            gained a camera); ``unknown_memory`` only when it holds none of them.

    Raises:
        MemoryFileError: why the file cannot be loaded (``reason``, :data:`REASONS`).
        RuntimeError: an engine's ``ingest_iter`` is suspended.
    """
    start = time.perf_counter()
    path = Path(path)
    index, tensors, num_bytes = _read(path)
    records = {record.get('name'): record for record in index['memories']}
    unknown = [name for name in engines if name not in records]
    if held_only and len(unknown) < len(engines):
        engines = {name: engine for name, engine in engines.items() if name in records}
        unknown = []
    if unknown:
        raise MemoryFileError(
            'unknown_memory',
            f'{path} has no memory named {", ".join(map(repr, unknown))}; it holds '
            f'{", ".join(map(repr, records))}',
        )
    for name, engine in engines.items():
        _check_compatible(path, name, records[name], engine)
    states = {name: _join(records[name]['state'], tensors, path) for name in engines}
    previous = {name: engine.state() for name, engine in engines.items()}
    restored: list[str] = []
    for name, engine in engines.items():
        try:
            engine.load_state(states[name])
        except ValueError as error:
            for done in restored:  # all or none
                engines[done].load_state(previous[done])
            raise MemoryFileError(
                'corrupt', f'{path}: memory {name!r} does not fit together: {error}'
            ) from error
        restored.append(name)
    return MemoryFileInfo(path, num_bytes, tuple(engines), time.perf_counter() - start)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], int]:
    """
    Read and verify a memory file: its index, its tensors (checksummed) and its size.

    Raises:
        MemoryFileError: reasons ``missing`` to ``newer_format``.
    """
    try:
        with path.open('rb') as file:
            size = path.stat().st_size
            prefix = file.read(9)
            header_len = int.from_bytes(prefix[:8], 'little')
            header_bytes = (prefix[8:] + file.read(header_len - 1)) if len(prefix) == 9 else b''
    except OSError as error:
        raise MemoryFileError(
            'missing', f'cannot read memory file {path}: {error.strerror or error}'
        ) from error
    if size >= 9 and prefix[8:9] != b'{':
        raise MemoryFileError('not_memory_file', f'{path} is not a safetensors memory file')
    if size < 9 or len(header_bytes) < header_len:
        raise MemoryFileError(
            'truncated',
            f'{path} is truncated: {size} bytes, its header alone needs {8 + header_len}',
        )
    try:
        header = json.loads(header_bytes)
        data_end = max((spec['data_offsets'][1] for key, spec in header.items()
                        if key != '__metadata__'), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise MemoryFileError('corrupt', f'{path} has a damaged header ({error})') from error
    if 8 + header_len + data_end > size:
        raise MemoryFileError(
            'truncated',
            f'{path} is truncated: {size} bytes of {8 + header_len + data_end} '
            '(an interrupted copy?); the file cannot be used',
        )
    index = _checked_index(path, header.get('__metadata__') or {})
    tensors = _read_tensors(path, index['tensors'], set(header) - {'__metadata__'})
    return index, tensors, size


def _checked_index(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if INDEX_KEY not in metadata:
        raise MemoryFileError(
            'not_memory_file',
            f'{path} is a safetensors file without a ros2_livevlm memory index '
            '(model weights?); pass a file written by save_memories or ~/save_memory',
        )
    try:
        index = json.loads(metadata[INDEX_KEY])
        version = index['format_version']
        fmt = index['format']
    except (ValueError, TypeError, KeyError) as error:
        raise MemoryFileError('corrupt', f'{path} has a damaged memory index ({error})') from error
    if fmt != FORMAT:
        raise MemoryFileError('not_memory_file', f'{path} holds {fmt!r}, not {FORMAT!r}')
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MemoryFileError(
            'newer_format',
            f'{path} has memory file format version {version}; this ros2_livevlm reads up '
            f'to version {FORMAT_VERSION}: update ros2_livevlm to load it',
        )
    if _sha256(metadata[INDEX_KEY].encode()) != metadata.get(INDEX_SHA_KEY):
        raise MemoryFileError('corrupt', f'{path}: the memory index fails its SHA-256 check')
    memories, specs = index.get('memories'), index.get('tensors')
    if not (
        isinstance(memories, list)
        and isinstance(specs, dict)
        and all(
            isinstance(m, dict)
            and MEMORY_KEYS <= set(m)
            and all(isinstance(m[k], dict) for k in MEMORY_KEYS - {'name'})
            for m in memories
        )
    ):
        raise MemoryFileError('corrupt', f'{path}: the memory index lacks entries it needs')
    return index


def _read_tensors(
    path: Path, specs: dict[str, dict[str, Any]], stored: set[str]
) -> dict[str, torch.Tensor]:
    if set(specs) != stored:
        raise MemoryFileError(
            'corrupt', f'{path}: the tensors stored and the tensors indexed differ'
        )
    tensors = {}
    try:
        with safe_open(str(path), framework='pt') as file:
            for key, spec in specs.items():
                tensor = file.get_tensor(key)
                found = _describe(tensor)
                if found != spec:
                    what = 'SHA-256' if found['sha256'] != spec.get('sha256') else 'dtype/shape'
                    raise MemoryFileError(
                        'corrupt', f'{path}: tensor {key} fails its {what} check (damaged file)'
                    )
                tensors[key] = tensor
    except SafetensorError as error:
        raise MemoryFileError('corrupt', f'{path} cannot be read: {error}') from error
    return tensors


def _join(value: Any, tensors: dict[str, torch.Tensor], path: Path) -> Any:
    """Inverse of :func:`_split`: put the tensors back where the index refers to them."""
    if isinstance(value, dict):
        if set(value) == {TENSOR_REF}:
            if value[TENSOR_REF] not in tensors:
                raise MemoryFileError(
                    'corrupt', f'{path}: the index refers to a missing tensor {value[TENSOR_REF]}'
                )
            return tensors[value[TENSOR_REF]]
        return {k: _join(v, tensors, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, tensors, path) for v in value]
    return value


def _check_compatible(
    path: Path, name: str, record: dict[str, Any], engine: StreamingVLM
) -> None:
    """
    Refuse a memory of another model, or made with settings the engine does not share.

    Raises:
        MemoryFileError: ``other_model`` or ``incompatible``, naming each difference.
    """
    saved, here = record['model'], _model_identity(engine)
    if saved.get('fingerprint') != here['fingerprint'] or saved.get('dtype') != here['dtype']:
        raise MemoryFileError(
            'other_model',
            f'{path}: memory {name!r} was made by model {saved.get("path")} '
            f'(hash {str(saved.get("fingerprint"))[:12]}, {saved.get("dtype")}); this engine '
            f'runs {here["path"]} (hash {here["fingerprint"][:12]}, {here["dtype"]}). A KV '
            'memory only continues on the model and dtype that computed it',
        )
    differences = _setting_differences(record['memory_config'], engine.memory_config)
    differences += [
        f'{key}={record["engine_config"].get(key)!r} (engine: '
        f'{getattr(engine.engine_config, key)!r})'
        for key in ENGINE_SETTINGS
        if record['engine_config'].get(key) != getattr(engine.engine_config, key)
    ]
    if differences:
        raise MemoryFileError(
            'incompatible',
            f'{path}: memory {name!r} was made with other settings: {"; ".join(differences)}. '
            "Start the engine with the file's settings to load it (only "
            f'{", ".join(sorted(ANSWER_TIME_SETTINGS))} may differ)',
        )


def _setting_differences(saved: dict[str, Any], config: MemoryConfig) -> list[str]:
    """List ``field=file value (engine: value)`` for each MemoryConfig field that must match."""
    known = {f.name: f.default for f in fields(MemoryConfig)}
    differences = [
        f'{key}={value!r} (this version has no such setting)'
        for key, value in saved.items()
        if key not in known
    ]
    for key, default in known.items():
        value, ours = saved.get(key, default), getattr(config, key)
        if key not in ANSWER_TIME_SETTINGS and value != ours:
            differences.append(f'{key}={value!r} (engine: {ours!r})')
    return differences


__all__ = [
    'ANSWER_TIME_SETTINGS',
    'DEFAULT_MEMORY_NAME',
    'FORMAT_VERSION',
    'MemoryFileError',
    'MemoryFileInfo',
    'load_memories',
    'save_memories',
]

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Typed settings of the streaming memory and the engine.

Every knob is defined once here, with its default, its unit and its check; the ROS node
declares its parameters by walking these fields, the CLIs build their options from them.
No torch and no rclpy in this module.

Defaults follow LiveVLM v2 (arXiv 2505.15269v2, see ``algorithm_spec.md`` A.5): long-term
budget 12,000 tokens, 2 short-term frames, pages of 16 tokens, retrieval ratio 0.4,
top-score share 0.5 (``1 - scatter_ratio``), 32 frames per clip.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any


POLICIES = (
    'full', 'recent_frames', 'simplestream', 'window', 'vsb', 'livevlm', 'clusterkv', 'rekv'
)
"""Memory policies, all behind one interface (``ros2_livevlm.memory.policies``)."""

POSITION_MODES = ('compacted', 'original')
BUCKET_MODES = ('candidate', 'stream')
RETRIEVAL_KEYS = ('position_agnostic', 'positional')
RETRIEVALS = ('pages', 'clusters')
DTYPES = ('auto', 'float32', 'float16', 'bfloat16')
BACKENDS = ('torch', 'onnxruntime', 'tensorrt')
"""Compute backends of the vision encoder and of the LLM (``ros2_livevlm.backends``)."""
KERNELS = ('torch', 'triton')


def choices(cls: type, name: str) -> tuple[str, ...] | None:
    """Return the allowed values of a string field of a config class (None: any value)."""
    return {f.name: f.metadata.get('choices') for f in fields(cls)}[name]


def bounds(low: float | None = None, high: float | None = None, *, above: bool = False,
           runtime: bool = False, **metadata: Any) -> dict[str, Any]:
    """
    Field metadata: the allowed range and whether a running engine may change the field.

    Args:
        low: smallest allowed value (None: no lower bound).
        high: largest allowed value (None: no upper bound).
        above: the value must be strictly greater than ``low``.
        runtime: :meth:`~ros2_livevlm.engine.StreamingVLM.retune` may change it while the
            engine streams (it steers answers, not the shape of the memory); the node makes
            it a parameter settable while active.
        **metadata: more metadata, e.g. ``choices``.
    """
    return {'low': low, 'high': high, 'above': above, 'runtime': runtime, **metadata}


def check_value(f: Any, value: Any) -> str | None:
    """
    Say why ``value`` is not allowed for dataclass field ``f`` (choices, range), or None.

    The reason reads after the name, e.g. ``must be >= 1``.
    """
    meta = f.metadata
    allowed = meta.get('choices')
    if allowed is not None and value not in allowed:
        return f'must be one of {", ".join(allowed)}'
    low, high = meta.get('low'), meta.get('high')
    if low is not None and (value <= low if meta.get('above') else value < low):
        return f'must be {">" if meta.get("above") else ">="} {low}'
    if high is not None and value > high:
        return f'must be <= {high}'
    return None


def _check_fields(config: Any) -> None:
    for f in fields(config):
        reason = check_value(f, getattr(config, f.name))
        if reason is not None:
            raise ValueError(f'{f.name}={getattr(config, f.name)!r} {reason}')


@dataclass(slots=True)
class MemoryConfig:
    """
    How one camera's KV memory is kept: ``[init | long-term | short-term]`` per layer.

    Attributes:
        policy: ``full`` (no eviction), ``recent_frames`` (FIFO of whole frames),
            ``simplestream`` (the last 4 frames only), ``window`` (the newest tokens, the
            init segment as attention sink: StreamingLLM), ``vsb`` (Vision Sink Bucketing,
            no retrieval), ``livevlm`` (VSB + retrieval), ``clusterkv`` (every token kept,
            answers recall key clusters) or ``rekv`` (every frame kept, local-window
            streaming, answers retrieve frames).
        budget_tokens: long-term budget M in tokens, per layer (LiveVLM v2: 12,000): kept
            by the bounded policies; attended by ``clusterkv`` and ``rekv`` (also
            ``rekv``'s local window). The short-term window and the init (system prompt)
            tokens come on top. Ignored by ``full`` and ``simplestream``.
        short_term_frames: frames always kept exact at the end of the memory
            (``recent_frames`` in the LiveVLM code: 2).
        observation_tokens: r, the number of last vision queries of a clip whose
            attention scores VSB (spec A.4 step 4; not given by the paper, 392 = 2 frames).
        top_score_share: R = 1 - scatter_ratio, the share of the budget filled by the
            highest scores regardless of buckets (spec A.4 step 5; 0.5).
        bucket_capacity: B, tokens per bucket (LiveVLM v2: 1, so N = M buckets).
        bucket_by: ``stream``: bucket index from the token's original stream position, so
            the budget spreads over the whole video timeline; ``candidate``: from the
            position in the candidate list (old tokens then survive about half of the
            time per clip). Spec A.4 step 5, ambiguity 3; ``stream`` measured better.
        page_size: C, tokens per PaR page (LiveVLM v2: 16).
        retrieval_ratio: share of the long-term segment an answer retrieves per layer with
            ``livevlm`` (pages, or tokens of clusters; LiveVLM v2 Table 6: 0.4).
        retrieval: what ``livevlm`` answers retrieve: ``pages`` (PaR, page-mean keys) or
            ``clusters`` (ClusterKV's key clusters over the VSB-bounded memory).
        retrieval_keys: ``position_agnostic`` (keys and question queries without RoPE,
            PaR) or ``positional`` (rotated by their original positions, as a cache of
            post-RoPE keys holds them: LiveVLM Table 1 ablation; ClusterKV's paper
            clusters post-RoPE keys). Pages and clusters.
        cluster_tokens: tokens per key cluster (ClusterKV: C0 = L / 80), clustered per clip
            as tokens enter the long-term segment.
        positions: ``compacted`` (contiguous RoPE positions over what is attended, the
            ReKV convention) or ``original`` (each token's stream position; spec A.4.8).
    """

    policy: str = field(default='livevlm', metadata={'choices': POLICIES})
    budget_tokens: int = field(default=12000, metadata=bounds(1))
    short_term_frames: int = field(default=2, metadata=bounds(1))
    observation_tokens: int = field(default=392, metadata=bounds(1))
    top_score_share: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    bucket_capacity: int = field(default=1, metadata=bounds(1))
    bucket_by: str = field(default='stream', metadata={'choices': BUCKET_MODES})
    page_size: int = field(default=16, metadata=bounds(1))
    retrieval_ratio: float = field(
        default=0.4, metadata=bounds(0.0, 1.0, above=True, runtime=True))
    retrieval: str = field(default='pages', metadata={'choices': RETRIEVALS})
    retrieval_keys: str = field(default='position_agnostic', metadata={'choices': RETRIEVAL_KEYS})
    cluster_tokens: int = field(default=80, metadata=bounds(1))
    positions: str = field(default='compacted', metadata={'choices': POSITION_MODES})

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(slots=True)
class EngineConfig:
    """
    How the engine runs the model over the stream.

    Attributes:
        frames_per_clip: frames encoded and prefilled together (LiveVLM code: 32).
        max_new_tokens: default answer length limit, tokens.
        system_prompt: text of the init segment, kept forever and never compressed.
        device: torch device, e.g. ``cpu``, ``cuda``, ``cuda:1``.
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``float16``
            or ``bfloat16``.
        vision_backend: ``torch``, ``onnxruntime`` or ``tensorrt`` for the vision encoder.
        llm_backend: ``torch``, ``onnxruntime`` or ``tensorrt`` for the LLM's dense compute
            and attention kernel (per layer: norm + q/k/v, attention, o_proj + MLP; final
            norm + LM head); the memory keeps choosing what each layer attends to.
            ``onnxruntime`` runs float32 or float16 (CPU, or its CUDA provider);
            ``tensorrt`` needs engines from ``build_engines``.
        kernels: ``torch`` (reference) or ``triton`` for the memory kernels.
        engine_cache_dir: directory of built TensorRT engines (``vision_backend`` or
            ``llm_backend`` ``tensorrt``); empty = ``$XDG_CACHE_HOME/ros2_livevlm/engines``.
        thumbnail_size: longest side of the JPEG thumbnail kept per frame in memory, px
            (evidence an answer can show, dropped with its frame); 0: none.
        max_thumbnails: most thumbnails per memory: beyond it those of the frames holding
            the fewest tokens (all layers; the oldest on ties) are dropped. VSB keeps tokens
            of many frames per layer, each layer its own, so without a cap a long stream
            keeps a thumbnail for most frames it ever saw.
    """

    frames_per_clip: int = field(default=32, metadata=bounds(1))
    max_new_tokens: int = field(default=128, metadata=bounds(1, runtime=True))
    system_prompt: str = 'You are a helpful assistant.'
    device: str = 'cpu'
    dtype: str = field(default='auto', metadata={'choices': DTYPES})
    vision_backend: str = field(default='torch', metadata={'choices': BACKENDS})
    llm_backend: str = field(default='torch', metadata={'choices': BACKENDS})
    kernels: str = field(default='torch', metadata={'choices': KERNELS})
    engine_cache_dir: str = ''
    thumbnail_size: int = field(default=160, metadata=bounds(0, 1024, runtime=True))
    max_thumbnails: int = field(default=256, metadata=bounds(1, runtime=True))

    def __post_init__(self) -> None:
        _check_fields(self)


def split_settings(settings: dict[str, Any]) -> tuple[MemoryConfig, EngineConfig]:
    """
    Build both configs from one flat mapping of field names to values.

    Raises:
        ValueError: a name that is a field of neither config, or a value that fails a
            config's check (the message names the field).
    """
    memory_names = {f.name for f in fields(MemoryConfig)}
    engine_names = {f.name for f in fields(EngineConfig)}
    unknown = sorted(set(settings) - memory_names - engine_names)
    if unknown:
        raise ValueError(
            f'unknown setting(s) {", ".join(unknown)}; '
            f'known: {", ".join(sorted(memory_names | engine_names))}'
        )
    memory = MemoryConfig(**{k: v for k, v in settings.items() if k in memory_names})
    engine = EngineConfig(**{k: v for k, v in settings.items() if k in engine_names})
    return memory, engine


def field_docs(cls: type) -> dict[str, str]:
    """Per-field descriptions parsed from a config class's ``Attributes:`` docstring."""
    doc = cls.__doc__ or ''
    docs: dict[str, str] = {}
    current = ''
    for line in doc.split('Attributes:', 1)[-1].splitlines():
        stripped = line.strip()
        head, sep, rest = stripped.partition(':')
        if sep and head in {f.name for f in fields(cls)}:
            current = head
            docs[current] = rest.strip()
        elif current and stripped:
            docs[current] += ' ' + stripped
    return docs


def add_arguments(
    parser: argparse.ArgumentParser, *classes: type, exclude: tuple[str, ...] = ()
) -> None:
    """
    Add one ``--field-name`` option per field of the config ``classes`` (for CLIs).

    Types, defaults, choices and help come from the dataclasses, so every knob is defined
    once. Options default to None (= the dataclass default); :func:`settings_from_args`
    keeps only those given.
    """
    for cls in classes:
        docs = field_docs(cls)
        group = parser.add_argument_group(cls.__name__)
        for f in fields(cls):
            if f.name in exclude:
                continue
            group.add_argument(
                '--' + f.name.replace('_', '-'),
                dest=f.name,
                type=type(f.default),
                choices=f.metadata.get('choices'),
                default=None,
                help=f'{docs.get(f.name, "").replace("``", "`")} (default: {f.default!r})',
            )


def settings_from_args(args: argparse.Namespace, *classes: type) -> dict[str, Any]:
    """Return the config fields of ``classes`` that were given on the command line."""
    names = {f.name for cls in classes for f in fields(cls)}
    return {
        name: value for name, value in vars(args).items() if name in names and value is not None
    }


def cache_dir(*parts: str) -> Path:
    """
    Return a directory under the package cache, created if missing.

    The root is ``$ROS2_LIVEVLM_CACHE`` if set, else ``$XDG_CACHE_HOME/ros2_livevlm``
    (``~/.cache/ros2_livevlm``). Generated models and built engines live there, never in
    the working directory.
    """
    root = (
        os.environ.get('ROS2_LIVEVLM_CACHE')
        or Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'ros2_livevlm'
    )
    path = Path(root).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def staged_directory(target: str | Path) -> Iterator[Path]:
    """
    Build a directory beside ``target`` and move it into place only when complete.

    The block writes into a temporary sibling (yielded); when the block ends without an
    error the sibling replaces ``target``, otherwise it is removed. A reader never sees half
    a directory; if another process puts ``target`` in place at the same moment, theirs is
    kept. For generated checkpoints, exported models and sample bags.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another process renamed its copy into place first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """
    Write a file beside ``target`` and move it into place only when complete and on disk.

    The block writes the yielded temporary path (a sibling of ``target``, mode 0600). When
    the block ends without an error the file is fsynced, renamed over ``target``
    (``os.replace``, atomic on POSIX) and the directory is fsynced, so after a crash or
    power loss ``target`` is either the previous file or the new one, never a mix. On an
    error the temporary file is removed and ``target`` is untouched. A process killed
    inside the block may leave a ``.<name>.*`` sibling behind, never a damaged ``target``.

    Raises:
        OSError: the directory is not writable, the disk is full, or the rename failed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f'.{target.name}.', dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        _fsync(staging)
        os.replace(staging, target)
        _fsync(target.parent)
    finally:
        staging.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_atomic(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through :func:`atomic_file` (never half a file)."""
    with atomic_file(target) as staging:
        staging.write_bytes(data)


__all__ = [
    'POLICIES',
    'MemoryConfig',
    'EngineConfig',
    'split_settings',
    'field_docs',
    'choices',
    'bounds',
    'check_value',
    'add_arguments',
    'settings_from_args',
    'cache_dir',
    'staged_directory',
    'atomic_file',
    'write_atomic',
]

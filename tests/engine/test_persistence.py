# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Memory files: save, restore in a freshly loaded engine, go on as if never stopped; refusals."""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros2_livevlm.config import POLICIES
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.memory.policies import LiveVLMPolicy
from ros2_livevlm.models import make_tiny_checkpoint
from ros2_livevlm.persistence import load_memories
from ros2_livevlm.persistence import MemoryFileError
from ros2_livevlm.persistence import save_memories
from safetensors import safe_open
from safetensors.torch import save_file
import torch


SETTINGS = {
    'frames_per_clip': 4,
    'budget_tokens': 48,
    'short_term_frames': 1,
    'observation_tokens': 16,
    'page_size': 8,
}
"""16 tokens per frame: a budget of 3 frames, binding after the second clip."""

QUESTIONS = ('What did the robot see on the table?', 'Is there a cat?')


@pytest.fixture(scope='module', autouse=True)
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Model fingerprints are memoized in a cache of this module's own."""
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('ROS2_LIVEVLM_CACHE', str(root))
        yield root


@pytest.fixture(scope='module')
def source(tiny_path: Path) -> StreamingVLM:
    """Return the engine (and model) that streams and saves."""
    return StreamingVLM.from_pretrained(tiny_path, **SETTINGS)


@pytest.fixture(scope='module')
def restarted(tiny_path: Path) -> StreamingVLM:
    """Load the same checkpoint again: a process that starts after the save."""
    return StreamingVLM.from_pretrained(tiny_path, **SETTINGS)


def stamps(first: int, count: int) -> np.ndarray:
    return 0.5 * np.arange(first, first + count)


def answers(engine: StreamingVLM) -> list[tuple[list[int], list[tuple[float, float]]]]:
    """Answer tokens and evidence for each question, whole memory and a time window."""
    result = []
    for question in QUESTIONS:
        for window in (None, (1.0, 3.0)):
            answer = engine.ask(question, max_new_tokens=4, time_window=window)
            result.append((answer.token_ids, answer.evidence))
    return result


def snapshot(engine: StreamingVLM) -> dict[str, Any]:
    """Deep-copy the engine's state (tensors cloned, NaN stamps made comparable)."""

    def copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().clone().nan_to_num(-1.0)
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value

    return copy(engine.state())


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize('policy', POLICIES)
def test_restored_memory_answers_and_streams_as_if_never_stopped(
    source: StreamingVLM, restarted: StreamingVLM, stream, tmp_path: Path, policy: str
) -> None:
    engine = source.new_stream(policy=policy)
    frames = stream(20)
    engine.ingest(frames[:14], stamps(0, 14))  # three clips and two buffered frames
    before = answers(engine)
    path = tmp_path / 'memory.safetensors'
    info = engine.save(path)
    assert info.names == ('default',) and info.num_bytes == path.stat().st_size

    fresh = restarted.new_stream(policy=policy)
    fresh.load(path)
    assert_same(snapshot(fresh), snapshot(engine))
    assert answers(fresh) == before
    saved, loaded = engine.stats(), fresh.stats()
    assert (loaded.frames_ingested, loaded.frames_pending, loaded.clips_prefilled) == (14, 2, 3)
    assert (loaded.newest_stamp, loaded.kv_bytes) == (saved.newest_stamp, saved.kv_bytes)

    for either in (engine, fresh):  # the buffered frames complete the same clip in both
        assert either.ingest(frames[14:], stamps(14, 6)) == 2
    assert_same(snapshot(fresh), snapshot(engine))
    assert answers(fresh) == answers(engine)


def test_several_cameras_in_one_file_load_all_or_none(
    source: StreamingVLM, restarted: StreamingVLM, stream, tmp_path: Path
) -> None:
    front, rear = source.new_stream(), source.new_stream(policy='full')
    front.ingest(stream(8), stamps(0, 8))
    rear.ingest(stream(12, seed=1), stamps(0, 12))
    path = tmp_path / 'cameras.safetensors'
    assert save_memories({'front': front, 'rear': rear}, path).names == ('front', 'rear')

    new_front, new_rear = restarted.new_stream(), restarted.new_stream(policy='full')
    load_memories(path, {'rear': new_rear})  # one camera of the file
    assert_same(snapshot(new_rear), snapshot(rear))
    with pytest.raises(MemoryFileError, match="no memory named 'side'.*'front', 'rear'") as error:
        load_memories(path, {'side': new_front})
    assert error.value.reason == 'unknown_memory'

    untouched = snapshot(new_front)
    wrong_rear = restarted.new_stream()  # livevlm: the rear memory was made by `full`
    with pytest.raises(MemoryFileError, match="policy='full' \\(engine: 'livevlm'\\)"):
        load_memories(path, {'front': new_front, 'rear': wrong_rear})
    assert_same(snapshot(new_front), untouched)  # front was compatible, yet not loaded
    load_memories(path, {'front': new_front, 'rear': new_rear})
    assert_same(snapshot(new_front), snapshot(front))


def test_a_crash_before_the_rename_leaves_the_previous_file(
    source: StreamingVLM, restarted: StreamingVLM, stream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = source.new_stream()
    engine.ingest(stream(8), stamps(0, 8))
    path = tmp_path / 'memory.safetensors'
    engine.save(path)
    saved = snapshot(engine)
    engine.ingest(stream(8, seed=2), stamps(8, 8))

    def crash(src: Any, dst: Any) -> None:  # the process dies after writing, before renaming
        raise OSError('simulated crash between write and rename')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='simulated crash'):
        engine.save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ['memory.safetensors']
    fresh = restarted.new_stream()
    fresh.load(path)
    assert_same(snapshot(fresh), saved)


def rewrite(path: Path, edit) -> None:
    """Rewrite a memory file with ``edit(index)`` applied and the index checksum renewed."""
    with safe_open(str(path), framework='pt') as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    index = json.loads(metadata['ros2_livevlm.index'])
    edit(index)
    text = json.dumps(index)
    metadata['ros2_livevlm.index'] = text
    metadata['ros2_livevlm.index_sha256'] = hashlib.sha256(text.encode()).hexdigest()
    save_file(tensors, str(path), metadata=metadata)


def flip_bit_in_tensor(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], 'little')
    data[8 + header_len + (len(data) - 8 - header_len) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def future_version(path: Path) -> None:
    rewrite(path, lambda index: index.update(format_version=index['format_version'] + 1))


@pytest.mark.parametrize(
    'damage, reason, message',
    [
        (truncate, 'truncated', 'is truncated'),
        (flip_bit_in_tensor, 'corrupt', r'tensor m0/\S+ fails its SHA-256 check'),
        (future_version, 'newer_format', 'format version 2; .* reads up to version 1'),
        (lambda path: path.unlink(), 'missing', 'No such file'),
    ],
    ids=['truncated', 'bit-flip', 'future-version', 'missing'],
)
def test_damaged_files_are_refused_and_the_memory_kept(
    source: StreamingVLM, stream, tmp_path: Path, damage, reason: str, message: str
) -> None:
    engine = source.new_stream()
    engine.ingest(stream(8), stamps(0, 8))
    path = tmp_path / 'memory.safetensors'
    engine.save(path)
    damage(path)
    engine.ingest(stream(4, seed=3), stamps(8, 4))
    kept, kept_answers = snapshot(engine), answers(engine)
    with pytest.raises(MemoryFileError, match=message) as error:
        engine.load(path)
    assert error.value.reason == reason
    assert_same(snapshot(engine), kept)
    assert answers(engine) == kept_answers


@pytest.fixture(scope='module')
def other_model(tmp_path_factory: pytest.TempPathFactory) -> StreamingVLM:
    """Load the same architecture with other weights (another seed)."""
    path = make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny-seed1', seed=1)
    return StreamingVLM.from_pretrained(path, **SETTINGS)


def test_other_models_settings_and_files_are_refused(
    source: StreamingVLM, other_model: StreamingVLM, tiny_path: Path, stream, tmp_path: Path
) -> None:
    engine = source.new_stream()
    engine.ingest(stream(8), stamps(0, 8))
    path = tmp_path / 'memory.safetensors'
    engine.save(path)

    refusals = [
        (other_model, path, 'other_model', 'made by model .* this engine runs'),
        (source.new_stream(budget_tokens=64), path, 'incompatible',
         r'budget_tokens=48 \(engine: 64\).*only retrieval_ratio may differ'),
        (source.new_stream(), tiny_path / 'model.safetensors', 'not_memory_file',
         'without a ros2_livevlm memory index'),
    ]
    for target, file, reason, message in refusals:
        kept = snapshot(target)
        with pytest.raises(MemoryFileError, match=message) as error:
            target.load(file)
        assert error.value.reason == reason
        assert_same(snapshot(target), kept)

    answer_time = source.new_stream(retrieval_ratio=1.0)
    answer_time.load(path)  # settings that only steer answers may differ
    assert answer_time.stats().frames_in_memory == engine.stats().frames_in_memory


def test_stamps_continue_after_a_load(
    source: StreamingVLM, restarted: StreamingVLM, stream, tmp_path: Path
) -> None:
    engine = source.new_stream()
    engine.ingest(stream(6), stamps(0, 6))  # newest stamp 2.5 s
    path = tmp_path / 'memory.safetensors'
    engine.save(path)
    fresh = restarted.new_stream()
    fresh.load(path)
    with pytest.raises(ValueError, match='backwards: 0.000000 s after 2.500000 s'):
        fresh.ingest(stream(1), [0.0])  # a camera clock that restarted
    assert fresh.ingest(stream(2), [2.5, 100.0]) == 1  # later stamps, after a gap, go on
    assert fresh.stats().newest_stamp == 100.0


class RecordingPolicy(LiveVLMPolicy):
    """A policy with state of its own: a tensor, nested lists and a dict (issue 11's kind)."""

    def __init__(self, config: Any, tokens_per_frame: int) -> None:
        super().__init__(config, tokens_per_frame)
        self.kept_per_compaction: list[torch.Tensor] = []
        self.notes: dict[str, Any] = {'compactions': 0}

    def select(self, candidates: Any) -> tuple[torch.Tensor, torch.Tensor]:
        keep, topped_up = super().select(candidates)
        self.kept_per_compaction.append(candidates.positions.gather(1, keep)[:, :4].clone())
        self.notes['compactions'] += 1
        return keep, topped_up

    def state(self) -> dict[str, Any]:
        return {**super().state(), 'kept': self.kept_per_compaction, 'notes': self.notes}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.kept_per_compaction = list(state['kept'])
        self.notes = dict(state['notes'])


def test_new_policy_state_is_saved_without_a_format_change(
    source: StreamingVLM, restarted: StreamingVLM, stream, tmp_path: Path
) -> None:
    engine, fresh = source.new_stream(), restarted.new_stream()
    # injected at the engine boundary
    engine.policy = RecordingPolicy(engine.memory_config, engine.model.tokens_per_frame)
    fresh.policy = RecordingPolicy(fresh.memory_config, fresh.model.tokens_per_frame)
    engine.ingest(stream(16), stamps(0, 16))
    assert engine.policy.notes['compactions'] == 3
    engine.save(tmp_path / 'memory.safetensors')
    fresh.load(tmp_path / 'memory.safetensors')
    assert fresh.policy.notes == {'compactions': 3}
    assert_same(fresh.policy.kept_per_compaction, engine.policy.kept_per_compaction)


def test_save_and_load_wait_for_a_suspended_clip(source: StreamingVLM, stream,
                                                 tmp_path: Path) -> None:
    engine = source.new_stream()
    steps = engine.ingest_iter(stream(4), stamps(0, 4))
    next(steps)  # the clip is encoded, not yet prefilled
    with pytest.raises(RuntimeError, match='suspended'):
        engine.save(tmp_path / 'memory.safetensors')
    for _ in steps:
        pass
    engine.save(tmp_path / 'memory.safetensors')

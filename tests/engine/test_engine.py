# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The streaming engine end to end on a real tiny checkpoint: exactness, budgets, invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros2_livevlm.engine import StreamingVLM
import torch


QUESTION = 'What did the robot see on the table?'


def hf_reference(
    engine: StreamingVLM, frames: np.ndarray, question: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run HF's own forward over the same full prompt: ids ``[1, T]``, pixels, last logits."""
    ids, pixels = engine.offline_inputs(frames, question)
    with torch.no_grad():
        logits = engine.model.hf(input_ids=ids, pixel_values_videos=pixels).logits[0, -1]
    return ids, pixels, logits


@pytest.mark.parametrize(
    'settings',
    [
        {'policy': 'full'},
        {'policy': 'livevlm', 'budget_tokens': 10_000, 'retrieval_ratio': 1.0},
        {'policy': 'full', 'positions': 'original'},
    ],
    ids=['full', 'livevlm-unbounded', 'full-original-positions'],
)
def test_streaming_equals_hf_forward(tiny_path: Path, stream, settings: dict) -> None:
    engine = StreamingVLM.from_pretrained(
        tiny_path, frames_per_clip=2, short_term_frames=1, **settings
    )
    frames = stream(7)
    assert engine.ingest(frames, [0.5 * i for i in range(7)]) == 3  # three full clips ...
    assert engine.flush() == 1  # ... and a partial one
    logits = engine.next_token_logits(QUESTION)
    ids, pixels, reference = hf_reference(engine, frames, QUESTION)
    assert (logits - reference).abs().max().item() <= 1e-4
    answer = engine.ask(QUESTION, max_new_tokens=6)
    with torch.no_grad():
        generated = engine.model.hf.generate(
            input_ids=ids, pixel_values_videos=pixels, max_new_tokens=6, do_sample=False
        )[0, ids.shape[1]:].tolist()
    stop = next(
        (i for i, t in enumerate(generated) if t in engine.model.stop_token_ids), len(generated)
    )
    assert answer.token_ids == generated[:stop]


def test_retrieval_ratio_one_equals_no_retrieval(tiny_path: Path, stream) -> None:
    settings = {
        'frames_per_clip': 4,
        'budget_tokens': 96,
        'observation_tokens': 32,
        'page_size': 8,
    }
    livevlm = StreamingVLM.from_pretrained(
        tiny_path, policy='livevlm', retrieval_ratio=1.0, **settings
    )
    vsb = livevlm.new_stream(policy='vsb')
    frames, stamps = stream(24), np.arange(24) * 0.25
    livevlm.ingest(frames, stamps)
    vsb.ingest(frames, stamps)
    assert livevlm.stats().tokens_long_term == 96  # the budget is binding
    torch.testing.assert_close(
        livevlm.next_token_logits(QUESTION), vsb.next_token_logits(QUESTION), rtol=0, atol=0
    )


@pytest.mark.parametrize(
    'policy, settings',
    [('recent_frames', {}), ('simplestream', {}), ('window', {}), ('vsb', {}),
     ('vsb', {'bucket_by': 'candidate'}), ('livevlm', {}),
     ('livevlm', {'retrieval': 'clusters', 'cluster_tokens': 12})],
    ids=['recent_frames', 'simplestream', 'window', 'vsb-stream', 'vsb-candidate', 'livevlm',
         'livevlm-clusters'],
)
def test_budget_holds_and_tokens_stay_in_time_order(
    tiny_path: Path, stream, policy: str, settings: dict
) -> None:
    engine = StreamingVLM.from_pretrained(
        tiny_path,
        policy=policy,
        frames_per_clip=3,
        budget_tokens=100,
        short_term_frames=2,
        observation_tokens=16,
        page_size=8,
        **settings,
    )
    budget = 32 if policy == 'simplestream' else 100  # SimpleStream: 4 frames in all
    for clip in range(12):
        engine.ingest(stream(3, seed=clip), [clip + 0.1 * i for i in range(3)])
        stats = engine.stats()
        assert stats.tokens_long_term <= budget == stats.budget_tokens
        assert stats.tokens_short_term == min(32, 48 * (clip + 1))
        memory = engine.memory
        assert bool((memory.pos[:, 1:] > memory.pos[:, :-1]).all())  # time order, every layer
        assert bool(
            (memory.stamp[:, memory.num_init + 1:] >= memory.stamp[:, memory.num_init:-1]).all()
        )
    if policy in ('vsb', 'livevlm', 'window', 'simplestream'):
        assert engine.stats().tokens_long_term == budget  # exact budget
    assert engine.stats().frames_ingested == 36
    if settings.get('retrieval') == 'clusters':  # every long-term token in a live cluster
        memory = engine.memory
        labels = memory.label[:, :, memory.long_term]
        assert bool((labels >= 0).all())
        assert int((memory.cluster_size > 0).sum(dim=2).max()) == memory.cluster_size.shape[2]
        sizes = torch.zeros_like(memory.cluster_size).scatter_add_(
            2, labels, torch.ones_like(labels)
        )
        assert torch.equal(sizes, memory.cluster_size)


def test_ask_leaves_memory_bitwise_identical(tiny_path: Path, stream) -> None:
    engine = StreamingVLM.from_pretrained(
        tiny_path, frames_per_clip=4, budget_tokens=64, observation_tokens=16, page_size=8
    )
    engine.ingest(stream(16), np.arange(16) * 0.1)
    before = {
        k: v.clone() if isinstance(v, torch.Tensor) else v
        for k, v in engine.memory.state().items()
    }
    engine.ask(QUESTION, max_new_tokens=5)
    engine.ask(QUESTION, max_new_tokens=5, time_window=(0.0, 0.5))
    after = engine.memory.state()
    for name, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value.nan_to_num(-1.0), after[name].nan_to_num(-1.0)), name
        else:
            assert value == after[name], name


def test_time_window_excludes_pages_outside_it(tiny_path: Path, stream) -> None:
    engine = StreamingVLM.from_pretrained(
        tiny_path,
        policy='full',
        frames_per_clip=4,
        short_term_frames=1,
        page_size=16,
        retrieval_ratio=1.0,
    )
    engine.ingest(stream(20), np.arange(20, dtype=float))  # one page per frame
    everything = engine.ask(QUESTION, max_new_tokens=2)
    windowed = engine.ask(QUESTION, max_new_tokens=2, time_window=(4.0, 7.0))
    assert (
        windowed.tokens_attended == everything.tokens_attended - 15 * 16
    )  # 4 of 19 long-term frames
    for start, end in windowed.evidence:
        assert 4.0 <= start <= end <= 7.0
    outside = engine.ask(QUESTION, max_new_tokens=2, time_window=(100.0, 200.0))
    assert outside.evidence == [(19.0, 19.0)]  # only the short-term window (the present) is left


def test_interleaved_ask_during_prefill_and_new_stream(tiny_path: Path, stream) -> None:
    engine = StreamingVLM.from_pretrained(tiny_path, frames_per_clip=4)
    engine.ingest(stream(4), [0.0, 0.1, 0.2, 0.3])
    before = engine.next_token_logits(QUESTION)
    steps = 0
    for _ in engine.ingest_iter(stream(4, seed=1), [0.4, 0.5, 0.6, 0.7]):
        steps += 1
        torch.testing.assert_close(engine.next_token_logits(QUESTION), before, rtol=0, atol=0)
    assert steps == 1 + engine.model.num_layers  # encoder + one step per layer
    assert engine.stats().frames_in_memory == 8
    other = engine.new_stream()
    assert other.model is engine.model and other.stats().frames_ingested == 0
    engine.reset()
    assert engine.stats().frames_in_memory == 0 and engine.stats().tokens_init > 0


def test_streaming_answer_and_cancel(tiny_path: Path, stream) -> None:
    engine = StreamingVLM.from_pretrained(tiny_path, frames_per_clip=2)
    engine.ingest(stream(4), [0.0, 1.0, 2.0, 3.0])
    seen: list[tuple[int, str]] = []
    answer = engine.ask(QUESTION, max_new_tokens=6, on_token=lambda t, d: seen.append((t, d)))
    assert [t for t, _ in seen] == answer.token_ids and ''.join(d for _, d in seen) == answer.text
    assert 0 < answer.ttft_s <= answer.total_s and answer.tokens_attended > 64
    cancelled = engine.ask(QUESTION, max_new_tokens=6, on_token=lambda t, d: False)
    assert cancelled.stop_reason == 'cancelled' and len(cancelled.token_ids) <= 1


@pytest.mark.parametrize(
    'frames, stamps, message',
    [
        (np.zeros((2, 8, 8, 3), np.float32), [0, 1], 'uint8'),
        (np.zeros((2, 8, 8), np.uint8), [0, 1], r'\[N, H, W, 3\]'),
        (np.zeros((2, 0, 8, 3), np.uint8), [0, 1], 'empty'),
        (np.zeros((2, 8, 8, 3), np.uint8), [0], 'stamps'),
        (np.zeros((2, 8, 8, 3), np.uint8), [1.0, 0.5], 'backwards'),
        (np.zeros((1, 8, 8, 3), np.uint8), [float('nan')], 'finite'),
    ],
)
def test_bad_frames_raise_value_error(tiny_path: Path, frames, stamps, message: str) -> None:
    engine = StreamingVLM.from_pretrained(tiny_path)
    with pytest.raises(ValueError, match=message):
        engine.ingest(frames, stamps)
    assert engine.stats().frames_ingested == 0


def test_bad_questions_and_settings_raise_value_error(tiny_path: Path) -> None:
    engine = StreamingVLM.from_pretrained(tiny_path)
    engine.ingest(np.zeros((1, 8, 8, 3), np.uint8), [5.0])
    with pytest.raises(ValueError, match='backwards'):
        engine.ingest(np.zeros((1, 8, 8, 3), np.uint8), [4.0])
    for bad in ('', '   '):
        with pytest.raises(ValueError, match='non-empty'):
            engine.ask(bad)
    with pytest.raises(ValueError, match='max_new_tokens'):
        engine.ask(QUESTION, max_new_tokens=0)
    with pytest.raises(ValueError, match='time_window'):
        engine.ask(QUESTION, time_window=(3.0, 1.0))
    with pytest.raises(ValueError, match='budget_tokenz'):
        StreamingVLM.from_pretrained(tiny_path, budget_tokenz=3)
    with pytest.raises(ValueError, match='policy'):
        StreamingVLM.from_pretrained(tiny_path, policy='lru')

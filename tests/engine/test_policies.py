# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The peers and the retrieval units through the engine: limits, VSB survival, state, offload."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.memory.kernels import TORCH_KERNELS
import torch


QUESTION = 'What did the robot see first?'
SETTINGS = {'frames_per_clip': 4, 'short_term_frames': 1, 'observation_tokens': 16,
            'page_size': 8, 'cluster_tokens': 12}


@pytest.fixture(scope='module')
def frames(stream) -> tuple[np.ndarray, np.ndarray]:
    """Twenty frames of photos (320 video tokens) and their stamps, s."""
    return stream(20), np.arange(20) * 0.5


def streamed(tiny_path: Path, frames, **settings) -> StreamingVLM:
    engine = StreamingVLM.from_pretrained(tiny_path, **{**SETTINGS, **settings})
    engine.ingest(*frames)
    return engine


@pytest.mark.parametrize('policy', ['rekv', 'clusterkv'])
def test_recall_of_everything_equals_full(tiny_path: Path, frames, policy: str) -> None:
    full = streamed(tiny_path, frames, policy='full')
    # a budget above the stream: ReKV's local window and its k frames are all frames,
    # ClusterKV's token budget is every long-term token
    peer = full.new_stream(policy=policy, budget_tokens=10_000)
    peer.ingest(*frames)
    assert peer.stats().tokens_long_term == full.stats().tokens_long_term == 19 * 16
    torch.testing.assert_close(peer.next_token_logits(QUESTION), full.next_token_logits(QUESTION),
                               rtol=0, atol=1e-5 if policy == 'clusterkv' else 0)
    assert peer.ask(QUESTION, max_new_tokens=4).token_ids == full.ask(
        QUESTION, max_new_tokens=4).token_ids


def test_rekv_streams_through_a_window_and_recalls_whole_frames(tiny_path: Path, frames) -> None:
    rekv = streamed(tiny_path, frames, policy='rekv', budget_tokens=40)  # 2 frames of 16
    full = rekv.new_stream(policy='full')
    full.ingest(*frames)
    assert rekv.stats().tokens_long_term == 19 * 16  # every frame kept
    assert not torch.equal(rekv.memory.k, full.memory.k)  # later clips saw only the window
    assert rekv.memory.frame_keys.shape[2] == 19  # one mean key per long-term frame
    answer = rekv.ask(QUESTION, max_new_tokens=2)
    prompt = answer.tokens_attended - rekv.memory.num_init - 16 - 2 * 16
    assert prompt == len(rekv.model.question_ids(QUESTION)[0]) + 1  # + the newline
    for start, end in answer.evidence:  # the recalled frames, whole
        assert end - start in (0.0, 0.5)


def test_planted_high_attention_token_survives_stream_bucketing(tiny_path: Path, stream) -> None:
    """A token every observation window attends to most is kept, while VSB spreads the rest."""
    engine = StreamingVLM.from_pretrained(
        tiny_path, policy='vsb', bucket_by='stream', frames_per_clip=4, budget_tokens=48,
        short_term_frames=1, observation_tokens=16)
    planted = engine.memory.num_init + 16 + 5  # original position: frame 1, token 5
    calls = []

    def vsb_scores(q_obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Score like the model, with the planted token the most attended key of the clip."""
        layer = len(calls) % engine.model.num_layers
        calls.append(layer)
        scores = TORCH_KERNELS.vsb_scores(q_obs, k)
        memory = engine.memory
        where = (memory.pos[layer] == planted).nonzero().flatten()
        if where.numel():
            scores[where] = scores.max() + 1.0
        return scores

    engine.kernels = replace(TORCH_KERNELS, vsb_scores=vsb_scores)
    for clip in range(10):
        engine.ingest(stream(4, seed=clip), np.arange(4) + 4.0 * clip)
    memory = engine.memory
    assert calls and memory.num_long_term == 48
    assert bool((memory.pos == planted).any(dim=1).all())  # kept in every layer
    frames = memory.frame[:, memory.long_term]
    for clip in range(9):  # stream buckets: every earlier clip kept tokens in every layer
        in_clip = (frames >= 4 * clip) & (frames < 4 * clip + 4)
        assert bool(in_clip.any(dim=1).all()), clip


@pytest.mark.parametrize('settings', [
    {'policy': 'livevlm', 'budget_tokens': 96, 'retrieval': 'clusters'},
    {'policy': 'vsb', 'budget_tokens': 96, 'bucket_by': 'candidate'},
    {'policy': 'rekv', 'budget_tokens': 40},
], ids=['livevlm-clusters', 'vsb', 'rekv'])
def test_state_round_trip_restores_the_memory(tiny_path: Path, frames, settings: dict) -> None:
    engine = streamed(tiny_path, frames, **settings)
    state = {k: v.clone() if isinstance(v, torch.Tensor) else v
             for k, v in engine.memory.state().items()}
    restored = engine.new_stream()
    restored.memory.load_state(state)
    for name, value in engine.memory.state().items():
        other = restored.memory.state()[name]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value.nan_to_num(-1.0), other.nan_to_num(-1.0)), name
        else:
            assert value == other, name
    assert restored.stats().tokens_long_term == engine.stats().tokens_long_term
    assert restored.stats().vsb_topped_up_tokens == engine.stats().vsb_topped_up_tokens
    torch.testing.assert_close(restored.next_token_logits(QUESTION),
                               engine.next_token_logits(QUESTION), rtol=0, atol=0)
    with pytest.raises(ValueError, match='lacks'):
        restored.memory.load_state({'k': state['k']})


class HostOffloadEngine(StreamingVLM):
    """ReKV's GPU offload, forced on a CPU: the long-term K/V beyond the window move away."""

    def _offload_device(self) -> torch.device | None:
        return torch.device('cpu') if self.policy.stream_window is not None else None


def test_rekv_offload_answers_like_resident_memory(tiny_path: Path, frames) -> None:
    resident = streamed(tiny_path, frames, policy='rekv', budget_tokens=40)
    offloaded = HostOffloadEngine(resident.model, resident.memory_config,
                                  resident.engine_config)
    offloaded.ingest(*frames)
    memory = offloaded.memory
    assert memory.num_offloaded == 19 * 16 - 40 and memory.k.shape[2] < memory.num_tokens
    assert offloaded.stats().kv_bytes == resident.stats().kv_bytes
    torch.testing.assert_close(offloaded.next_token_logits(QUESTION),
                               resident.next_token_logits(QUESTION), rtol=0, atol=0)
    window = (1.0, 4.0)
    assert offloaded.ask(QUESTION, max_new_tokens=3, time_window=window).token_ids == (
        resident.ask(QUESTION, max_new_tokens=3, time_window=window).token_ids)

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The engine with ``kernels="triton"`` (Triton's CPU interpreter) against ``kernels="torch"``.

Same tiny real checkpoint, same photo stream: VSB must keep the same tokens, PaR must
retrieve the same pages, and the paged decode attention must give the same logits and the
same greedy answer as the gathered torch path.
"""

from __future__ import annotations

from dataclasses import replace
import os
from pathlib import Path
import subprocess
import sys


# Triton reads it when the kernels are defined, so before importing them
os.environ['TRITON_INTERPRET'] = '1'

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ros2_livevlm.engine import StreamingVLM  # noqa: E402
from ros2_livevlm.memory.attention import paged_attention  # noqa: E402
from ros2_livevlm.memory.kernels import TORCH_KERNELS  # noqa: E402
from ros2_livevlm.models import make_tiny_checkpoint  # noqa: E402
from ros2_livevlm.reference.scenes import scene_image  # noqa: E402
from ros2_livevlm.reference.scenes import SCENE_NAMES  # noqa: E402
import torch  # noqa: E402


QUESTION = 'What did the robot see on the table?'
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a tiny random LLaVA-OneVision with save_pretrained (16 tokens/frame, GQA 4:2)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny')


def photo_stream(num_frames: int) -> np.ndarray:
    """Real photos (scikit-image) cycled, uint8 ``[N, 64, 64, 3]``."""
    photos = [scene_image(name)[:64, :64] for name in SCENE_NAMES[:5]]
    return np.stack([photos[i % len(photos)] for i in range(num_frames)])


@pytest.mark.parametrize('positions', ['compacted', 'original'])
def test_triton_kernels_answer_like_torch(tiny_path: Path, positions: str) -> None:
    settings = {
        'policy': 'livevlm',
        'frames_per_clip': 4,
        'budget_tokens': 96,
        'observation_tokens': 32,
        'page_size': 8,
        'positions': positions,
    }
    reference = StreamingVLM.from_pretrained(tiny_path, **settings)
    engine = StreamingVLM.from_pretrained(tiny_path, kernels='triton', **settings)
    assert engine.kernels.name == 'triton' and engine.kernels.paged_attention is not None
    frames, stamps = photo_stream(16), np.arange(16) * 0.5
    reference.ingest(frames, stamps)
    engine.ingest(frames, stamps)
    assert engine.stats().tokens_long_term == 96  # the budget binds: VSB scored and chose
    for name in ('pos', 'frame', 'k', 'v'):  # VSB kept the same tokens in every layer
        assert torch.equal(getattr(engine.memory, name), getattr(reference.memory, name)), name
    torch.testing.assert_close(
        engine.next_token_logits(QUESTION),
        reference.next_token_logits(QUESTION),
        atol=1e-4,
        rtol=0,
    )
    for window in (None, (1.0, 4.0)):
        got = engine.ask(QUESTION, max_new_tokens=4, time_window=window)
        expected = reference.ask(QUESTION, max_new_tokens=4, time_window=window)
        assert got.token_ids == expected.token_ids
        assert (
            got.evidence == expected.evidence and got.tokens_attended == expected.tokens_attended
        )


def test_paged_answer_path_with_the_torch_reference_is_the_gathered_path_bitwise(
    tiny_path: Path,
) -> None:
    """
    The answer context's page tables and positions are exact.

    With the torch reference as the paged kernel, answers equal the gathered torch path bit
    for bit (original positions, time window).
    """
    engine = StreamingVLM.from_pretrained(
        tiny_path,
        policy='livevlm',
        frames_per_clip=4,
        budget_tokens=96,
        observation_tokens=32,
        page_size=8,
        positions='original',
    )
    engine.ingest(photo_stream(16), np.arange(16) * 0.5)
    gathered = [engine.ask(QUESTION, max_new_tokens=3, time_window=w) for w in (None, (1.0, 4.0))]
    logits = engine.next_token_logits(QUESTION)
    engine.kernels = replace(TORCH_KERNELS, name='torch-paged', paged_attention=paged_attention)
    paged = [engine.ask(QUESTION, max_new_tokens=3, time_window=w) for w in (None, (1.0, 4.0))]
    assert torch.equal(engine.next_token_logits(QUESTION), logits)
    assert [a.token_ids for a in paged] == [a.token_ids for a in gathered]


def test_triton_kernels_need_cuda_or_the_interpreter() -> None:
    code = (
        'from ros2_livevlm.backends import memory_kernels\n'
        'from ros2_livevlm.config import EngineConfig\n'
        "memory_kernels(EngineConfig(kernels='triton', device='cpu'))\n"
    )
    env = {**os.environ, 'TRITON_INTERPRET': '0', 'PYTHONPATH': str(REPO)}
    result = subprocess.run(
        [sys.executable, '-c', code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert (
        "kernels=triton runs on CUDA devices, not device='cpu'; set kernels: torch"
        in result.stderr
    )

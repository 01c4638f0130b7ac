# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Frame thumbnails: bounded like the memory, shown as an answer's evidence, saved with it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
import pytest
from ros2_livevlm.engine import StreamingVLM

SETTINGS = {'policy': 'recent_frames', 'frames_per_clip': 2, 'budget_tokens': 32,
            'short_term_frames': 1, 'observation_tokens': 8,
            'thumbnail_size': 64}
"""16 tokens per frame: 2 long-term frames + 1 short-term frame stay in memory."""


@pytest.fixture(scope='module')
def engine(tiny_path: Path, photos: np.ndarray) -> StreamingVLM:
    """Stream the 6 photos at 1 s apart."""
    vlm = StreamingVLM.from_pretrained(tiny_path, **SETTINGS)
    vlm.ingest(photos, [float(i) for i in range(len(photos))])
    return vlm


def test_thumbnails_are_kept_only_for_frames_in_memory(engine, photos):
    assert engine.memory.frame_ids() == {3, 4, 5}
    kept = engine.thumbnails.within([(0.0, 10.0)], limit=10)
    assert [(t.frame, t.stamp) for t in kept] == [(3, 3.0), (4, 4.0), (5, 5.0)]
    for thumbnail in kept:
        image = Image.open(io.BytesIO(thumbnail.jpeg))
        assert image.format == 'JPEG' and image.size == (64, 48)  # 128x96, longest side 64
        small = np.asarray(Image.fromarray(photos[thumbnail.frame]).resize((64, 48)), float)
        assert np.abs(np.asarray(image, float) - small).mean() < 12  # the frame itself
    assert engine.stats().thumbnail_bytes == sum(len(t.jpeg) for t in kept)


def test_at_most_max_thumbnails_stay_those_of_the_frames_holding_most_tokens(
    tiny_path: Path, photos: np.ndarray
) -> None:
    vlm = StreamingVLM.from_pretrained(tiny_path, **{**SETTINGS, 'policy': 'vsb',
                                                     'max_thumbnails': 2})
    frames = np.concatenate([photos, photos[:1]])  # 7 frames: the last one waits for a clip
    vlm.ingest(frames, [float(i) for i in range(len(frames))])
    tokens = vlm.memory.frame_tokens()
    assert len(tokens) > 2  # VSB keeps tokens of more frames than the cap
    most = sorted(tokens, key=lambda f: (tokens[f], f), reverse=True)[:2]
    kept = vlm.thumbnails.within([(0.0, 10.0)], limit=10)
    assert sorted(t.frame for t in kept) == sorted([*most, 6])


def test_answers_carry_the_thumbnails_of_their_evidence(engine):
    answer = engine.ask('What is on the table?', max_new_tokens=2)
    assert answer.evidence and answer.evidence_images
    for image in answer.evidence_images:
        assert any(t0 <= image.stamp <= t1 for t0, t1 in answer.evidence)
    engine.retune(thumbnail_size=0, max_new_tokens=1)
    assert engine.ask('Anything?').token_ids.__len__() <= 1
    engine.retune(thumbnail_size=64, max_new_tokens=128)
    with pytest.raises(ValueError, match='budget_tokens cannot change while streaming'):
        engine.retune(budget_tokens=10)
    with pytest.raises(ValueError, match='retrieval_ratio=0.0 must be > 0.0'):
        engine.retune(retrieval_ratio=0.0)


def test_thumbnails_survive_save_and_load(engine, tiny_path, tmp_path, monkeypatch):
    monkeypatch.setenv('ROS2_LIVEVLM_CACHE', str(tmp_path / 'cache'))
    engine.save(tmp_path / 'memory.safetensors')
    restored = StreamingVLM.from_pretrained(tiny_path, **SETTINGS)
    restored.load(tmp_path / 'memory.safetensors')
    spans = [(0.0, 10.0)]
    assert restored.thumbnails.within(spans, 10) == engine.thumbnails.within(spans, 10)
    restored.reset()
    assert len(restored.thumbnails) == 0

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The committed reference model, loaded by the normal loader, answers on a real-photo stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ros2_livevlm.checkpoints import REFERENCE
from ros2_livevlm.checkpoints import resolve_model_path
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.reference import CHECKPOINT_DIR
from ros2_livevlm.reference.task import ANSWERS
from ros2_livevlm.reference.task import render_run

# A camera tour: the cat for 5 s, the rocket for 4 s, the coffee for 4 s, the moon for 3 s.
TOUR = (('cat', 5), ('rocket', 4), ('coffee', 4), ('moon', 3))
QUESTIONS = {
    'What did you see first?': 'cat',
    'What are you looking at now?': 'moon',
    'Did you see a rocket?': 'yes',
    'Have you seen the coffee?': 'yes',
    'Did you see a clock?': 'no',
    'Was the grass shown?': 'no',
}


@pytest.fixture(scope='module')
def tour() -> tuple[np.ndarray, np.ndarray]:
    """Render :data:`TOUR` from the real photos: uint8 ``[16, 120, 160, 3]`` and stamps (s)."""
    rng = np.random.default_rng(2026)
    frames = np.concatenate([render_run(rng, scene, n, (120, 160)) for scene, n in TOUR])
    return frames, np.arange(len(frames), dtype=np.float64)


def test_reference_resolves_to_the_committed_checkpoint() -> None:
    path = resolve_model_path(REFERENCE)
    assert path == CHECKPOINT_DIR
    assert (path / 'model.safetensors').is_file() and not list(path.glob('*.bin'))
    config = json.loads((path / 'config.json').read_text())
    assert config['model_type'] == 'llava_onevision'
    assert config['vision_config']['model_type'] == 'siglip_vision_model'
    text = config['text_config']
    assert text['model_type'] == 'qwen2'
    assert text['num_key_value_heads'] < text['num_attention_heads']  # GQA


BOUNDED = {'budget_tokens': 128, 'page_size': 16, 'observation_tokens': 32}


@pytest.mark.parametrize('settings', [
    {'policy': 'full'},
    {'policy': 'vsb', **BOUNDED},
    pytest.param({'policy': 'livevlm', **BOUNDED}, marks=pytest.mark.xfail(
        strict=True, reason='PaR at retrieval_ratio 0.4 retrieves 3 of the 8 long-term pages '
        'and misses the coffee\'s ("no"; 0.6 and vsb answer all six): its top span lies in '
        'the asked scene 1.5x as often as a question-blind ranking, not 2x (issue 11)')),
], ids=['full', 'vsb', 'livevlm'])
def test_reference_answers_questions_about_a_real_photo_stream(tour, settings) -> None:
    frames, stamps = tour
    engine = StreamingVLM.from_pretrained(REFERENCE, frames_per_clip=8, **settings)
    assert engine.model.tokens_per_frame == 16
    engine.ingest(frames, stamps)
    assert engine.flush() == 0  # 16 frames = two full clips
    if settings['policy'] != 'full':
        assert engine.stats().tokens_long_term == 128  # the budget binds: 224 candidates
    for question, expected in QUESTIONS.items():
        answer = engine.ask(question, max_new_tokens=4)
        assert answer.text == expected, question
        assert answer.stop_reason == 'eos' and len(answer.token_ids) == 1
        assert answer.text in ANSWERS

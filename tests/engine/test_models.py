# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The backbone loader and the frame preprocessing, on a real tiny HF checkpoint."""

from __future__ import annotations

from pathlib import Path
import shutil

import numpy as np
import pytest
from ros2_livevlm.checkpoints import resolve_model_path
from ros2_livevlm.models import check_model_dir
from ros2_livevlm.models import LlavaOnevision
from ros2_livevlm.models import ModelDirectoryError
import torch


def test_loads_real_architecture(tiny_path: Path) -> None:
    model = LlavaOnevision.from_pretrained(tiny_path)
    assert type(model.hf).__name__ == 'LlavaOnevisionForConditionalGeneration'
    assert model.num_kv_heads < model.num_heads  # GQA
    assert model.tokens_per_frame == 16 and model.frame_size == (64, 64)
    assert model.tokenizer.convert_ids_to_tokens(sorted(model.stop_token_ids)) == [
        '<|endoftext|>',
        '<|im_end|>',
    ]


@pytest.mark.parametrize(
    'remove, message',
    [
        ('config.json', 'config.json'),
        ('model.safetensors', 'safetensors'),
        ('tokenizer.json', 'tokenizer.json'),
        ('preprocessor_config.json', 'preprocessor_config.json'),
    ],
)
def test_incomplete_directory_names_what_is_missing(
    tiny_path: Path, tmp_path: Path, remove: str, message: str
) -> None:
    broken = tmp_path / 'broken'
    shutil.copytree(tiny_path, broken)
    (broken / remove).unlink()
    with pytest.raises(ModelDirectoryError, match=message):
        LlavaOnevision.from_pretrained(broken)


def test_missing_directory_and_wrong_model_type(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelDirectoryError, match='does not exist'):
        resolve_model_path(tmp_path / 'nowhere')
    other = tmp_path / 'other'
    shutil.copytree(tiny_path, other)
    (other / 'config.json').write_text('{"model_type": "llama"}')
    with pytest.raises(ModelDirectoryError, match='llava_onevision'):
        check_model_dir(other)


def test_preprocess_matches_hf_image_processor(tiny_path: Path, photos: np.ndarray) -> None:
    from transformers import AutoImageProcessor

    model = LlavaOnevision.from_pretrained(tiny_path)
    ours = model.preprocess(torch.from_numpy(photos))
    processor = AutoImageProcessor.from_pretrained(tiny_path)
    reference = torch.stack(
        [processor(images=[p], return_tensors='pt')['pixel_values'][0, 0] for p in photos]
    )
    assert ours.shape == reference.shape == (len(photos), 3, 64, 64)
    difference = (ours - reference).abs()
    assert (
        difference.mean() < 2e-3
    )  # bicubic+antialias in torch vs PIL: ~1 level in 255 at most pixels
    assert difference.max() < 0.1


def test_encode_frames_is_hf_video_features(tiny_path: Path, photos: np.ndarray) -> None:
    model = LlavaOnevision.from_pretrained(tiny_path)
    pixels = model.preprocess(torch.from_numpy(photos[:3]))
    tokens = model.encode_frames(pixels)
    assert tokens.shape == (3, 16, model.hidden_size)
    with torch.no_grad():
        video = model.hf.model.get_video_features(pixels[None], return_dict=True).pooler_output[0]
    torch.testing.assert_close(tokens.reshape(-1, model.hidden_size), video[:-1])
    torch.testing.assert_close(model.image_newline, video[-1])

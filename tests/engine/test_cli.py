# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""``livevlm-run`` on real photos (a folder and a video) through a real tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image
import pytest
from ros2_livevlm.cli import main


def test_images_folder_answers_with_evidence(
    tiny_path: Path, photos: np.ndarray, tmp_path: Path, capsys
) -> None:
    for index, photo in enumerate(photos):
        Image.fromarray(photo).save(tmp_path / f'{index:02d}.png')
    code = main(
        [
            '--model-path',
            str(tiny_path),
            '--images',
            str(tmp_path),
            '--fps',
            '2',
            '--frames-per-clip',
            '4',
            '--question',
            'What did you see first?',
            '--question',
            'Is it a cat?',
            '--max-new-tokens',
            '3',
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert 'ingested 6 frames (2 clips)' in out
    assert out.count('evidence: ') == 2 and out.count('Q: ') == 2
    assert 'frames ingested 6, in memory 6' in out


def test_video_is_sampled_by_presentation_time(
    tiny_path: Path, photos: np.ndarray, tmp_path: Path, capsys
) -> None:
    video = tmp_path / 'tour.mp4'
    with av.open(str(video), 'w') as container:
        stream = container.add_stream('mpeg4', rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, 'yuv420p'
        for index in range(30):  # 3 s at 10 Hz
            frame = av.VideoFrame.from_ndarray(photos[index // 5 % len(photos)], format='rgb24')
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert (
        main(
            [
                '--model-path',
                str(tiny_path),
                '--video',
                str(video),
                '--fps',
                '2',
                '--question',
                'What?',
                '--max-new-tokens',
                '2',
            ]
        )
        == 0
    )
    assert 'ingested 6 frames' in capsys.readouterr().out  # 3 s sampled at 2 Hz


def test_bad_inputs_exit_with_a_clear_error(tiny_path: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                '--model-path',
                str(tiny_path),
                '--images',
                str(tmp_path / '*.jpg'),
                '--question',
                'x',
            ]
        )
        == 2
    )
    assert 'no images' in capsys.readouterr().err
    assert (
        main(
            [
                '--model-path',
                str(tmp_path / 'missing'),
                '--images',
                str(tmp_path),
                '--question',
                'x',
            ]
        )
        == 2
    )
    assert 'does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--tiny', '--images', str(tmp_path), '--question', 'x', '--policy', 'lru'])
    with pytest.raises(SystemExit):
        main(['--tiny', '--images', str(tmp_path), '--question', ' '])


def test_unusable_model_path_and_device_are_named(
    tiny_path: Path, tmp_path: Path, capsys
) -> None:
    readme = tmp_path / 'README.md'
    readme.write_text('not a model')
    args = ['--images', str(tmp_path), '--question', 'x']
    assert main(['--model-path', str(readme), *args]) == 2
    assert 'is a file, not a directory' in capsys.readouterr().err
    assert main(['--model-path', str(tiny_path), '--device', 'cuda:99', *args]) == 2
    assert "device='cuda:99'" in capsys.readouterr().err  # no GPU, or fewer than 100


def test_unreadable_image_is_skipped_with_a_warning(
    tiny_path: Path, photos: np.ndarray, tmp_path: Path, capsys
) -> None:
    for index, photo in enumerate(photos[:3]):
        Image.fromarray(photo).save(tmp_path / f'{index:02d}.png')
    (tmp_path / '01b.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
    args = ['--model-path', str(tiny_path), '--images', str(tmp_path), '--question', 'What?']
    assert main([*args, '--max-new-tokens', '2']) == 0
    captured = capsys.readouterr()
    assert 'ingested 3 frames' in captured.out
    assert 'skipping' in captured.err and '01b.jpg' in captured.err


def test_reference_model_gets_its_sized_defaults(photos: np.ndarray, tmp_path: Path, capsys):
    for index, photo in enumerate(photos):
        Image.fromarray(photo).save(tmp_path / f'{index:02d}.png')
    args = ['--model-path', 'reference', '--images', str(tmp_path), '--question', 'What?']
    assert main(args) == 0
    assert '(budget 448)' in capsys.readouterr().out  # ros2_livevlm.reference.MEMORY_SETTINGS
    assert main([*args, '--budget-tokens', '64']) == 0
    assert '(budget 64)' in capsys.readouterr().out

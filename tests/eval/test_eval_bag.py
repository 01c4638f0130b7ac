# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Camera bags written with rosbags and read back, in both storage formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros2_livevlm.eval.bag import bag_info
from ros2_livevlm.eval.bag import BagError
from ros2_livevlm.eval.bag import read_camera
from ros2_livevlm.eval.bag import select_camera
from ros2_livevlm.eval.bag import stamp_seconds
from ros2_livevlm.eval.bag import write_camera_bag
from ros2_livevlm.reference.scenes import render
from ros2_livevlm.reference.scenes import scene_image
from ros2_livevlm.reference.scenes import View
from ros2_livevlm.ros.image import to_rgb


START_NS = 1_700_000_000_123_456_789
PERIOD_NS = 66_666_667  # 15 Hz


def frames(count: int) -> list[tuple[int, np.ndarray]]:
    """Render ``count`` real photos of the cat, panning: RGB uint8 [48, 64, 3] at 15 Hz."""
    image = scene_image('cat')
    return [
        (START_NS + i * PERIOD_NS, render(image, View(0.3 + 0.04 * i, 0.5, 1.5, 1.0), (48, 64)))
        for i in range(count)
    ]


@pytest.mark.parametrize('storage, suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_round_trip(tmp_path: Path, storage: str, suffix: str, encoding: str) -> None:
    written = frames(6)
    bag = tmp_path / 'bag'
    count = write_camera_bag(
        bag,
        written,
        topic='/cam/image_raw',
        frame_id='cam_optical',
        storage=storage,
        encoding=encoding,
        compressed=True,
    )
    assert count == 6
    assert [p.suffix for p in bag.iterdir() if p.name != 'metadata.yaml'] == [suffix]

    info = bag_info(bag)
    assert [(c.topic, c.msgtype, c.count) for c in info.cameras] == [
        ('/cam/image_raw', 'sensor_msgs/msg/Image', 6),
        ('/cam/image_raw/compressed', 'sensor_msgs/msg/CompressedImage', 6),
    ]
    assert (info.start_ns, info.end_ns) == (
        START_NS,
        START_NS + 5 * PERIOD_NS + 1,
    )  # end: one past the last

    raw = list(read_camera(bag, '/cam/image_raw'))
    assert [m.log_ns for m in raw] == [stamp for stamp, _ in written]
    for message, (stamp_ns, rgb) in zip(raw, written):
        msg = message.decode()
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == divmod(stamp_ns, 1_000_000_000)
        assert stamp_seconds(msg) == pytest.approx(stamp_ns * 1e-9, abs=1e-6)
        assert (msg.header.frame_id, msg.encoding, msg.height, msg.width, msg.step) == (
            'cam_optical',
            encoding,
            48,
            64,
            192,
        )
        assert len(msg.data) == 48 * 192 and msg.is_bigendian == 0
        np.testing.assert_array_equal(to_rgb(msg), rgb)

    jpeg = list(read_camera(bag, '/cam/image_raw/compressed'))
    assert [m.log_ns for m in jpeg] == [stamp for stamp, _ in written]
    for message, (_, rgb) in zip(jpeg, written):
        msg = message.decode()
        assert msg.format == 'jpeg' and msg.header.frame_id == 'cam_optical'
        decoded = to_rgb(msg)
        assert decoded.shape == rgb.shape
        assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 6  # JPEG quality 90


def test_camera_selection(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_camera_bag(bag, frames(2), topic='/front/image', frame_id='front', compressed=True)
    info = bag_info(bag)
    with pytest.raises(
        BagError, match='several camera topics.*--topic.*/front/image .*/front/image/compressed'
    ):
        select_camera(info, None)
    assert select_camera(info, '/front/image/compressed').compressed
    with pytest.raises(BagError, match='no topic /rear/image'):
        select_camera(info, '/rear/image')

    single = tmp_path / 'single'
    write_camera_bag(single, frames(2), topic='/front/image', frame_id='front', storage='sqlite3')
    assert select_camera(bag_info(single), None).topic == '/front/image'


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BagError, match='does not exist'):
        bag_info(tmp_path / 'missing')
    (tmp_path / 'not_a_bag').mkdir()
    with pytest.raises(BagError, match='cannot read bag'):
        bag_info(tmp_path / 'not_a_bag')
    with pytest.raises(ValueError, match="storage 'rosbag1'"):
        write_camera_bag(tmp_path / 'x', frames(1), topic='/a', frame_id='a', storage='rosbag1')
    write_camera_bag(tmp_path / 'y', frames(1), topic='/a', frame_id='a')
    with pytest.raises(ValueError, match='already exists'):
        write_camera_bag(tmp_path / 'y', frames(1), topic='/a', frame_id='a')

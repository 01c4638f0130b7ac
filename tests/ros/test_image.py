# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The image conversion, one test per encoding, on real photos (scikit-image's data).

Messages are real ``sensor_msgs`` types, both rclpy's and rosbags' (the conversion is
duck-typed on fields); nothing here needs DDS.
"""

import numpy as np
import pytest
from ros2_livevlm.ros.image import ImageConversionError
from ros2_livevlm.ros.image import to_rgb
from ros_messages import compressed_image
from ros_messages import encoded_bytes
from ros_messages import encoded_photo
from ros_messages import gray
from ros_messages import raw_image
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
from skimage import data as photos


ROSBAGS = get_typestore(Stores.ROS2_HUMBLE)


def _photo() -> np.ndarray:
    """Chelsea the cat, RGB uint8 [300, 450, 3] (even width for YUV 4:2:2)."""
    return photos.chelsea()[:, :450]


@pytest.mark.parametrize('padding', [0, 13])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_color_encodings_exact(encoding, padding):
    rgb = _photo()
    out = to_rgb(encoded_photo(rgb, encoding, padding=padding))
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('padding', [0, 7])
def test_mono8(padding):
    out = to_rgb(encoded_photo(_photo(), 'mono8', padding=padding))
    np.testing.assert_array_equal(out, np.repeat(gray(_photo())[:, :, None], 3, axis=2))


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_honours_byte_order(bigendian):
    out = to_rgb(encoded_photo(_photo(), 'mono16', padding=4, bigendian=bigendian))
    np.testing.assert_array_equal(out, np.repeat(gray(_photo())[:, :, None], 3, axis=2))


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'])
def test_yuv422(encoding):
    rgb = _photo()
    out = to_rgb(encoded_photo(rgb, encoding, padding=6))
    error = np.abs(out.astype(int) - rgb.astype(int))
    # Chroma is shared by pixel pairs, so edges differ; the photo as a whole must match.
    assert error.mean() < 3.0, error.mean()
    assert np.percentile(error, 99) < 40


def test_jpeg_and_png():
    rgb = _photo()
    jpeg = compressed_image(encoded_bytes(rgb, 'JPEG', quality=95), 'jpeg')
    assert np.abs(to_rgb(jpeg).astype(int) - rgb.astype(int)).mean() < 3.0
    png = compressed_image(encoded_bytes(rgb, 'PNG'), 'rgb8; png compressed rgb8')
    np.testing.assert_array_equal(to_rgb(png), rgb)


def test_png_16bit_gray_is_scaled():
    luma = gray(_photo())
    png = compressed_image(encoded_bytes(luma.astype(np.uint16) * 257, 'PNG'), 'png')
    np.testing.assert_array_equal(to_rgb(png), np.repeat(luma[:, :, None], 3, axis=2))


def test_rosbags_messages_convert_alike():
    rgb = photos.astronaut()
    header = ROSBAGS.types['std_msgs/msg/Header'](
        stamp=ROSBAGS.types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='cam')
    raw = ROSBAGS.types['sensor_msgs/msg/Image'](
        header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='bgr8',
        is_bigendian=0, step=rgb.shape[1] * 3,
        data=np.ascontiguousarray(rgb[:, :, ::-1]).reshape(-1))
    np.testing.assert_array_equal(to_rgb(raw), rgb)
    compressed = ROSBAGS.types['sensor_msgs/msg/CompressedImage'](
        header=header, format='png', data=np.frombuffer(encoded_bytes(rgb, 'PNG'), np.uint8))
    np.testing.assert_array_equal(to_rgb(compressed), rgb)


def _raw(**fields):
    msg = raw_image(_photo(), 'rgb8')
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize('msg, reason', [
    (_raw(encoding='32FC1'), 'unsupported encoding'),
    (_raw(encoding='bayer_rggb8'), 'unsupported encoding'),
    (_raw(step=450 * 3 - 1), 'step 1349 is smaller'),
    (_raw(step=450 * 3 + 2), r'expected step \* height'),
    (_raw(height=0, width=0, step=0, data=b''), 'zero-size'),
    (_raw(width=0), 'zero-size'),
    (raw_image(np.zeros((4, 10), np.uint8), 'yuyv', width=5), 'even width'),
])
def test_bad_raw_images_are_rejected(msg, reason):
    with pytest.raises(ImageConversionError, match=reason):
        to_rgb(msg)


@pytest.mark.parametrize('payload, fmt, reason', [
    (encoded_bytes(_photo(), 'JPEG')[:5000], 'jpeg', 'cannot decode'),
    (bytes(range(256)) * 8, 'jpeg', 'cannot decode'),
    (b'', 'jpeg', 'empty'),
    (encoded_bytes(_photo(), 'GIF'), 'gif', 'unsupported compressed format GIF'),
    (encoded_bytes(_photo(), 'PNG'), '16UC1; compressedDepth png', 'depth'),
])
def test_bad_compressed_images_are_rejected(payload, fmt, reason):
    with pytest.raises(ImageConversionError, match=reason):
        to_rgb(compressed_image(payload, fmt))

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The image conversion, one test per encoding, on real photos (scikit-image's data).

Messages are real ``sensor_msgs`` types, both rclpy's and rosbags' (the conversion is
duck-typed on fields); nothing here needs DDS.
"""

import io

from PIL import Image as PILImage
import numpy as np
import pytest
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from skimage import data as photos

from ros2_livevlm.ros.image import ImageConversionError
from ros2_livevlm.ros.image import to_rgb

ROSBAGS = get_typestore(Stores.ROS2_HUMBLE)


def _photo() -> np.ndarray:
    """Chelsea the cat, RGB uint8 [300, 451, 3]; cropped to an even width for YUV."""
    return photos.chelsea()[:, :450]


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(PILImage.fromarray(rgb).convert('L'))


def _image(pixels: np.ndarray, encoding: str, *, padding: int = 0,
           bigendian: bool = False, width: int = 0) -> Image:
    """Build a sensor_msgs/Image of ``pixels`` ([H, W, C] or [H, W]) with row padding."""
    height, width = pixels.shape[0], width or pixels.shape[1]
    rows = pixels.reshape(height, -1).view(np.uint8)
    step = rows.shape[1] + padding
    padded = np.full((height, step), 0xAB, dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=bigendian)
    msg.data = padded.tobytes()
    return msg


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Encode RGB to packed 4:2:2 with the textbook BT.601 video-range matrix."""
    r, g, b = (rgb[:, :, i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u = (u[:, 0::2] + u[:, 1::2]) / 2  # chroma shared by two pixels
    v = (v[:, 0::2] + v[:, 1::2]) / 2
    planes = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2], 'U': u, 'V': v}
    names = ('U', 'Y0', 'V', 'Y1') if order == 'uyvy' else ('Y0', 'U', 'Y1', 'V')
    packed = np.stack([planes[n] for n in names], axis=2)  # (H, W/2, 4)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1)


def _encoded(rgb: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize('padding', [0, 13])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_color_encodings_exact(encoding, padding):
    rgb = _photo()
    channels = rgb[:, :, ::-1] if encoding.startswith('bgr') else rgb
    if encoding.endswith('a8'):
        alpha = np.full(rgb.shape[:2] + (1,), 77, dtype=np.uint8)
        channels = np.concatenate([channels, alpha], axis=2)
    out = to_rgb(_image(np.ascontiguousarray(channels), encoding, padding=padding))
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('padding', [0, 7])
def test_mono8(padding):
    gray = _gray(_photo())
    out = to_rgb(_image(gray, 'mono8', padding=padding))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_honours_byte_order(bigendian):
    gray = _gray(_photo())
    samples = gray.astype('>u2' if bigendian else '<u2') * 257  # 0..255 -> 0..65535
    out = to_rgb(_image(samples, 'mono16', padding=4, bigendian=bigendian))
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'])
def test_yuv422(encoding):
    rgb = _photo()
    order = 'uyvy' if encoding in ('yuv422', 'uyvy') else 'yuyv'
    out = to_rgb(_image(_yuv422(rgb, order), encoding, padding=6, width=rgb.shape[1]))
    error = np.abs(out.astype(int) - rgb.astype(int))
    # Chroma is shared by pixel pairs, so edges differ; the photo as a whole must match.
    assert error.mean() < 3.0, error.mean()
    assert np.percentile(error, 99) < 40


def test_jpeg_and_png():
    rgb = _photo()
    jpeg = CompressedImage(format='jpeg')
    jpeg.data = _encoded(rgb, 'JPEG', quality=95)
    assert np.abs(to_rgb(jpeg).astype(int) - rgb.astype(int)).mean() < 3.0
    png = CompressedImage(format='rgb8; png compressed rgb8')
    png.data = _encoded(rgb, 'PNG')
    np.testing.assert_array_equal(to_rgb(png), rgb)


def test_png_16bit_gray_is_scaled():
    gray = _gray(_photo())
    png = CompressedImage(format='png')
    png.data = _encoded((gray.astype(np.uint16) * 257).astype(np.uint16), 'PNG')
    np.testing.assert_array_equal(to_rgb(png), np.repeat(gray[:, :, None], 3, axis=2))


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
        header=header, format='png', data=np.frombuffer(_encoded(rgb, 'PNG'), np.uint8))
    np.testing.assert_array_equal(to_rgb(compressed), rgb)


def _raw(**fields) -> Image:
    msg = _image(_photo(), 'rgb8')
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
    (_image(np.zeros((4, 10), np.uint8), 'yuyv', width=5), 'even width'),
])
def test_bad_raw_images_are_rejected(msg, reason):
    with pytest.raises(ImageConversionError, match=reason):
        to_rgb(msg)


def test_bad_compressed_images_are_rejected():
    jpeg = _encoded(_photo(), 'JPEG')
    cases = {
        'truncated': (jpeg[:len(jpeg) // 2], 'cannot decode'),
        'garbage': (bytes(range(256)) * 8, 'cannot decode'),
        'empty': (b'', 'empty'),
        'gif': (_encoded(_photo(), 'GIF'), 'unsupported compressed format GIF'),
    }
    for name, (payload, reason) in cases.items():
        msg = CompressedImage(format='jpeg')
        msg.data = payload
        with pytest.raises(ImageConversionError, match=reason):
            to_rgb(msg)
        assert name
    depth = CompressedImage(format='16UC1; compressedDepth png')
    depth.data = jpeg
    with pytest.raises(ImageConversionError, match='depth'):
        to_rgb(depth)

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Camera messages to RGB frames: the one image conversion of ros2_livevlm.

Duck-typed on the fields of ``sensor_msgs/Image`` (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``) and ``sensor_msgs/CompressedImage`` (``format``,
``data``), so rclpy messages and rosbags messages convert alike; no rclpy import here.
NumPy for raw layouts, Pillow for JPEG/PNG. Row padding (``step``) and byte order
(``is_bigendian``) are honoured; YUV 4:2:2 uses ITU-R BT.601 video range, as OpenCV and
cv_bridge do.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image as PILImage

# encoding -> (bytes per pixel, bytes per sample)
_RAW_LAYOUTS: dict[str, tuple[int, int]] = {
    'rgb8': (3, 1),
    'bgr8': (3, 1),
    'rgba8': (4, 1),
    'bgra8': (4, 1),
    'mono8': (1, 1),
    'mono16': (2, 2),
    'yuv422': (2, 1),  # UYVY in ROS naming
    'uyvy': (2, 1),
    'yuv422_yuy2': (2, 1),  # YUYV
    'yuyv': (2, 1),
}
SUPPORTED_ENCODINGS = tuple(_RAW_LAYOUTS)
"""``sensor_msgs/Image`` encodings accepted by :func:`to_rgb`."""

SUPPORTED_COMPRESSED = ('JPEG', 'PNG')
"""Formats of ``sensor_msgs/CompressedImage`` data accepted by :func:`to_rgb`."""

# Byte offsets of (Y0, U, Y1, V) inside one 4-byte macropixel (two pixels).
_YUV_ORDER = {'yuv422': (1, 0, 3, 2), 'uyvy': (1, 0, 3, 2), 'yuv422_yuy2': (0, 1, 2, 3),
              'yuyv': (0, 1, 2, 3)}


class ImageConversionError(ValueError):
    """A camera message that cannot be converted; the message says why."""


def to_rgb(msg: Any) -> np.ndarray:
    """
    Convert an Image or CompressedImage message to an RGB frame.

    Args:
        msg: anything with the fields of ``sensor_msgs/Image`` or of
            ``sensor_msgs/CompressedImage`` (told apart by a ``format`` field).

    Returns:
        A new C-contiguous ``uint8`` array ``[H, W, 3]``, RGB order (mono is repeated
        over the three channels; alpha is dropped; mono16 is scaled by 255/65535).

    Raises:
        ImageConversionError: unknown encoding or compressed format, zero-size image,
            ``step`` smaller than a row, data size not ``step * height``, odd width for
            YUV 4:2:2, or compressed data that does not decode (empty, truncated, corrupt).
    """
    if hasattr(msg, 'format'):
        return _compressed_to_rgb(msg)
    return _raw_to_rgb(msg)


def _raw_to_rgb(msg: Any) -> np.ndarray:
    encoding = str(msg.encoding).strip().lower()
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'zero-size image ({width}x{height})')
    if encoding not in _RAW_LAYOUTS:
        raise ImageConversionError(
            f'unsupported encoding {msg.encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}'
            ' and sensor_msgs/CompressedImage (JPEG, PNG)')
    pixel_bytes, sample_bytes = _RAW_LAYOUTS[encoding]
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width * bytes per pixel = {width} * {pixel_bytes}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageConversionError(
            f'data has {data.size} bytes, expected step * height = {step} * {height}')
    rows = np.ascontiguousarray(data.reshape(height, step)[:, :row_bytes])  # (H, W * bpp)

    if encoding in _YUV_ORDER:
        return _yuv422_to_rgb(rows, width, _YUV_ORDER[encoding])
    if sample_bytes == 2:  # mono16
        samples = rows.view('>u2' if msg.is_bigendian else '<u2').astype(np.uint32)
        gray = ((samples * 255 + 32767) // 65535).astype(np.uint8)  # (H, W)
        return np.repeat(gray[:, :, None], 3, axis=2)
    pixels = rows.reshape(height, width, pixel_bytes)
    if encoding == 'mono8':
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3]) if pixel_bytes == 4 else pixels.copy()


def _yuv422_to_rgb(rows: np.ndarray, width: int, order: tuple[int, int, int, int]) -> np.ndarray:
    """Packed YUV 4:2:2 rows ``[H, W * 2]`` to RGB ``[H, W, 3]`` (BT.601 video range)."""
    if width % 2:
        raise ImageConversionError(f'YUV 4:2:2 needs an even width, got {width}')
    macro = rows.reshape(rows.shape[0], width // 2, 4).astype(np.float32)  # (H, W/2, 4)
    y0, u, y1, v = (macro[:, :, i] for i in order)
    luma = np.stack([y0, y1], axis=2).reshape(rows.shape[0], width) - 16.0  # (H, W)
    cb = np.repeat(u, 2, axis=1) - 128.0
    cr = np.repeat(v, 2, axis=1) - 128.0
    rgb = np.stack([1.164 * luma + 1.596 * cr,
                    1.164 * luma - 0.392 * cb - 0.813 * cr,
                    1.164 * luma + 2.017 * cb], axis=2)  # (H, W, 3)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _compressed_to_rgb(msg: Any) -> np.ndarray:
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.lower():
        raise ImageConversionError(f'compressed depth images are not supported ({fmt!r})')
    raw = np.frombuffer(msg.data, dtype=np.uint8).tobytes()
    if not raw:
        raise ImageConversionError('empty compressed image')
    try:
        with PILImage.open(io.BytesIO(raw)) as image:
            if image.format not in SUPPORTED_COMPRESSED:
                raise ImageConversionError(
                    f'unsupported compressed format {image.format} ({fmt!r}); '
                    f'supported: {", ".join(SUPPORTED_COMPRESSED)}')
            image.load()  # full decode: a truncated or corrupt stream raises here
            if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):  # 16-bit PNG: scale, not clip
                gray = (np.asarray(image, dtype=np.uint32) * 255 + 32767) // 65535
                return np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)
            return np.array(image.convert('RGB'), dtype=np.uint8)
    except ImageConversionError:
        raise
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
        raise ImageConversionError(f'cannot decode compressed image ({fmt!r}): {err}') from err

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Camera messages of every supported encoding, built from RGB photos; streaming helpers."""

from __future__ import annotations

import io
import signal
import time
from typing import Any, Callable, Iterator

from diagnostic_msgs.msg import DiagnosticStatus
import numpy as np
from PIL import Image as PILImage
from ros2_livevlm.ros.status import to_time
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from skimage import data as photos


PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'cat')

RAW_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
                 'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')


def photo(index: int, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Real photo number ``index`` (cycling), cropped and scaled to ``size = (height, width)``."""
    image = PILImage.fromarray(getattr(photos, PHOTOS[index % len(PHOTOS)])()[:, :, :3])
    height, width = size
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         PILImage.BILINEAR)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


def gray(rgb: np.ndarray) -> np.ndarray:
    """Luma of an RGB photo (Pillow's ITU-R 601-2 transform), uint8 [H, W]."""
    return np.asarray(PILImage.fromarray(rgb).convert('L'))


def yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """Encode RGB to packed 4:2:2 ``[H, W * 2]`` with the textbook BT.601 video-range matrix."""
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


def raw_image(pixels: np.ndarray, encoding: str, *, padding: int = 0, bigendian: bool = False,
              width: int = 0, stamp: float = 0.0, frame_id: str = 'camera') -> Image:
    """Build a sensor_msgs/Image of ``pixels`` ([H, W, C] or [H, W * bytes]) with row padding."""
    height, width = pixels.shape[0], width or pixels.shape[1]
    rows = pixels.reshape(height, -1).view(np.uint8)
    step = rows.shape[1] + padding
    padded = np.full((height, step), 0xAB, dtype=np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=bigendian)
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    msg.data = padded.tobytes()
    return msg


def encoded_photo(rgb: np.ndarray, encoding: str, **kwargs) -> Image:
    """``rgb`` as an Image of ``encoding`` (one of :data:`RAW_ENCODINGS`)."""
    if encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8'):
        channels = rgb[:, :, ::-1] if encoding.startswith('bgr') else rgb
        if encoding.endswith('a8'):
            alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
            channels = np.concatenate([channels, alpha], axis=2)
        return raw_image(np.ascontiguousarray(channels), encoding, **kwargs)
    if encoding == 'mono8':
        return raw_image(gray(rgb), encoding, **kwargs)
    if encoding == 'mono16':
        big = kwargs.get('bigendian', False)
        return raw_image(gray(rgb).astype('>u2' if big else '<u2') * 257, encoding, **kwargs)
    order = 'uyvy' if encoding in ('yuv422', 'uyvy') else 'yuyv'
    return raw_image(yuv422(rgb, order), encoding, width=rgb.shape[1], **kwargs)


def encoded_bytes(rgb: np.ndarray, fmt: str, **kwargs) -> bytes:
    """``rgb`` encoded by Pillow as ``fmt`` (``JPEG``, ``PNG``, ``GIF``)."""
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def compressed_image(payload: bytes, fmt: str = 'jpeg', *, stamp: float = 0.0,
                     frame_id: str = 'camera') -> CompressedImage:
    """Build a sensor_msgs/CompressedImage carrying ``payload``."""
    msg = CompressedImage(format=fmt)
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    msg.data = payload
    return msg


def values(status: DiagnosticStatus) -> dict[str, str]:
    """Return the key-values of a DiagnosticStatus as a dict."""
    return {kv.key: kv.value for kv in status.values}


def publish(client: Any, publisher: Any, camera: str, messages: list) -> None:
    """Publish ``messages`` and wait until the node counted them as received."""
    before = client.state(camera).frames_received
    for message in messages:
        publisher.publish(message)
        time.sleep(0.03)
    client.wait_for(lambda: client.state(camera).frames_received >= before + len(messages),
                    timeout=30.0)


def settle(client: Any, camera: str) -> None:
    """Wait for a MemoryState published after this call showing every frame ingested."""
    since = time.time() + 0.1  # the node clock is the system clock here

    def done() -> bool:
        state = client.state(camera)
        fresh = state.header.stamp.sec + state.header.stamp.nanosec * 1e-9 > since
        return fresh and state.frames_ingested >= state.frames_sampled
    client.wait_for(done, timeout=60.0)


def running_node(start_node: Callable[..., Any], client: Any,
                 parameters: dict[str, Any]) -> Iterator[Any]:
    """
    Yield a node process started with ``parameters`` once camera ``image`` reports state.

    For a module fixture: at the end SIGINT must stop the node with exit code 0 and no
    traceback in its log.
    """
    process = start_node(**parameters)
    client.wait_for(lambda: client.state('image'), timeout=120.0)
    yield process
    assert process.stop(signal.SIGINT) == 0
    assert 'Traceback' not in process.log(), process.log()

# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Camera rosbags: read and write rosbag2 (MCAP and sqlite3) with ``rosbags`` (pure Python).

Reading works on any bag whose camera topic carries ``sensor_msgs/msg/Image`` or
``sensor_msgs/msg/CompressedImage``, whatever the topic is called; messages come out in
bag-clock order (the log time ``ros2 bag play --clock`` publishes on ``/clock``) as
rosbags messages, which the one image conversion :func:`ros2_livevlm.ros.image.to_rgb`
converts (it is duck-typed on the message fields). Writing makes camera bags from RGB
frames, for the sample bag and for tests. No rclpy here.

Times: bag-clock (log) times are integer nanoseconds, ``header.stamp`` values are
seconds (float) as everywhere in the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from rosbags.rosbag2 import Reader
from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_TYPES = (IMAGE, COMPRESSED_IMAGE)

STORAGE = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
"""rosbag2 storage formats written by :func:`write_camera_bag`."""

WRITE_ENCODINGS = ('rgb8', 'bgr8')
"""``sensor_msgs/Image`` encodings written by :func:`write_camera_bag`."""

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
"""Message definitions (the oldest supported distro; Image and CompressedImage are unchanged)."""


class BagError(ValueError):
    """A bag that cannot be read or used as asked; the message says what and how to fix it."""


@dataclass(frozen=True)
class CameraTopic:
    """
    A camera topic of a bag.

    Attributes:
        topic: topic name as recorded (e.g. ``/camera/image_raw``).
        msgtype: ``sensor_msgs/msg/Image`` or ``sensor_msgs/msg/CompressedImage``.
        count: messages on the topic.
    """

    topic: str
    msgtype: str
    count: int

    @property
    def compressed(self) -> bool:
        """Tell whether the topic is ``sensor_msgs/msg/CompressedImage``."""
        return self.msgtype == COMPRESSED_IMAGE


@dataclass(frozen=True)
class BagInfo:
    """
    What a bag holds.

    Attributes:
        path: the bag directory (or single ``.mcap`` / ``.db3`` file).
        start_ns / end_ns: first log time of any message, and one past the last (rosbags' end), ns.
        cameras: its camera topics, sorted by name.
        topics: every topic name -> message type.
    """

    path: Path
    start_ns: int
    end_ns: int
    cameras: tuple[CameraTopic, ...]
    topics: dict[str, str]

    @property
    def duration_s(self) -> float:
        """Log-time span of the bag, s."""
        return (self.end_ns - self.start_ns) * 1e-9


@dataclass(frozen=True)
class CameraMessage:
    """
    One camera message of a bag.

    Attributes:
        log_ns: bag-clock (log) time, ns.
        msgtype: as in :class:`CameraTopic`.
        raw: the CDR bytes as recorded (publishable as they are).
    """

    log_ns: int
    msgtype: str
    raw: bytes

    def decode(self) -> Any:
        """Deserialize to a rosbags dataclass (fields of ``Image`` or ``CompressedImage``)."""
        return TYPESTORE.deserialize_cdr(self.raw, self.msgtype)


def stamp_seconds(msg: Any) -> float:
    """``header.stamp`` of a message in seconds."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _open(path: str | Path) -> Reader:
    bag = Path(path).expanduser()
    if not bag.exists():
        raise BagError(f'bag {bag} does not exist; pass a rosbag2 directory (MCAP or sqlite3)')
    try:
        reader = Reader(bag)
        reader.open()
    except (ReaderError, OSError) as err:
        raise BagError(f'cannot read bag {bag}: {err}') from err
    return reader


def bag_info(path: str | Path) -> BagInfo:
    """
    Topics and time span of a bag.

    Raises:
        BagError: the path is missing or not a readable rosbag2.
    """
    reader = _open(path)
    try:
        cameras = sorted(
            (
                CameraTopic(topic, info.msgtype, info.msgcount)
                for topic, info in reader.topics.items()
                if info.msgtype in CAMERA_TYPES
            ),
            key=lambda c: c.topic,
        )
        return BagInfo(
            path=Path(path),
            start_ns=reader.start_time,
            end_ns=reader.end_time,
            cameras=tuple(cameras),
            topics={topic: info.msgtype for topic, info in reader.topics.items()},
        )
    finally:
        reader.close()


def select_camera(info: BagInfo, topic: str | None) -> CameraTopic:
    """
    Choose the camera topic to replay: ``topic`` if given, else the bag's only camera.

    Raises:
        BagError: ``topic`` is not in the bag or not an image topic, or the bag has no
            camera topic, or several and none was chosen (the message lists them).
    """
    listing = ', '.join(f'{c.topic} ({c.msgtype}, {c.count} msgs)' for c in info.cameras) or 'none'
    if topic is not None:
        for camera in info.cameras:
            if camera.topic == topic:
                return camera
        if topic in info.topics:
            raise BagError(
                f'topic {topic} of bag {info.path} is {info.topics[topic]}, not an image; '
                f'cameras: {listing}'
            )
        raise BagError(f'bag {info.path} has no topic {topic}; cameras: {listing}')
    if len(info.cameras) == 1:
        return info.cameras[0]
    if not info.cameras:
        raise BagError(
            f'bag {info.path} has no {IMAGE} or {COMPRESSED_IMAGE} topic '
            f'(topics: {", ".join(info.topics)})'
        )
    raise BagError(
        f'bag {info.path} has several camera topics; choose one with --topic: {listing}'
    )


def read_camera(path: str | Path, topic: str) -> Iterator[CameraMessage]:
    """
    Yield the messages of camera ``topic`` in log-time order.

    Raises:
        BagError: as :func:`bag_info`, or ``topic`` is not a camera topic of the bag.
    """
    reader = _open(path)
    try:
        connections = [
            c for c in reader.connections if c.topic == topic and c.msgtype in CAMERA_TYPES
        ]
        if not connections:
            raise BagError(f'bag {path} has no camera topic {topic}')
        for connection, log_ns, raw in reader.messages(connections=connections):
            yield CameraMessage(log_ns=log_ns, msgtype=connection.msgtype, raw=bytes(raw))
    finally:
        reader.close()


def image_message(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = 'rgb8') -> Any:
    """
    Build a ``sensor_msgs/msg/Image`` (rosbags dataclass) of an RGB uint8 frame ``[H, W, 3]``.

    Raises:
        ValueError: ``encoding`` is not one of :data:`WRITE_ENCODINGS`.
    """
    if encoding not in WRITE_ENCODINGS:
        raise ValueError(f'encoding {encoding!r} is not one of {", ".join(WRITE_ENCODINGS)}')
    pixels = rgb[:, :, ::-1] if encoding == 'bgr8' else rgb
    height, width = rgb.shape[:2]
    return TYPESTORE.types[IMAGE](
        header=_header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * 3,
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def compressed_message(rgb: np.ndarray, stamp_ns: int, frame_id: str, quality: int = 90) -> Any:
    """Build a JPEG ``sensor_msgs/msg/CompressedImage`` (rosbags dataclass) of an RGB frame."""
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format='JPEG', quality=quality)
    return TYPESTORE.types[COMPRESSED_IMAGE](
        header=_header(stamp_ns, frame_id),
        format='jpeg',
        data=np.frombuffer(buffer.getvalue(), dtype=np.uint8),
    )


def _header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return TYPESTORE.types['std_msgs/msg/Header'](
        stamp=TYPESTORE.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
        frame_id=frame_id,
    )


def write_camera_bag(
    path: str | Path,
    frames: Iterable[tuple[int, np.ndarray]],
    *,
    topic: str,
    frame_id: str,
    storage: str = 'mcap',
    encoding: str = 'rgb8',
    compressed: bool = False,
) -> int:
    """
    Write a camera bag: one ``sensor_msgs/Image`` per frame (and JPEG on ``<topic>/compressed``).

    Each message's log time equals its ``header.stamp``.

    Args:
        path: bag directory to create (must not exist).
        frames: ``(stamp_ns, RGB uint8 [H, W, 3])`` in non-decreasing stamp order.
        topic: raw image topic, e.g. ``/camera/image_raw``.
        frame_id: ``header.frame_id`` of every message.
        storage: ``mcap`` or ``sqlite3``.
        encoding: ``rgb8`` or ``bgr8``.
        compressed: also write ``sensor_msgs/CompressedImage`` (JPEG) on ``<topic>/compressed``.

    Returns:
        the number of frames written.

    Raises:
        ValueError: unknown ``storage`` or ``encoding``, or ``path`` already exists.
    """
    if storage not in STORAGE:
        raise ValueError(f'storage {storage!r} is not one of {", ".join(STORAGE)}')
    if encoding not in WRITE_ENCODINGS:
        raise ValueError(f'encoding {encoding!r} is not one of {", ".join(WRITE_ENCODINGS)}')
    path = Path(path)
    if path.exists():
        raise ValueError(f'{path} already exists; remove it or choose another output path')
    count = 0
    with Writer(path, version=9, storage_plugin=STORAGE[storage]) as writer:
        raw_topic = writer.add_connection(topic, IMAGE, typestore=TYPESTORE)
        jpeg_topic = None
        if compressed:
            jpeg_topic = writer.add_connection(
                f'{topic}/compressed', COMPRESSED_IMAGE, typestore=TYPESTORE
            )
        for stamp_ns, rgb in frames:
            message = image_message(rgb, stamp_ns, frame_id, encoding)
            writer.write(raw_topic, stamp_ns, TYPESTORE.serialize_cdr(message, IMAGE))
            if jpeg_topic is not None:
                message = compressed_message(rgb, stamp_ns, frame_id)
                writer.write(
                    jpeg_topic, stamp_ns, TYPESTORE.serialize_cdr(message, COMPRESSED_IMAGE)
                )
            count += 1
    return count

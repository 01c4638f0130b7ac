# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Scenes made from the real photos that ship with scikit-image, seen through a moving camera.

One catalogue for everything that needs pictures of a world: the sample rosbag's camera
tour, the reference model's training streams and the quality benchmark. A scene's
``name`` is also the one-word answer to "what did you see?".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Scene:
    """A named scene: ``name`` is the answer word, ``photo`` the ``skimage.data`` function."""

    name: str
    photo: str


SCENES: tuple[Scene, ...] = (
    Scene('astronaut', 'astronaut'),
    Scene('cat', 'chelsea'),
    Scene('coffee', 'coffee'),
    Scene('rocket', 'rocket'),
    Scene('coins', 'coins'),
    Scene('motorcycle', 'stereo_motorcycle'),
    Scene('moon', 'moon'),
    Scene('galaxy', 'hubble_deep_field'),
    Scene('clock', 'clock'),
    Scene('bricks', 'brick'),
    Scene('grass', 'grass'),
    Scene('newspaper', 'page'),
)
"""Twelve visually distinct scenes, all bundled in the scikit-image wheel (no download)."""

SCENE_NAMES: tuple[str, ...] = tuple(scene.name for scene in SCENES)


@lru_cache(maxsize=None)
def scene_image(name: str) -> np.ndarray:
    """
    Return the photo of scene ``name`` as RGB uint8 ``[H, W, 3]`` (read-only, cached).

    Raises:
        KeyError: ``name`` is not in :data:`SCENE_NAMES`.
    """
    from skimage import data

    scene = {s.name: s for s in SCENES}.get(name)
    if scene is None:
        raise KeyError(f'unknown scene {name!r}; known: {", ".join(SCENE_NAMES)}')
    image = getattr(data, scene.photo)()
    if isinstance(image, tuple):  # stereo pair: the left view
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    image.setflags(write=False)
    return image


@dataclass(frozen=True)
class View:
    """
    Where the camera looks in a scene.

    Attributes:
        cx, cy: window centre as a fraction of the photo's width and height, in [0, 1].
        zoom: >= 1; the window's side is the largest that fits the photo divided by ``zoom``.
        gain: brightness factor (1 = unchanged).
    """

    cx: float
    cy: float
    zoom: float
    gain: float


def render(
    image: np.ndarray,
    view: View,
    size: tuple[int, int],
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> np.ndarray:
    """
    One camera frame: crop the view's window, resize to ``size``, apply gain and sensor noise.

    Args:
        image: RGB uint8 ``[H, W, 3]``.
        view: where the camera looks.
        size: output ``(height, width)`` in pixels.
        rng: noise generator (required when ``noise > 0``).
        noise: Gaussian noise standard deviation, in uint8 levels.

    Returns:
        RGB uint8 ``[height, width, 3]``.
    """
    height, width = image.shape[:2]
    out_h, out_w = size
    scale = min(height / out_h, width / out_w) / max(view.zoom, 1.0)
    crop_h, crop_w = out_h * scale, out_w * scale
    top = np.clip(view.cy * height - crop_h / 2, 0, height - crop_h)
    left = np.clip(view.cx * width - crop_w / 2, 0, width - crop_w)
    box = (float(left), float(top), float(left + crop_w), float(top + crop_h))
    frame = np.asarray(
        Image.fromarray(image).resize((out_w, out_h), Image.BILINEAR, box=box), dtype=np.float32
    )
    frame *= view.gain
    if noise > 0:
        frame += rng.normal(0.0, noise, frame.shape).astype(np.float32)
    return frame.clip(0, 255).round().astype(np.uint8)


def dwell(rng: np.random.Generator, num_frames: int, max_zoom: float = 2.0) -> list[View]:
    """
    Draw a smooth camera path of ``num_frames`` views over one scene.

    The path pans, zooms and drifts in brightness.

    Start and end views are drawn at random (centre in the middle 60 % of the photo, zoom
    in [1, ``max_zoom``], gain in [0.8, 1.2]); the path interpolates between them.
    """
    start, end = (
        (
            rng.uniform(0.2, 0.8),
            rng.uniform(0.2, 0.8),
            rng.uniform(1.0, max_zoom),
            rng.uniform(0.8, 1.2),
        )
        for _ in range(2)
    )
    steps = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    return [View(*(a + (b - a) * t for a, b in zip(start, end))) for t in steps]

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
    Scene('photographer', 'camera'),
    Scene('cells', 'cell'),
    Scene('gravel', 'gravel'),
    Scene('tissue', 'immunohistochemistry'),
    Scene('retina', 'retina'),
    Scene('vessels', 'microaneurysms'),
    Scene('text', 'text'),
    Scene('horse', 'horse'),
    Scene('logo', 'logo'),
    Scene('faces', 'lfw_subset'),
    Scene('colorwheel', 'colorwheel'),
    Scene('phantom', 'shepp_logan_phantom'),
)
"""
Every usable picture bundled in the scikit-image wheel (no download), 24 scenes.

The 19 photos, the horse silhouette, the Python logo, a grid of faces from the LFW subset,
the colour wheel and the Shepp-Logan phantom. Left out: pictures that need the ``pooch``
download (brain, eagle, kidney, lily, ...), the cat twice (``cat`` is ``chelsea``), and
the generated patterns without a fixed look (binary blobs, checkerboard).
"""

SCENE_NAMES: tuple[str, ...] = tuple(scene.name for scene in SCENES)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Any ``skimage.data`` picture as RGB uint8 ``[H, W, 3]``."""
    if image.dtype == bool or image.dtype.kind == 'f':
        image = image.astype(np.float64) * 255.0 / max(float(image.max()), 1e-9)
    if image.ndim == 3 and image.shape[2] == 4:  # RGBA over a white background
        alpha = image[..., 3:].astype(np.float64) / 255.0
        image = image[..., :3] * alpha + 255.0 * (1.0 - alpha)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].round().clip(0, 255).astype(np.uint8))


@lru_cache(maxsize=None)
def scene_image(name: str) -> np.ndarray:
    """
    Return the picture of scene ``name`` as RGB uint8 ``[H, W, 3]`` (read-only, cached).

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
    if scene.photo == 'lfw_subset':  # 200 faces of 25 x 25: a 4 x 6 grid of the first 24
        image = image[:24].reshape(4, 6, 25, 25).transpose(0, 2, 1, 3).reshape(100, 150)
    image = _as_rgb(image)
    image.setflags(write=False)
    return image


@dataclass(frozen=True)
class View:
    """
    Where the camera looks in a scene, and how it sees the colours.

    Attributes:
        cx, cy: window centre as a fraction of the photo's width and height, in [0, 1].
        zoom: >= 1; the window's side is the largest that fits the photo divided by ``zoom``.
        gain: brightness factor (1 = unchanged).
        tint: per-channel (R, G, B) gains, a colour cast (1 = unchanged).
        saturation: colour saturation factor (1 = unchanged, 0 = grey).
    """

    cx: float
    cy: float
    zoom: float
    gain: float
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0


def render(
    image: np.ndarray,
    view: View,
    size: tuple[int, int],
    rng: np.random.Generator | None = None,
    noise: float = 0.0,
) -> np.ndarray:
    """
    One camera frame: crop the view's window, resize, apply colour, gain and sensor noise.

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
    if view.saturation != 1.0:
        grey = frame.mean(axis=2, keepdims=True)
        frame = grey + view.saturation * (frame - grey)
    frame *= view.gain * np.asarray(view.tint, dtype=np.float32)
    if noise > 0:
        frame += rng.normal(0.0, noise, frame.shape).astype(np.float32)
    return frame.clip(0, 255).round().astype(np.uint8)


def dwell(
    rng: np.random.Generator, num_frames: int, max_zoom: float = 2.0, colour: float = 0.0
) -> list[View]:
    """
    Draw a smooth camera path of ``num_frames`` views over one scene.

    The path pans, zooms and drifts in brightness. Start and end views are drawn at random
    (centre in the middle 60 % of the photo, zoom in [1, ``max_zoom``], gain in [0.8, 1.2]);
    the path interpolates between them. With ``colour > 0`` the whole dwell also gets one
    colour change: per-channel gains in ``[1 - colour, 1 + colour]`` and a saturation
    factor in ``[1 - 2 colour, 1 + 2 colour]`` (drawn after the path, so ``colour=0``
    leaves the path of a seed unchanged).
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
    tint, saturation = (1.0, 1.0, 1.0), 1.0
    if colour > 0:
        tint = tuple(float(g) for g in rng.uniform(1.0 - colour, 1.0 + colour, 3))
        saturation = float(rng.uniform(max(0.0, 1.0 - 2 * colour), 1.0 + 2 * colour))
    steps = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    return [
        View(*(a + (b - a) * t for a, b in zip(start, end)), tint=tint, saturation=saturation)
        for t in steps
    ]

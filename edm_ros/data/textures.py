"""Seeded textures rich in corners and blobs at many scales: multi-scale noise, shapes and text.

The surfaces of the procedural scenes (`edm_ros.data.synthetic`) and the homography pairs
(`edm_ros.data.homography`); the same seed always gives the same image.
"""

from __future__ import annotations

import cv2
import numpy as np

_NOISE_CELLS_PX = (3, 6, 12, 24, 48)  # multi-scale value noise: one octave per cell size
_SHAPE_AREA_PX = 5000  # one random shape per this many pixels of texture


def textured_image(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A deterministic texture rich in corners and blobs at many scales, good for matching.

    Args:
        width: Width in pixels.
        height: Height in pixels.
        seed: Random seed; the same seed gives the same image.

    Returns:
        uint8 [height, width] grey image.
    """
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for cell in _NOISE_CELLS_PX:
        grid = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
        layer = cv2.resize(
            grid, (grid.shape[1] * cell, grid.shape[0] * cell), interpolation=cv2.INTER_CUBIC
        )
        image += layer[:height, :width]
    image = (image - image.min()) / max(float(np.ptp(image)), 1e-6) * 160.0 + 48.0
    texture = image.astype(np.uint8)
    for _ in range(max(1, width * height // _SHAPE_AREA_PX)):
        _draw_random_shape(texture, rng)
    return texture


def _draw_random_shape(image: np.ndarray, rng: np.random.Generator) -> None:
    height, width = image.shape
    size = int(rng.integers(4, max(5, min(width, height) // 8)))
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    grey = int(rng.integers(0, 256))
    thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
    kind = rng.integers(0, 4)
    if kind == 0:
        cv2.circle(image, centre, size, grey, thickness, cv2.LINE_AA)
    elif kind == 1:
        corner = (centre[0] + size, centre[1] + int(rng.integers(4, size + 5)))
        cv2.rectangle(image, centre, corner, grey, thickness, cv2.LINE_AA)
    elif kind == 2:
        polygon = np.array(centre) + rng.integers(-size, size + 1, (int(rng.integers(3, 6)), 2))
        cv2.fillPoly(image, [polygon.astype(np.int32)], grey, cv2.LINE_AA)
    else:
        text = "".join(chr(int(code)) for code in rng.integers(65, 91, 3))
        cv2.putText(
            image,
            text,
            centre,
            cv2.FONT_HERSHEY_SIMPLEX,
            size / 20.0,
            grey,
            max(1, size // 12),
            cv2.LINE_AA,
        )

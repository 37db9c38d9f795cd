"""Image files as the matcher sees them: one reader for every command, dataset and bag writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edm_ros.errors import InputError


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image file as grey uint8 [H, W], converted as the matcher converts BGR input.

    Deeper images (16-bit PNG, float TIFF) are scaled so that their maximum becomes 255.

    Raises:
        InputError: missing or unreadable file.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(
            f"{path}: cannot read this file as an image (missing, or not an image OpenCV reads)"
        )
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(image, code)
    return image

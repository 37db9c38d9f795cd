"""Side-by-side pictures of matches, coloured by confidence (CLI, demo, report, ~/debug_image)."""

from __future__ import annotations

import cv2
import numpy as np

from edm_ros.results import MatchResult

#: At most this many matches are drawn (the most confident ones; results come sorted).
MAX_DRAWN_MATCHES = 1000


def draw_matches(
    image0: np.ndarray, image1: np.ndarray, result: MatchResult, inlier_mask: np.ndarray | None
) -> np.ndarray:
    """Draw matches as lines between the two images placed side by side.

    Colour follows the coarse confidence (TURBO colour map: blue low, red high); when a pose was
    estimated, its outliers are drawn as thin grey lines instead.

    Args:
        image0: [H0, W0] uint8 reference image.
        image1: [H1, W1] uint8 current image.
        result: Matches in the pixels of these images.
        inlier_mask: [M] bool pose inliers, or None.

    Returns:
        [max(H0, H1), W0 + W1, 3] uint8 BGR picture.
    """
    height = max(image0.shape[0], image1.shape[0])
    canvas = np.zeros((height, image0.shape[1] + image1.shape[1], 3), np.uint8)
    canvas[: image0.shape[0], : image0.shape[1]] = cv2.cvtColor(image0, cv2.COLOR_GRAY2BGR)
    canvas[: image1.shape[0], image0.shape[1] :] = cv2.cvtColor(image1, cv2.COLOR_GRAY2BGR)
    count = min(len(result.keypoints0), MAX_DRAWN_MATCHES)
    if count == 0:
        return canvas  # (applyColorMap returns None for an empty input)
    confidence = np.clip(result.confidence[:count], 0.0, 1.0)
    levels = np.round(confidence * 255).astype(np.uint8).reshape(-1, 1)
    colours = cv2.applyColorMap(levels, cv2.COLORMAP_TURBO).reshape(-1, 3)
    offset = np.array([image0.shape[1], 0.0])
    for index in range(count):
        start = tuple(np.round(result.keypoints0[index]).astype(int))
        end = tuple(np.round(result.keypoints1[index] + offset).astype(int))
        if inlier_mask is not None and not inlier_mask[index]:
            cv2.line(canvas, start, end, (128, 128, 128), 1, cv2.LINE_AA)
            continue
        colour = tuple(int(c) for c in colours[index])
        cv2.line(canvas, start, end, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, start, 2, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, end, 2, colour, -1, cv2.LINE_AA)
    return canvas

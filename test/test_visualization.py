"""edm_ros.visualization: the side-by-side picture of a pair's matches."""

from __future__ import annotations

import numpy as np

from edm_ros.results import MatchResult
from edm_ros.visualization import draw_matches


def _result(confidence: list[float]) -> MatchResult:
    count = len(confidence)
    points = np.tile(np.float32([[20.0, 10.0]]), (count, 1)) + np.arange(count)[:, None] * 8
    return MatchResult(
        points, points, np.float32(confidence), np.ones(count, np.float32), (64, 48), (32, 48), 1.0
    )


def test_picture_holds_both_images_side_by_side() -> None:
    left = np.full((48, 64), 10, np.uint8)
    right = np.full((40, 32), 200, np.uint8)
    picture = draw_matches(left, right, _result([]), None)
    assert picture.shape == (48, 96, 3) and picture.dtype == np.uint8
    assert tuple(picture[5, 5]) == (10, 10, 10) and tuple(picture[5, 70]) == (200, 200, 200)
    assert tuple(picture[45, 70]) == (0, 0, 0)  # below the shorter image


def test_confidence_sets_the_colour_and_outliers_are_grey() -> None:
    black = np.zeros((48, 64), np.uint8)
    low, high = (
        draw_matches(black, black, _result([0.0]), None),
        draw_matches(black, black, _result([1.0]), None),
    )
    blue_low, red_high = low[10, 20], high[10, 20]  # BGR at the first keypoint
    assert blue_low[0] > blue_low[2] and red_high[2] > red_high[0]
    outlier = draw_matches(black, black, _result([1.0]), np.array([False]))
    b, g, r = (int(v) for v in outlier[10, 40])  # on the line, between the two images
    assert b == g == r > 0

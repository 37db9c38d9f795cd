"""Stereo baseline, triangulation and the depth stereo matches lend to other pixels."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.stereo import (
    points_at_stereo_depth,
    stereo_baseline_m,
    triangulate_stereo_points,
)

FX, CX, CY, BASELINE_M = 400.0, 320.0, 240.0, 0.12
P_LEFT = np.array([[FX, 0, CX, 0], [0, FX, CY, 0], [0, 0, 1.0, 0]])
P_RIGHT = P_LEFT + np.array([[0, 0, 0, -FX * BASELINE_M], [0, 0, 0, 0], [0, 0, 0, 0]])


def _project(projection: np.ndarray, points_m: np.ndarray) -> np.ndarray:
    homogeneous = np.column_stack([points_m, np.ones(len(points_m))]) @ projection.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


class TestBaseline:
    def test_right_projection_gives_the_baseline(self) -> None:
        assert stereo_baseline_m(P_RIGHT) == pytest.approx(BASELINE_M)
        assert stereo_baseline_m(P_RIGHT.ravel().tolist()) == pytest.approx(BASELINE_M)

    @pytest.mark.parametrize(
        ("projection", "message"),
        [
            (P_LEFT, r"P\[0, 3\] = 0.0 gives no positive baseline"),
            (np.zeros((3, 4)), "focal lengths must be positive"),
            (np.eye(3), r"expected a finite 3x4 projection matrix"),
        ],
    )
    def test_bad_projection_raises_config_error(self, projection: np.ndarray, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            stereo_baseline_m(projection)


class TestTriangulate:
    def test_known_points_come_back(self) -> None:
        points_m = np.array([[0.0, 0.0, 2.0], [-1.0, 0.5, 4.0], [0.3, -0.2, 9.5]])
        stereo = triangulate_stereo_points(
            _project(P_LEFT, points_m), _project(P_RIGHT, points_m), P_LEFT, P_RIGHT
        )
        assert stereo.valid.all()
        np.testing.assert_allclose(stereo.points_m, points_m, atol=1e-9)

    def test_rejects_negative_small_disparity_and_vertical_offsets(self) -> None:
        left = np.array([[300.0, 200.0], [300.0, 200.0], [300.0, 200.0], [300.0, 200.0]])
        right = np.array([[290.0, 203.0], [305.0, 200.0], [299.5, 200.0], [290.0, 201.5]])
        stereo = triangulate_stereo_points(left, right, P_LEFT, P_RIGHT)
        np.testing.assert_array_equal(stereo.valid, [False, False, False, True])
        assert np.isnan(stereo.points_m[:3]).all()
        assert stereo.points_m[3, 2] == pytest.approx(FX * BASELINE_M / 10.0)

    @pytest.mark.parametrize("num_points", [0, 1, 5])
    def test_shapes(self, num_points: int) -> None:
        points = np.full((num_points, 2), 100.0)
        stereo = triangulate_stereo_points(points + np.array([5.0, 0.0]), points, P_LEFT, P_RIGHT)
        assert stereo.points_m.shape == (num_points, 3)
        assert stereo.valid.shape == (num_points,)

    def test_mismatched_lengths_raise_input_error(self) -> None:
        with pytest.raises(InputError, match="points_left_px has 3 points but points_right_px"):
            triangulate_stereo_points(np.zeros((3, 2)), np.zeros((2, 2)), P_LEFT, P_RIGHT)


class TestPointsAtStereoDepth:
    def test_each_pixel_takes_the_depth_of_the_nearest_stereo_match(self) -> None:
        stereo_left = np.array([[100.0, 100.0], [400.0, 300.0]])
        disparities = np.array([[20.0, 0.0], [8.0, 0.0]])
        stereo = triangulate_stereo_points(stereo_left, stereo_left - disparities, P_LEFT, P_RIGHT)
        pixels = np.array([[103.0, 98.0], [398.0, 305.0], [250.0, 200.0]])
        points = points_at_stereo_depth(pixels, stereo_left, stereo, P_LEFT)
        depths = FX * BASELINE_M / np.array([20.0, 8.0])
        np.testing.assert_allclose(points[:2, 2], depths)
        # back-projected at their own pixel, not at the stereo match's
        np.testing.assert_allclose(_project(P_LEFT, points[:2]), pixels[:2], atol=1e-9)
        assert np.isnan(points[2]).all()  # no stereo match within 6 px

    def test_invalid_stereo_matches_lend_no_depth(self) -> None:
        stereo_left = np.array([[100.0, 100.0]])
        stereo = triangulate_stereo_points(stereo_left, stereo_left + 5.0, P_LEFT, P_RIGHT)
        points = points_at_stereo_depth(stereo_left, stereo_left, stereo, P_LEFT)
        assert np.isnan(points).all()

    def test_a_triangulation_of_other_matches_raises(self) -> None:
        stereo = triangulate_stereo_points(np.zeros((3, 2)) + 50, np.zeros((3, 2)), P_LEFT, P_RIGHT)
        with pytest.raises(InputError, match="stereo has 3 points but stereo_left_px 2"):
            points_at_stereo_depth(np.zeros((1, 2)), np.zeros((2, 2)), stereo, P_LEFT)

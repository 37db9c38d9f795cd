"""Known values of the metrics: AUC, epipolar distance, homography, stereo rectification."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.errors import InputError
from edm_ros.evaluation.metrics import (
    angle_between_deg,
    epipolar_distances,
    error_auc,
    essential_from_pose,
    estimate_homography,
    homography_corner_error,
    matching_precision,
    symmetric_epipolar_distance,
    transfer_errors_px,
    vertical_disparity_px,
)
from edm_ros.geometry.camera import CameraModel
from test.evaluation.scene import exact_matches

# EuRoC V1_01 cam0/cam1 (Kalibr): raw, radial-tangential distortion, 0.11 m baseline.
EUROC_LEFT = CameraModel(
    np.array([[458.654, 0, 367.215], [0, 457.296, 248.375], [0, 0, 1]]),
    752,
    480,
    np.array([-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05]),
    "plumb_bob",
)
EUROC_RIGHT = CameraModel(
    np.array([[457.587, 0, 379.999], [0, 456.134, 255.238], [0, 0, 1]]),
    752,
    480,
    np.array([-0.28368365, 0.07451284, -0.00010473, -3.555907e-05]),
    "plumb_bob",
)
EUROC_T_0TO1 = np.array(
    [
        [0.9999972564778812, 0.0023120671924238864, 0.0003760081024155938, -0.11007380812718678],
        [-0.0023171357232812354, 0.9998980485066438, 0.014089835846648196, 0.00039912154701414806],
        [-0.0003433931205241621, -0.01409066845271459, 0.9999006626377283, -0.0008537025033580449],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
GRAFFITI_H_1_2 = np.array(
    [[0.88184, 0.31397, -39.976], [-0.18167, 0.93621, 153.25], [0.00020118, -1.9028e-05, 0.99997]]
)


class TestErrorAuc:
    def test_half_the_pairs_perfect_and_half_failed_gives_half(self) -> None:
        assert error_auc([0.0, np.inf], [5.0]) == pytest.approx([0.5])

    def test_all_perfect_is_one_and_all_failed_or_nan_is_zero(self) -> None:
        assert error_auc(np.zeros(4), [5.0, 10.0, 20.0]) == pytest.approx([1.0, 1.0, 1.0])
        assert error_auc([np.inf, np.nan], [5.0, 10.0]) == pytest.approx([0.0, 0.0])

    def test_trapezoid_over_the_recall_steps_as_loftr(self) -> None:
        errors = np.array([7.0, 1.0, 30.0, 4.0, 2.0])  # order does not matter
        # recall 0.2 per pair; trapezoids 0-1, 1-2, 2-4 and the flat 0.6 from 4 to 5
        area = 1 * (0.0 + 0.2) / 2 + 1 * (0.2 + 0.4) / 2 + 2 * (0.4 + 0.6) / 2 + 1 * 0.6
        assert error_auc(errors, [5.0]) == pytest.approx([area / 5.0])

    def test_empty_errors_give_zero(self) -> None:
        assert error_auc([], [5.0]) == [0.0]


class TestEpipolarDistance:
    def test_known_value_for_a_sideways_translation(self) -> None:
        sideways = np.eye(4)
        sideways[0, 3] = 1.0
        essential = essential_from_pose(sideways)
        distance = symmetric_epipolar_distance(
            np.array([[0.0, 0.0]]), np.array([[0.1, 0.05]]), essential
        )
        assert distance == pytest.approx([0.05**2 * 2.0])

    def test_exact_correspondences_through_distortion_have_zero_distance(self) -> None:
        points0, points1 = exact_matches(EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1)
        distances = epipolar_distances(points0, points1, EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1)
        assert len(distances) > 100
        assert distances.max() < 1e-12
        # the protocol's 5e-4 (squared, normalised) is about 7 px at f = 458 px
        shifted = epipolar_distances(
            points0, points1 + np.array([0.0, 20.0]), EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1
        )
        assert matching_precision(shifted, 5e-4) < 0.1 < matching_precision(distances, 5e-4)

    def test_precision_without_matches_is_zero(self) -> None:
        assert matching_precision(np.zeros(0), 5e-4) == 0.0


class TestHomography:
    def test_ground_truth_homography_has_zero_corner_error(self) -> None:
        assert homography_corner_error(GRAFFITI_H_1_2, GRAFFITI_H_1_2, 800, 640) == 0.0

    def test_a_three_pixel_shift_gives_three_pixels(self) -> None:
        shifted = np.array([[1.0, 0, 3.0], [0, 1, 0], [0, 0, 1]]) @ GRAFFITI_H_1_2
        assert homography_corner_error(shifted, GRAFFITI_H_1_2, 800, 640) == pytest.approx(3.0)

    def test_exact_matches_recover_the_homography(self) -> None:
        grid = np.stack(np.meshgrid(np.arange(20, 780, 40.0), np.arange(20, 620, 40.0)), -1)
        points0 = grid.reshape(-1, 2)
        projected = np.c_[points0, np.ones(len(points0))] @ GRAFFITI_H_1_2.T
        points1 = projected[:, :2] / projected[:, 2:]
        homography, inliers = estimate_homography(points0, points1, 3.0)
        assert homography is not None and inliers.all()
        assert homography_corner_error(homography, GRAFFITI_H_1_2, 800, 640) < 1e-4
        assert transfer_errors_px(points0, points1, GRAFFITI_H_1_2).max() < 1e-9

    def test_fewer_than_four_matches_give_no_homography(self) -> None:
        homography, inliers = estimate_homography(np.zeros((3, 2)), np.zeros((3, 2)))
        assert homography is None and inliers.shape == (3,) and not inliers.any()


class TestStereo:
    def test_exact_stereo_matches_have_no_vertical_disparity(self) -> None:
        points0, points1 = exact_matches(EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1)
        disparity = vertical_disparity_px(points0, points1, EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1)
        assert np.abs(disparity).max() < 1e-3

    def test_a_rotated_extrinsic_shows_vertical_disparity(self) -> None:
        points0, points1 = exact_matches(EUROC_LEFT, EUROC_RIGHT, EUROC_T_0TO1)
        angle = np.radians(0.5)
        tilt = np.array(
            [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
        )
        wrong = EUROC_T_0TO1.copy()
        wrong[:3, :3] = tilt @ wrong[:3, :3]
        disparity = vertical_disparity_px(points0, points1, EUROC_LEFT, EUROC_RIGHT, wrong)
        assert np.median(np.abs(disparity)) > 2.0  # 0.5° at f = 436 px is 3.8 px

    def test_zero_baseline_is_rejected(self) -> None:
        with pytest.raises(InputError, match="non-zero baseline"):
            vertical_disparity_px(
                np.zeros((1, 2)), np.zeros((1, 2)), EUROC_LEFT, EUROC_RIGHT, np.eye(4)
            )

    def test_angle_between_directions(self) -> None:
        assert angle_between_deg(np.array([1.0, 0, 0]), np.array([-2.0, 0, 0])) == 180.0
        assert angle_between_deg(np.array([1.0, 0, 0]), np.array([0, 3.0, 0])) == 90.0
        assert np.isnan(angle_between_deg(np.zeros(3), np.array([1.0, 0, 0])))


def test_pixel_epipolar_distance_is_the_offset_from_the_line():
    from edm_ros.evaluation.metrics import epipolar_distances
    from edm_ros.geometry.camera import CameraModel

    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    camera = CameraModel(K, 640, 480)
    T = np.eye(4)
    T[0, 3] = -0.1  # pure sideways baseline: epipolar lines are the image rows
    points0 = np.array([[100.0, 200.0], [300.0, 50.0]])
    points1 = points0 + np.array([[-40.0, 0.0], [-10.0, 3.0]])  # second one 3 px off its row
    distances = epipolar_distances(points0, points1, camera, camera, T, in_pixels=True)
    np.testing.assert_allclose(distances, [0, 3], atol=1e-9)

"""Stereo baseline, triangulation and the metric scale of a temporal pose."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest

from edm_ros.data.synthetic import StereoSequence, grid_points, stereo_sequence, transfer_points
from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import UNKNOWN_VARIANCE, RelativePose, relative_pose_from_matches
from edm_ros.geometry.stereo import (
    metric_pose_from_stereo,
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


class StereoMatches(NamedTuple):
    temporal: RelativePose
    points_ref_px: np.ndarray  # previous-left
    points_cur_px: np.ndarray  # current-left
    stereo_left_px: np.ndarray
    stereo_right_px: np.ndarray
    translation_m: np.ndarray  # ground-truth t_ref_cur


@pytest.fixture(scope="module")
def sequence() -> StereoSequence:
    return stereo_sequence(3, 640, 480)


def make_matches(sequence: StereoSequence, noise_px: float = 0.3) -> StereoMatches:
    """Noisy exact matches: temporal on one 8-px grid, stereo on another shifted by 2 px."""
    rng = np.random.default_rng(0)
    reference, current = sequence.frames[0], sequence.frames[2]
    rotation, translation = sequence.relative_pose(0, 2)
    pose_cur_ref = np.eye(4)
    pose_cur_ref[:3, :3], pose_cur_ref[:3, 3] = rotation.T, -rotation.T @ translation
    grid = grid_points(sequence.width, sequence.height, 8)
    points_ref, visible = transfer_points(
        grid, current.depth_left, sequence.K, pose_cur_ref, reference.depth_left
    )
    points_cur, points_ref = grid[visible], points_ref[visible]
    stereo_grid = grid_points(sequence.width, sequence.height, 8, offset_px=2)
    left_right = np.eye(4)
    left_right[0, 3] = sequence.baseline_m
    points_right, seen = transfer_points(
        stereo_grid, current.depth_left, sequence.K, left_right, current.depth_right
    )
    noisy = [
        points + rng.normal(0.0, noise_px, points.shape)
        for points in (points_ref, points_cur, stereo_grid[seen], points_right[seen])
    ]
    camera = CameraModel(sequence.K, sequence.width, sequence.height)
    temporal = relative_pose_from_matches(
        noisy[0], noisy[1], camera, camera, method="poselib", threshold_px=max(3 * noise_px, 1.0)
    )
    assert temporal.success, temporal.reason
    return StereoMatches(temporal, *noisy, translation)


def _metric(matches: StereoMatches, sequence: StereoSequence, **kwargs: object) -> RelativePose:
    return metric_pose_from_stereo(
        matches.temporal, matches.points_ref_px, matches.points_cur_px, matches.stereo_left_px,
        matches.stereo_right_px, sequence.projection_left, sequence.projection_right,
        **kwargs,
    )  # fmt: skip


class TestMetricPose:
    def test_scale_is_recovered_within_two_percent(self, sequence: StereoSequence) -> None:
        matches = make_matches(sequence)
        pose = _metric(matches, sequence)
        assert pose.success, pose.reason
        assert pose.metric
        true_norm = np.linalg.norm(matches.translation_m)
        assert np.linalg.norm(pose.translation) == pytest.approx(true_norm, rel=0.02)
        np.testing.assert_allclose(pose.translation, matches.translation_m, atol=0.02 * true_norm)
        np.testing.assert_array_equal(pose.rotation, matches.temporal.rotation)
        np.testing.assert_array_equal(pose.inlier_mask, matches.temporal.inlier_mask)

    @pytest.mark.parametrize("noise_px", [0.3, 1.0, 2.0])
    def test_scale_error_is_within_its_predicted_std(
        self, sequence: StereoSequence, noise_px: float
    ) -> None:
        matches = make_matches(sequence, noise_px)
        pose = _metric(matches, sequence)
        assert pose.success, pose.reason
        direction = pose.translation / np.linalg.norm(pose.translation)
        scale_std = np.sqrt(direction @ pose.covariance[:3, :3] @ direction)
        scale_error = np.linalg.norm(pose.translation) - np.linalg.norm(matches.translation_m)
        assert abs(scale_error) < 4 * scale_std

    def test_covariance_is_metric_and_positive_semidefinite(self, sequence: StereoSequence) -> None:
        matches = make_matches(sequence)
        pose = _metric(matches, sequence)
        covariance = pose.covariance
        np.testing.assert_allclose(covariance, covariance.T)
        assert np.linalg.eigvalsh(covariance).min() > -1e-12
        direction = pose.translation / np.linalg.norm(pose.translation)
        scale_variance = direction @ covariance[:3, :3] @ direction
        assert 0 < scale_variance < (0.02 * np.linalg.norm(pose.translation)) ** 2
        assert scale_variance < 1e-6 * UNKNOWN_VARIANCE
        np.testing.assert_allclose(covariance[3:, 3:], matches.temporal.covariance[3:, 3:])

    def test_scale_variance_grows_with_noise(self, sequence: StereoSequence) -> None:
        variances = []
        for noise_px in (0.2, 1.0):
            pose = _metric(make_matches(sequence, noise_px), sequence)
            direction = pose.translation / np.linalg.norm(pose.translation)
            variances.append(direction @ pose.covariance[:3, :3] @ direction)
        assert variances[1] > 4 * variances[0]

    def test_failed_temporal_pose_passes_its_reason_on(self, sequence: StereoSequence) -> None:
        matches = make_matches(sequence)
        failed = RelativePose.failure("9 inliers < min_inliers 15", len(matches.points_ref_px))
        pose = _metric(matches._replace(temporal=failed), sequence)
        assert not pose.success
        assert pose.metric
        assert pose.reason == "temporal pose failed: 9 inliers < min_inliers 15"

    @pytest.mark.parametrize("num_stereo", [0, 5])
    def test_no_stereo_match_nearby_fails(self, sequence: StereoSequence, num_stereo: int) -> None:
        matches = make_matches(sequence)
        far_away = matches._replace(
            stereo_left_px=matches.stereo_left_px[:num_stereo] + 1000.0,
            stereo_right_px=matches.stereo_right_px[:num_stereo] + 1000.0,
        )
        pose = _metric(far_away, sequence)
        assert not pose.success
        assert pose.reason.startswith("0 temporal inliers with a stereo depth")
        assert pose.reason.endswith("< min_points 10")

    def test_uncertain_temporal_pose_gives_no_scale(self, sequence: StereoSequence) -> None:
        matches = make_matches(sequence)
        shaky = dataclasses.replace(matches.temporal, covariance=matches.temporal.covariance * 1e6)
        pose = _metric(matches._replace(temporal=shaky), sequence)
        assert not pose.success
        assert pose.reason.startswith("stereo scale too uncertain")

    def test_too_little_parallax_fails(self, sequence: StereoSequence) -> None:
        pose = _metric(make_matches(sequence), sequence, min_parallax_deg=20.0)
        assert not pose.success
        assert "parallax >= 20.0 deg" in pose.reason

    def test_bad_input_raises(self, sequence: StereoSequence) -> None:
        matches = make_matches(sequence)
        metric = _metric(matches, sequence)
        with pytest.raises(InputError, match="expected a unit-translation"):
            _metric(matches._replace(temporal=metric), sequence)
        with pytest.raises(InputError, match="must have the same length"):
            _metric(
                matches._replace(
                    points_ref_px=matches.points_ref_px[:-1],
                    points_cur_px=matches.points_cur_px[:-1],
                ),
                sequence,
            )

"""Procedural scenes: determinism, exact ground truth, matchable texture, stereo layout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.data.synthetic import (
    SyntheticPair,
    default_intrinsics,
    grid_points,
    stereo_sequence,
    synthetic_pair,
    transfer_points,
)
from edm_ros.data.textures import textured_image
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import pose_error_deg, relative_pose_from_matches


@pytest.fixture(scope="module")
def pair() -> SyntheticPair:
    return synthetic_pair()


def _patch_correlation(
    image0: np.ndarray,
    points0: np.ndarray,
    image1: np.ndarray,
    points1: np.ndarray,
    radius: int = 4,
) -> np.ndarray:
    """[M] normalised cross-correlation of small patches around matching points."""
    size = (2 * radius + 1, 2 * radius + 1)
    scores = []
    for point0, point1 in zip(points0, points1):
        patches = [
            cv2.getRectSubPix(image.astype(np.float32), size, tuple(map(float, point)))
            for image, point in ((image0, point0), (image1, point1))
        ]
        a, b = (patch - patch.mean() for patch in patches)
        scores.append(float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)))
    return np.array(scores)


class TestTexturedImage:
    @pytest.mark.parametrize(("width", "height"), [(640, 480), (97, 61)])
    def test_shape_dtype_and_determinism(self, width: int, height: int) -> None:
        image = textured_image(width, height, seed=3)
        assert image.shape == (height, width)
        assert image.dtype == np.uint8
        np.testing.assert_array_equal(image, textured_image(width, height, seed=3))
        assert np.mean(image != textured_image(width, height, seed=4)) > 0.5

    def test_is_rich_in_corners(self) -> None:
        image = textured_image()
        corners = cv2.goodFeaturesToTrack(image, 2000, 0.01, 5)
        assert image.std() > 30
        assert len(corners) > 500


class TestSyntheticPair:
    def test_ground_truth_layout(self, pair: SyntheticPair) -> None:
        assert pair.image0.shape == pair.image1.shape == (480, 640)
        np.testing.assert_array_equal(pair.K, default_intrinsics(640, 480))
        assert np.isfinite(pair.depth0).all()  # the background wall fills the view
        assert pair.depth0.min() > 2.0 and pair.depth0.max() <= 6.0 + 1e-9
        assert len(pair.points0) == len(pair.points1) > 500
        np.testing.assert_allclose(pair.rotation @ pair.rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(pair.translation, [0.3, -0.05, 0.15])

    def test_correspondences_satisfy_the_epipolar_constraint(self, pair: SyntheticPair) -> None:
        camera = CameraModel(pair.K, 640, 480)
        rays0, rays1 = camera.normalize(pair.points0), camera.normalize(pair.points1)
        tx, ty, tz = pair.translation
        skew = np.array([[0, -tz, ty], [tz, 0, -tx], [-ty, tx, 0]])
        essential = pair.rotation.T @ skew  # x1^T E x0 = 0 for T_0_1
        residuals = np.sum(
            np.column_stack([rays1, np.ones(len(rays1))])
            * (np.column_stack([rays0, np.ones(len(rays0))]) @ essential.T),
            1,
        )
        assert np.abs(residuals).max() < 1e-10

    def test_correspondences_show_the_same_texture(self, pair: SyntheticPair) -> None:
        matched = _patch_correlation(pair.image0, pair.points0, pair.image1, pair.points1)
        shifted = _patch_correlation(pair.image0, pair.points0, pair.image1, pair.points1 + 6.0)
        assert np.median(matched) > 0.9
        assert np.median(shifted) < 0.5

    def test_occluded_points_are_not_visible(self, pair: SyntheticPair) -> None:
        grid = grid_points(640, 480, 16)
        pose_0_1 = np.eye(4)
        pose_0_1[:3, :3], pose_0_1[:3, 3] = pair.rotation, pair.translation
        _, in_view = transfer_points(grid, pair.depth0, pair.K, pose_0_1)
        _, unoccluded = transfer_points(grid, pair.depth0, pair.K, pose_0_1, pair.depth1)
        assert np.all(in_view >= unoccluded)
        assert np.count_nonzero(in_view & ~unoccluded) > 5  # the panels hide part of the wall

    def test_sift_matches_give_the_true_pose(self, pair: SyntheticPair) -> None:
        sift = cv2.SIFT_create(1000)
        (keypoints0, descriptors0), (keypoints1, descriptors1) = (
            sift.detectAndCompute(image, None) for image in (pair.image0, pair.image1)
        )
        matches = [
            best
            for best, second in cv2.BFMatcher().knnMatch(descriptors0, descriptors1, 2)
            if best.distance < 0.8 * second.distance
        ]
        points0 = np.array([keypoints0[match.queryIdx].pt for match in matches])
        points1 = np.array([keypoints1[match.trainIdx].pt for match in matches])
        camera = CameraModel(pair.K, 640, 480)
        pose = relative_pose_from_matches(points0, points1, camera, camera)
        assert pose.num_inliers > 300
        assert (
            max(pose_error_deg(pose.rotation, pose.translation, pair.rotation, pair.translation))
            < 1.0
        )

    def test_any_size(self) -> None:
        small = synthetic_pair(160, 120, grid_step_px=8)
        assert small.image0.shape == small.depth1.shape == (120, 160)
        assert small.K[0, 2] == pytest.approx(79.5)
        assert len(small.points0) > 100


class TestStereoSequence:
    def test_camera_info_layout_and_poses(self) -> None:
        sequence = stereo_sequence(3, 320, 240, baseline_m=0.1)
        assert len(sequence.frames) == 3
        np.testing.assert_array_equal(sequence.projection_left[:, :3], sequence.K)
        assert sequence.projection_left[0, 3] == 0
        assert sequence.projection_right[0, 3] == pytest.approx(-sequence.K[0, 0] * 0.1)
        np.testing.assert_array_equal(sequence.frames[0].pose_world_left, np.eye(4))
        rotation, translation = sequence.relative_pose(1, 2)
        np.testing.assert_allclose(
            sequence.frames[1].pose_world_left[:3, :3] @ translation, [0.06, 0.01, 0.05], atol=1e-12
        )
        assert np.degrees(np.arccos((np.trace(rotation) - 1) / 2)) == pytest.approx(
            np.linalg.norm([0.3, -1.0, 0.2])
        )

    def test_stereo_pair_is_rectified(self) -> None:
        sequence = stereo_sequence(1, 320, 240)
        frame = sequence.frames[0]
        left_right = np.eye(4)
        left_right[0, 3] = sequence.baseline_m
        grid = grid_points(320, 240, 8)
        points_right, visible = transfer_points(
            grid, frame.depth_left, sequence.K, left_right, frame.depth_right
        )
        assert np.count_nonzero(visible) > 0.8 * len(grid)
        np.testing.assert_allclose(points_right[visible, 1], grid[visible, 1], atol=1e-9)
        depth = frame.depth_left[grid[visible, 1].astype(int), grid[visible, 0].astype(int)]
        disparity = grid[visible, 0] - points_right[visible, 0]
        np.testing.assert_allclose(disparity, sequence.K[0, 0] * sequence.baseline_m / depth)
        matched = _patch_correlation(frame.left, grid[visible], frame.right, points_right[visible])
        assert np.median(matched) > 0.9

"""relative_pose_from_matches and pose_error_deg on synthetic scenes with known R, t."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from edm_ros.errors import BackendError, ConfigError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import (
    UNKNOWN_VARIANCE,
    RelativePose,
    pose_error_deg,
    relative_pose_from_matches,
)

METHODS = ("magsac", "ransac", "poselib")
K = np.array([[500.0, 0.0, 320.0], [0.0, 490.0, 240.0], [0.0, 0.0, 1.0]])
PLUMB_BOB = np.array([-0.25, 0.06, 2e-4, -1e-4, 0.0])
EUROC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "euroc_v101_micro_stereo"


class Scene(NamedTuple):
    points_ref_px: np.ndarray  # [N, 2]
    points_cur_px: np.ndarray  # [N, 2]
    camera: CameraModel
    rotation_ref_cur: np.ndarray  # [3, 3]
    translation_ref_cur: np.ndarray  # [3]


def make_scene(
    num_points: int = 200,
    rotation_vector: tuple[float, float, float] = (0.03, -0.08, 0.02),
    translation_ref_cur: tuple[float, float, float] = (0.4, 0.05, 0.1),
    noise_px: float = 0.0,
    distortion: np.ndarray | None = None,
    seed: int = 0,
) -> Scene:
    """Random 3-D points 3-8 m in front of the reference camera, seen from both cameras."""
    rng = np.random.default_rng(seed)
    points_ref = rng.uniform([-2.5, -2.0, 3.0], [2.5, 2.0, 8.0], (num_points, 3))
    rotation = cv2.Rodrigues(np.array(rotation_vector))[0]
    translation = np.array(translation_ref_cur)
    points_cur = (points_ref - translation) @ rotation  # X_cur = R^T (X_ref - t)
    coefficients = np.zeros(5) if distortion is None else distortion
    zero = np.zeros(3)
    pixels = [
        cv2.projectPoints(points, zero, zero, K, coefficients)[0].reshape(-1, 2)
        + rng.normal(0.0, noise_px, (num_points, 2))
        for points in (points_ref, points_cur)
    ]
    model = "none" if distortion is None else "plumb_bob"
    camera = CameraModel(K, 640, 480, coefficients, model)
    return Scene(pixels[0], pixels[1], camera, rotation, translation)


def estimate(scene: Scene, **kwargs: object) -> RelativePose:
    return relative_pose_from_matches(
        scene.points_ref_px, scene.points_cur_px, scene.camera, scene.camera, **kwargs
    )


class TestKnownPose:
    @pytest.mark.parametrize("distorted", [False, True], ids=["pinhole", "plumb_bob"])
    @pytest.mark.parametrize("method", METHODS)
    def test_exact_matches_recover_the_pose(self, method: str, distorted: bool) -> None:
        scene = make_scene(distortion=PLUMB_BOB if distorted else None)
        pose = estimate(scene, method=method)
        assert pose.success, pose.reason
        assert pose.reason == ""
        assert not pose.metric
        rotation_error, translation_error = pose_error_deg(
            pose.rotation, pose.translation, scene.rotation_ref_cur, scene.translation_ref_cur
        )
        assert rotation_error < 0.1
        assert translation_error < 0.1
        assert pose.translation @ scene.translation_ref_cur > 0  # sign too, not only the line
        assert np.linalg.norm(pose.translation) == pytest.approx(1.0)
        assert pose.num_inliers >= 195

    @pytest.mark.parametrize("method", METHODS)
    def test_moving_along_x_gives_t_ref_cur_along_plus_x(self, method: str) -> None:
        scene = make_scene(rotation_vector=(0.0, 0.1, 0.0), translation_ref_cur=(0.5, 0.0, 0.0))
        pose = estimate(scene, method=method)
        assert pose.translation[0] > 0.999
        # R_ref_cur, not its transpose: the current camera is turned +0.1 rad about y
        np.testing.assert_allclose(cv2.Rodrigues(pose.rotation)[0].ravel(), [0, 0.1, 0], atol=1e-4)

    @pytest.mark.parametrize("method", METHODS)
    def test_thirty_percent_outliers_are_rejected(self, method: str) -> None:
        scene = make_scene(num_points=300, noise_px=0.3, seed=1)
        rng = np.random.default_rng(7)
        is_outlier = np.zeros(300, bool)
        is_outlier[rng.choice(300, 90, replace=False)] = True
        points_cur = scene.points_cur_px.copy()
        points_cur[is_outlier] = rng.uniform([0, 0], [640, 480], (90, 2))
        pose = relative_pose_from_matches(
            scene.points_ref_px, points_cur, scene.camera, scene.camera, method=method
        )
        assert pose.success, pose.reason
        errors = pose_error_deg(
            pose.rotation, pose.translation, scene.rotation_ref_cur, scene.translation_ref_cur
        )
        assert max(errors) < 2.0  # 0.3 px noise; RANSAC without refinement is the worst
        assert pose.inlier_mask.shape == (300,)
        assert pose.inlier_mask.dtype == bool
        assert np.mean(pose.inlier_mask[is_outlier]) < 0.05
        assert np.mean(pose.inlier_mask[~is_outlier]) > 0.95


class TestFailure:
    @pytest.mark.parametrize("method", METHODS)
    def test_three_matches_fail_with_reason(self, method: str) -> None:
        scene = make_scene(num_points=3)
        pose = estimate(scene, method=method)
        assert not pose.success
        assert pose.reason == "3 matches < 5 needed for an essential matrix"
        assert pose.inlier_mask.shape == (3,)
        assert pose.num_inliers == 0
        np.testing.assert_array_equal(pose.rotation, np.eye(3))
        np.testing.assert_array_equal(pose.translation, np.zeros(3))
        np.testing.assert_array_equal(pose.covariance, UNKNOWN_VARIANCE * np.eye(6))

    @pytest.mark.parametrize("method", METHODS)
    def test_random_matches_fail_with_too_few_inliers(self, method: str) -> None:
        rng = np.random.default_rng(3)
        camera = CameraModel(K, 640, 480)
        points = rng.uniform([0, 0], [640, 480], (2, 50, 2))
        pose = relative_pose_from_matches(points[0], points[1], camera, camera, method=method)
        assert not pose.success
        assert pose.reason.endswith("inliers < min_inliers 15") or "no essential" in pose.reason
        assert pose.num_inliers < 15

    def test_min_inliers_above_the_inlier_count_fails(self) -> None:
        pose = estimate(make_scene(num_points=40), min_inliers=41)
        assert not pose.success
        assert pose.reason == "40 inliers < min_inliers 41"
        assert pose.num_inliers == 40  # kept for diagnostics


def _direction_variance(pose: RelativePose) -> float:
    """Translation variance across the translation (the direction part, without the scale)."""
    across = np.eye(3) - np.outer(pose.translation, pose.translation)
    return float(np.trace(across @ pose.covariance[:3, :3] @ across))


class TestCovariance:
    def test_symmetric_positive_semidefinite_with_unknown_scale(self) -> None:
        pose = estimate(make_scene(noise_px=0.5), method="poselib")
        covariance = pose.covariance
        assert covariance.shape == (6, 6)
        np.testing.assert_allclose(covariance, covariance.T, atol=0)
        assert np.linalg.eigvalsh(covariance).min() > -1e-12
        along = pose.translation @ covariance[:3, :3] @ pose.translation
        assert along == pytest.approx(UNKNOWN_VARIANCE, rel=1e-3)
        assert np.all(np.diag(covariance)[3:] > 0)
        assert np.all(np.diag(covariance)[3:] < 1e-4)  # rad^2: well below 0.6 deg std

    def test_grows_with_pixel_noise(self) -> None:
        small, large = (
            estimate(make_scene(noise_px=noise, seed=5), method="poselib", threshold_px=3 * noise)
            for noise in (0.5, 2.0)
        )
        rotation_ratio = np.trace(large.covariance[3:, 3:]) / np.trace(small.covariance[3:, 3:])
        direction_ratio = _direction_variance(large) / _direction_variance(small)
        assert 8 < rotation_ratio < 32  # ~ (2.0 / 0.5)^2
        assert 8 < direction_ratio < 32

    def test_predicts_the_actual_error(self) -> None:
        errors_rad, predicted_std_rad = [], []
        for seed in range(8):
            scene = make_scene(noise_px=1.0, seed=seed)
            pose = estimate(scene, method="poselib", threshold_px=3.0)
            errors_rad.append(
                np.radians(
                    pose_error_deg(
                        pose.rotation,
                        pose.translation,
                        scene.rotation_ref_cur,
                        scene.translation_ref_cur,
                    )[0]
                )
            )
            predicted_std_rad.append(np.sqrt(np.trace(pose.covariance[3:, 3:])))
        ratio = np.sqrt(np.mean(np.square(errors_rad))) / np.mean(predicted_std_rad)
        assert 0.3 < ratio < 3.0


class TestInputErrors:
    def test_messages(self) -> None:
        scene = make_scene(num_points=10)
        camera = scene.camera
        with pytest.raises(InputError, match=r"points_ref_px: expected a numeric \[N, 2\]"):
            relative_pose_from_matches(np.zeros((10, 3)), scene.points_cur_px, camera, camera)
        with pytest.raises(InputError, match="points_cur_px: 1 of 10 points are NaN"):
            bad = scene.points_cur_px.copy()
            bad[4, 1] = np.inf
            relative_pose_from_matches(scene.points_ref_px, bad, camera, camera)
        with pytest.raises(InputError, match="has 10 points but points_cur_px has 9"):
            relative_pose_from_matches(scene.points_ref_px, scene.points_cur_px[:9], camera, camera)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"method": "lmeds"}, "method: expected one of"),
            ({"threshold_px": 0.0}, "threshold_px: expected a positive number"),
            ({"confidence": 1.0}, r"confidence: expected a probability in \(0, 1\)"),
            ({"min_inliers": 4}, "min_inliers: expected at least 5"),
        ],
    )
    def test_bad_options_raise_config_error(self, kwargs: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            estimate(make_scene(num_points=10), **kwargs)

    def test_missing_poselib_names_the_package(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "poselib", None)  # makes `import poselib` fail
        with pytest.raises(BackendError, match="pip install poselib"):
            estimate(make_scene(), method="poselib")


class TestPoseError:
    def test_known_values(self) -> None:
        rotation = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(10.0)]))[0]
        x, y = np.array([1.0, 0, 0]), np.array([0, 2.0, 0])
        assert pose_error_deg(rotation, x, np.eye(3), x) == pytest.approx((10.0, 0.0), abs=1e-6)
        assert pose_error_deg(np.eye(3), x, np.eye(3), -3 * x)[1] == pytest.approx(0.0, abs=1e-6)
        assert pose_error_deg(np.eye(3), x, np.eye(3), y)[1] == pytest.approx(90.0)
        assert pose_error_deg(np.eye(3), x, np.eye(3), x + y / 2)[1] == pytest.approx(45.0)
        assert pose_error_deg(np.eye(3), x + y / 2, np.eye(3), -x)[1] == pytest.approx(45.0)

    def test_zero_translation_has_no_direction(self) -> None:
        assert np.isnan(pose_error_deg(np.eye(3), np.zeros(3), np.eye(3), np.ones(3))[1])

    def test_bad_shapes_raise_input_error(self) -> None:
        with pytest.raises(InputError, match=r"R_gt: expected finite values of shape \(3, 3\)"):
            pose_error_deg(np.eye(3), np.ones(3), np.eye(4), np.ones(3))
        with pytest.raises(InputError, match=r"t_est: expected finite values of shape \(3,\)"):
            pose_error_deg(np.eye(3), np.array([1.0, np.nan, 0.0]), np.eye(3), np.ones(3))


def test_euroc_stereo_pair_gives_the_calibrated_extrinsic() -> None:
    """Real, distorted images: SIFT matches of a EuRoC stereo pair against the Kalibr extrinsic."""
    if not EUROC.is_dir():
        pytest.skip(f"real data not found at {EUROC}")
    pair = json.loads((EUROC / "pairs_gt.json").read_text())[0]
    images = [
        cv2.imread(str(EUROC / pair[key]), cv2.IMREAD_GRAYSCALE) for key in ("image0", "image1")
    ]
    sift = cv2.SIFT_create(2000)
    (keypoints0, descriptors0), (keypoints1, descriptors1) = (
        sift.detectAndCompute(image, None) for image in images
    )
    matches = [
        best
        for best, second in cv2.BFMatcher().knnMatch(descriptors0, descriptors1, 2)
        if best.distance < 0.8 * second.distance
    ]
    points0 = np.array([keypoints0[match.queryIdx].pt for match in matches])
    points1 = np.array([keypoints1[match.trainIdx].pt for match in matches])
    camera0, camera1 = (
        CameraModel(np.array(pair[k]), 752, 480, np.array(pair[d]), "plumb_bob")
        for k, d in (("K0", "dist0"), ("K1", "dist1"))
    )
    pose = relative_pose_from_matches(points0, points1, camera0, camera1)
    transform_1_0 = np.array(pair["T_0to1"])  # X_1 = R X_0 + t
    rotation_0_1 = transform_1_0[:3, :3].T
    errors = pose_error_deg(
        pose.rotation, pose.translation, rotation_0_1, -rotation_0_1 @ transform_1_0[:3, 3]
    )
    assert pose.success, pose.reason
    assert errors[0] < 1.0
    assert errors[1] < 10.0
    assert pose.translation[0] > 0.95  # cam1 (right) sits at +x of cam0

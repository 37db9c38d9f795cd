"""PnP: metric pose from reference 3-D points and current pixels; covariance and failures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.pnp import pose_from_points

K = np.array([[450.0, 0.0, 320.0], [0.0, 450.0, 240.0], [0.0, 0.0, 1.0]])
ROTATION_REF_CUR = cv2.Rodrigues(np.radians([1.0, -3.0, 0.5]).reshape(3, 1))[0]
TRANSLATION_REF_CUR = np.array([0.08, -0.02, 0.15])


def _scene(count: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points 2-8 m in front of the reference camera and their exact pixels in the current one."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform([20, 20], [620, 460], (count, 2))
    depth = rng.uniform(2.0, 8.0, count)
    rays = np.column_stack([pixels, np.ones(count)]) @ np.linalg.inv(K).T
    points_ref = rays * depth[:, None]
    points_cur = (points_ref - TRANSLATION_REF_CUR) @ ROTATION_REF_CUR  # R^T (X - t), row-wise
    projected = points_cur @ K.T
    return points_ref, projected[:, :2] / projected[:, 2:]


def _rotation_error_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(rotation.T @ ROTATION_REF_CUR)[0])))


def test_exact_correspondences_give_the_exact_pose() -> None:
    points_ref, pixels_cur = _scene()
    pose = pose_from_points(points_ref, pixels_cur, K)
    assert pose.success and pose.metric and pose.reason == ""
    assert _rotation_error_deg(pose.rotation) < 1e-6
    np.testing.assert_allclose(pose.translation, TRANSLATION_REF_CUR, atol=1e-8)
    assert pose.num_inliers == len(points_ref)


def test_outliers_and_points_without_depth_are_never_inliers() -> None:
    points_ref, pixels_cur = _scene(seed=1)
    rng = np.random.default_rng(1)
    outliers = rng.choice(len(points_ref), 90, replace=False)
    pixels_cur[outliers] = rng.uniform([0, 0], [640, 480], (90, 2))
    points_ref[:10] = np.nan  # no stereo depth
    pose = pose_from_points(points_ref, pixels_cur, K, threshold_px=1.0)
    assert pose.success
    assert _rotation_error_deg(pose.rotation) < 1e-4
    np.testing.assert_allclose(pose.translation, TRANSLATION_REF_CUR, atol=1e-5)
    assert not pose.inlier_mask[:10].any()
    assert not pose.inlier_mask[outliers].any()  # moved by more than 1 px (almost surely)


def test_covariance_grows_with_the_square_of_the_pixel_noise_and_predicts_the_error() -> None:
    points_ref, pixels_cur = _scene(count=400, seed=2)
    traces, rotation_errors, rotation_stds = {}, [], []
    for noise_px in (0.5, 1.0):
        noisy = pixels_cur + np.random.default_rng(3).normal(0, noise_px, pixels_cur.shape)
        pose = pose_from_points(points_ref, noisy, K, threshold_px=4 * noise_px)
        assert pose.success
        covariance = pose.covariance
        assert covariance.shape == (6, 6)
        np.testing.assert_allclose(covariance, covariance.T)
        assert np.all(np.linalg.eigvalsh(covariance) > 0)
        traces[noise_px] = np.trace(covariance)
        rotation_errors.append(_rotation_error_deg(pose.rotation))
        rotation_stds.append(float(np.degrees(np.sqrt(np.trace(covariance[3:, 3:])))))
    assert 3.0 < traces[1.0] / traces[0.5] < 5.5
    for error_deg, std_deg in zip(rotation_errors, rotation_stds):
        assert error_deg < 4 * std_deg


def test_exact_points_still_get_the_noise_floor_covariance() -> None:
    points_ref, pixels_cur = _scene()
    covariance = pose_from_points(points_ref, pixels_cur, K).covariance
    assert np.all(np.diag(covariance) > 0)  # MIN_SIGMA_PX: never claims certainty


def test_too_few_points_with_depth_is_a_failure_with_the_reason() -> None:
    points_ref, pixels_cur = _scene(count=20)
    points_ref[5:] = np.nan
    pose = pose_from_points(points_ref, pixels_cur, K, min_inliers=15)
    assert not pose.success and pose.metric
    assert pose.reason == "5 matches with a stereo depth < min_inliers 15"
    assert np.allclose(pose.rotation, np.eye(3))


def test_malformed_input_and_options_raise() -> None:
    points_ref, pixels_cur = _scene(count=20)
    with pytest.raises(InputError, match=r"points_ref_m: expected \[N, 3\] with N = 20"):
        pose_from_points(points_ref[:, :2], pixels_cur, K)
    with pytest.raises(InputError, match="expected"):
        pose_from_points(points_ref[:10], pixels_cur, K)
    with pytest.raises(ConfigError, match="threshold_px"):
        pose_from_points(points_ref, pixels_cur, K, threshold_px=0.0)
    with pytest.raises(ConfigError, match="min_inliers: expected at least 6"):
        pose_from_points(points_ref, pixels_cur, K, min_inliers=3)

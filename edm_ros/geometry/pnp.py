"""Metric pose from 3-D points of a reference frame and their pixels in the current image (PnP).

Stereo visual odometry solves 3D-2D: the reference (key)frame's left <-> right matches give 3-D
points in its left camera, the reference-left <-> current-left matches give their pixels now.
Unlike an essential matrix, this needs no parallax: standing still gives the identity and turning
in place gives the rotation. Frames as in `edm_ros.geometry.pose`: the result is `T_ref_cur`
(`X_ref = R X_cur + t`); OpenCV's `T_cur_ref` is inverted once, here.
"""

from __future__ import annotations

import cv2
import numpy as np

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import as_points_px
from edm_ros.geometry.pose import RelativePose, least_squares_covariance

MIN_PNP_POINTS = 6  # below this the 6-DoF least squares has no redundancy
_PNP_ITERATIONS = 1000  # RANSAC cap; the adaptive stopping usually ends far earlier
_JACOBIAN_STEP = 1e-6  # metres / rad, central differences of the reprojection


def pose_from_points(
    points_ref_m: np.ndarray,
    points_cur_px: np.ndarray,
    intrinsics: np.ndarray,
    *,
    threshold_px: float = 1.0,
    confidence: float = 0.99999,
    min_inliers: int = 15,
) -> RelativePose:
    """Estimates the metric `T_ref_cur` from 3-D reference points seen in the current image.

    RANSAC over EPnP samples (OpenCV `solvePnPRansac`), Levenberg-Marquardt refinement on the
    inliers, inliers re-selected with the refined pose. The covariance is the Gauss-Newton
    approximation sigma^2 (J^T J)^-1 of the inlier reprojection residuals, sigma^2 their residual
    variance in pixels (at least pose.MIN_SIGMA_PX^2).

    Args:
        points_ref_m: [N, 3] points in the reference camera's optical frame, metres; rows with
            NaN (no depth) are never inliers.
        points_cur_px: [N, 2] (x, y) their pixels in the current (rectified, undistorted) image.
        intrinsics: [3, 3] K of the current image (the rectified left P[:3, :3]).
        threshold_px: Reprojection inlier threshold, pixels.
        confidence: RANSAC confidence in (0, 1).
        min_inliers: Fewer inliers is a failure (at least MIN_PNP_POINTS).

    Returns:
        The pose with `metric=True`; `success=False` with a reason for too few points or
        inliers (never raises for those). The covariance is over (x, y, z, rot_x, rot_y, rot_z)
        with rotations about the reference frame's axes, m^2 / rad^2.

    Raises:
        InputError: If the arrays are malformed or of different lengths.
        ConfigError: If an option is out of range.
    """
    if not (np.isfinite(threshold_px) and threshold_px > 0) or not 0 < confidence < 1:
        raise ConfigError(
            f"threshold_px {threshold_px} must be > 0 and confidence {confidence} in (0, 1)"
        )
    if min_inliers < MIN_PNP_POINTS:
        raise ConfigError(f"min_inliers: expected at least {MIN_PNP_POINTS}, got {min_inliers}.")
    points_ref = np.asarray(points_ref_m, dtype=np.float64)
    points_cur = as_points_px(points_cur_px, "points_cur_px")
    if points_ref.ndim != 2 or points_ref.shape[1] != 3 or len(points_ref) != len(points_cur):
        raise InputError(
            f"points_ref_m: expected [N, 3] with N = {len(points_cur)} (the pixels' count), got "
            f"shape {points_ref.shape}"
        )
    K = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
    usable = np.all(np.isfinite(points_ref), axis=1) & (points_ref[:, 2] > 0)
    num_usable = int(np.count_nonzero(usable))
    if num_usable < min_inliers:
        return RelativePose.failure(
            f"{num_usable} matches with a stereo depth < min_inliers {min_inliers}",
            len(points_ref),
            metric=True,
        )
    index = np.flatnonzero(usable)
    found, rvec, tvec, _ = cv2.solvePnPRansac(
        points_ref[index],
        points_cur[index],
        K,
        None,
        iterationsCount=_PNP_ITERATIONS,
        reprojectionError=threshold_px,
        confidence=confidence,
        flags=cv2.SOLVEPNP_EPNP,
    )
    if not found:
        return RelativePose.failure("PnP RANSAC found no pose", len(points_ref), metric=True)
    inliers = _inliers(points_ref, points_cur, K, rvec, tvec, usable, threshold_px)
    if np.count_nonzero(inliers) >= MIN_PNP_POINTS:
        rvec, tvec = cv2.solvePnPRefineLM(
            points_ref[inliers], points_cur[inliers], K, None, rvec, tvec
        )
        inliers = _inliers(points_ref, points_cur, K, rvec, tvec, usable, threshold_px)
    num_inliers = int(np.count_nonzero(inliers))
    if num_inliers < min_inliers:
        return RelativePose.failure(
            f"{num_inliers} PnP inliers < min_inliers {min_inliers}",
            len(points_ref),
            inliers,
            metric=True,
        )
    rotation_cur_ref = cv2.Rodrigues(rvec)[0]
    rotation_ref_cur = rotation_cur_ref.T
    translation_ref_cur = -rotation_ref_cur @ tvec.reshape(3)
    covariance = pnp_covariance(
        points_ref[inliers], points_cur[inliers], K, rotation_ref_cur, translation_ref_cur
    )
    return RelativePose(True, "", rotation_ref_cur, translation_ref_cur, True, inliers, covariance)


def _inliers(
    points_ref: np.ndarray,
    points_cur: np.ndarray,
    K: np.ndarray,
    rvec: np.ndarray,
    tvec: np.ndarray,
    usable: np.ndarray,
    threshold_px: float,
) -> np.ndarray:
    """[N] bool: usable points in front of the current camera reprojecting within the threshold."""
    rotation = cv2.Rodrigues(rvec)[0]
    inliers = np.zeros(len(points_ref), bool)
    points_cam = points_ref[usable] @ rotation.T + tvec.reshape(3)
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = points_cam @ K.T
        pixels = projected[:, :2] / projected[:, 2:]
    error_px = np.linalg.norm(pixels - points_cur[usable], axis=1)
    inliers[usable] = (points_cam[:, 2] > 0) & (error_px <= threshold_px)
    return inliers


def _reprojection_residuals_px(
    points_ref: np.ndarray,
    points_cur: np.ndarray,
    K: np.ndarray,
    rotation_ref_cur: np.ndarray,
    translation_ref_cur: np.ndarray,
) -> np.ndarray:
    """[2N] reprojection residuals (x then y per point) of the pose T_ref_cur, pixels."""
    points_cam = (points_ref - translation_ref_cur) @ rotation_ref_cur  # R^T (X - t), row-wise
    projected = points_cam @ K.T
    return (projected[:, :2] / projected[:, 2:] - points_cur).reshape(-1)


def pnp_covariance(
    points_ref_m: np.ndarray,
    points_cur_px: np.ndarray,
    intrinsics: np.ndarray,
    rotation_ref_cur: np.ndarray,
    translation_ref_cur: np.ndarray,
) -> np.ndarray:
    """Covariance of a PnP pose from its inliers (Gauss-Newton approximation).

    Args:
        points_ref_m: [N, 3] inlier points in the reference camera frame, metres.
        points_cur_px: [N, 2] their pixels in the current image.
        intrinsics: [3, 3] K of the current image.
        rotation_ref_cur: [3, 3] R_ref_cur.
        translation_ref_cur: [3] t_ref_cur, metres.

    Returns:
        [6, 6] over (x, y, z, rot_x, rot_y, rot_z), m^2 / rad^2: t <- t + d_xyz and
        R <- exp([d_rot]x) R, the convention of `RelativePose.covariance`.
    """

    def residuals(params: np.ndarray) -> np.ndarray:
        rotation = cv2.Rodrigues(params[3:].reshape(3, 1))[0] @ rotation_ref_cur
        return _reprojection_residuals_px(
            points_ref_m, points_cur_px, intrinsics, rotation, translation_ref_cur + params[:3]
        )

    covariance = least_squares_covariance(residuals, 6, _JACOBIAN_STEP)
    return 0.5 * (covariance + covariance.T)

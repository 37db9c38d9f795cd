"""Relative camera pose from 2-D matches: essential matrix, pose recovery and its covariance.

Frames: every pose here is `T_ref_cur`, the current camera expressed in the reference camera's
optical frame (x right, y down, z forward): a point maps as `X_ref = R_ref_cur @ X_cur + t_ref_cur`.
OpenCV and poselib return the inverse (`X_cur = R @ X_ref + t`); it is inverted once, in
`relative_pose_from_matches`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import cv2
import numpy as np

from edm_ros.errors import BackendError, ConfigError, InputError
from edm_ros.geometry.camera import CameraModel, as_matched_points_px

PoseMethod = Literal["magsac", "ransac", "poselib"]

MIN_MATCHES = 5  # the five-point solver's minimum
# m^2 or rad^2: "not observed" (the scale of a unit translation; every entry of a failed pose)
UNKNOWN_VARIANCE = 1e6
# Floor on the matching noise behind the covariance: exact synthetic matches would otherwise claim
# a zero covariance, which filters downstream treat as infinite certainty.
MIN_SIGMA_PX = 0.1
# recoverPose counts a point only if it triangulates closer than this many baselines. OpenCV's
# default (50) rejects every point of a short visual-odometry step (5 cm baseline, scene at 3 m), so
# the cheirality vote would see no points; far points vote at random for every candidate alike.
_CHEIRALITY_MAX_DEPTH = 1e6
_JACOBIAN_STEP = 1e-7  # rad / normalised units, central differences


@dataclass(frozen=True)
class RelativePose:
    """Relative pose of the current camera in the reference camera frame (`T_ref_cur`).

    Attributes:
        success: False when no trustworthy pose was found; then `reason` says why.
        reason: "" on success, else e.g. "12 inliers < min_inliers 30".
        rotation: [3, 3] R_ref_cur, orientation of the current camera in the reference frame.
        translation: [3] t_ref_cur, position of the current camera in the reference frame; unit
            norm when `metric` is False, metres when True.
        metric: Whether `translation` is in metres (stereo scale) or only a direction.
        inlier_mask: [N] bool over the input matches (epipolar inliers of the chosen model).
        covariance: [6, 6] over (x, y, z, rot_x, rot_y, rot_z) as in
            geometry_msgs/PoseWithCovariance, m^2 / rad^2. Rotations are small angles about the
            reference frame's axes (R = exp([d_rot]x) R_ref_cur). A non-metric pose has
            UNKNOWN_VARIANCE m^2 along the translation direction (unknown scale); a failed pose
            has UNKNOWN_VARIANCE on the whole diagonal.
    """

    success: bool
    reason: str
    rotation: np.ndarray
    translation: np.ndarray
    metric: bool
    inlier_mask: np.ndarray
    covariance: np.ndarray

    @property
    def num_inliers(self) -> int:
        """Number of inlier matches."""
        return int(np.count_nonzero(self.inlier_mask))

    @classmethod
    def failure(
        cls,
        reason: str,
        num_matches: int,
        inlier_mask: np.ndarray | None = None,
        *,
        metric: bool = False,
    ) -> RelativePose:
        """A failed pose: identity, zero translation, UNKNOWN_VARIANCE covariance.

        Args:
            reason: Why it failed, for logs and diagnostics.
            num_matches: N, the length of `inlier_mask` when it is not given.
            inlier_mask: [N] bool inliers found before failing (kept for diagnostics).
            metric: Whether a metric pose was asked for.
        """
        mask = np.zeros(num_matches, bool) if inlier_mask is None else inlier_mask.astype(bool)
        return cls(
            False, reason, np.eye(3), np.zeros(3), metric, mask, UNKNOWN_VARIANCE * np.eye(6)
        )


class _Estimate(NamedTuple):
    rotation_cur_ref: np.ndarray  # [3, 3] X_cur = R X_ref + t (OpenCV / poselib convention)
    translation_cur_ref: np.ndarray  # [3] unit norm
    inliers: np.ndarray  # [N] bool


def relative_pose_from_matches(
    points_ref_px: np.ndarray,
    points_cur_px: np.ndarray,
    camera_ref: CameraModel,
    camera_cur: CameraModel,
    *,
    method: PoseMethod = "magsac",
    threshold_px: float = 1.0,
    confidence: float = 0.99999,
    min_inliers: int = 15,
) -> RelativePose:
    """Estimates `T_ref_cur` (unit translation) from matched pixels of two views.

    The points are undistorted and normalised by each camera; the essential matrix is estimated on
    them with `threshold_px` divided by the mean focal length of both cameras. "ransac" follows the
    LoFTR/EDM evaluation protocol (OpenCV RANSAC, recoverPose on every essential-matrix candidate,
    keep the one with most points in front of both cameras); "magsac" uses OpenCV's USAC MAGSAC++;
    "poselib" uses poselib's LO-RANSAC with non-linear refinement.

    Args:
        points_ref_px: [N, 2] (x, y) original-image pixels in the reference image.
        points_cur_px: [N, 2] matching pixels in the current image.
        camera_ref: Camera of the reference image.
        camera_cur: Camera of the current image.
        method: Robust estimator.
        threshold_px: Epipolar inlier threshold, pixels.
        confidence: Desired probability of finding the correct model, in (0, 1).
        min_inliers: Fewer inliers than this is a failure (at least 5).

    Returns:
        The pose; `success=False` with a reason for too few matches or inliers (never raises for
        those). The covariance is described in `RelativePose`.

    Raises:
        InputError: If the point arrays are not finite [N, 2] arrays of equal length.
        ConfigError: If an option is out of range.
        BackendError: If method is "poselib" and poselib is not installed.
    """
    _check_options(method, threshold_px, confidence, min_inliers)
    points_ref, points_cur = as_matched_points_px(
        points_ref_px, points_cur_px, "points_ref_px", "points_cur_px"
    )
    num_matches = len(points_ref)
    if num_matches < MIN_MATCHES:
        return RelativePose.failure(
            f"{num_matches} matches < {MIN_MATCHES} needed for an essential matrix", num_matches
        )
    rays_ref = camera_ref.normalize(points_ref)
    rays_cur = camera_cur.normalize(points_cur)
    focal_px = 0.5 * (camera_ref.mean_focal_px + camera_cur.mean_focal_px)
    if method == "poselib":
        estimate = _estimate_poselib(rays_ref, rays_cur, threshold_px / focal_px, confidence)
    else:
        flag = cv2.USAC_MAGSAC if method == "magsac" else cv2.RANSAC
        estimate = _estimate_opencv(rays_ref, rays_cur, focal_px, threshold_px, confidence, flag)
    if estimate is None:
        return RelativePose.failure(f"no essential matrix found ({method})", num_matches)
    inliers = estimate.inliers
    if np.count_nonzero(inliers) < min_inliers:
        return RelativePose.failure(
            f"{np.count_nonzero(inliers)} inliers < min_inliers {min_inliers}", num_matches, inliers
        )
    rotation_ref_cur = estimate.rotation_cur_ref.T
    translation_ref_cur = -rotation_ref_cur @ estimate.translation_cur_ref
    covariance = monocular_pose_covariance(
        rays_ref[inliers], rays_cur[inliers], rotation_ref_cur, translation_ref_cur, focal_px
    )
    return RelativePose(True, "", rotation_ref_cur, translation_ref_cur, False, inliers, covariance)


def _check_options(method: str, threshold_px: float, confidence: float, min_inliers: int) -> None:
    if method not in get_args(PoseMethod):
        raise ConfigError(f"method: expected one of {get_args(PoseMethod)}, got {method!r}.")
    if not (np.isfinite(threshold_px) and threshold_px > 0):
        raise ConfigError(
            f"threshold_px: expected a positive number of pixels, got {threshold_px}."
        )
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence: expected a probability in (0, 1), got {confidence}.")
    if min_inliers < MIN_MATCHES:
        raise ConfigError(f"min_inliers: expected at least {MIN_MATCHES}, got {min_inliers}.")


def _estimate_opencv(
    rays_ref: np.ndarray,
    rays_cur: np.ndarray,
    focal_px: float,
    threshold_px: float,
    confidence: float,
    flag: int,
) -> _Estimate | None:
    """OpenCV essential matrix; the candidate with most points in front of both cameras wins.

    The normalised points are handed over as pixels of a virtual pinhole camera with the mean
    focal length: OpenCV's RANSAC divides the threshold by that focal length (exactly the
    protocol's normalised threshold), while its MAGSAC++ mis-scores thresholds given directly in
    normalised units (~1e-3) and returns poses degrees off on exact data.
    """
    virtual_camera = np.diag([focal_px, focal_px, 1.0])
    points_ref, points_cur = rays_ref * focal_px, rays_cur * focal_px
    essential, mask = cv2.findEssentialMat(
        points_ref, points_cur, virtual_camera, method=flag, prob=confidence, threshold=threshold_px
    )
    if essential is None or mask is None or essential.shape[0] % 3 or essential.shape[1] != 3:
        return None
    best_count, best = 0, None
    for candidate in np.split(essential, essential.shape[0] // 3):
        count, rotation, translation, _, _ = cv2.recoverPose(
            candidate,
            points_ref,
            points_cur,
            virtual_camera,
            distanceThresh=_CHEIRALITY_MAX_DEPTH,
            mask=mask.copy(),
        )
        if count > best_count:
            best_count, best = count, (rotation, translation.reshape(3))
    if best is None:
        return None
    return _Estimate(best[0], best[1], mask.reshape(-1).astype(bool))


def _estimate_poselib(
    rays_ref: np.ndarray, rays_cur: np.ndarray, threshold: float, confidence: float
) -> _Estimate | None:
    """poselib LO-RANSAC + refinement on normalised points (a unit pinhole camera)."""
    try:
        import poselib  # optional: only this method needs it
    except ImportError as err:
        raise BackendError(
            f"method 'poselib' needs the poselib package ({err}); install it with "
            "`pip install poselib` or use method 'magsac'."
        ) from err
    unit_camera = {"model": "PINHOLE", "width": 1, "height": 1, "params": [1.0, 1.0, 0.0, 0.0]}
    ransac_options = {"max_epipolar_error": threshold, "success_prob": confidence}
    pose, info = poselib.estimate_relative_pose(
        rays_ref, rays_cur, unit_camera, unit_camera, ransac_options, {}
    )
    inliers = np.asarray(info["inliers"], dtype=bool)
    translation = np.asarray(pose.t, dtype=np.float64)
    if not inliers.any() or np.linalg.norm(translation) == 0:
        return None
    return _Estimate(np.asarray(pose.R), translation / np.linalg.norm(translation), inliers)


def skew(vector: np.ndarray) -> np.ndarray:
    """[3, 3] cross-product matrix of a [3] vector: ``skew(a) @ b == np.cross(a, b)``."""
    x, y, z = vector
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def tangent_basis(translation: np.ndarray) -> np.ndarray:
    """[3, 2] orthonormal basis of the plane orthogonal to a (non-zero) translation."""
    direction = translation / np.linalg.norm(translation)
    helper = np.eye(3)[np.argmin(np.abs(direction))]
    first = np.cross(direction, helper)
    first /= np.linalg.norm(first)
    return np.column_stack([first, np.cross(direction, first)])


def perturb_pose(
    rotation_ref_cur: np.ndarray, translation_ref_cur: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Moves a unit-translation pose along its 5 degrees of freedom (the covariance's tangent).

    Args:
        rotation_ref_cur: [3, 3] R_ref_cur.
        translation_ref_cur: [3] t_ref_cur (any non-zero norm).
        params: [5] small rotation about the reference axes (rad, R <- exp([r]x) R), then the
            step of the translation direction along `tangent_basis(translation_ref_cur)`.

    Returns:
        (rotation [3, 3], unit translation [3]) of the moved pose.
    """
    direction = translation_ref_cur / np.linalg.norm(translation_ref_cur)
    rotation = cv2.Rodrigues(np.asarray(params[:3], np.float64))[0] @ rotation_ref_cur
    translation = direction + tangent_basis(direction) @ params[3:]
    return rotation, translation / np.linalg.norm(translation)


def _sampson_residuals(
    rays_ref: np.ndarray,
    rays_cur: np.ndarray,
    rotation_ref_cur: np.ndarray,
    translation_ref_cur: np.ndarray,
) -> np.ndarray:
    """[N] Sampson epipolar errors in normalised units for the pose T_ref_cur."""
    essential = rotation_ref_cur.T @ skew(translation_ref_cur)  # x_cur^T E x_ref = 0, up to sign
    homogeneous_ref = np.column_stack([rays_ref, np.ones(len(rays_ref))])
    homogeneous_cur = np.column_stack([rays_cur, np.ones(len(rays_cur))])
    lines_cur = homogeneous_ref @ essential.T  # [N, 3] epipolar lines in the current image
    lines_ref = homogeneous_cur @ essential  # [N, 3] epipolar lines in the reference image
    algebraic = np.sum(homogeneous_cur * lines_cur, axis=1)
    gradient = np.sqrt(np.sum(lines_cur[:, :2] ** 2, 1) + np.sum(lines_ref[:, :2] ** 2, 1))
    return algebraic / np.maximum(gradient, 1e-15)


def monocular_pose_covariance(
    rays_ref: np.ndarray,
    rays_cur: np.ndarray,
    rotation_ref_cur: np.ndarray,
    translation_ref_cur: np.ndarray,
    focal_px: float,
) -> np.ndarray:
    """Covariance of a unit-translation pose from its inlier matches (Gauss-Newton approximation).

    The Sampson errors of the inliers are linearised at the pose over its 5 degrees of freedom
    (rotation about the reference axes, 2 for the translation direction): cov = sigma^2 (J^T J)^-1
    with sigma^2 the residual variance in pixels (at least MIN_SIGMA_PX). The scale is not
    observable: UNKNOWN_VARIANCE m^2 is added along the translation.

    Args:
        rays_ref: [N, 2] normalised inlier points of the reference image.
        rays_cur: [N, 2] normalised inlier points of the current image.
        rotation_ref_cur: [3, 3] R_ref_cur.
        translation_ref_cur: [3] unit t_ref_cur.
        focal_px: Mean focal length, converts normalised residuals to pixels.

    Returns:
        [6, 6] covariance over (x, y, z, rot_x, rot_y, rot_z), m^2 / rad^2 (unit translation).
    """
    direction = translation_ref_cur / np.linalg.norm(translation_ref_cur)

    def residuals_px(params: np.ndarray) -> np.ndarray:
        rotation, translation = perturb_pose(rotation_ref_cur, direction, params)
        return focal_px * _sampson_residuals(rays_ref, rays_cur, rotation, translation)

    covariance_5 = least_squares_covariance(residuals_px, 5, _JACOBIAN_STEP)
    mapping = tangent_to_pose_jacobian(direction)
    covariance = mapping @ covariance_5 @ mapping.T
    covariance[:3, :3] += UNKNOWN_VARIANCE * np.outer(direction, direction)
    return 0.5 * (covariance + covariance.T)


def tangent_to_pose_jacobian(translation_ref_cur: np.ndarray) -> np.ndarray:
    """[6, 5] d(x, y, z, rot_x, rot_y, rot_z) / d(params of `perturb_pose`) at unit translation.

    Its columns are orthonormal, so its transpose maps a [6, 6] covariance back to the [5, 5]
    tangent covariance.
    """
    mapping = np.zeros((6, 5))
    mapping[:3, 3:] = tangent_basis(translation_ref_cur)
    mapping[3:, :3] = np.eye(3)
    return mapping


def least_squares_covariance(
    residuals_px: Callable[[np.ndarray], np.ndarray], num_params: int, step: float
) -> np.ndarray:
    """Gauss-Newton covariance of a fit at its optimum: sigma^2 (J^T J)^-1.

    Args:
        residuals_px: parameter offset [P] -> residuals [R] in pixels (the fit sits at offset 0).
        num_params: P.
        step: central-difference step of the numerical Jacobian J [R, P].

    Returns:
        [P, P]; sigma^2 is the residual variance (R - P degrees of freedom), at least
        MIN_SIGMA_PX^2 so that exact data does not claim infinite certainty.
    """
    residuals = residuals_px(np.zeros(num_params))
    jacobian = np.empty((len(residuals), num_params))
    for index in range(num_params):
        offset = np.zeros(num_params)
        offset[index] = step
        jacobian[:, index] = (residuals_px(offset) - residuals_px(-offset)) / (2 * step)
    dof = max(len(residuals) - num_params, 1)
    sigma_sq = max(float(residuals @ residuals) / dof, MIN_SIGMA_PX**2)
    return sigma_sq * inverse_information(jacobian.T @ jacobian)


def inverse_information(information: np.ndarray) -> np.ndarray:
    """Inverse of a PSD information matrix; unobservable directions get a huge, finite variance."""
    eigenvalues, eigenvectors = np.linalg.eigh(information)
    largest = float(eigenvalues[-1])
    if largest <= 0:
        return UNKNOWN_VARIANCE * np.eye(len(information))
    floored = np.maximum(eigenvalues, largest * 1e-12)
    return (eigenvectors / floored) @ eigenvectors.T


def pose_error_deg(
    R_est: np.ndarray,  # the protocol's usual names
    t_est: np.ndarray,
    R_gt: np.ndarray,
    t_gt: np.ndarray,
) -> tuple[float, float]:
    """Pose errors of the LoFTR/EDM evaluation protocol.

    Both poses must use the same convention (both T_ref_cur, or both T_cur_ref); the translation
    is compared as a direction, so its scale does not matter.

    Args:
        R_est: [3, 3] estimated rotation.
        t_est: [3] estimated translation (any scale).
        R_gt: [3, 3] ground-truth rotation.
        t_gt: [3] ground-truth translation (any scale).

    Returns:
        (rotation error, translation direction error) in degrees; the second is min(e, 180 - e),
        so the sign of the translation is ignored, and NaN when either translation is zero
        (direction undefined).

    Raises:
        InputError: If the shapes are not [3, 3] and [3] or a value is not finite.
    """
    arrays = {"R_est": R_est, "t_est": t_est, "R_gt": R_gt, "t_gt": t_gt}
    for name, value in arrays.items():
        expected = (3, 3) if name.startswith("R") else (3,)
        array = np.asarray(value, dtype=np.float64)
        if array.reshape(-1).shape != (int(np.prod(expected)),) or not np.all(np.isfinite(array)):
            raise InputError(
                f"{name}: expected finite values of shape {expected}, got shape {array.shape}."
            )
    rotation_est = np.asarray(R_est, dtype=np.float64).reshape(3, 3)
    rotation_gt = np.asarray(R_gt, dtype=np.float64).reshape(3, 3)
    cos_rotation = (np.trace(rotation_est.T @ rotation_gt) - 1.0) / 2.0
    rotation_error = float(np.degrees(np.arccos(np.clip(cos_rotation, -1.0, 1.0))))
    translation_est = np.asarray(t_est, dtype=np.float64).reshape(3)
    translation_gt = np.asarray(t_gt, dtype=np.float64).reshape(3)
    norms = np.linalg.norm(translation_est) * np.linalg.norm(translation_gt)
    if norms == 0:
        return rotation_error, float("nan")
    cos_translation = float(translation_est @ translation_gt) / norms
    angle = float(np.degrees(np.arccos(np.clip(cos_translation, -1.0, 1.0))))
    return rotation_error, min(angle, 180.0 - angle)

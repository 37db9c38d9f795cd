"""Rectified stereo: baseline, triangulation, and the metric scale of a monocular pose.

All stereo inputs are *rectified* images described by their ROS CameraInfo projection matrices
`P = [[fx, 0, cx, Tx], [0, fy, cy, 0], [0, 0, 1, 0]]`: the left camera has Tx = 0, the right one
Tx = -fx * baseline (stereo_image_proc / image_geometry convention). 3-D points are in the left
camera optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import as_matched_points_px, as_points_px
from edm_ros.geometry.pose import RelativePose, perturb_pose, tangent_to_pose_jacobian

_MAX_RELATIVE_SCALE_SIGMA = 0.1  # scale std / scale above this: no usable scale
_MIN_RELATIVE_SCALE_SIGMA = 1e-3  # floor of the scale's std (exact data would claim certainty)
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> std of a normal distribution
_ASSOCIATION_CHUNK = 256  # query rows per block of the brute-force neighbour search
_SCALE_JACOBIAN_STEP = 1e-5  # rad / unit-direction step for the scale sensitivity


@dataclass(frozen=True)
class StereoPoints:
    """Triangulated left<->right matches.

    Attributes:
        points_m: [N, 3] float64 points in the left camera optical frame, metres; NaN where
            `valid` is False.
        valid: [N] bool, True where the match has positive disparity above the minimum and a
            small vertical disparity.
    """

    points_m: np.ndarray
    valid: np.ndarray


def _projection(projection: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(projection, dtype=np.float64)
    if matrix.size != 12 or not np.all(np.isfinite(matrix)):
        raise ConfigError(
            f"{name}: expected a finite 3x4 projection matrix (CameraInfo.p), got "
            f"shape {matrix.shape}."
        )
    matrix = matrix.reshape(3, 4)
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise ConfigError(
            f"{name}: focal lengths must be positive, got fx={matrix[0, 0]}, "
            f"fy={matrix[1, 1]}; is the camera calibrated?"
        )
    return matrix


def stereo_baseline_m(projection_right: np.ndarray) -> float:
    """Stereo baseline from the right camera's rectified projection matrix.

    Args:
        projection_right: [3, 4] (or 12 values) right-camera P, pixels.

    Returns:
        Baseline in metres, -P[0, 3] / P[0, 0] (positive: the right camera is at +x of the left).

    Raises:
        ConfigError: If P is malformed or gives a baseline <= 0 (e.g. the left camera's P).
    """
    matrix = _projection(projection_right, "projection_right")
    baseline_m = float(-matrix[0, 3] / matrix[0, 0])
    if baseline_m <= 0:
        raise ConfigError(
            f"projection_right: P[0, 3] = {matrix[0, 3]} gives no positive baseline "
            "(-P[0, 3] / P[0, 0]); expected the right camera's P of a rectified pair "
            "(P[0, 3] = -fx * baseline < 0), not the left one's."
        )
    return baseline_m


def triangulate_stereo_points(
    points_left_px: np.ndarray,
    points_right_px: np.ndarray,
    projection_left: np.ndarray,
    projection_right: np.ndarray,
    *,
    max_vertical_disparity_px: float = 2.0,
    min_disparity_px: float = 1.0,
) -> StereoPoints:
    """Triangulates rectified left<->right matches.

    Args:
        points_left_px: [N, 2] (x, y) pixels in the rectified left image.
        points_right_px: [N, 2] matching pixels in the rectified right image.
        projection_left: [3, 4] left P (Tx = 0).
        projection_right: [3, 4] right P (Tx = -fx * baseline).
        max_vertical_disparity_px: Matches whose rows differ more are rejected (not epipolar).
        min_disparity_px: Smaller horizontal disparities are rejected; sets the largest depth,
            fx * baseline / min_disparity_px.

    Returns:
        The points and their validity mask.

    Raises:
        InputError: If the point arrays are not finite [N, 2] arrays of equal length.
        ConfigError: If a projection matrix is malformed.
    """
    left, right = as_matched_points_px(
        points_left_px, points_right_px, "points_left_px", "points_right_px"
    )
    p_left = _projection(projection_left, "projection_left")
    p_right = _projection(projection_right, "projection_right")
    baseline_m = stereo_baseline_m(p_right)
    # disparity relative to each camera's principal point (the cx may differ after rectification)
    disparity_px = (left[:, 0] - p_left[0, 2]) - (right[:, 0] - p_right[0, 2])
    valid = (disparity_px >= min_disparity_px) & (
        np.abs(left[:, 1] - right[:, 1]) <= max_vertical_disparity_px
    )
    depth_m = np.full(len(left), np.nan)
    depth_m[valid] = p_left[0, 0] * baseline_m / disparity_px[valid]
    points_m = np.column_stack(
        [
            (left[:, 0] - p_left[0, 2]) / p_left[0, 0] * depth_m,
            (left[:, 1] - p_left[1, 2]) / p_left[1, 1] * depth_m,
            depth_m,
        ]
    )
    return StereoPoints(points_m, valid)


def _nearest_within(queries: np.ndarray, references: np.ndarray, radius_px: float) -> np.ndarray:
    """[Q] index of the nearest reference point within radius_px of each query, -1 if none."""
    nearest = np.full(len(queries), -1)
    if len(references) == 0:
        return nearest
    reference_sq = np.sum(references**2, axis=1)
    for start in range(0, len(queries), _ASSOCIATION_CHUNK):
        block = queries[start : start + _ASSOCIATION_CHUNK]
        distance_sq = np.sum(block**2, 1)[:, None] - 2 * block @ references.T + reference_sq
        best = np.argmin(distance_sq, axis=1)
        close = distance_sq[np.arange(len(block)), best] <= radius_px**2
        nearest[start : start + len(block)] = np.where(close, best, -1)
    return nearest


def _unit_depths(
    rotation_ref_cur: np.ndarray,
    translation_ref_cur: np.ndarray,
    rays_ref: np.ndarray,
    rays_cur: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulates matches with a unit-translation pose.

    Returns:
        (depth [N] in the current camera, NaN where behind a camera; parallax [N], degrees).
    """
    projection_cur = np.hstack([np.eye(3), np.zeros((3, 1))])
    projection_ref = np.hstack([rotation_ref_cur, translation_ref_cur.reshape(3, 1)])
    homogeneous = cv2.triangulatePoints(projection_cur, projection_ref, rays_cur.T, rays_ref.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        points_cur = (homogeneous[:3] / homogeneous[3]).T  # [N, 3]
        points_ref = points_cur @ rotation_ref_cur.T + translation_ref_cur
        to_ref = points_cur + rotation_ref_cur.T @ translation_ref_cur  # ray from the ref centre
        cos_parallax = np.sum(points_cur * to_ref, 1) / (
            np.linalg.norm(points_cur, axis=1) * np.linalg.norm(to_ref, axis=1)
        )
        in_front = (points_cur[:, 2] > 0) & (points_ref[:, 2] > 0)
    parallax_deg = np.degrees(np.arccos(np.clip(np.nan_to_num(cos_parallax, nan=1.0), -1, 1)))
    return np.where(in_front, points_cur[:, 2], np.nan), parallax_deg


def _scale_jacobian(
    temporal: RelativePose, rays_ref: np.ndarray, rays_cur: np.ndarray, depth_stereo: np.ndarray
) -> np.ndarray:
    """[5] d(median scale) / d(pose tangent parameters of `perturb_pose`), central differences.

    The same samples for every step: the sensitivity of the scale to the temporal pose's error,
    which all samples share (a median over many points does not average it out).
    """
    jacobian = np.zeros(5)
    for index in range(5):
        step = np.zeros(5)
        step[index] = _SCALE_JACOBIAN_STEP
        medians = []
        for sign in (1.0, -1.0):
            rotation, translation = perturb_pose(
                temporal.rotation, temporal.translation, sign * step
            )
            depth_unit, _ = _unit_depths(rotation, translation, rays_ref, rays_cur)
            medians.append(np.nanmedian(depth_stereo / depth_unit))
        jacobian[index] = (medians[0] - medians[1]) / (2 * _SCALE_JACOBIAN_STEP)
    return jacobian


def _temporal_points(
    temporal: RelativePose, points_ref_px: np.ndarray, points_cur_px: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Checks the temporal matches against their pose; returns them as float64 [N, 2]."""
    if temporal.metric:
        raise InputError(
            "temporal: expected a unit-translation (monocular) pose, got a metric one; pass "
            "the result of relative_pose_from_matches."
        )
    points_ref = as_points_px(points_ref_px, "points_ref_px")
    points_cur = as_points_px(points_cur_px, "points_cur_px")
    if not len(points_ref) == len(points_cur) == len(temporal.inlier_mask):
        raise InputError(
            f"points_ref_px ({len(points_ref)}), points_cur_px ({len(points_cur)}) and "
            f"temporal.inlier_mask ({len(temporal.inlier_mask)}) must have the same length: "
            "pass the matches the temporal pose was estimated from."
        )
    return points_ref, points_cur


def metric_pose_from_stereo(
    temporal: RelativePose,
    points_ref_px: np.ndarray,
    points_cur_px: np.ndarray,
    stereo_left_px: np.ndarray,
    stereo_right_px: np.ndarray,
    projection_left: np.ndarray,
    projection_right: np.ndarray,
    *,
    association_radius_px: float = 6.0,
    min_points: int = 10,
    min_parallax_deg: float = 0.25,
    max_vertical_disparity_px: float = 2.0,
) -> RelativePose:
    """Gives a monocular temporal pose its metric scale from the current stereo frame.

    Method: the temporal inliers are triangulated with the unit-translation pose, giving depths
    z_unit in the current left camera. Each inlier takes the stereo depth z_stereo of the nearest
    left<->right match within `association_radius_px` in the current left image (EDM keypoints of
    two matchings of the same image lie near the same 8-pixel cells: 6 px reaches the next cell
    diagonally). The scale is the median of
    z_stereo / z_unit; its variance is (pi / 2) * sigma^2 / n with sigma from the median absolute
    deviation, at least (1e-3 * scale)^2.

    Args:
        temporal: T_ref_cur from `relative_pose_from_matches` on the rectified LEFT images of the
            previous (reference) and current stereo frames; unit translation.
        points_ref_px: [N, 2] the temporal matches in the previous left image (pixels).
        points_cur_px: [N, 2] the temporal matches in the current left image (pixels).
        stereo_left_px: [S, 2] left<->right matches of the current frame, left image pixels.
        stereo_right_px: [S, 2] the same matches in the right image pixels.
        projection_left: [3, 4] rectified left P; its K normalises the temporal points too.
        projection_right: [3, 4] rectified right P (the baseline).
        association_radius_px: Largest distance between a temporal and a stereo point, pixels.
        min_points: Fewer scale samples than this is a failure.
        min_parallax_deg: Temporal points seen under a smaller angle are too noisy to use.
        max_vertical_disparity_px: Stereo matches with larger row differences are rejected.

    Returns:
        T_ref_cur with `metric=True`, translation in metres and the covariance in m^2 / rad^2
        (the direction block scaled by scale^2, the scale variance along the translation);
        `success=False` with a reason when the temporal pose failed, too few points have both a
        stereo depth and enough parallax (e.g. almost no motion), or the scale's std exceeds
        10 % of it.

    Raises:
        InputError: If arrays are malformed or `temporal` is already metric.
        ConfigError: If a projection matrix is malformed.
    """
    points_ref, points_cur = _temporal_points(temporal, points_ref_px, points_cur_px)
    stereo_left = as_points_px(stereo_left_px, "stereo_left_px")
    stereo = triangulate_stereo_points(
        stereo_left,
        stereo_right_px,
        projection_left,
        projection_right,
        max_vertical_disparity_px=max_vertical_disparity_px,
    )
    if not temporal.success:
        return RelativePose.failure(
            f"temporal pose failed: {temporal.reason}",
            len(points_ref),
            temporal.inlier_mask,
            metric=True,
        )
    intrinsics_inv = np.linalg.inv(_projection(projection_left, "projection_left")[:, :3])
    rays_ref, rays_cur = (
        (np.column_stack([points, np.ones(len(points))]) @ intrinsics_inv.T)[:, :2]
        for points in (points_ref[temporal.inlier_mask], points_cur[temporal.inlier_mask])
    )
    neighbour = _nearest_within(
        points_cur[temporal.inlier_mask], stereo_left[stereo.valid], association_radius_px
    )
    depth_stereo = np.full(len(neighbour), np.nan)
    depth_stereo[neighbour >= 0] = stereo.points_m[stereo.valid, 2][neighbour[neighbour >= 0]]
    depth_unit, parallax_deg = _unit_depths(
        temporal.rotation, temporal.translation, rays_ref, rays_cur
    )
    usable = (
        np.isfinite(depth_stereo) & np.isfinite(depth_unit) & (parallax_deg >= min_parallax_deg)
    )
    if np.count_nonzero(usable) < min_points:
        return RelativePose.failure(
            f"{np.count_nonzero(usable)} temporal inliers with a stereo depth and parallax >= "
            f"{min_parallax_deg} deg < min_points {min_points}",
            len(points_ref), temporal.inlier_mask, metric=True,
        )  # fmt: skip
    jacobian = _scale_jacobian(temporal, rays_ref[usable], rays_cur[usable], depth_stereo[usable])
    return _scaled_pose(temporal, depth_stereo[usable] / depth_unit[usable], jacobian)


def _scaled_pose(
    temporal: RelativePose, ratios: np.ndarray, scale_jacobian: np.ndarray
) -> RelativePose:
    """The temporal pose scaled by the median of the scale samples, with the joint covariance.

    The scale variance is the spread of the samples ((pi / 2) sigma^2 / n, sigma from the median
    absolute deviation, at least (1e-3 scale)^2) plus the temporal pose's covariance propagated
    through `scale_jacobian`, which also gives the scale's correlation with the pose.
    """
    scale = float(np.median(ratios))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(ratios - scale)))
    spread_variance = max(
        0.5 * np.pi * sigma**2 / len(ratios), (_MIN_RELATIVE_SCALE_SIGMA * scale) ** 2
    )
    direction = temporal.translation / np.linalg.norm(temporal.translation)
    to_pose = tangent_to_pose_jacobian(direction)  # [6, 5]
    tangent_covariance = to_pose.T @ temporal.covariance @ to_pose  # [5, 5] (rot, dir)
    scale_tangent = scale_jacobian @ tangent_covariance  # [5] cov(scale, tangent)
    scale_variance = spread_variance + float(scale_tangent @ scale_jacobian)
    if scale <= 0 or scale_variance > (_MAX_RELATIVE_SCALE_SIGMA * scale) ** 2:
        return RelativePose.failure(
            f"stereo scale too uncertain: {scale:.4g} +- {np.sqrt(scale_variance):.2g} from "
            f"{len(ratios)} points (per-point robust std {sigma:.2g})",
            len(temporal.inlier_mask), temporal.inlier_mask, metric=True,
        )  # fmt: skip
    joint = np.zeros((6, 6))  # over (scale, rot (3), dir (2))
    joint[0, 0] = scale_variance
    joint[0, 1:] = joint[1:, 0] = scale_tangent
    joint[1:, 1:] = tangent_covariance
    # t = scale * direction(dir): d t = direction d scale + scale * basis d dir
    to_metric = np.zeros((6, 6))
    to_metric[:3, 0] = direction
    to_metric[:, 1:] = to_pose
    to_metric[:3, 4:] *= scale
    covariance = to_metric @ joint @ to_metric.T
    return RelativePose(
        True, "", temporal.rotation, scale * direction, True, temporal.inlier_mask,
        0.5 * (covariance + covariance.T),
    )  # fmt: skip


def points_at_stereo_depth(
    points_left_px: np.ndarray,
    stereo_left_px: np.ndarray,
    stereo: StereoPoints,
    projection_left: np.ndarray,
    *,
    association_radius_px: float = 6.0,
) -> np.ndarray:
    """3-D points for pixels of a rectified left image, from the depth of its stereo matches.

    Each pixel takes the depth of the nearest valid left <-> right match within
    `association_radius_px` and is back-projected at its own position (two matchings of one image
    rarely put keypoints on the same pixel; the depth varies slowly, the position does not).

    Args:
        points_left_px: [N, 2] pixels in the left image (e.g. the reference side of the temporal
            matches).
        stereo_left_px: [S, 2] the left pixels of the left <-> right matches of the same image.
        stereo: Their triangulation (`triangulate_stereo_points`).
        projection_left: [3, 4] rectified left P.
        association_radius_px: Largest distance to the stereo match lending its depth, pixels.

    Returns:
        [N, 3] float64 points in the left camera optical frame, metres; NaN rows where no valid
        stereo match is close enough.

    Raises:
        InputError: If the point arrays are malformed or `stereo` does not fit `stereo_left_px`.
        ConfigError: If the projection matrix is malformed.
    """
    points = as_points_px(points_left_px, "points_left_px")
    stereo_left = as_points_px(stereo_left_px, "stereo_left_px")
    if len(stereo.valid) != len(stereo_left):
        raise InputError(
            f"stereo has {len(stereo.valid)} points but stereo_left_px {len(stereo_left)}: pass "
            "the triangulation of these matches"
        )
    p_left = _projection(projection_left, "projection_left")
    neighbour = _nearest_within(points, stereo_left[stereo.valid], association_radius_px)
    depth_m = np.full(len(points), np.nan)
    depth_m[neighbour >= 0] = stereo.points_m[stereo.valid, 2][neighbour[neighbour >= 0]]
    return np.column_stack(
        [
            (points[:, 0] - p_left[0, 2]) / p_left[0, 0] * depth_m,
            (points[:, 1] - p_left[1, 2]) / p_left[1, 1] * depth_m,
            depth_m,
        ]
    )

"""Rectified stereo: baseline, triangulation, and stereo depth for the pixels of other matches.

All stereo inputs are *rectified* images described by their ROS CameraInfo projection matrices
`P = [[fx, 0, cx, Tx], [0, fy, cy, 0], [0, 0, 1, 0]]`: the left camera has Tx = 0, the right one
Tx = -fx * baseline (stereo_image_proc / image_geometry convention). 3-D points are in the left
camera optical frame (x right, y down, z forward), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import as_matched_points_px, as_points_px

_ASSOCIATION_CHUNK = 256  # query rows per block of the brute-force neighbour search


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

"""Matching metrics of the LoFTR/EDM relative-pose protocol, HPatches homographies and stereo rigs.

Conventions: ``T_0to1`` maps camera-0 coordinates to camera 1 (``X_1 = R X_0 + t``); points are
``(x, y)`` pixels of the original images unless a docstring says "normalised" (undistorted rays
``(x, y, 1)``). Angles are in degrees, image distances in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edm_ros.errors import InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import skew

POSE_AUC_THRESHOLDS_DEG = (5.0, 10.0, 20.0)
HOMOGRAPHY_AUC_THRESHOLDS_PX = (3.0, 5.0, 10.0)


def error_auc(
    errors: Sequence[float] | np.ndarray, thresholds: Sequence[float] | np.ndarray
) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    LoFTR's ``error_auc``: recall steps of 1/N at each sorted error, trapezoid integration, a
    failure counted as an infinite error. Used for pose AUC@5/10/20° and homography AUC@3/5/10 px.

    Args:
        errors: [N] errors of all pairs (inf or NaN for failures).
        thresholds: the upper limits, in the unit of ``errors``.

    Returns:
        One AUC per threshold; all 0 when ``errors`` is empty.
    """
    values = np.asarray(errors, dtype=np.float64).reshape(-1)
    values = np.sort(np.where(np.isnan(values), np.inf, values))
    if len(values) == 0:
        return [0.0 for _ in thresholds]
    recall = np.arange(1, len(values) + 1) / len(values)
    values = np.concatenate([[0.0], values])
    recall = np.concatenate([[0.0], recall])
    aucs = []
    for threshold in thresholds:
        last = int(np.searchsorted(values, threshold))
        curve_recall = np.concatenate([recall[:last], [recall[last - 1]]])
        curve_error = np.concatenate([values[:last], [threshold]])
        # trapezoid rule, written out: np.trapz is gone in numpy 2, np.trapezoid absent in 1.x
        area = np.sum(np.diff(curve_error) * (curve_recall[1:] + curve_recall[:-1]) / 2.0)
        aucs.append(float(area / threshold))
    return aucs


def essential_from_pose(T_0to1: np.ndarray) -> np.ndarray:
    """Essential matrix ``E = [t]x R`` with ``x1^T E x0 = 0`` for normalised points ([3, 3])."""
    transform = np.asarray(T_0to1, dtype=np.float64)
    return skew(transform[:3, 3]) @ transform[:3, :3]


def point_line_distances(
    rays0: np.ndarray, rays1: np.ndarray, essential: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distances of matches to each other's epipolar lines, normalised units.

    Args:
        rays0, rays1: [M, 2] normalised (undistorted) points.
        essential: [3, 3] with ``x1^T E x0 = 0``.

    Returns:
        ([M] distance of x0 to the line ``E^T x1`` in image 0, [M] of x1 to ``E x0`` in image 1).
    """
    homogeneous0 = np.column_stack([rays0, np.ones(len(rays0))])
    homogeneous1 = np.column_stack([rays1, np.ones(len(rays1))])
    lines1 = homogeneous0 @ essential.T  # [M, 3] epipolar lines in image 1
    lines0 = homogeneous1 @ essential  # [M, 3] epipolar lines in image 0
    algebraic = np.abs(np.sum(homogeneous1 * lines1, axis=1))
    in_image0 = algebraic / np.maximum(np.linalg.norm(lines0[:, :2], axis=1), 1e-15)
    in_image1 = algebraic / np.maximum(np.linalg.norm(lines1[:, :2], axis=1), 1e-15)
    return in_image0, in_image1


def symmetric_epipolar_distance(
    rays0: np.ndarray, rays1: np.ndarray, essential: np.ndarray
) -> np.ndarray:
    """Squared symmetric epipolar distance of matches, normalised units² (LoFTR's precision).

    ``d = (x1^T E x0)^2 (1 / |(E x0)_xy|^2 + 1 / |(E^T x1)_xy|^2)``, the sum of the squared
    distances of :func:`point_line_distances`.

    Args:
        rays0, rays1: [M, 2] normalised (undistorted) points.
        essential: [3, 3] with ``x1^T E x0 = 0``.

    Returns:
        [M] distances; LoFTR counts a match correct below 5e-4 (ScanNet) or 1e-4 (MegaDepth).
    """
    in_image0, in_image1 = point_line_distances(rays0, rays1, essential)
    return in_image0**2 + in_image1**2


def epipolar_distances(
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    camera0: CameraModel,
    camera1: CameraModel,
    T_0to1: np.ndarray,
    *,
    in_pixels: bool = False,
) -> np.ndarray:
    """Epipolar error of pixel matches under the ground-truth pose ([M]).

    Args:
        in_pixels: False: :func:`symmetric_epipolar_distance` (normalised units², the LoFTR
            precision); True: the larger of the two point-to-line distances in pixels, each
            converted with its camera's mean focal length.
    """
    if len(points0_px) == 0:
        return np.zeros(0)
    rays0, rays1 = camera0.normalize(points0_px), camera1.normalize(points1_px)
    essential = essential_from_pose(T_0to1)
    if not in_pixels:
        return symmetric_epipolar_distance(rays0, rays1, essential)
    in_image0, in_image1 = point_line_distances(rays0, rays1, essential)
    focal0, focal1 = (float(np.mean(np.diag(c.K)[:2])) for c in (camera0, camera1))
    return np.maximum(in_image0 * focal0, in_image1 * focal1)


def matching_precision(distances: np.ndarray, threshold: float) -> float:
    """Fraction of matches whose error is below ``threshold``; 0 without matches (as LoFTR)."""
    return float(np.mean(distances < threshold)) if len(distances) else 0.0


def angle_between_deg(vector0: np.ndarray, vector1: np.ndarray) -> float:
    """Unsigned angle between two 3-D directions, degrees in [0, 180]; NaN if one is zero."""
    norms = float(np.linalg.norm(vector0) * np.linalg.norm(vector1))
    if norms == 0:
        return float("nan")
    cosine = float(np.dot(vector0, vector1)) / norms
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def estimate_homography(
    points0_px: np.ndarray, points1_px: np.ndarray, threshold_px: float = 3.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """OpenCV RANSAC homography ``x1 ~ H x0`` from matches.

    Args:
        points0_px, points1_px: [M, 2] matched pixels.
        threshold_px: RANSAC reprojection threshold, pixels.

    Returns:
        ([3, 3] H, or None with fewer than 4 matches or no model; [M] bool inliers).
    """
    inliers = np.zeros(len(points0_px), dtype=bool)
    if len(points0_px) < 4:
        return None, inliers
    homography, mask = cv2.findHomography(
        points0_px.astype(np.float64), points1_px.astype(np.float64), cv2.RANSAC, threshold_px
    )
    if homography is None or mask is None:
        return None, inliers
    return homography, mask.reshape(-1).astype(bool)


def transfer_errors_px(
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    H_0to1: np.ndarray,
) -> np.ndarray:
    """[M] distances between ``H_0to1 x0`` and the matched ``x1``, pixels of image 1."""
    if len(points0_px) == 0:
        return np.zeros(0)
    projected = cv2.perspectiveTransform(points0_px.reshape(-1, 1, 2).astype(np.float64), H_0to1)
    return np.linalg.norm(projected.reshape(-1, 2) - points1_px, axis=1)


def homography_corner_error(
    H_est: np.ndarray,
    H_gt: np.ndarray,
    width: int,
    height: int,
) -> float:
    """Mean distance of image 0's four corners mapped by the estimated and by the true H, pixels.

    Args:
        H_est, H_gt: [3, 3] homographies ``x1 ~ H x0``.
        width, height: size of image 0, pixels.
    """
    corners = np.array(
        [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64
    ).reshape(-1, 1, 2)
    estimated = cv2.perspectiveTransform(corners, np.asarray(H_est, dtype=np.float64))
    expected = cv2.perspectiveTransform(corners, np.asarray(H_gt, dtype=np.float64))
    return float(np.linalg.norm(estimated - expected, axis=2).mean())


def _pinhole_distortion(camera: CameraModel) -> np.ndarray:
    """Coefficients for cv2.stereoRectify, which knows only pinhole models (fisheye: none)."""
    return np.zeros(5) if camera.distortion_model == "equidistant" else camera.distortion


def vertical_disparity_px(
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    camera0: CameraModel,
    camera1: CameraModel,
    T_0to1: np.ndarray,
) -> np.ndarray:
    """Signed vertical disparity ``y0 - y1`` of stereo matches after rectification, pixels.

    The pair is rectified as ``cv2.stereoRectify`` (and so stereo_image_proc) would with this
    calibration (alpha 0); correct matches of a well-calibrated rig lie on the same row.

    Args:
        points0_px, points1_px: [M, 2] matched pixels of the left and right raw images.
        camera0, camera1: left and right cameras (distortion handled by ``normalize``).
        T_0to1: [4, 4] left-to-right extrinsic (``X_right = R X_left + t``).

    Returns:
        [M] disparities in rectified pixels.

    Raises:
        InputError: ``T_0to1`` has no baseline.
    """
    transform = np.asarray(T_0to1, dtype=np.float64)
    if np.linalg.norm(transform[:3, 3]) == 0:
        raise InputError("T_0to1: a stereo pair needs a non-zero baseline, got t = 0")
    if len(points0_px) == 0:
        return np.zeros(0)
    rotation0, rotation1, projection0, _, _, _, _ = cv2.stereoRectify(
        camera0.K,
        _pinhole_distortion(camera0),
        camera1.K,
        _pinhole_distortion(camera1),
        (camera0.width, camera0.height),
        transform[:3, :3].copy(),
        transform[:3, 3].reshape(3, 1).copy(),
        alpha=0,
    )
    rows = []
    for points, camera, rotation in (
        (points0_px, camera0, rotation0),
        (points1_px, camera1, rotation1),
    ):
        rays = np.column_stack([camera.normalize(points), np.ones(len(points))]) @ rotation.T
        rows.append(rays[:, 1] / rays[:, 2])
    return projection0[1, 1] * (rows[0] - rows[1])

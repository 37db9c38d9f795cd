"""Exact correspondences of a synthetic 3-D scene seen by two calibrated, distorted cameras."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edm_ros.geometry.camera import CameraModel


def project(points_3d: np.ndarray, camera: CameraModel, T_cam_world: np.ndarray) -> np.ndarray:
    """[N, 3] world points -> [N, 2] pixels of ``camera`` (lens distortion applied)."""
    rotation, _ = cv2.Rodrigues(T_cam_world[:3, :3])
    distortion = camera.distortion if camera.distortion.size else np.zeros(5)
    pixels, _ = cv2.projectPoints(points_3d, rotation, T_cam_world[:3, 3], camera.K, distortion)
    return pixels.reshape(-1, 2)


def exact_matches(
    camera0: CameraModel,
    camera1: CameraModel,
    T_0to1: np.ndarray,
    count: int = 300,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of random points 2-8 m in front of camera 0 that both images see.

    Returns:
        ([M, 2] points in image 0, [M, 2] the same points in image 1), M <= count.
    """
    rng = np.random.default_rng(seed)
    rays = np.column_stack([rng.uniform(-0.6, 0.6, (count, 2)), np.ones(count)])
    points_3d = rays * rng.uniform(2.0, 8.0, (count, 1))  # camera-0 frame = world
    points0 = project(points_3d, camera0, np.eye(4))
    points1 = project(points_3d, camera1, T_0to1)
    in_front = (points_3d @ T_0to1[:3, :3].T + T_0to1[:3, 3])[:, 2] > 0.1
    inside = in_front & np.all(
        (points0 >= 0)
        & (points0 < [camera0.width, camera0.height])
        & (points1 >= 0)
        & (points1 < [camera1.width, camera1.height]),
        axis=1,
    )
    return points0[inside], points1[inside]


# ScanNet-1500 scene0711_00 frames 1680/1995 (the shared sample's first pair), 1296x968.
SCANNET_K = np.array([[1163.45, 0.0, 653.626], [0.0, 1164.79, 481.6], [0.0, 0.0, 1.0]])
SCANNET_T_0TO1 = np.array(
    [
        [0.78593, -0.35128, 0.50884, -1.51061],
        [0.39215, 0.91944, 0.02904, -0.05367],
        [-0.47805, 0.17672, 0.86037, 0.05600],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def orthonormal(transform: np.ndarray) -> np.ndarray:
    """The 5-digit text rotation made exactly orthonormal (SVD), so exact matches are exact."""
    u, _, vt = np.linalg.svd(transform[:3, :3])
    fixed = transform.copy()
    fixed[:3, :3] = u @ vt
    return fixed


def blank_images(folder: Path, size: tuple[int, int], count: int = 2) -> list[Path]:
    """Grey PNG files of the given (width, height) in ``folder``."""
    paths = []
    for index in range(count):
        path = folder / f"image{index}.png"
        cv2.imwrite(str(path), np.full((size[1], size[0]), 128, np.uint8))
        paths.append(path)
    return paths

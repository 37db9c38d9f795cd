"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edm_ros.data.pairs import PoseDataset, PosePair
from edm_ros.geometry.camera import CameraModel
from test.evaluation.scene import (
    SCANNET_K,
    SCANNET_T_0TO1,
    blank_images,
    exact_matches,
    orthonormal,
)


@pytest.fixture
def scannet_like_dataset(tmp_path: Path) -> tuple[PoseDataset, np.ndarray, np.ndarray]:
    """One wide-baseline pair at 1296x968 evaluated at 640x480, and its exact matches."""
    transform = orthonormal(SCANNET_T_0TO1)
    camera = CameraModel(SCANNET_K, 1296, 968)
    points0, points1 = exact_matches(camera, camera, transform, count=400)
    image0, image1 = blank_images(tmp_path, (1296, 968))
    pair = PosePair(
        "synthetic", image0, image1, SCANNET_K, SCANNET_K, transform, evaluation_size=(640, 480)
    )
    return PoseDataset("synthetic", (pair,)), points0, points1

"""Records of image pairs with ground truth, shared by every reader and by the evaluation.

Pose pairs carry intrinsics and the relative pose ``T_0to1`` (``X_cam1 = R X_cam0 + t``);
homography pairs carry ``H_0to1`` (``x_1 ~ H_0to1 x_0``, 0-based OpenCV pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edm_ros.errors import InputError

SCANNET_EPIPOLAR_THRESHOLD = 5e-4  # LoFTR/EDM precision threshold for ScanNet (normalised units²)
MEGADEPTH_EPIPOLAR_THRESHOLD = 1e-4


def no_distortion() -> np.ndarray:
    """[0] float64: the distortion of undistorted (or already rectified) images."""
    return np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class PosePair:
    """Two images of a rigid scene with calibrated cameras and their ground-truth relative pose.

    Attributes:
        name: short identifier shown in reports.
        image0, image1: image files.
        K0, K1: [3, 3] intrinsics in pixels of ``intrinsics_size`` (the image size when None).
        T_0to1: [4, 4] pose of camera 0 in camera 1: ``X_cam1 = R X_cam0 + t`` (t in metres or
            arbitrary units; only its direction is evaluated).
        distortion0, distortion1: [D] coefficients; empty = undistorted images.
        distortion_model: "none", "plumb_bob", "rational_polynomial" or "equidistant".
        intrinsics_size: (width, height) K0/K1 refer to; None = the images as stored.
        evaluation_size: (width, height) in which the protocol's pixel thresholds are meant (ScanNet
            evaluates at 640x480); None = the images as stored.
    """

    name: str
    image0: Path
    image1: Path
    K0: np.ndarray
    K1: np.ndarray
    T_0to1: np.ndarray
    distortion0: np.ndarray = field(default_factory=no_distortion)
    distortion1: np.ndarray = field(default_factory=no_distortion)
    distortion_model: str = "none"
    intrinsics_size: tuple[int, int] | None = None
    evaluation_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for label, matrix, shape in (
            ("K0", self.K0, (3, 3)),
            ("K1", self.K1, (3, 3)),
            ("T_0to1", self.T_0to1, (4, 4)),
        ):
            if np.shape(matrix) != shape or not np.all(np.isfinite(matrix)):
                raise InputError(
                    f"pair {self.name}: {label} must be a finite {shape} matrix, got shape "
                    f"{np.shape(matrix)}; check the ground-truth file."
                )


@dataclass(frozen=True)
class HomographyPair:
    """Two views of a plane and the ground-truth homography ``x_1 ~ H_0to1 x_0`` (pixels)."""

    name: str
    image0: Path
    image1: Path
    H_0to1: np.ndarray  # [3, 3]


@dataclass(frozen=True)
class PoseDataset:
    """Relative-pose pairs and the protocol settings that belong to the set.

    Attributes:
        name: shown in reports.
        pairs: the pairs, in file order.
        stereo: True when every pair is a simultaneous left/right frame of one calibrated rig; the
            stereo metrics (vertical disparity, baseline direction) then apply.
        epipolar_threshold: matching-precision threshold on the squared symmetric epipolar distance
            in normalised units (LoFTR: 5e-4 ScanNet, 1e-4 MegaDepth).
        image_long_side: resize images so that their long side has this many pixels before
            matching (MegaDepth protocol: 1152 for EDM); None = as stored. Matches are mapped back.
    """

    name: str
    pairs: tuple[PosePair, ...]
    stereo: bool = False
    epipolar_threshold: float = SCANNET_EPIPOLAR_THRESHOLD
    image_long_side: int | None = None


@dataclass(frozen=True)
class HomographyDataset:
    """Homography pairs (HPatches protocol)."""

    name: str
    pairs: tuple[HomographyPair, ...]


Dataset = PoseDataset | HomographyDataset

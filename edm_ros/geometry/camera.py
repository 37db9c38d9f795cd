"""Pinhole camera models with optional lens distortion, built from intrinsics or CameraInfo fields.

Pixels are `(x, y)` with the origin at the centre of the top-left pixel (OpenCV and ROS convention).
Normalised coordinates are `((x - cx) / fx, (y - cy) / fy)` after removing lens distortion, that is
the ray `(x_n, y_n, 1)` in the camera optical frame (x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

import cv2
import numpy as np

from edm_ros.errors import ConfigError, InputError

DistortionModel = Literal["none", "plumb_bob", "rational_polynomial", "equidistant"]

# Coefficient counts each model accepts (OpenCV order: k1 k2 p1 p2 [k3 [k4 k5 k6]] for the pinhole
# models, k1 k2 k3 k4 for equidistant). ROS CameraInfo sends 5 for plumb_bob and 8 for
# rational_polynomial; OpenCV calibration files often hold 4 or 5.
_COEFFICIENT_COUNTS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "plumb_bob": (4, 5),
    "rational_polynomial": (4, 5, 8, 12, 14),
    "equidistant": (4,),
}

# Iterative undistortion: OpenCV's default (5 iterations) leaves ~0.1 px on strong lenses, which is
# visible in the pose error; iterate to a negligible residual instead.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


def as_points_px(points: np.ndarray, name: str) -> np.ndarray:
    """Checks and converts an array of 2-D points.

    Args:
        points: [N, 2] (x, y) coordinates, any real dtype.
        name: Name of the argument, for the error message.

    Returns:
        [N, 2] float64 copy of `points`.

    Raises:
        InputError: If `points` is not [N, 2] or holds NaN or infinite values.
    """
    array = np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.number):
        raise InputError(
            f"{name}: expected a numeric [N, 2] array of (x, y) points, got shape {array.shape} "
            f"and dtype {array.dtype}; reshape to (-1, 2)."
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        raise InputError(
            f"{name}: {bad} of {len(array)} points are NaN or infinite; drop them first."
        )
    return array


def as_matched_points_px(
    points0: np.ndarray, points1: np.ndarray, name0: str, name1: str
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_points_px` on both sides of a set of matches, which must be equally long."""
    array0, array1 = as_points_px(points0, name0), as_points_px(points1, name1)
    if len(array0) != len(array1):
        raise InputError(
            f"{name0} has {len(array0)} points but {name1} has {len(array1)}; "
            "pass the two sides of the same matches."
        )
    return array0, array1


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics and lens distortion of one camera.

    Attributes:
        K: [3, 3] float64 intrinsic matrix in pixels (fx, fy, cx, cy; skew allowed).
        width: Image width in pixels.
        height: Image height in pixels.
        distortion: [D] float64 coefficients in OpenCV order; empty when the image is already
            undistorted or rectified.
        distortion_model: How `distortion` is applied ("none" requires no or all-zero
            coefficients).
    """

    K: np.ndarray
    width: int
    height: int
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: DistortionModel = "none"

    def __post_init__(self) -> None:
        intrinsics = np.asarray(self.K, dtype=np.float64)
        coefficients = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
        if intrinsics.shape != (3, 3):
            raise ConfigError(f"camera K: expected a 3x3 matrix, got shape {intrinsics.shape}.")
        if not np.all(np.isfinite(intrinsics)) or intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
            raise ConfigError(
                f"camera K: expected finite values with positive focal lengths fx, fy, got "
                f"{intrinsics.reshape(-1).tolist()}; an all-zero K means an uncalibrated camera: "
                "calibrate it and publish the result in CameraInfo."
            )
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(
                f"camera size: expected positive width and height, got {self.width}x{self.height}."
            )
        self._check_distortion(coefficients)
        if not np.any(coefficients):
            coefficients = np.zeros(0)  # all-zero coefficients: a pinhole camera, skip the solver
        object.__setattr__(self, "K", intrinsics)
        object.__setattr__(self, "distortion", coefficients)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def _check_distortion(self, coefficients: np.ndarray) -> None:
        if self.distortion_model not in _COEFFICIENT_COUNTS:
            raise ConfigError(
                f"camera distortion_model: expected one of {get_args(DistortionModel)}, got "
                f"{self.distortion_model!r}."
            )
        if not np.all(np.isfinite(coefficients)):
            raise ConfigError(
                f"camera distortion: coefficients must be finite, got {coefficients.tolist()}."
            )
        counts = _COEFFICIENT_COUNTS[self.distortion_model]
        if self.distortion_model == "none":
            if np.any(coefficients):
                raise ConfigError(
                    f"camera distortion: model 'none' with non-zero coefficients "
                    f"{coefficients.tolist()}; name the model (e.g. 'plumb_bob')."
                )
        elif len(coefficients) not in counts and np.any(coefficients):
            raise ConfigError(
                f"camera distortion: model {self.distortion_model!r} takes {counts} "
                f"coefficients, got {len(coefficients)}."
            )

    @classmethod
    def from_camera_info(
        cls,
        K: Sequence[float] | np.ndarray,  # the CameraInfo field names
        D: Sequence[float] | np.ndarray,
        distortion_model: str,
        width: int,
        height: int,
        P: Sequence[float] | np.ndarray | None = None,
        rectified: bool = False,
    ) -> CameraModel:
        """Builds a camera from the fields of a `sensor_msgs/CameraInfo` message.

        Args:
            K: 9 row-major intrinsics (CameraInfo.k) of the raw image, pixels.
            D: Distortion coefficients (CameraInfo.d); may be empty.
            distortion_model: CameraInfo.distortion_model ("plumb_bob", "rational_polynomial",
                "equidistant", or "" / "none" when there is no distortion).
            width: Image width in pixels.
            height: Image height in pixels.
            P: 12 row-major projection values (CameraInfo.p); required when `rectified`.
            rectified: True when the images are rectified (e.g. `image_rect` topics): the camera is
                then P[:3, :3] without distortion, as image_geometry does.

        Returns:
            The camera model.

        Raises:
            ConfigError: If K or P is all zero (uncalibrated camera), NaN, of the wrong size, or
                the distortion model is unknown.
        """
        if rectified:
            if P is None:
                raise ConfigError("camera_info: rectified=True needs P (CameraInfo.p).")
            projection = _matrix_from_field(P, (3, 4), "P")
            return cls(projection[:, :3].copy(), width, height)
        intrinsics = _matrix_from_field(K, (3, 3), "K")
        model = distortion_model or "none"
        if model not in _COEFFICIENT_COUNTS:
            raise ConfigError(
                f"camera_info distortion_model: expected one of {get_args(DistortionModel)} or "
                f"'', got {distortion_model!r}; rectify the images upstream or use a supported "
                "model."
            )
        coefficients = np.asarray(D, dtype=np.float64).reshape(-1)
        return cls(intrinsics, width, height, coefficients, cast(DistortionModel, model))

    @property
    def mean_focal_px(self) -> float:
        """Mean of fx and fy, pixels: converts pixel thresholds to normalised units."""
        return float(0.5 * (self.K[0, 0] + self.K[1, 1]))

    def normalize(self, points_px: np.ndarray) -> np.ndarray:
        """Removes intrinsics and lens distortion from pixel points.

        Args:
            points_px: [N, 2] (x, y) original-image pixels.

        Returns:
            [N, 2] float64 undistorted normalised coordinates (ray (x, y, 1) in the optical frame).

        Raises:
            InputError: If `points_px` is not a finite [N, 2] array.
        """
        points = as_points_px(points_px, "points_px")
        if len(points) == 0:
            return points
        if self.distortion.size == 0:
            homogeneous = np.column_stack([points, np.ones(len(points))])
            rays = homogeneous @ np.linalg.inv(self.K).T
            return rays[:, :2] / rays[:, 2:]
        src = points.reshape(-1, 1, 2)
        if self.distortion_model == "equidistant":
            undistorted = cv2.fisheye.undistortPoints(
                src, self.K, self.distortion, criteria=_UNDISTORT_CRITERIA
            )
        else:
            undistorted = cv2.undistortPoints(
                src, self.K, self.distortion, criteria=_UNDISTORT_CRITERIA
            )
        return undistorted.reshape(-1, 2).astype(np.float64)


def _matrix_from_field(
    values: Sequence[float] | np.ndarray, shape: tuple[int, int], name: str
) -> np.ndarray:
    """Reshapes a flat CameraInfo field, rejecting wrong sizes and uncalibrated (zero) values."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != shape[0] * shape[1]:
        raise ConfigError(
            f"camera_info {name}: expected {shape[0] * shape[1]} values, got {array.size}."
        )
    if not np.all(np.isfinite(array)) or not np.any(array):
        raise ConfigError(
            f"camera_info {name}: values are all zero or not finite ({array.tolist()}): the "
            "camera is not calibrated; run camera_calibration and publish the result."
        )
    return array.reshape(shape)

"""Odometry metrics: ground-truth quaternions, per-frame and trajectory errors."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.errors import InputError
from edm_ros.evaluation.odometry import (
    odometry_metrics,
    rotation_angle_deg,
    rotation_from_quaternion,
)


def _drive(step_m: float, count: int = 11) -> np.ndarray:
    """[count, 4, 4] poses moving ``step_m`` along z per frame."""
    poses = np.repeat(np.eye(4)[None], count, axis=0)
    poses[:, 2, 3] = step_m * np.arange(count)
    return poses


def test_rounded_quaternions_give_orthonormal_rotations() -> None:
    # 6 decimals, as trajectory files store them: |q| is 1 - 4e-7
    rotation = rotation_from_quaternion([-0.824237, -0.106942, -0.551702, 0.069433])
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert rotation_angle_deg(rotation.T @ rotation) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match="not all zero"):
        rotation_from_quaternion([0.0, 0.0, 0.0, 0.0])


def test_small_rotation_angles_are_exact() -> None:
    angle = np.radians(0.01)
    rotation = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    assert rotation_angle_deg(rotation) == pytest.approx(0.01, rel=1e-6)


def test_a_perfect_trajectory_has_no_error() -> None:
    truth = _drive(0.1)
    metrics = odometry_metrics(truth, truth, [np.eye(4)] * 10, [truth[1]] * 10, 0)
    assert metrics.distance_m == pytest.approx(1.0)
    assert metrics.ate_rmse_m == metrics.end_drift_percent == metrics.rpe_translation_percent == 0
    assert metrics.frame_translation_error_max_m == 0.0
    assert metrics.frame_translation_motion_max_m == pytest.approx(0.1)


def test_a_one_percent_scale_error_is_one_percent_drift_and_rpe() -> None:
    metrics = odometry_metrics(_drive(0.101), _drive(0.1), [], [], 2)
    assert metrics.end_drift_percent == pytest.approx(1.0)
    assert metrics.rpe_translation_percent == pytest.approx(1.0)
    assert metrics.lost_frames == 2
    assert metrics.frame_rotation_error_median_deg is None  # no tracked frame given


def test_standing_still_has_no_distance_based_numbers() -> None:
    still = _drive(0.0)
    metrics = odometry_metrics(still, still, [np.eye(4)], [np.eye(4)], 0)
    assert metrics.rpe_translation_percent is None and metrics.end_drift_percent is None
    assert metrics.ate_rmse_m == 0.0

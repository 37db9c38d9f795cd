"""Odometry from keyframe poses: chaining, covariance propagation, body frame, twist, monocular."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.geometry.odometry import (
    OdometryIntegrator,
    PoseEstimate,
    body_odometry,
    compose,
    in_body_frame,
    twist_of_step,
)
from edm_ros.geometry.pose import UNKNOWN_VARIANCE, RelativePose

# The node's default mounting: optical z (forward) = base x, optical x = base -y, y = base -z.
T_BASE_CAM = np.eye(4)
T_BASE_CAM[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
STEP_NS = 100_000_000


def _transform(
    rotation_deg: tuple[float, float, float], translation: tuple[float, ...]
) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = cv2.Rodrigues(np.radians(rotation_deg).reshape(3, 1))[0]
    transform[:3, 3] = translation
    return transform


def _relative(transform: np.ndarray, metric: bool = True, variance: float = 1e-6) -> RelativePose:
    return RelativePose(
        True,
        "",
        transform[:3, :3],
        transform[:3, 3],
        metric,
        np.ones(50, bool),
        variance * np.eye(6),
    )


def _is_positive_definite(covariance: np.ndarray) -> bool:
    return (
        covariance.shape == (6, 6)
        and np.allclose(covariance, covariance.T)
        and bool(np.all(np.linalg.eigvalsh(covariance) > 0))
    )


class TestCompose:
    def test_transforms_multiply(self) -> None:
        first, second = _transform((0, 10, 0), (1, 0, 0)), _transform((5, 0, 0), (0, 0, 2))
        result = compose(PoseEstimate.exact(first), PoseEstimate.exact(second))
        np.testing.assert_allclose(result.transform, first @ second)
        np.testing.assert_array_equal(result.covariance, np.zeros((6, 6)))

    def test_rotation_uncertainty_of_the_first_swings_the_second_translation(self) -> None:
        rotation_variance = 1e-4  # rad^2 about the yaw (optical y) axis only
        covariance = np.zeros((6, 6))
        covariance[4, 4] = rotation_variance
        first = PoseEstimate(np.eye(4), covariance)
        second = PoseEstimate.exact(_transform((0, 0, 0), (0, 0, 2.0)))  # 2 m ahead
        result = compose(first, second)
        # a yaw error delta moves a point 2 m ahead sideways (x) by 2 delta
        assert result.covariance[0, 0] == pytest.approx(4 * rotation_variance)
        assert result.covariance[2, 2] == pytest.approx(0.0, abs=1e-15)
        assert result.covariance[4, 4] == pytest.approx(rotation_variance)

    def test_the_second_covariance_is_turned_into_the_first_frame_axes(self) -> None:
        covariance = np.zeros((6, 6))
        covariance[0, 0] = 1e-2  # uncertain along b's x
        first = PoseEstimate.exact(_transform((0, 90, 0), (0, 0, 0)))  # b's x is a's -z
        result = compose(first, PoseEstimate(np.eye(4), covariance))
        assert result.covariance[2, 2] == pytest.approx(1e-2)
        assert result.covariance[0, 0] == pytest.approx(0.0, abs=1e-15)


class TestIntegrator:
    def test_keyframes_chain_their_poses(self) -> None:
        step = _transform((0, 2, 0), (0.05, 0, 0.1))
        integrator = OdometryIntegrator()
        integrator.start(0)
        for index in range(1, 6):
            result = integrator.update(_relative(step), index * STEP_NS, new_keyframe=True)
        np.testing.assert_allclose(
            result.pose.transform, np.linalg.matrix_power(step, 5), atol=1e-12
        )
        assert _is_positive_definite(result.pose.covariance)
        assert result.step is not None and result.step_duration_s == pytest.approx(0.1)
        np.testing.assert_allclose(result.step.transform, step, atol=1e-12)

    def test_frames_between_keyframes_do_not_accumulate(self) -> None:
        integrator = OdometryIntegrator()
        integrator.start(0)
        traces = []
        for index in range(1, 6):  # the same keyframe: every pose is one estimate away from it
            result = integrator.update(_relative(np.eye(4)), index * STEP_NS, new_keyframe=False)
            traces.append(np.trace(result.pose.covariance))
            np.testing.assert_allclose(result.pose.transform, np.eye(4))
        assert traces == pytest.approx([traces[0]] * 5)
        assert result.step is not None  # two estimates against one keyframe: their sum
        np.testing.assert_allclose(result.step.covariance, 2e-6 * np.eye(6))

    def test_covariance_grows_with_each_keyframe(self) -> None:
        integrator = OdometryIntegrator()
        integrator.start(0)
        traces = []
        for index in range(1, 5):
            step = _transform((0, 1, 0), (0, 0, 0.2))
            traces.append(
                np.trace(integrator.update(_relative(step), index * STEP_NS, True).pose.covariance)
            )
        assert traces == sorted(traces) and traces[-1] > 4 * 6e-6 * 0.99

    def test_a_restart_continues_from_the_last_tracked_pose(self) -> None:
        step = _transform((0, 0, 0), (0, 0, 0.5))
        integrator = OdometryIntegrator()
        integrator.start(0)
        integrator.update(_relative(step), STEP_NS, new_keyframe=False)
        integrator.restart()
        restarted = integrator.start(5 * STEP_NS)
        assert restarted.step is None
        np.testing.assert_allclose(restarted.pose.transform, step)
        after = integrator.update(_relative(step), 6 * STEP_NS, new_keyframe=False)
        np.testing.assert_allclose(after.pose.transform[:3, 3], [0, 0, 1.0])


class TestBodyFrame:
    def test_a_camera_moving_forward_moves_the_base_along_x(self) -> None:
        pose = in_body_frame(PoseEstimate.exact(_transform((0, 0, 0), (0, 0, 1.0))), T_BASE_CAM)
        np.testing.assert_allclose(pose.transform[:3, 3], [1.0, 0, 0], atol=1e-12)

    def test_a_camera_yawing_right_turns_the_base_clockwise(self) -> None:
        # optical +y points down: a positive rotation about it turns the camera to the right
        pose = in_body_frame(PoseEstimate.exact(_transform((0, 10, 0), (0, 0, 0))), T_BASE_CAM)
        yaw_deg = np.degrees(np.arctan2(pose.transform[1, 0], pose.transform[0, 0]))
        assert yaw_deg == pytest.approx(-10.0)

    def test_body_odometry_gives_a_twist_in_the_base_frame(self) -> None:
        integrator = OdometryIntegrator()
        integrator.start(0)
        integrator.update(_relative(_transform((0, 0, 0), (0, 0, 0.1))), STEP_NS, True)
        step = integrator.update(_relative(_transform((0, 0, 0), (0, 0, 0.1))), 2 * STEP_NS, True)
        pose, twist = body_odometry(step, T_BASE_CAM)
        np.testing.assert_allclose(pose.transform[:3, 3], [0.2, 0, 0], atol=1e-12)
        np.testing.assert_allclose(twist.linear_mps, [1.0, 0, 0], atol=1e-9)
        np.testing.assert_allclose(twist.angular_radps, 0, atol=1e-12)
        assert _is_positive_definite(pose.covariance) and _is_positive_definite(twist.covariance)

    def test_monocular_odometry_has_no_position_and_says_so(self) -> None:
        integrator = OdometryIntegrator()
        integrator.start(0)
        integrator.update(
            _relative(_transform((0, 3, 0), (0, 0, 1.0)), metric=False), STEP_NS, True
        )
        step = integrator.update(
            _relative(_transform((0, 3, 0), (0, 0, 1.0)), metric=False), 2 * STEP_NS, True
        )
        pose, twist = body_odometry(step, T_BASE_CAM)
        np.testing.assert_array_equal(pose.transform[:3, 3], 0.0)
        np.testing.assert_array_equal(twist.linear_mps, 0.0)
        for covariance in (pose.covariance, twist.covariance):
            np.testing.assert_array_equal(np.diag(covariance)[:3], UNKNOWN_VARIANCE)
            assert np.all(np.diag(covariance)[3:] < 1.0)  # the rotation stays observed
        assert np.degrees(np.linalg.norm(twist.angular_radps)) == pytest.approx(30.0)


def test_twist_needs_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        twist_of_step(PoseEstimate.exact(np.eye(4)), 0.0)

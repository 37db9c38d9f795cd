"""Odometry from keyframe-relative poses: chaining, covariance propagation, body frame, twist.

Covariance convention (the one of `RelativePose` and geometry_msgs/PoseWithCovariance): [6, 6]
over (x, y, z, rot_x, rot_y, rot_z) in the parent frame's axes, a perturbed pose being
`t + d_xyz` and `exp([d_rot]x) R`; m^2 and rad^2. Twists are in the child frame, as in
nav_msgs/Odometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edm_ros.geometry.pose import UNKNOWN_VARIANCE, RelativePose, skew


def _block_diagonal(rotation: np.ndarray) -> np.ndarray:
    mapping = np.zeros((6, 6))
    mapping[:3, :3] = mapping[3:, 3:] = rotation
    return mapping


@dataclass(frozen=True)
class PoseEstimate:
    """A rigid transform with its covariance.

    Attributes:
        transform: [4, 4] T_parent_child (a point maps as X_parent = T X_child).
        covariance: [6, 6] in the parent frame's axes (module docstring).
    """

    transform: np.ndarray
    covariance: np.ndarray

    @classmethod
    def exact(cls, transform: np.ndarray) -> PoseEstimate:
        """A known transform (zero covariance), e.g. a calibrated mounting."""
        return cls(np.asarray(transform, np.float64).reshape(4, 4), np.zeros((6, 6)))

    @classmethod
    def of_relative_pose(cls, pose: RelativePose) -> PoseEstimate:
        """`T_ref_cur` of a pose as a transform; a unit-scale (monocular) translation is dropped.

        A monocular pose's position is unobservable: it becomes zero with UNKNOWN_VARIANCE on
        the position, and only its rotation (with its covariance) is chained.
        """
        transform = np.eye(4)
        transform[:3, :3] = pose.rotation
        covariance = np.array(pose.covariance, np.float64)
        if pose.metric:
            transform[:3, 3] = pose.translation
        else:
            covariance[:3, :] = covariance[:, :3] = 0.0
            covariance[:3, :3] = UNKNOWN_VARIANCE * np.eye(3)
        return cls(transform, covariance)


def compose(first: PoseEstimate, second: PoseEstimate) -> PoseEstimate:
    """`T_a_c = T_a_b T_b_c` with first-order propagation of both (independent) covariances.

    Args:
        first: T_a_b with its covariance in a's axes.
        second: T_b_c with its covariance in b's axes.

    Returns:
        T_a_c with its covariance in a's axes.
    """
    rotation_ab = first.transform[:3, :3]
    moved = rotation_ab @ second.transform[:3, 3]  # t_b_c seen in a's axes
    from_first = np.eye(6)
    from_first[:3, 3:] = -skew(moved)  # a rotation of T_a_b swings t_b_c around
    from_second = _block_diagonal(rotation_ab)
    covariance = (
        from_first @ first.covariance @ from_first.T
        + from_second @ second.covariance @ from_second.T
    )
    return PoseEstimate(first.transform @ second.transform, 0.5 * (covariance + covariance.T))


def in_body_frame(pose_start_cam: PoseEstimate, T_body_cam: np.ndarray) -> PoseEstimate:
    """The body's motion from the camera's: `T_odom_body = T_body_cam T_start_cam T_body_cam^-1`.

    The odometry frame is the body frame at the start, so the odometry begins at the identity.

    Args:
        pose_start_cam: The camera in its own frame at the start (the first keyframe).
        T_body_cam: [4, 4] the camera mounting on the body (REP-105 base frame).
    """
    mounting = np.asarray(T_body_cam, np.float64).reshape(4, 4)
    inverse = PoseEstimate.exact(np.linalg.inv(mounting))
    return compose(PoseEstimate.exact(mounting), compose(pose_start_cam, inverse))


@dataclass(frozen=True)
class Twist:
    """Velocity of the child frame in its own axes (nav_msgs/Odometry twist).

    Attributes:
        linear_mps: [3] m/s.
        angular_radps: [3] rad/s.
        covariance: [6, 6] over (vx, vy, vz, wx, wy, wz), (m/s)^2 and (rad/s)^2.
    """

    linear_mps: np.ndarray
    angular_radps: np.ndarray
    covariance: np.ndarray


def twist_of_step(step: PoseEstimate, duration_s: float) -> Twist:
    """The constant velocity that moves by `step` (T_previous_current) in `duration_s` seconds.

    Raises:
        ValueError: If `duration_s` is not positive (a bug of the caller: stamps are checked).
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    rotation_vector = cv2.Rodrigues(step.transform[:3, :3])[0].reshape(3)
    return Twist(
        step.transform[:3, 3] / duration_s,
        rotation_vector / duration_s,
        step.covariance / duration_s**2,
    )


@dataclass(frozen=True)
class OdometryStep:
    """Where the camera is after one frame.

    Attributes:
        pose: T_start_cur, the current camera in the first keyframe's camera frame.
        step: T_previous_current since the previous tracked frame, its covariance in the
            previous camera's axes; None on the first frame of a track.
        step_duration_s: Time between those frames, seconds (0 without a step).
        metric: False in monocular mode: positions are not observed (zero, UNKNOWN_VARIANCE).
    """

    pose: PoseEstimate
    step: PoseEstimate | None
    step_duration_s: float
    metric: bool


class OdometryIntegrator:
    """Chains `T_keyframe_cur` poses into the camera's pose in the first keyframe's frame.

    The keyframe's own pose is fixed when it becomes the keyframe; every later frame's pose is
    that pose composed with its pose relative to the keyframe, so frames between keyframes do
    not accumulate error. A restart (reset, tracking lost for good) keeps the last pose: the
    next keyframe starts there.
    """

    def __init__(self) -> None:
        self._keyframe = PoseEstimate.exact(np.eye(4))
        self._last: tuple[int, PoseEstimate, PoseEstimate] | None = None

    def restart(self) -> None:
        """The next keyframe is placed at the last tracked pose (motion since then is unknown)."""
        if self._last is not None:
            self._keyframe = self._last[1]
        self._last = None

    def start(self, stamp_ns: int) -> OdometryStep:
        """The current frame becomes the keyframe of a new track (first frame or restart)."""
        identity = PoseEstimate.exact(np.eye(4))
        self._last = (stamp_ns, self._keyframe, identity)
        return OdometryStep(self._keyframe, None, 0.0, True)

    def update(self, pose: RelativePose, stamp_ns: int, new_keyframe: bool) -> OdometryStep:
        """Adds a successful `T_keyframe_cur`.

        Args:
            pose: The current camera relative to the keyframe.
            stamp_ns: The current image's stamp, nanoseconds (after the previous one).
            new_keyframe: The current frame becomes the keyframe of the next frames.

        Returns:
            The current pose and the step since the previous tracked frame.
        """
        relative = PoseEstimate.of_relative_pose(pose)
        current = compose(self._keyframe, relative)
        step, duration_s = None, 0.0
        if self._last is not None:
            last_stamp_ns, _, last_relative = self._last
            step = _step_between(last_relative, relative)
            duration_s = (stamp_ns - last_stamp_ns) * 1e-9
        self._last = (stamp_ns, current, relative)
        if new_keyframe:
            self._keyframe = current
            self._last = (stamp_ns, current, PoseEstimate.exact(np.eye(4)))
        return OdometryStep(current, step, duration_s, pose.metric)


def _step_between(previous: PoseEstimate, current: PoseEstimate) -> PoseEstimate:
    """T_previous_current of two poses relative to one keyframe, in the previous frame's axes.

    Their errors are taken as independent (two separate estimates against the keyframe), so the
    step's covariance is their sum, turned into the previous frame's axes.
    """
    to_previous = np.linalg.inv(previous.transform)
    rotation = _block_diagonal(to_previous[:3, :3])
    covariance = rotation @ (previous.covariance + current.covariance) @ rotation.T
    return PoseEstimate(to_previous @ current.transform, covariance)


def body_odometry(step: OdometryStep, T_body_cam: np.ndarray) -> tuple[PoseEstimate, Twist]:
    """The body's pose in the odometry frame and its velocity, from the camera's odometry.

    Monocular (``step.metric`` False): only the orientation and the angular velocity are
    observed; the position and the linear velocity are zero with UNKNOWN_VARIANCE.

    Args:
        step: The camera's odometry after one frame.
        T_body_cam: [4, 4] the camera mounting on the body.

    Returns:
        (T_odom_body with its covariance in odom axes, the body's twist in its own axes; zero
        with UNKNOWN_VARIANCE when there is no step yet).
    """
    pose = in_body_frame(step.pose, T_body_cam)
    if step.step is None or step.step_duration_s <= 0:
        twist = Twist(np.zeros(3), np.zeros(3), UNKNOWN_VARIANCE * np.eye(6))
    else:
        twist = twist_of_step(in_body_frame(step.step, T_body_cam), step.step_duration_s)
    if step.metric:
        return pose, twist
    transform = pose.transform.copy()
    transform[:3, 3] = 0.0
    covariances = []
    for covariance in (pose.covariance, twist.covariance):
        unobserved = covariance.copy()
        unobserved[:3, :] = unobserved[:, :3] = 0.0
        unobserved[:3, :3] = UNKNOWN_VARIANCE * np.eye(3)
        covariances.append(unobserved)
    return (
        PoseEstimate(transform, covariances[0]),
        Twist(np.zeros(3), twist.angular_radps, covariances[1]),
    )

"""Stereo or sequential frames in; matches, keyframe-relative pose, odometry and state out. No ROS.

Every pose is relative to a keyframe, which stays the reference until the keyframe policy
(`edm_ros.geometry.keyframes`) changes it, so slow motion does not integrate the noise of tiny
steps. Stereo mode matches, in one batched forward, left <-> right of the current frame and
keyframe-left <-> current-left, and solves PnP from the keyframe's triangulated left <-> right
matches (rectified pair, baseline from the right ``P[0, 3] = -fx * B``): metric, and exact for
standing still or turning in place. Sequential (monocular) mode estimates an essential matrix
keyframe <-> current with a unit translation (the scale is unobservable; the covariance says so).

A frame whose pose fails keeps the keyframe (the next frame is matched against it again) and
says why; after ``lost_frames_before_restart`` such frames, or on :meth:`MatchingPipeline.reset`,
tracking restarts from the current frame and the odometry continues from the last tracked pose.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.keyframes import KeyframePolicy, keyframe_reason, median_parallax_px
from edm_ros.geometry.odometry import OdometryIntegrator, OdometryStep
from edm_ros.geometry.pnp import MIN_PNP_POINTS, pose_from_points
from edm_ros.geometry.pose import PoseMethod, RelativePose, relative_pose_from_matches
from edm_ros.geometry.stereo import StereoPoints, points_at_stereo_depth, triangulate_stereo_points
from edm_ros.results import MatchResult

PairMode = Literal["stereo", "sequential"]


class PairMatcher(Protocol):
    """What the pipeline needs from :class:`edm_ros.matcher.EDMMatcher`."""

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        """Match B image pairs in one forward pass."""
        ...


@dataclass(frozen=True)
class Stamped:
    """When and where an image was taken: its stamp and optical frame (a ROS header's content).

    Attributes:
        stamp_ns: Capture time, integer nanoseconds (the input header's stamp).
        frame_id: The camera's optical frame.
    """

    stamp_ns: int
    frame_id: str


@dataclass(frozen=True)
class MonoFrame:
    """One grey image with its stamp and camera.

    Attributes:
        image: [H, W] uint8 grey image.
        stamp: Its stamp and optical frame.
        camera: Its camera, or None when no usable calibration came with it (matches only).
        camera_problem: Why ``camera`` is None ("" otherwise).
    """

    image: np.ndarray
    stamp: Stamped
    camera: CameraModel | None
    camera_problem: str = ""


@dataclass(frozen=True)
class StereoFrame:
    """A rectified stereo pair.

    Attributes:
        left: Left image; its camera is the rectified one (P[:3, :3], no distortion).
        right: Right image, same size.
        projection_left: [3, 4] rectified left P (pixels), or None when unusable.
        projection_right: [3, 4] rectified right P, ``P[0, 3] = -fx * baseline_m``, or None.
    """

    left: MonoFrame
    right: MonoFrame
    projection_left: np.ndarray | None
    projection_right: np.ndarray | None


@dataclass(frozen=True)
class PipelineConfig:
    """How poses are estimated and judged; may change between frames (node parameters).

    Attributes:
        mode: "stereo" or "sequential"; the frames given must fit it.
        ransac_method: Essential-matrix estimator ("magsac", "ransac", "poselib").
        ransac_threshold_px: Epipolar inlier threshold, pixels.
        ransac_confidence: RANSAC confidence in (0, 1).
        min_inliers: Fewer pose inliers: no pose for the frame.
        few_matches_warning: Fewer temporal matches: state FEW_MATCHES (pose still given).
        keyframe: When the current frame becomes the reference of the next frames.
        lost_frames_before_restart: Consecutive frames without a pose after which tracking
            restarts from the current frame; 0 keeps the keyframe until a reset.
    """

    mode: PairMode = "sequential"
    ransac_method: PoseMethod = "magsac"
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.99999
    min_inliers: int = 15
    few_matches_warning: int = 50
    keyframe: KeyframePolicy = field(default_factory=KeyframePolicy)
    lost_frames_before_restart: int = 10

    def __post_init__(self) -> None:
        if self.mode not in ("stereo", "sequential"):
            raise ConfigError(f"mode must be 'stereo' or 'sequential', got {self.mode!r}")
        if self.few_matches_warning < 0:
            raise ConfigError(f"few_matches_warning must be >= 0, got {self.few_matches_warning}")
        if self.lost_frames_before_restart < 0:
            raise ConfigError(
                f"lost_frames_before_restart must be >= 0, got {self.lost_frames_before_restart}"
            )


class TrackingState(enum.Enum):
    """How the last frame went."""

    INITIALISING = "initialising"  # first frame (or a restart): it becomes the keyframe
    OK = "ok"  # pose found
    FEW_MATCHES = "few matches"  # pose found from fewer than few_matches_warning matches
    LOST = "lost"  # no pose for this frame (reason given); the keyframe stays


@dataclass(frozen=True)
class PairMatches:
    """The matches of one image pair, ready to publish.

    Attributes:
        mode: "stereo" (left <-> right) or "sequential" (keyframe <-> current frame).
        reference: Stamp and frame of image0 (left, or the keyframe).
        current: Stamp and frame of image1 (right, or the current frame).
        result: The M matches, in original-image pixels.
        inlier_mask: [M] bool inliers of the returned pose, or None when there is no pose.
        images: (image0, image1), the [H, W] uint8 images that were matched (for drawing).
    """

    mode: PairMode
    reference: Stamped
    current: Stamped
    result: MatchResult
    inlier_mask: np.ndarray | None
    images: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class PipelineOutput:
    """What one frame produced.

    Attributes:
        pairs: Stereo mode: the left <-> right pair, then the temporal pair (absent when the
            frame starts a track). Sequential mode: the temporal pair (absent likewise).
        pose: ``T_ref_cur`` of the current (left) camera in the keyframe's, metric in stereo
            mode; a failed estimate (``success=False``) when LOST; None when the frame starts a
            track (INITIALISING).
        reference: Stamp and optical frame of the keyframe the pose is relative to (the frame
            itself when it starts a track).
        current: Stamp and optical frame of the current (left) image.
        state: Tracking state.
        reason: Why the state is not OK ("" when it is).
        warning: An input problem worth a warning (stamps going backwards), else "".
        temporal_matches: Number of keyframe <-> current matches (0 when starting a track).
        keyframe: The current frame is the reference of the next frames.
        odometry: The camera's pose in the first keyframe's frame and the step since the last
            tracked frame; None when LOST.
    """

    pairs: tuple[PairMatches, ...]
    pose: RelativePose | None
    reference: Stamped
    current: Stamped
    state: TrackingState
    reason: str
    warning: str
    temporal_matches: int
    keyframe: bool
    odometry: OdometryStep | None

    @property
    def tracked(self) -> bool:
        """A pose was found for this frame."""
        return self.pose is not None and self.pose.success

    @property
    def num_inliers(self) -> int:
        """Inliers of the returned pose (0 without a pose)."""
        return self.pose.num_inliers if self.pose is not None and self.pose.success else 0


@dataclass(frozen=True)
class _Keyframe:
    """The reference of the next frames; in stereo mode with its triangulated stereo matches."""

    frame: MonoFrame | StereoFrame
    stereo_left_px: np.ndarray | None = None  # [S, 2] left pixels of its left <-> right matches
    stereo_points: StereoPoints | None = None


class MatchingPipeline:
    """Tracks each new frame against the keyframe (and matches left with right in stereo mode)."""

    def __init__(self, matcher: PairMatcher, config: PipelineConfig) -> None:
        """Args:
        matcher: Runs the network (``EDMMatcher``); one ``match_batch`` call per frame.
        config: Pose and mode settings; replace later with :meth:`update_config`.
        """
        self._matcher = matcher
        self.config = config
        self._previous: MonoFrame | StereoFrame | None = None
        self._keyframe: _Keyframe | None = None
        self._lost_frames = 0
        self._odometry = OdometryIntegrator()
        self._restart_reason = "first frame: it becomes the keyframe"

    def update_config(self, config: PipelineConfig) -> None:
        """Use ``config`` from the next frame on (its mode must not change)."""
        if config.mode != self.config.mode:
            raise ConfigError(f"mode cannot change from {self.config.mode} to {config.mode}")
        self.config = config

    def reset(self, reason: str = "reset requested") -> None:
        """Restart tracking: the next frame becomes the keyframe; odometry continues from the
        last tracked pose."""
        self._keyframe = None
        self._previous = None
        self._odometry.restart()
        self._restart_reason = f"{reason}: this frame becomes the keyframe"

    def process(self, frame: MonoFrame | StereoFrame) -> PipelineOutput:
        """Match ``frame`` with the keyframe, estimate the relative pose and the odometry.

        Args:
            frame: A MonoFrame in sequential mode, a StereoFrame in stereo mode.

        Returns:
            The matches, the pose (or why there is none), the odometry and the tracking state.

        Raises:
            InputError: Wrong frame type for the mode, stereo sizes that differ, a stamp equal
                to the previous one, or an image the matcher rejects. The state is kept, so the
                next good frame is matched against the same keyframe.
        """
        expected = StereoFrame if self.config.mode == "stereo" else MonoFrame
        if not isinstance(frame, expected):
            raise InputError(
                f"{self.config.mode} mode expects a {expected.__name__}, got {type(frame).__name__}"
            )
        if isinstance(frame, StereoFrame):
            _check_stereo_sizes(frame)
        warning = self._check_stamp(frame)
        if warning:
            self.reset("stamp went backwards")
        output = self._track(frame) if self._keyframe is not None else self._start(frame)
        self._previous = frame
        return replace(output, warning=warning)

    def _check_stamp(self, frame: MonoFrame | StereoFrame) -> str:
        """A warning when the stamps went backwards; raises for a repeated stamp."""
        if self._previous is None:
            return ""
        previous_ns, stamp_ns = _stamp_of(self._previous).stamp_ns, _stamp_of(frame).stamp_ns
        if stamp_ns == previous_ns:
            raise InputError(
                f"frame stamp {stamp_ns * 1e-9:.9f} s repeats the previous frame's; duplicate "
                "frames are skipped"
            )
        if stamp_ns < previous_ns:
            return (
                f"stamp went backwards by {(previous_ns - stamp_ns) * 1e-9:.3f} s (bag restarted? "
                "use_sim_time?); tracking restarts from this frame"
            )
        return ""

    def _start(self, frame: MonoFrame | StereoFrame) -> PipelineOutput:
        """The frame starts a track and becomes the keyframe (stereo: with its stereo matches)."""
        stamp = _stamp_of(frame)
        pairs: tuple[PairMatches, ...] = ()
        stereo = None
        if isinstance(frame, StereoFrame):
            (stereo,) = self._matcher.match_batch([(frame.left.image, frame.right.image)])
            pairs = (_stereo_pair(frame, stereo),)
        self._set_keyframe(frame, stereo)
        odometry = self._odometry.start(stamp.stamp_ns)
        reason, self._restart_reason = self._restart_reason, "restart"
        return PipelineOutput(
            pairs, None, stamp, stamp, TrackingState.INITIALISING, reason, "", 0, True, odometry
        )

    def _track(self, frame: MonoFrame | StereoFrame) -> PipelineOutput:
        keyframe = self._keyframe
        assert keyframe is not None
        if isinstance(frame, StereoFrame):
            assert isinstance(keyframe.frame, StereoFrame)
            reference = keyframe.frame.left
            pairs = [(frame.left.image, frame.right.image), (reference.image, frame.left.image)]
            stereo, temporal = self._matcher.match_batch(pairs)  # one forward for both pairs
            pose = stereo_pose(self.config, temporal, keyframe, frame)
            leading: tuple[PairMatches, ...] = (_stereo_pair(frame, stereo),)
            current = frame.left
        else:
            assert isinstance(keyframe.frame, MonoFrame)
            reference, current, leading, stereo = keyframe.frame, frame, (), None
            (temporal,) = self._matcher.match_batch([(reference.image, frame.image)])
            pose = sequential_pose(self.config, temporal, reference, frame)
        temporal_pair = PairMatches(
            "sequential",
            reference.stamp,
            current.stamp,
            temporal,
            pose.inlier_mask if pose.success else None,
            (reference.image, current.image),
        )
        if not pose.success:
            return self._lost(frame, pose, (*leading, temporal_pair), reference.stamp)
        self._lost_frames = 0
        parallax_px = median_parallax_px(temporal.keypoints0, temporal.keypoints1, pose.inlier_mask)
        new_keyframe = bool(keyframe_reason(self.config.keyframe, pose, parallax_px))
        odometry = self._odometry.update(pose, current.stamp.stamp_ns, new_keyframe)
        if new_keyframe:
            self._set_keyframe(frame, stereo)
        state, reason = TrackingState.OK, ""
        num_matches = len(temporal.keypoints0)
        if num_matches < self.config.few_matches_warning:
            state = TrackingState.FEW_MATCHES
            reason = (
                f"{num_matches} matches < few_matches_warning {self.config.few_matches_warning:d}"
            )
        return PipelineOutput(
            (*leading, temporal_pair),
            pose,
            reference.stamp,
            current.stamp,
            state,
            reason,
            "",
            num_matches,
            new_keyframe,
            odometry,
        )

    def _lost(
        self,
        frame: MonoFrame | StereoFrame,
        pose: RelativePose,
        pairs: tuple[PairMatches, ...],
        reference: Stamped,
    ) -> PipelineOutput:
        """No pose: the keyframe stays, unless too many frames in a row failed (restart)."""
        self._lost_frames += 1
        lost_frames, limit = self._lost_frames, self.config.lost_frames_before_restart
        reason = f"no pose: {pose.reason}"
        restart = limit > 0 and lost_frames >= limit
        if restart:
            reason += f"; {lost_frames} frames lost in a row: tracking restarts from this frame"
            self._odometry.restart()
            self._set_keyframe(frame, pairs[0].result if isinstance(frame, StereoFrame) else None)
            self._odometry.start(_stamp_of(frame).stamp_ns)
        return PipelineOutput(
            pairs,
            pose,
            reference,
            _stamp_of(frame),
            TrackingState.LOST,
            reason,
            "",
            len(pose.inlier_mask),
            restart,
            None,
        )

    def _set_keyframe(self, frame: MonoFrame | StereoFrame, stereo: MatchResult | None) -> None:
        """``frame`` becomes the reference of the next frames (stereo: with its stereo matches)."""
        if isinstance(frame, StereoFrame) and stereo is not None:
            self._keyframe = _stereo_keyframe(frame, stereo)
        else:
            self._keyframe = _Keyframe(frame)
        self._lost_frames = 0


def _stereo_pair(frame: StereoFrame, stereo: MatchResult) -> PairMatches:
    images = (frame.left.image, frame.right.image)
    return PairMatches("stereo", frame.left.stamp, frame.right.stamp, stereo, None, images)


def _stereo_keyframe(frame: StereoFrame, stereo: MatchResult) -> _Keyframe:
    """The frame as keyframe with its triangulated left <-> right matches (none without P)."""
    if frame.projection_left is None or frame.projection_right is None:
        return _Keyframe(frame)
    points = triangulate_stereo_points(
        stereo.keypoints0, stereo.keypoints1, frame.projection_left, frame.projection_right
    )
    return _Keyframe(frame, np.asarray(stereo.keypoints0, np.float64), points)


def sequential_pose(
    config: PipelineConfig, temporal: MatchResult, reference: MonoFrame, current: MonoFrame
) -> RelativePose:
    """``T_ref_cur`` with a unit translation from the matches of two frames.

    Args:
        config: RANSAC settings.
        temporal: Matches reference -> current (original-image pixels).
        reference: Frame k-1 (its camera undistorts and normalises keypoints0).
        current: Frame k.

    Returns:
        The pose; ``success=False`` with a reason when a camera is missing or there are too few
        matches or inliers.
    """
    num_matches = len(temporal.keypoints0)
    for frame in (reference, current):
        if frame.camera is None:
            problem = frame.camera_problem or "no camera_info"
            return RelativePose.failure(f"no usable camera_info ({problem})", num_matches)
    assert reference.camera is not None and current.camera is not None
    return relative_pose_from_matches(
        temporal.keypoints0,
        temporal.keypoints1,
        reference.camera,
        current.camera,
        method=config.ransac_method,
        threshold_px=config.ransac_threshold_px,
        confidence=config.ransac_confidence,
        min_inliers=config.min_inliers,
    )


def stereo_pose(
    config: PipelineConfig, temporal: MatchResult, keyframe: _Keyframe, current: StereoFrame
) -> RelativePose:
    """Metric ``T_ref_cur`` of the current left camera in the keyframe's left camera (PnP).

    The keyframe's triangulated left <-> right matches lend their depth to the keyframe side of
    the temporal matches (`points_at_stereo_depth`); PnP with RANSAC on the current side.

    Args:
        config: RANSAC threshold, confidence and minimum inliers.
        temporal: Matches keyframe-left -> current-left.
        keyframe: The keyframe with its stereo matches.
        current: The current stereo frame (its rectified left P is the camera of the PnP).

    Returns:
        The metric pose, or ``success=False`` with a reason (no calibration, too few points with
        a stereo depth, too few inliers).
    """
    num_matches = len(temporal.keypoints0)
    reference = keyframe.frame
    assert isinstance(reference, StereoFrame)
    for name, frame in (("keyframe", reference), ("current frame", current)):
        if frame.projection_left is None or frame.projection_right is None:
            problem = frame.left.camera_problem or frame.right.camera_problem or "no stereo P"
            return RelativePose.failure(
                f"{name}: no stereo calibration ({problem})", num_matches, metric=True
            )
    assert reference.projection_left is not None and current.projection_left is not None
    if keyframe.stereo_points is None or keyframe.stereo_left_px is None:
        return RelativePose.failure("keyframe has no stereo depth", num_matches, metric=True)
    points_ref_m = points_at_stereo_depth(
        temporal.keypoints0,
        keyframe.stereo_left_px,
        keyframe.stereo_points,
        reference.projection_left,
    )
    return pose_from_points(
        points_ref_m,
        temporal.keypoints1,
        current.projection_left[:, :3],
        threshold_px=config.ransac_threshold_px,
        confidence=config.ransac_confidence,
        min_inliers=max(config.min_inliers, MIN_PNP_POINTS),
    )


def _stamp_of(frame: MonoFrame | StereoFrame) -> Stamped:
    return frame.left.stamp if isinstance(frame, StereoFrame) else frame.stamp


def _check_stereo_sizes(frame: StereoFrame) -> None:
    if frame.left.image.shape[:2] != frame.right.image.shape[:2]:
        (left_h, left_w), (right_h, right_w) = (
            frame.left.image.shape[:2],
            frame.right.image.shape[:2],
        )
        raise InputError(
            f"left image is {left_w}x{left_h} but right is {right_w}x{right_h}; stereo mode "
            "needs a rectified pair of equal size (stereo_image_proc's image_rect)"
        )

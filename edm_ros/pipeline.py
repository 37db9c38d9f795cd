"""Stereo or sequential frames in; matches, relative pose and tracking state out. No ROS here.

Sequential (monocular) mode matches frame k-1 with frame k and estimates ``T_ref_cur`` with a
unit translation (the scale is unobservable; the covariance says so). Stereo mode matches, in one
batched forward, left <-> right of the current frame and previous-left <-> current-left, then
gives the temporal pose its metric scale by triangulating the left <-> right matches with the
rectified baseline (right ``P[0, 3] = -fx * B``).

"Previous" is the previous frame this pipeline *processed*: a caller that drops frames while busy
simply gets a longer baseline.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import PoseMethod, RelativePose, relative_pose_from_matches
from edm_ros.geometry.stereo import metric_pose_from_stereo, stereo_baseline_m
from edm_ros.matcher import MatchResult

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
    """

    mode: PairMode = "sequential"
    ransac_method: PoseMethod = "magsac"
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.99999
    min_inliers: int = 15
    few_matches_warning: int = 50

    def __post_init__(self) -> None:
        if self.mode not in ("stereo", "sequential"):
            raise ConfigError(f"mode must be 'stereo' or 'sequential', got {self.mode!r}")
        if self.few_matches_warning < 0:
            raise ConfigError(f"few_matches_warning must be >= 0, got {self.few_matches_warning}")


class TrackingState(enum.Enum):
    """How the last frame went."""

    INITIALISING = "initialising"  # first frame (or after a reset): nothing to compare with yet
    OK = "ok"  # pose found
    FEW_MATCHES = "few matches"  # pose found from fewer than few_matches_warning matches
    LOST = "lost"  # no pose for this frame (reason given)


@dataclass(frozen=True)
class PairMatches:
    """The matches of one image pair, ready to publish.

    Attributes:
        mode: "stereo" (left <-> right) or "sequential" (previous <-> current frame).
        reference: Stamp and frame of image0 (left, or frame k-1).
        current: Stamp and frame of image1 (right, or frame k).
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
        pairs: Stereo mode: the left <-> right pair, then the temporal pair (absent on the first
            frame). Sequential mode: the temporal pair (absent on the first frame).
        pose: The successful ``T_ref_cur`` (metric in stereo mode), or None.
        pose_stamp: Stamp of the current image and optical frame of the reference camera (the
            pose's header), or None with ``pose``.
        state: Tracking state.
        reason: Why the state is not OK ("" when it is).
        warning: An input problem worth a warning (stamps going backwards), else "".
        temporal_matches: Number of previous <-> current matches (0 on the first frame).
    """

    pairs: tuple[PairMatches, ...]
    pose: RelativePose | None
    pose_stamp: Stamped | None
    state: TrackingState
    reason: str
    warning: str
    temporal_matches: int

    @property
    def num_inliers(self) -> int:
        """Inliers of the returned pose (0 without a pose)."""
        return 0 if self.pose is None else self.pose.num_inliers


class MatchingPipeline:
    """Matches each new frame with the previous one (and left with right in stereo mode)."""

    def __init__(self, matcher: PairMatcher, config: PipelineConfig) -> None:
        """Args:
        matcher: Runs the network (``EDMMatcher``); one ``match_batch`` call per frame.
        config: Pose and mode settings; replace later with :meth:`update_config`.
        """
        self._matcher = matcher
        self.config = config
        self._previous: MonoFrame | StereoFrame | None = None

    def update_config(self, config: PipelineConfig) -> None:
        """Use ``config`` from the next frame on (its mode must not change)."""
        if config.mode != self.config.mode:
            raise ConfigError(f"mode cannot change from {self.config.mode} to {config.mode}")
        self.config = config

    def reset(self) -> None:
        """Forget the previous frame: the next one starts a new sequence."""
        self._previous = None

    def process(self, frame: MonoFrame | StereoFrame) -> PipelineOutput:
        """Match ``frame`` with the previous frame and estimate the relative pose.

        Args:
            frame: A MonoFrame in sequential mode, a StereoFrame in stereo mode.

        Returns:
            The matches, the pose (or why there is none) and the tracking state.

        Raises:
            InputError: Wrong frame type for the mode, stereo sizes that differ, a stamp equal
                to the previous one, or an image the matcher rejects. The previous frame is
                kept, so the next good frame is matched against it.
        """
        expected = StereoFrame if self.config.mode == "stereo" else MonoFrame
        if not isinstance(frame, expected):
            raise InputError(
                f"{self.config.mode} mode expects a {expected.__name__}, got {type(frame).__name__}"
            )
        if isinstance(frame, StereoFrame):
            _check_stereo_sizes(frame)
        previous, warning = self._previous_for(frame)
        if isinstance(frame, StereoFrame):
            assert previous is None or isinstance(previous, StereoFrame)
            output = self._process_stereo(frame, previous)
        else:
            assert previous is None or isinstance(previous, MonoFrame)
            output = self._process_sequential(frame, previous)
        self._previous = frame
        return replace(output, warning=warning)

    def _previous_for(
        self, frame: MonoFrame | StereoFrame
    ) -> tuple[MonoFrame | StereoFrame | None, str]:
        """The frame to match against, and a warning when the stamps went backwards."""
        if self._previous is None:
            return None, ""
        previous_ns, stamp_ns = _stamp_of(self._previous).stamp_ns, _stamp_of(frame).stamp_ns
        if stamp_ns == previous_ns:
            raise InputError(
                f"frame stamp {stamp_ns * 1e-9:.9f} s repeats the previous frame's; duplicate "
                "frames are skipped"
            )
        if stamp_ns < previous_ns:
            return None, (
                f"stamp went backwards by {(previous_ns - stamp_ns) * 1e-9:.3f} s (bag restarted? "
                "use_sim_time?); matching restarts from this frame"
            )
        return self._previous, ""

    def _process_sequential(self, frame: MonoFrame, previous: MonoFrame | None) -> PipelineOutput:
        if previous is None:
            return _first_frame_output(())
        (result,) = self._matcher.match_batch([(previous.image, frame.image)])
        pose = sequential_pose(self.config, result, previous, frame)
        return self._output(result, pose, previous, frame, (), (previous.image, frame.image))

    def _process_stereo(self, frame: StereoFrame, previous: StereoFrame | None) -> PipelineOutput:
        pairs = [(frame.left.image, frame.right.image)]
        if previous is not None:
            pairs.append((previous.left.image, frame.left.image))
        results = self._matcher.match_batch(pairs)  # one forward for both pairs
        stereo_pair = PairMatches(
            "stereo", frame.left.stamp, frame.right.stamp, results[0], None, pairs[0]
        )
        if previous is None:
            return _first_frame_output((stereo_pair,))
        pose = stereo_pose(self.config, results[1], results[0], previous, frame)
        return self._output(results[1], pose, previous.left, frame.left, (stereo_pair,), pairs[1])

    def _output(
        self,
        temporal: MatchResult,
        pose: RelativePose,
        reference: MonoFrame,
        current: MonoFrame,
        leading_pairs: tuple[PairMatches, ...],
        images: tuple[np.ndarray, np.ndarray],
    ) -> PipelineOutput:
        """Output for a frame with a temporal pair: the pose if it succeeded, else why not."""
        mask = pose.inlier_mask if pose.success else None
        temporal_pair = PairMatches(
            "sequential", reference.stamp, current.stamp, temporal, mask, images
        )
        num_matches = len(temporal.keypoints0)
        if not pose.success:
            state, reason = TrackingState.LOST, f"no pose: {pose.reason}"
        elif num_matches < self.config.few_matches_warning:
            state = TrackingState.FEW_MATCHES
            reason = (
                f"{num_matches} matches < few_matches_warning {self.config.few_matches_warning}"
            )
        else:
            state, reason = TrackingState.OK, ""
        return PipelineOutput(
            pairs=(*leading_pairs, temporal_pair),
            pose=pose if pose.success else None,
            pose_stamp=Stamped(current.stamp.stamp_ns, reference.stamp.frame_id)
            if pose.success
            else None,
            state=state,
            reason=reason,
            warning="",
            temporal_matches=num_matches,
        )


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
    config: PipelineConfig,
    temporal: MatchResult,
    stereo: MatchResult,
    previous: StereoFrame,
    current: StereoFrame,
) -> RelativePose:
    """Metric ``T_ref_cur`` of the current left camera in the previous left camera frame.

    Args:
        config: RANSAC settings.
        temporal: Matches previous-left -> current-left.
        stereo: Matches current-left -> current-right (their depths give the scale).
        previous: The previous stereo frame.
        current: The current stereo frame.

    Returns:
        The metric pose, or ``success=False`` with a reason (no calibration, too few inliers,
        too little parallax or stereo depth for the scale).
    """
    monocular = sequential_pose(config, temporal, previous.left, current.left)
    if current.projection_left is None or current.projection_right is None:
        reason = current.left.camera_problem or current.right.camera_problem or "no stereo P"
        return RelativePose.failure(
            f"no metric scale: {reason}", len(temporal.keypoints0), monocular.inlier_mask, True
        )
    try:
        stereo_baseline_m(current.projection_right)
    except ConfigError as err:
        return RelativePose.failure(
            f"no metric scale: {err}", len(temporal.keypoints0), monocular.inlier_mask, True
        )
    return metric_pose_from_stereo(
        monocular,
        temporal.keypoints0,
        temporal.keypoints1,
        stereo.keypoints0,
        stereo.keypoints1,
        current.projection_left,
        current.projection_right,
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


def _first_frame_output(pairs: tuple[PairMatches, ...]) -> PipelineOutput:
    return PipelineOutput(
        pairs=pairs,
        pose=None,
        pose_stamp=None,
        state=TrackingState.INITIALISING,
        reason="first frame: the pose needs a previous frame",
        warning="",
        temporal_matches=0,
    )

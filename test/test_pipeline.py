"""edm_ros.pipeline: frame bookkeeping, batching, and pose accuracy against synthetic ground truth.

Pose accuracy uses the weights-free path (exact correspondences of a rendered scene fed to the
pipeline's pose estimation), since the only weights here are random. The batching and state tests
run the real EDMMatcher with those random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from edm_ros.data.synthetic import (
    StereoSequence,
    grid_points,
    pose_matrix,
    stereo_sequence,
    transfer_points,
)
from edm_ros.errors import ConfigError, InputError
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.keyframes import KeyframePolicy
from edm_ros.geometry.pose import UNKNOWN_VARIANCE, pose_error_deg
from edm_ros.matcher import EDMMatcher
from edm_ros.pipeline import (
    MatchingPipeline,
    MonoFrame,
    PipelineConfig,
    Stamped,
    StereoFrame,
    TrackingState,
    sequential_pose,
)
from edm_ros.results import MatchResult

WIDTH, HEIGHT = 320, 256
SEQUENCE = stereo_sequence(3, WIDTH, HEIGHT, seed=3)
STILL = stereo_sequence(3, WIDTH, HEIGHT, step_m=(0, 0, 0), step_rotation_deg=(0, 0, 0), seed=3)
TURN = stereo_sequence(2, WIDTH, HEIGHT, step_m=(0, 0, 0), step_rotation_deg=(0.5, 3, 0), seed=3)
CAMERA = CameraModel(SEQUENCE.K, WIDTH, HEIGHT)


def _result(points0: np.ndarray, points1: np.ndarray) -> MatchResult:
    count = len(points0)
    return MatchResult(
        points0.astype(np.float32),
        points1.astype(np.float32),
        np.ones(count, np.float32),
        np.ones(count, np.float32),
        (WIDTH, HEIGHT),
        (WIDTH, HEIGHT),
        1.0,
    )


def _true_matches(
    depth: np.ndarray,
    pose_this_other: np.ndarray,
    depth_other: np.ndarray,
    K: np.ndarray = SEQUENCE.K,
) -> MatchResult:
    """Exact correspondences of a rendered view into another (the weights-free matcher)."""
    grid = grid_points(WIDTH, HEIGHT, 8)
    points1, visible = transfer_points(grid, depth, K, pose_this_other, depth_other)
    return _result(grid[visible], points1[visible])


def _stereo_frame(
    index: int, sequence: StereoSequence = SEQUENCE, stamp_ns: int | None = None
) -> StereoFrame:
    frame = sequence.frames[index]
    stamp_ns = 1_000_000_000 + index * 100_000_000 if stamp_ns is None else stamp_ns
    left = MonoFrame(frame.left, Stamped(stamp_ns, "left_optical"), CAMERA)
    right = MonoFrame(frame.right, Stamped(stamp_ns, "right_optical"), CAMERA)
    return StereoFrame(left, right, sequence.projection_left, sequence.projection_right)


def _mono_frame(
    index: int, stamp_ns: int | None = None, camera: CameraModel | None = CAMERA
) -> MonoFrame:
    stamp = Stamped(stamp_ns if stamp_ns is not None else 1_000_000_000 + index, "cam_optical")
    return MonoFrame(SEQUENCE.frames[index].left, stamp, camera, "" if camera else "K is zero")


class GroundTruthMatcher:
    """The exact correspondences of a rendered sequence (stands in for trained weights)."""

    def __init__(self, sequence: StereoSequence = SEQUENCE) -> None:
        self.batch_sizes: list[int] = []
        self._by_images: dict[tuple[int, int], MatchResult] = {}
        left_right = pose_matrix((0, 0, 0), (sequence.baseline_m, 0, 0))
        for frame in sequence.frames:
            stereo = _true_matches(frame.depth_left, left_right, frame.depth_right, sequence.K)
            self._by_images[(id(frame.left), id(frame.right))] = stereo
            for other in sequence.frames:  # every temporal pair: the reference is any keyframe
                relative = np.linalg.inv(frame.pose_world_left) @ other.pose_world_left
                temporal = _true_matches(frame.depth_left, relative, other.depth_left, sequence.K)
                self._by_images[(id(frame.left), id(other.left))] = temporal

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        self.batch_sizes.append(len(pairs))
        return [self._by_images[(id(image0), id(image1))] for image0, image1 in pairs]


class BatchCounter:
    """The real matcher, recording how many pairs each forward pass held."""

    def __init__(self, matcher: EDMMatcher) -> None:
        self.matcher = matcher
        self.batch_sizes: list[int] = []

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        self.batch_sizes.append(len(pairs))
        return self.matcher.match_batch(pairs)


@pytest.fixture(scope="module")
def random_matcher(parity_weights) -> EDMMatcher:
    return EDMMatcher(parity_weights, device="cpu", input_size=(160, 128), match_threshold=0.0)


def test_sequential_pose_matches_ground_truth_with_exact_correspondences() -> None:
    rotation_true, translation_true = SEQUENCE.relative_pose(0, 1)
    matches = GroundTruthMatcher().match_batch([(SEQUENCE.frames[0].left, SEQUENCE.frames[1].left)])
    pose = sequential_pose(PipelineConfig(), matches[0], _mono_frame(0), _mono_frame(1))
    assert pose.success, pose.reason
    rotation_error, direction_error = pose_error_deg(
        pose.rotation, pose.translation, rotation_true, translation_true
    )
    assert rotation_error < 0.05 and direction_error < 0.5
    assert pose.translation @ translation_true > 0  # the direction, not just the axis
    assert np.linalg.norm(pose.translation) == pytest.approx(1.0)
    assert not pose.metric
    direction = pose.translation / np.linalg.norm(pose.translation)
    assert direction @ pose.covariance[:3, :3] @ direction > 1e3  # scale unknown: says so
    assert 0 < pose.covariance[3, 3] < 1e-4  # rotation: small, not zero


def _rotation_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def test_stereo_pnp_recovers_metric_translation_and_rotation() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig(mode="stereo"))
    pipeline.process(_stereo_frame(1))
    output = pipeline.process(_stereo_frame(2))
    rotation_true, translation_true = SEQUENCE.relative_pose(1, 2)
    assert output.tracked and output.pose is not None and output.pose.metric, output.reason
    assert np.linalg.norm(output.pose.translation - translation_true) < 1e-3
    assert _rotation_deg(output.pose.rotation.T @ rotation_true) < 0.01
    covariance = output.pose.covariance
    assert np.all(np.diag(covariance) > 0) and np.all(np.diag(covariance) < 1e-4)


def test_standing_still_gives_the_identity_and_keeps_the_keyframe() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(STILL), PipelineConfig(mode="stereo"))
    pipeline.process(_stereo_frame(0, STILL))
    stamps = [2_000_000_000 + i * 100_000_000 for i in range(4)]
    outputs = [
        pipeline.process(_stereo_frame(1 + i % 2, STILL, stamp)) for i, stamp in enumerate(stamps)
    ]
    for output in outputs:
        assert output.state is TrackingState.OK and output.pose is not None, output.reason
        assert np.linalg.norm(output.pose.translation) < 1e-6
        assert _rotation_deg(output.pose.rotation) < 1e-4
        assert 0 < output.pose.covariance[0, 0] < 1e-4  # small, never zero
        assert not output.keyframe and output.reference == _stereo_frame(0, STILL).left.stamp
    assert outputs[-1].odometry is not None
    np.testing.assert_allclose(outputs[-1].odometry.pose.transform, np.eye(4), atol=1e-6)


def test_turning_in_place_gives_the_rotation() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(TURN), PipelineConfig(mode="stereo"))
    pipeline.process(_stereo_frame(0, TURN))
    output = pipeline.process(_stereo_frame(1, TURN))
    rotation_true, _ = TURN.relative_pose(0, 1)
    assert output.tracked and output.pose is not None, output.reason
    assert _rotation_deg(output.pose.rotation.T @ rotation_true) < 0.01
    assert np.linalg.norm(output.pose.translation) < 1e-3


def test_keyframe_changes_by_policy_and_odometry_chains_through_it() -> None:
    policy = KeyframePolicy(parallax_px=0.0, min_inliers=0, translation_m=0.05, rotation_deg=0.0)
    config = PipelineConfig(mode="stereo", keyframe=policy)
    pipeline = MatchingPipeline(GroundTruthMatcher(), config)
    outputs = [pipeline.process(_stereo_frame(index)) for index in range(3)]
    assert [o.keyframe for o in outputs] == [True, True, True]  # 0.079 m per frame >= 0.05
    assert outputs[2].reference == _stereo_frame(1).left.stamp
    assert outputs[2].odometry is not None and outputs[2].odometry.step is not None
    truth = np.linalg.inv(SEQUENCE.frames[0].pose_world_left) @ SEQUENCE.frames[2].pose_world_left
    np.testing.assert_allclose(outputs[2].odometry.pose.transform, truth, atol=1e-3)
    assert outputs[2].odometry.step_duration_s == pytest.approx(0.1)
    kept = MatchingPipeline(GroundTruthMatcher(), PipelineConfig(mode="stereo"))
    kept_outputs = [kept.process(_stereo_frame(index)) for index in range(3)]
    assert kept_outputs[2].reference == _stereo_frame(0).left.stamp  # default: 0.16 m < 0.25


def test_lost_frames_keep_the_keyframe_then_restart() -> None:
    config = PipelineConfig(mode="stereo", lost_frames_before_restart=2)
    pipeline = MatchingPipeline(GroundTruthMatcher(), config)
    pipeline.process(_stereo_frame(0))
    pipeline.update_config(replace(config, min_inliers=100_000))
    first_lost = pipeline.process(_stereo_frame(1))
    assert first_lost.state is TrackingState.LOST and not first_lost.keyframe
    assert first_lost.reference == _stereo_frame(0).left.stamp and first_lost.odometry is None
    second_lost = pipeline.process(_stereo_frame(2))
    assert second_lost.keyframe and "tracking restarts" in second_lost.reason
    pipeline.update_config(config)
    after = pipeline.process(_stereo_frame(0, stamp_ns=9_000_000_000))
    assert after.tracked and after.reference == _stereo_frame(2).left.stamp


def test_reset_makes_the_next_frame_the_keyframe() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig(mode="stereo"))
    pipeline.process(_stereo_frame(0))
    pipeline.process(_stereo_frame(1))
    pipeline.reset()
    output = pipeline.process(_stereo_frame(2))
    assert output.state is TrackingState.INITIALISING and output.keyframe
    assert "reset requested" in output.reason and len(output.pairs) == 1


def test_stereo_pipeline_batches_both_pairs_and_publishes_metric_pose_with_frames() -> None:
    matcher = GroundTruthMatcher()
    pipeline = MatchingPipeline(matcher, PipelineConfig(mode="stereo"))
    first = pipeline.process(_stereo_frame(0))
    second = pipeline.process(_stereo_frame(1))
    assert matcher.batch_sizes == [1, 2]  # left<->right alone, then both pairs in one forward
    assert first.state is TrackingState.INITIALISING and first.pose is None
    assert [pair.mode for pair in first.pairs] == ["stereo"]
    assert [pair.mode for pair in second.pairs] == ["stereo", "sequential"]
    stereo_pair, temporal_pair = second.pairs
    assert (stereo_pair.reference.frame_id, stereo_pair.current.frame_id) == (
        "left_optical",
        "right_optical",
    )
    assert temporal_pair.reference == _stereo_frame(0).left.stamp
    assert temporal_pair.current == _stereo_frame(1).left.stamp
    assert second.state is TrackingState.OK and second.pose is not None
    assert second.reference == _stereo_frame(0).left.stamp
    assert second.current == _stereo_frame(1).left.stamp
    assert temporal_pair.inlier_mask is not None
    assert len(temporal_pair.inlier_mask) == len(temporal_pair.result)
    assert stereo_pair.inlier_mask is None
    _, translation_true = SEQUENCE.relative_pose(0, 1)
    assert np.linalg.norm(second.pose.translation - translation_true) < 0.03 * np.linalg.norm(
        translation_true
    )


def test_stereo_pipeline_runs_one_forward_per_frame_with_the_real_matcher(random_matcher) -> None:
    counter = BatchCounter(random_matcher)
    pipeline = MatchingPipeline(counter, PipelineConfig(mode="stereo", min_inliers=5))
    outputs = [pipeline.process(_stereo_frame(index)) for index in range(3)]
    assert counter.batch_sizes == [1, 2, 2]
    for output in outputs[1:]:
        assert output.state in TrackingState
        assert output.temporal_matches == len(output.pairs[1].result)
        assert output.pose is not None and output.pose.metric
        assert output.tracked != output.reason.startswith("no pose")


def test_sequential_first_frame_initialises_then_matches_previous(random_matcher) -> None:
    pipeline = MatchingPipeline(random_matcher, PipelineConfig(min_inliers=5))
    first = pipeline.process(_mono_frame(0))
    second = pipeline.process(_mono_frame(1))
    assert first.pairs == () and first.state is TrackingState.INITIALISING
    (pair,) = second.pairs
    assert pair.mode == "sequential"
    assert pair.reference == _mono_frame(0).stamp and pair.current == _mono_frame(1).stamp
    assert pair.result.image0_size == (WIDTH, HEIGHT)


def test_missing_camera_gives_matches_without_pose_and_says_why(random_matcher) -> None:
    pipeline = MatchingPipeline(random_matcher, PipelineConfig())
    pipeline.process(_mono_frame(0, camera=None))
    output = pipeline.process(_mono_frame(1, camera=None))
    assert len(output.pairs) == 1 and not output.tracked
    assert output.state is TrackingState.LOST
    assert "camera_info" in output.reason and "K is zero" in output.reason


def test_too_few_inliers_gives_no_pose_but_keeps_matches() -> None:
    config = PipelineConfig(min_inliers=100_000)
    pipeline = MatchingPipeline(GroundTruthMatcher(), config)
    pipeline.process(_mono_frame(0))
    output = pipeline.process(_mono_frame(1))
    assert not output.tracked and output.state is TrackingState.LOST
    assert "min_inliers 100000" in output.reason
    assert output.pairs[0].inlier_mask is None and len(output.pairs[0].result) > 100


def test_few_matches_state_keeps_the_pose() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig(few_matches_warning=100_000))
    pipeline.process(_mono_frame(0))
    output = pipeline.process(_mono_frame(1))
    assert output.state is TrackingState.FEW_MATCHES and output.pose is not None
    assert "few_matches_warning 100000" in output.reason


def test_stamp_going_backwards_restarts_with_a_warning() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig())
    pipeline.process(_mono_frame(0, stamp_ns=5_000_000_000))
    output = pipeline.process(_mono_frame(1, stamp_ns=2_000_000_000))
    assert output.pairs == () and output.state is TrackingState.INITIALISING
    assert "backwards by 3.000 s" in output.warning
    assert pipeline.process(_mono_frame(2, stamp_ns=2_100_000_000)).warning == ""


def test_repeated_stamp_is_rejected_and_the_previous_frame_kept() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig())
    pipeline.process(_mono_frame(0, stamp_ns=7))
    with pytest.raises(InputError, match="repeats the previous frame"):
        pipeline.process(_mono_frame(1, stamp_ns=7))
    output = pipeline.process(_mono_frame(1, stamp_ns=8))
    assert output.pairs[0].reference.stamp_ns == 7


def test_stereo_pair_of_different_sizes_is_rejected(random_matcher) -> None:
    frame = _stereo_frame(0)
    small_right = MonoFrame(frame.right.image[:128, :160], frame.right.stamp, None, "")
    pipeline = MatchingPipeline(random_matcher, PipelineConfig(mode="stereo"))
    with pytest.raises(InputError, match="left image is 320x256 but right is 160x128"):
        pipeline.process(StereoFrame(frame.left, small_right, None, None))


def test_frame_type_must_fit_the_mode(random_matcher) -> None:
    pipeline = MatchingPipeline(random_matcher, PipelineConfig(mode="stereo"))
    with pytest.raises(InputError, match="stereo mode expects a StereoFrame, got MonoFrame"):
        pipeline.process(_mono_frame(0))


def test_config_changes_apply_but_mode_cannot_change(random_matcher) -> None:
    pipeline = MatchingPipeline(random_matcher, PipelineConfig())
    pipeline.update_config(PipelineConfig(ransac_threshold_px=2.0))
    assert pipeline.config.ransac_threshold_px == 2.0
    with pytest.raises(ConfigError, match="mode cannot change"):
        pipeline.update_config(PipelineConfig(mode="stereo"))


def test_stereo_without_calibration_gives_no_pose_and_says_why() -> None:
    pipeline = MatchingPipeline(GroundTruthMatcher(), PipelineConfig(mode="stereo"))
    uncalibrated = [replace(_stereo_frame(index), projection_right=None) for index in (0, 1)]
    uncalibrated = [
        replace(f, right=replace(f.right, camera_problem="P[0,3] gives no baseline"))
        for f in uncalibrated
    ]
    pipeline.process(uncalibrated[0])
    output = pipeline.process(uncalibrated[1])
    assert output.state is TrackingState.LOST and "no stereo calibration" in output.reason
    assert "baseline" in output.reason
    assert output.pose is not None and np.all(np.diag(output.pose.covariance) == UNKNOWN_VARIANCE)

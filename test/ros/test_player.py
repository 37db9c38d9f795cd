"""edm_ros.ros.player: the MatchArray well-formedness check the demo and benchmark rely on."""

from __future__ import annotations

import numpy as np
import pytest
from edm_ros.msg import MatchArray, RelativePose

from edm_ros.data.synthetic import stereo_sequence
from edm_ros.pipeline import Stamped
from edm_ros.ros.conversions import float32_sequence, header_of
from edm_ros.ros.outputs import quaternion_from_rotation
from edm_ros.ros.player import (
    LEFT_FRAME,
    expected_matches,
    match_array_problems,
    playback_stamp_ns,
    pose_error,
)


def _match_array(count: int = 4) -> MatchArray:
    msg = MatchArray(
        mode="sequential", width=64, height=48, reference_width=64, reference_height=48
    )
    msg.keypoints0 = float32_sequence(np.tile(np.float32([10.0, 20.0]), count))
    msg.keypoints1 = float32_sequence(np.tile(np.float32([11.0, 21.0]), count))
    msg.confidence = float32_sequence(np.full(count, 0.5, np.float32))
    msg.fine_confidence = float32_sequence(np.full(count, 0.9, np.float32))
    msg.inference_ms = 3.0
    return msg


def test_a_well_formed_message_has_no_problems() -> None:
    assert match_array_problems(_match_array()) == []
    with_mask = _match_array()
    with_mask.inlier_mask = bytes([1, 0, 1, 1])
    assert match_array_problems(with_mask) == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("keypoints1", np.zeros(6, np.float32), "lengths"),
        ("inlier_mask", bytes(3), "lengths"),
        ("keypoints0", np.tile(np.float32([70.0, 20.0]), 4), "keypoints0 not finite or outside"),
        ("keypoints1", np.tile(np.float32([np.nan, 1.0]), 4), "keypoints1 not finite or outside"),
        ("confidence", np.full(4, 1.5, np.float32), "confidence outside [0, 1]"),
        ("mode", "mono", "mode 'mono'"),
        ("width", 0, "zero image size"),
        ("inference_ms", -1.0, "inference_ms -1.0"),
    ],
)
def test_each_malformation_is_found(field: str, value: object, problem: str) -> None:
    msg = _match_array()
    setattr(msg, field, float32_sequence(value) if isinstance(value, np.ndarray) else value)
    assert any(text.startswith(problem) for text in match_array_problems(msg))


def test_expected_match_arrays_per_frame() -> None:
    assert [expected_matches("stereo", i) for i in range(3)] == [1, 2, 2]
    assert [expected_matches("sequential", i) for i in range(3)] == [0, 1, 1]


def _pose_msg(rotation: np.ndarray, translation: np.ndarray, metric: bool) -> RelativePose:
    msg = RelativePose(metric=metric)
    msg.reference_header = header_of(Stamped(playback_stamp_ns(0), LEFT_FRAME))
    msg.header = header_of(Stamped(playback_stamp_ns(2), LEFT_FRAME))
    position, orientation = msg.pose.pose.position, msg.pose.pose.orientation
    position.x, position.y, position.z = (float(v) for v in translation)
    orientation.x, orientation.y, orientation.z, orientation.w = quaternion_from_rotation(rotation)
    return msg


def test_pose_errors_are_measured_against_the_rendered_ground_truth() -> None:
    sequence = stereo_sequence(3, 64, 48)
    rotation, translation = sequence.relative_pose(0, 2)
    exact = pose_error(_pose_msg(rotation, translation, True), 2, sequence)
    assert exact["metric"] and exact["frame"] == 2
    assert exact["translation_error"] == pytest.approx(0.0, abs=1e-6)
    assert exact["rotation_error_deg"] == pytest.approx(0.0, abs=1e-4)
    shifted = translation + np.array([0.03, 0.0, 0.04])
    off = pose_error(_pose_msg(rotation, shifted, True), 2, sequence)
    assert off["translation_error"] == pytest.approx(0.05, abs=1e-6)
    backwards = pose_error(_pose_msg(rotation, -translation, False), 2, sequence)
    assert not backwards["metric"]
    assert backwards["translation_error"] == pytest.approx(180.0, abs=1e-3)  # a unit direction

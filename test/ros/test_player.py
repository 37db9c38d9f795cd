"""edm_ros.ros.player: the MatchArray well-formedness check the demo and benchmark rely on."""

from __future__ import annotations

import numpy as np
import pytest
from edm_ros.msg import MatchArray

from edm_ros.ros.conversions import float32_sequence
from edm_ros.ros.player import expected_matches, match_array_problems


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
    # float32[] fields take array.array('f') on every distro under field checks
    setattr(msg, field, float32_sequence(value) if isinstance(value, np.ndarray) else value)
    assert any(text.startswith(problem) for text in match_array_problems(msg))


def test_expected_match_arrays_per_frame() -> None:
    assert [expected_matches("stereo", i) for i in range(3)] == [1, 2, 2]
    assert [expected_matches("sequential", i) for i in range(3)] == [0, 1, 1]

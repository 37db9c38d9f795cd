"""The keyframe policy: each criterion on its own, disabled criteria, bad thresholds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.errors import ConfigError
from edm_ros.geometry.keyframes import KeyframePolicy, keyframe_reason, median_parallax_px
from edm_ros.geometry.pose import RelativePose

POLICY = KeyframePolicy(parallax_px=30.0, min_inliers=60, translation_m=0.25, rotation_deg=5.0)


def _pose(
    rotation_deg: float = 0.0, translation_m: float = 0.0, inliers: int = 100, metric: bool = True
) -> RelativePose:
    rotation = cv2.Rodrigues(np.radians([0.0, rotation_deg, 0.0]).reshape(3, 1))[0]
    return RelativePose(
        True,
        "",
        rotation,
        np.array([translation_m, 0.0, 0.0]),
        metric,
        np.ones(inliers, bool),
        1e-6 * np.eye(6),
    )


def test_a_frame_close_to_the_keyframe_keeps_it() -> None:
    assert keyframe_reason(POLICY, _pose(4.9, 0.24, 60), 29.9) == ""


@pytest.mark.parametrize(
    ("pose", "parallax_px", "reason"),
    [
        (_pose(), 30.0, "parallax 30.0 px >= 30"),
        (_pose(inliers=59), 0.0, "59 inliers < 60"),
        (_pose(translation_m=0.3), 0.0, "moved 0.300 m >= 0.25"),
        (_pose(rotation_deg=5.5), 0.0, "turned 5.50 deg >= 5"),
    ],
)
def test_each_criterion_alone_makes_a_keyframe(
    pose: RelativePose, parallax_px: float, reason: str
) -> None:
    assert keyframe_reason(POLICY, pose, parallax_px) == reason


def test_every_reached_criterion_is_named() -> None:
    reason = keyframe_reason(POLICY, _pose(6.0, 0.5, 10), 40.0)
    assert reason.count("; ") == 3


def test_a_unit_translation_never_counts_as_distance() -> None:
    assert keyframe_reason(POLICY, _pose(translation_m=1.0, metric=False), 0.0) == ""


def test_zero_disables_a_criterion() -> None:
    off = KeyframePolicy(parallax_px=0.0, min_inliers=0, translation_m=0.0, rotation_deg=0.0)
    assert keyframe_reason(off, _pose(30.0, 2.0, 1), 500.0) == ""


def test_negative_thresholds_are_refused_together() -> None:
    with pytest.raises(ConfigError, match="parallax_px, rotation_deg must be >= 0"):
        KeyframePolicy(parallax_px=-1.0, rotation_deg=-2.0)


def test_median_parallax_counts_only_inliers() -> None:
    reference = np.zeros((4, 2))
    current = np.array([[3.0, 4.0], [6.0, 8.0], [0.0, 10.0], [300.0, 0.0]])
    inliers = np.array([True, True, True, False])
    assert median_parallax_px(reference, current, inliers) == pytest.approx(10.0)
    assert median_parallax_px(reference, current, np.zeros(4, bool)) == 0.0

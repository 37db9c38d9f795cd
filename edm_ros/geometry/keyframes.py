"""When the reference frame of visual odometry changes: the keyframe policy.

Poses are estimated against a keyframe, not the previous frame, so a camera that moves slowly
(or not at all) does not integrate the noise of many tiny steps. The keyframe changes when the
current frame has moved away from it far enough, or when tracking it is about to fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edm_ros.errors import ConfigError
from edm_ros.geometry.pose import RelativePose


@dataclass(frozen=True)
class KeyframePolicy:
    """The thresholds of a keyframe change; any one reached makes the current frame the keyframe.

    Attributes:
        parallax_px: Median displacement of the inlier matches between keyframe and current
            image, pixels; 0 disables.
        min_inliers: Fewer pose inliers than this (tracking is getting thin); 0 disables.
        translation_m: Distance from the keyframe, metres (metric poses only); 0 disables.
        rotation_deg: Rotation angle from the keyframe, degrees; 0 disables.
    """

    parallax_px: float = 30.0
    min_inliers: int = 60
    translation_m: float = 0.25
    rotation_deg: float = 5.0

    def __post_init__(self) -> None:
        negative = [name for name, value in vars(self).items() if value < 0]
        if negative:
            raise ConfigError(f"keyframe policy: {', '.join(negative)} must be >= 0 (0 disables)")


def median_parallax_px(
    points_ref_px: np.ndarray, points_cur_px: np.ndarray, inlier_mask: np.ndarray
) -> float:
    """Median image displacement of the inlier matches, pixels (0 without inliers).

    Args:
        points_ref_px: [N, 2] matches in the keyframe image.
        points_cur_px: [N, 2] the same matches in the current image.
        inlier_mask: [N] bool inliers of the pose.
    """
    if not np.any(inlier_mask):
        return 0.0
    flow = np.asarray(points_cur_px, np.float64) - np.asarray(points_ref_px, np.float64)
    return float(np.median(np.linalg.norm(flow[inlier_mask], axis=1)))


def keyframe_reason(policy: KeyframePolicy, pose: RelativePose, parallax_px: float) -> str:
    """Why the current frame should become the keyframe, or "" to keep the keyframe.

    Args:
        policy: The thresholds.
        pose: The successful `T_keyframe_cur`.
        parallax_px: `median_parallax_px` of its inliers.
    """
    rotation_deg = float(np.degrees(np.arccos(np.clip((np.trace(pose.rotation) - 1) / 2, -1, 1))))
    distance_m = float(np.linalg.norm(pose.translation))
    checks = (
        (
            policy.parallax_px > 0 and parallax_px >= policy.parallax_px,
            f"parallax {parallax_px:.1f} px >= {policy.parallax_px:g}",
        ),
        (
            pose.num_inliers < policy.min_inliers,
            f"{pose.num_inliers} inliers < {policy.min_inliers}",
        ),
        (
            pose.metric and policy.translation_m > 0 and distance_m >= policy.translation_m,
            f"moved {distance_m:.3f} m >= {policy.translation_m:g}",
        ),
        (
            policy.rotation_deg > 0 and rotation_deg >= policy.rotation_deg,
            f"turned {rotation_deg:.2f} deg >= {policy.rotation_deg:g}",
        ),
    )
    return "; ".join(text for reached, text in checks if reached)

"""edm_ros.geometry: cameras, relative pose, stereo, PnP, keyframes, odometry (numpy + OpenCV).

Frames and units are described in docs/geometry.md.
"""

from edm_ros.geometry.camera import CameraModel, DistortionModel
from edm_ros.geometry.pose import (
    PoseMethod,
    RelativePose,
    pose_error_deg,
    relative_pose_from_matches,
)
from edm_ros.geometry.stereo import (
    StereoPoints,
    points_at_stereo_depth,
    stereo_baseline_m,
    triangulate_stereo_points,
)

__all__ = [
    "CameraModel",
    "DistortionModel",
    "PoseMethod",
    "RelativePose",
    "StereoPoints",
    "points_at_stereo_depth",
    "pose_error_deg",
    "relative_pose_from_matches",
    "stereo_baseline_m",
    "triangulate_stereo_points",
]

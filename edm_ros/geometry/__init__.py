"""edm_ros.geometry: camera models, relative pose from matches, stereo scale (numpy + OpenCV only).

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
    metric_pose_from_stereo,
    stereo_baseline_m,
    triangulate_stereo_points,
)

__all__ = [
    "CameraModel",
    "DistortionModel",
    "PoseMethod",
    "RelativePose",
    "StereoPoints",
    "metric_pose_from_stereo",
    "pose_error_deg",
    "relative_pose_from_matches",
    "stereo_baseline_m",
    "triangulate_stereo_points",
]

"""The camera's mounting on the robot base: from /tf_static when published there, else a parameter.

There is no tf2 Buffer on the PyPI wheels, so the static transforms are kept here as a tree of
child -> (parent, transform) and a lookup walks it. ``tf2_msgs`` is optional: without it the node
has no /tf output and no /tf_static lookup (it says so) and uses the parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edm_ros.ros.outputs import matrix_from_transform

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # a venv without the tf2_msgs build
    TFMessage = None

#: ``tf2_msgs.msg.TFMessage``, or None when tf2_msgs is not importable.
TF_MESSAGE: Any = TFMessage


def mounting_from_parameter(values: tuple[float, ...]) -> np.ndarray:
    """[4, 4] T_base_camera from ``camera_mounting`` [x, y, z, qx, qy, qz, qw] (checked values)."""
    x, y, z, qx, qy, qz, qw = values
    norm = float(np.linalg.norm([qx, qy, qz, qw]))
    qx, qy, qz, qw = (v / norm for v in (qx, qy, qz, qw))
    matrix = np.eye(4)
    matrix[:3, :3] = [
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ]
    matrix[:3, 3] = (x, y, z)
    return matrix


class StaticTransforms:
    """The static transform tree heard on /tf_static."""

    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, msg: Any) -> list[str]:
        """Store the transforms of a ``tf2_msgs/TFMessage``; returns problems with bad ones."""
        problems = []
        for stamped in msg.transforms:
            try:
                matrix = matrix_from_transform(stamped.transform)
            except ValueError as err:
                problems.append(
                    f"/tf_static {stamped.header.frame_id} -> {stamped.child_frame_id}: {err}"
                )
                continue
            self._parents[stamped.child_frame_id] = (stamped.header.frame_id, matrix)
        return problems

    def lookup(self, parent: str, child: str) -> np.ndarray | None:
        """[4, 4] T_parent_child through the tree; None when ``child`` is not below ``parent``."""
        transform, frame, seen = np.eye(4), child, set()
        while frame != parent:
            if frame in seen or frame not in self._parents:
                return None
            seen.add(frame)
            frame, step = self._parents[frame]
            transform = step @ transform
        return transform

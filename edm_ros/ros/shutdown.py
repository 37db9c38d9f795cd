"""Ending a ROS process cleanly whatever a Ctrl-C interrupted."""

from __future__ import annotations

import rclpy


def shutdown_ros() -> None:
    """Shut ROS down unless it already is.

    rclpy's SIGINT handler shuts ROS down from a thread of its own, so it may do so between the
    check and the call: that is no error.
    """
    try:
        rclpy.try_shutdown()
    except Exception:
        if rclpy.ok():
            raise

"""The matcher node's VO outputs as a process: RelativePose on every frame, Odometry and /tf in
REP-105 frames, the camera mounting from /tf_static, and the ~/reset service.

Random weights rarely give a pose, so this checks what holds for any matches: the frame that
starts a track is published as odometry at the identity, and the messages carry their frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from edm_ros.msg import RelativePose
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from edm_ros.data.synthetic import stereo_sequence
from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.ros.conversions import stamp_to_ns
from edm_ros.ros.player import LEFT_FRAME, FramePlayer, sequence_frame_messages
from test.ros.conftest import NodeProcess, node_with_player

tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (make venv)")

TIMEOUT_S = 30.0
SEQUENCE = stereo_sequence(2, 320, 256, seed=4)
_LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class Outputs:
    def __init__(self, player: FramePlayer, node: NodeProcess) -> None:
        self.player, self.node = player, node
        self.odometry: list[Odometry] = []
        self.tf: list = []
        probe = player.node
        probe.create_subscription(Odometry, "/edm/odometry", self.odometry.append, 10)
        probe.create_subscription(tf2_msgs.TFMessage, "/tf", self.tf.append, 10)
        self.next_index = 0

    def wait(self, condition, what: str) -> None:
        try:
            self.player.wait_until(condition, TIMEOUT_S, what)
        except TimeoutError as err:
            pytest.fail(f"{err}; node log:\n{self.node.log()[-4000:]}")

    def send(self) -> int:
        index = self.next_index
        self.next_index += 1
        images, infos = sequence_frame_messages(SEQUENCE, "stereo", index)
        record = self.player.publish_frame(index, images, infos)
        stamp_ns = record.stamp_ns
        stamps = lambda: [stamp_to_ns(m.header.stamp) for m in self.player.relative_poses]  # noqa: E731
        self.wait(lambda: stamp_ns in stamps(), f"the RelativePose of frame {index}")
        return stamp_ns


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, probe_node) -> Iterator[Outputs]:
    static = probe_node.create_publisher(tf2_msgs.TFMessage, "/tf_static", _LATCHED)
    mounting = TransformStamped(child_frame_id=LEFT_FRAME)
    mounting.header.frame_id = "robot_base"
    mounting.transform.translation.x = 0.2
    mounting.transform.rotation.x, mounting.transform.rotation.y = -0.5, 0.5
    mounting.transform.rotation.z, mounting.transform.rotation.w = -0.5, 0.5
    static.publish(tf2_msgs.TFMessage(transforms=[mounting]))
    with node_with_player(
        tmp_path_factory.mktemp("odometry"),
        probe_node,
        "stereo",
        weights_path=RANDOM_WEIGHTS,
        publish_tf=True,
        odom_frame="vo_odom",
        base_frame="robot_base",
        lost_frames_before_restart=0,
    ) as (player, node):
        yield Outputs(player, node)


def test_first_frame_starts_odometry_at_the_identity_in_rep105_frames(outputs: Outputs) -> None:
    stamp_ns = outputs.send()
    outputs.wait(lambda: outputs.odometry and outputs.tf, "Odometry and /tf of the first frame")
    relative = outputs.player.relative_poses[-1]
    assert relative.state == RelativePose.STATE_INITIALISING and relative.keyframe
    assert (
        stamp_to_ns(relative.reference_header.stamp)
        == stamp_ns
        == stamp_to_ns(relative.header.stamp)
    )
    odometry = outputs.odometry[-1]
    assert (odometry.header.frame_id, odometry.child_frame_id) == ("vo_odom", "robot_base")
    assert stamp_to_ns(odometry.header.stamp) == stamp_ns
    position = odometry.pose.pose.position
    assert (position.x, position.y, position.z, odometry.pose.pose.orientation.w) == (0, 0, 0, 1)
    pose_covariance = np.asarray(odometry.pose.covariance).reshape(6, 6)
    assert np.all(np.diag(pose_covariance) > 0)  # robot_localization needs non-zero variances
    assert np.all(np.diag(np.asarray(odometry.twist.covariance).reshape(6, 6)) >= 1e6)  # no step
    (transform,) = outputs.tf[-1].transforms
    assert (transform.header.frame_id, transform.child_frame_id) == ("vo_odom", "robot_base")
    outputs.wait(
        lambda: "from /tf_static robot_base -> camera_left" in outputs.node.log(),
        "the mounting taken from /tf_static",
    )


def test_a_failed_frame_is_published_as_lost_against_its_keyframe(outputs: Outputs) -> None:
    keyframe_ns = outputs.send()
    for _ in range(2):  # random weights: no pose, the keyframe stays (no restart configured)
        stamp_ns = outputs.send()
        relative = next(
            m for m in outputs.player.relative_poses if stamp_to_ns(m.header.stamp) == stamp_ns
        )
        if relative.state != RelativePose.STATE_LOST:
            pytest.skip("random matches gave a pose: nothing lost to check")
        assert stamp_to_ns(relative.reference_header.stamp) == keyframe_ns
        assert relative.reason.startswith("no pose") and not relative.keyframe
        assert relative.metric and relative.num_matches >= relative.num_inliers
        assert np.all(np.diag(np.asarray(relative.pose.covariance).reshape(6, 6)) == 1e6)


def test_reset_service_makes_the_next_frame_the_keyframe(outputs: Outputs) -> None:
    client = outputs.player.node.create_client(Trigger, "/edm/reset")
    try:
        outputs.wait(client.service_is_ready, "/edm/reset")
        future = client.call_async(Trigger.Request())
        outputs.wait(future.done, "the reset response")
        assert future.result().success
    finally:
        outputs.player.node.destroy_client(client)
    stamp_ns = outputs.send()
    relative = outputs.player.relative_poses[-1]
    assert stamp_to_ns(relative.header.stamp) == stamp_ns
    assert relative.state == RelativePose.STATE_INITIALISING and relative.keyframe
    assert "reset requested" in relative.reason

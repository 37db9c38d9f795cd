"""launch/matcher.launch.py on a ROS 2 install (launch and launch_ros are not on PyPI: skipped).

The launch file starts the installed node with config/matcher.yaml, config/<mode>.yaml and a
params file; this process then feeds it frames and reads its MatchArrays.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from edm_ros.cli.demo import stop
from edm_ros.data.synthetic import stereo_sequence
from edm_ros.ros.player import FramePlayer, sequence_frame_messages
from test.ros.conftest import PROJECT_ROOT, TEST_PARAMS, write_params

pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; runs on a ROS 2 install")

LAUNCH_FILE = PROJECT_ROOT / "launch" / "matcher.launch.py"
_LAUNCHER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)  # background jobs inherit SIG_IGN
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService(argv=[])
source = PythonLaunchDescriptionSource(sys.argv[1])
arguments = [tuple(arg.split(":=", 1)) for arg in sys.argv[2:]]
service.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(source, launch_arguments=arguments)]))
sys.exit(service.run())
"""


@pytest.fixture
def launched(tmp_path) -> Iterator[subprocess.Popen]:
    params = write_params(tmp_path / "params.yaml", **TEST_PARAMS)
    command = [sys.executable, "-c", _LAUNCHER, str(LAUNCH_FILE), "mode:=sequential",
               f"params_file:={params}", "image:=/camera/image_rect",
               "camera_info:=/camera/camera_info"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process)


def test_launch_file_starts_the_node_with_remapped_inputs(launched, probe_node) -> None:
    player = FramePlayer(probe_node, "sequential")
    # the launch file remapped the node's inputs: publish there instead of image/camera_info
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    player.publishers = {
        "image": probe_node.create_publisher(Image, "/camera/image_rect", reliable),
        "camera_info": probe_node.create_publisher(CameraInfo, "/camera/camera_info", reliable),
    }
    player.wait_for_node(timeout_s=60.0)
    sequence = stereo_sequence(3, 320, 256)
    records = []
    for index in range(3):
        images, infos = sequence_frame_messages(sequence, "sequential", index)
        records.append(player.publish_frame(index, images, infos))
        if index == 0:
            player.wait_for_processed(1, 30.0)
    player.wait_until(lambda: records[-1].matches, 30.0, "matches of the last frame")
    assert launched.poll() is None

"""launch_pytest: the installed matcher.launch.py in stereo mode with a params file and simulated
time; stereo frames in, MatchArrays out; the launch ends cleanly (exit 0) after the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.node import Node

from edm_ros.data.synthetic import stereo_sequence
from edm_ros.ros.inputs import InputSpec
from edm_ros.ros.player import sequence_frame_messages
from edm_ros.ros.processes import write_params_file
from test.ros.conftest import PARITY_WEIGHTS, TEST_PARAMS, remapped_player

launch_pytest = pytest.importorskip("launch_pytest", reason="needs the ROS 2 launch tools")
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from launch import LaunchDescription  # noqa: E402

TIMEOUT_S = 60.0


@launch_pytest.fixture
def stereo_launch(tmp_path: Path) -> LaunchDescription:
    if not PARITY_WEIGHTS.is_file():
        pytest.skip(f"test weights not found at {PARITY_WEIGHTS}")
    launch_file = Path(get_package_share_directory("edm_ros")) / "launch" / "matcher.launch.py"
    params = write_params_file(tmp_path / "params.yaml", TEST_PARAMS)
    arguments = {"mode": "stereo", "params_file": str(params), "use_sim_time": "true"}
    return LaunchDescription(
        [
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(launch_file)), launch_arguments=arguments.items()
            ),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


@pytest.mark.launch(fixture=stereo_launch)
def test_stereo_launch_matches_pairs_on_simulated_time(probe_node: Node) -> None:
    topics = InputSpec.node_default("stereo").topics
    player = remapped_player(probe_node, "stereo", "/edm", {t: f"/{t}" for t in topics})
    player.wait_for_node(TIMEOUT_S)
    images, infos = sequence_frame_messages(stereo_sequence(1, 320, 256), "stereo", 0)
    record = player.publish_frame(0, images, infos)
    player.wait_until(lambda: record.matches, TIMEOUT_S, "the left-right MatchArray")
    assert record.matches[0][1].mode == "stereo"

    client = probe_node.create_client(GetParameters, "/edm/get_parameters")
    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    future = client.call_async(GetParameters.Request(names=["use_sim_time", "mode"]))
    player.wait_until(future.done, TIMEOUT_S, "the node's parameters")
    sim_time, mode = future.result().values
    assert sim_time.bool_value and mode.string_value == "stereo"

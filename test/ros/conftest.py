"""ROS test fixtures: an isolated DDS domain per test process, an in-process probe node, and the
matcher node started as its own process (the installed executable) with a params file."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before rclpy starts: loopback discovery only (both variables: Humble reads the old one, Kilted
# only the new one) and a domain of our own, so parallel test runs do not hear each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ["ROS_DOMAIN_ID"] = str(10 + os.getpid() % 200)
# Message classes check field types, as Humble's always do (Jazzy/Kilted only with this set): a
# numpy array in a sequence field fails here and in the node processes, which inherit it.
os.environ["ROS_PYTHON_CHECK_FIELDS"] = "1"
# ros2, launch and ament_index find packages here; a ROS install or colcon workspace sets it, the
# venv (whose root is an ament prefix) does not.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
# The installed executables start with `#!/usr/bin/env python3`: let that be this interpreter.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])

import rclpy
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.ros.player import FramePlayer
from edm_ros.ros.processes import start_logged, stop, write_params_file
from test.conftest import PARITY_WEIGHTS, PROJECT_ROOT


def _package_prefix() -> Path:
    """The install prefix ros2 run uses: a colcon install on AMENT_PREFIX_PATH, else the venv."""
    try:
        return Path(get_package_prefix("edm_ros"))
    except PackageNotFoundError:
        return Path(sys.prefix)


NODE_EXECUTABLE = _package_prefix() / "lib" / "edm_ros" / "matcher_node"
CONFIG_DIR = PROJECT_ROOT / "config"
# Small network input, every match kept, one CPU thread: fast and with many (random) matches.
TEST_PARAMS = {
    "weights_path": str(PARITY_WEIGHTS),
    "device": "cpu",
    "cpu_threads": 1,
    "input_width": 160,
    "input_height": 128,
    "match_threshold": 0.0,
    "image_qos": "reliable",
    "min_inliers": 8,
    "no_data_timeout_s": 2.0,
    # every tracked frame becomes the keyframe and every lost one restarts tracking, so the
    # reference is always the previous frame (random weights rarely give a pose)
    "keyframe_min_inliers": 1_000_000,
    "lost_frames_before_restart": 1,
}


def params_file_arguments(params_files: list[Path]) -> list[str]:
    """``--ros-args --params-file F ...`` for the node's command line."""
    arguments = ["--ros-args"]
    for path in params_files:
        arguments += ["--params-file", str(path)]
    return arguments


class NodeProcess:
    """The matcher node running as the installed executable, its output captured in a file."""

    def __init__(self, log_path: Path, params_files: list[Path], extra_args: list[str]) -> None:
        if not NODE_EXECUTABLE.is_file():
            pytest.skip(f"{NODE_EXECUTABLE} missing: run `make venv` to install the executable")
        self.log_path = log_path
        ros_args = params_file_arguments(params_files)
        self.process = start_installed([str(NODE_EXECUTABLE), *ros_args, *extra_args], log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        """Exit code, waiting at most ``timeout_s`` seconds."""
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> int:
        """SIGINT, as Ctrl-C would; SIGKILL (this PID only) if it does not exit in 20 s."""
        return stop(self.process, timeout_s=20.0)


def start_installed(
    command: list[str], log_path: Path, new_session: bool = False
) -> subprocess.Popen:
    """Start the Python script ``command[0]`` (a path, or a name on PATH) with SIGINT restored,
    its output written to ``log_path``; ``new_session``: in a process group of its own."""
    script = shutil.which(command[0])
    if script is None:
        pytest.skip(f"{command[0]} is not installed")
    return start_logged([script, *command[1:]], log_path, new_session=new_session)


def start_node(
    tmp_dir: Path, mode: str, extra_args: list[str] | None = None, **params: object
) -> NodeProcess:
    """The node with config/matcher.yaml, config/<mode>.yaml and the test parameters."""
    values = {**TEST_PARAMS, **params}
    weights = str(values["weights_path"])
    if weights and weights != RANDOM_WEIGHTS and not Path(weights).is_file():
        pytest.skip(f"test weights not found at {values['weights_path']}")
    overrides = write_params_file(tmp_dir / f"{mode}_test.yaml", values)
    files = [CONFIG_DIR / "matcher.yaml", CONFIG_DIR / f"{mode}.yaml", overrides]
    return NodeProcess(tmp_dir / f"{mode}_node.log", files, extra_args or [])


@contextlib.contextmanager
def node_with_player(
    tmp_dir: Path, probe: Node, mode: str, **params: object
) -> Iterator[tuple[FramePlayer, NodeProcess]]:
    """:func:`start_node` and a player that reached it; the node must end cleanly on SIGINT."""
    node = start_node(tmp_dir, mode, **params)
    try:
        player = FramePlayer(probe, mode)
        player.wait_for_node(timeout_s=60.0)
        yield player, node
    finally:
        code = node.stop()
    assert code == 0, f"node exit code {code} after SIGINT:\n{node.log()[-3000:]}"


@pytest.fixture(scope="module")
def probe_node() -> Iterator[Node]:
    """A node of the test process, in its own rclpy context."""
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = Node("edm_test_probe", context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def remapped_player(probe: Node, mode: str, node_name: str, inputs: dict[str, str]) -> FramePlayer:
    """A player for a node whose input topics (``mode``'s relative names) were remapped to
    ``inputs`` (input name -> topic), with its outputs under ``node_name``."""
    player = FramePlayer(probe, mode, node_name=node_name)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for old in player.publishers.values():
        probe.destroy_publisher(old)
    player.publishers = {
        name: probe.create_publisher(Image if "image" in name else CameraInfo, topic, reliable)
        for name, topic in inputs.items()
    }
    return player

"""`ros2 launch edm_ros matcher.launch.py`, `ros2 run`, `ros2 topic echo` and `ros2 param`, run as
a user runs them (skipped where the ROS 2 command-line tools are not installed).

One launch in sequential mode serves the tests of this module, in order: frames in, MatchArrays
out on the namespaced, remapped topics; `ros2 topic echo --once`; `ros2 param get/set`; Ctrl-C.
Then `ros2 run` starts the node on its own. Every graph query passes --no-daemon, and a test checks
that no daemon was started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rclpy.node import Node

from edm_ros.data.synthetic import stereo_sequence
from edm_ros.ros.player import FramePlayer, sequence_frame_messages
from edm_ros.ros.processes import stop, write_params_file
from test.ros.conftest import (
    CONFIG_DIR,
    PARITY_WEIGHTS,
    TEST_PARAMS,
    remapped_player,
    start_installed,
)

pytest.importorskip("launch_ros", reason="needs the ROS 2 launch tools (ROS install or ros2_tools)")
pytest.importorskip("ros2launch", reason="needs the ROS 2 command-line tools")

TIMEOUT_S = 60.0
NAMESPACE = "/cam"
NODE = f"{NAMESPACE}/edm"
INPUTS = {"image": "/camera/image_rect", "camera_info": "/camera/camera_info"}
# the launch arguments set these; the params file has the rest of the test parameters
LAUNCH_PARAMS = {k: v for k, v in TEST_PARAMS.items() if k not in ("weights_path", "device")}
SEQUENCE = stereo_sequence(3, 320, 256)


def ros2(*args: str) -> str:
    """Output of a short `ros2` command, which must succeed within TIMEOUT_S."""
    done = subprocess.run(["ros2", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"ros2 {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done.stdout + done.stderr


def child_pids(log: str) -> list[int]:
    """PIDs launch reports for the processes it started."""
    return [int(pid) for pid in re.findall(r"process started with pid \[(\d+)\]", log)]


def assert_exited(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class Launch:
    """`ros2 launch` running in the background, its output in a file."""

    def __init__(self, log_path: Path, arguments: list[str]) -> None:
        self.log_path = log_path
        command = ["ros2", "launch", "edm_ros", "matcher.launch.py", *arguments]
        self.process = start_installed(command, log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Iterator[Launch]:
    if not PARITY_WEIGHTS.is_file():
        pytest.skip(f"test weights not found at {PARITY_WEIGHTS}")
    tmp = tmp_path_factory.mktemp("launch")
    params = write_params_file(tmp / "params.yaml", LAUNCH_PARAMS)
    arguments = [
        "mode:=sequential",
        f"params_file:={params}",
        f"weights_path:={PARITY_WEIGHTS}",
        "device:=cpu",
        f"namespace:={NAMESPACE}",
        *(f"{name}:={topic}" for name, topic in INPUTS.items()),
    ]
    launch = Launch(tmp / "launch.log", arguments)
    try:
        yield launch
    finally:
        stop(launch.process)


@pytest.fixture(scope="module")
def player(launched: Launch, probe_node: Node) -> FramePlayer:
    player = remapped_player(probe_node, "sequential", NODE, INPUTS)
    try:
        player.wait_for_node(TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"no node behind the launch:\n{launched.log()}")
    return player


def test_launched_node_matches_frames_on_remapped_namespaced_topics(player: FramePlayer) -> None:
    images, infos = sequence_frame_messages(SEQUENCE, "sequential", 0)
    player.publish_frame(0, images, infos)
    player.wait_for_processed(1, TIMEOUT_S)  # the first frame has no predecessor: no output
    images, infos = sequence_frame_messages(SEQUENCE, "sequential", 1)
    record = player.publish_frame(1, images, infos)
    player.wait_until(lambda: record.matches, TIMEOUT_S, f"matches on {NODE}/matches")
    assert record.matches[0][1].mode == "sequential"


def test_topic_echo_once_prints_a_match_array(player: FramePlayer, tmp_path: Path) -> None:
    topic = f"{NODE}/matches"
    subscribers = player.node.count_subscribers(topic)
    command = [
        "ros2",
        "topic",
        "echo",
        "--once",
        "--no-daemon",
        "--no-arr",
        topic,
        "edm_ros/msg/MatchArray",
    ]
    echo = start_installed(command, tmp_path / "echo.log")
    try:
        player.wait_until(
            lambda: player.node.count_subscribers(topic) > subscribers,
            TIMEOUT_S,
            "ros2 topic echo to subscribe",
        )
        # The probe sees the echo's subscription before the node's writer may have matched it,
        # so a MatchArray can miss it: publish frames until the echo has one (bounded).
        deadline = time.monotonic() + TIMEOUT_S
        index = 2
        while echo.poll() is None:
            assert time.monotonic() < deadline, "ros2 topic echo received no MatchArray"
            images, infos = sequence_frame_messages(SEQUENCE, "sequential", index)
            record = player.publish_frame(index, images, infos)
            player.wait_until(
                lambda record=record: record.matches or echo.poll() is not None,
                TIMEOUT_S,
                "a MatchArray",
            )
            index += 1
        assert echo.wait(timeout=TIMEOUT_S) == 0
    finally:
        stop(echo)
    output = (tmp_path / "echo.log").read_text()
    assert "mode: sequential" in output and "keypoints0:" in output, output


def param(verb: str, *args: str) -> str:
    """`ros2 param <verb> <node> <args>`, discovering the graph itself (no daemon).

    Each call spins 2 s for discovery; on a loaded machine that may not find the node yet, so a
    "Node not found" is tried again until TIMEOUT_S.
    """
    command = ["ros2", "param", verb, "--no-daemon", "--spin-time", "2", NODE, *args]
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        if "Node not found" not in done.stderr or time.monotonic() > deadline:
            break
    assert done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}\n{done.stderr}"
    return done.stdout + done.stderr


def test_param_get_and_set_validates(player: FramePlayer) -> None:
    assert "Double value is: 0.0" in param("get", "match_threshold")
    assert f"String value is: {PARITY_WEIGHTS}" in param("get", "weights_path")
    assert "Set parameter successful" in param("set", "ransac_threshold_px", "2.0")
    out_of_range = param("set", "ransac_threshold_px", "50.0")
    assert "Setting parameter failed" in out_of_range, out_of_range
    read_only = param("set", "match_threshold", "0.5")
    assert "Setting parameter failed" in read_only and "read-only" in read_only, read_only


def test_no_ros2_daemon_was_started() -> None:
    assert "The daemon is not running" in ros2("daemon", "status")


def test_launched_node_threads_sleep_while_waiting(launched: Launch, player: FramePlayer) -> None:
    """The default omp_wait_policy: spinning OpenMP threads collapse on a shared CPU."""
    pids = child_pids(launched.log())
    assert len(pids) == 1, launched.log()
    environment = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    assert b"OMP_WAIT_POLICY=PASSIVE" in environment


def test_ctrl_c_ends_launch_and_node_cleanly(launched: Launch, player: FramePlayer) -> None:
    player.wait_for_running(TIMEOUT_S)
    pids = child_pids(launched.log())
    assert len(pids) == 1, launched.log()
    assert stop(launched.process) == 0, launched.log()
    log = launched.log()
    assert "sequential mode on cpu" in log and "process has finished cleanly" in log, log
    for problem in ("Traceback", "process has died", "Error"):
        assert problem not in log, log
    assert_exited(pids[0])


def test_ros2_run_starts_the_installed_node(probe_node: Node, tmp_path: Path) -> None:
    if not PARITY_WEIGHTS.is_file():
        pytest.skip(f"test weights not found at {PARITY_WEIGHTS}")
    params = write_params_file(tmp_path / "params.yaml", LAUNCH_PARAMS)
    command = [
        "ros2",
        "run",
        "edm_ros",
        "matcher_node",
        "--ros-args",
        "--params-file",
        str(CONFIG_DIR / "matcher.yaml"),
        "--params-file",
        str(CONFIG_DIR / "sequential.yaml"),
        "--params-file",
        str(params),
        "-p",
        f"weights_path:={PARITY_WEIGHTS}",
        "-p",
        "device:=cpu",
        "-r",
        "__ns:=/run",
    ]
    # its own process group: ros2 run forwards no signal, a terminal's Ctrl-C reaches the group
    run = start_installed(command, tmp_path / "run.log", new_session=True)
    try:
        player = remapped_player(
            probe_node,
            "sequential",
            "/run/edm",
            {"image": "/run/image", "camera_info": "/run/camera_info"},
        )
        player.wait_for_running(TIMEOUT_S)  # Ctrl-C while it starts: test_matcher_node.py
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=TIMEOUT_S) == 0
    finally:
        stop(run)
    log = (tmp_path / "run.log").read_text()
    assert "sequential mode on cpu" in log and "Traceback" not in log, log

"""edm_ros.ros.processes: params files, the ROS environment and stopping a child by its PID."""

from __future__ import annotations

import signal
from pathlib import Path

import yaml

from edm_ros.ros.processes import (
    ros_environment,
    start_logged,
    stop,
    weights_parameter,
    write_params_file,
)


def test_params_file_is_ros_yaml_for_any_node(tmp_path: Path) -> None:
    params = {"device": "cpu", "input_width": 160, "match_threshold": 0.0, "mounting": [0.0, 1.0]}
    path = write_params_file(tmp_path / "params.yaml", params)
    assert yaml.safe_load(path.read_text()) == {"/**": {"ros__parameters": params}}


def test_environment_keeps_dds_on_this_machine() -> None:
    env = ros_environment()
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["ROS_LOCALHOST_ONLY"] == "1"
    assert env["ROS_DOMAIN_ID"].isdigit()


def test_weights_parameter_keeps_the_special_values(tmp_path: Path) -> None:
    assert weights_parameter(None) == "" and weights_parameter("random") == "random"
    assert weights_parameter(str(tmp_path / "w.ckpt")) == str((tmp_path / "w.ckpt").resolve())


def test_stop_ends_a_child_with_sigint(tmp_path: Path) -> None:
    child = start_logged(["-c", "import signal; signal.pause()"], tmp_path / "child.log")
    assert stop(child, timeout_s=20.0) == -signal.SIGINT

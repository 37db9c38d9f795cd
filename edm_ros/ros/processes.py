"""ROS processes started by the demo, the node benchmark and the tests: their environment,
params files, SIGINT handling and how they are stopped. No rclpy here: the parent only spawns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edm_ros.model.checkpoint import RANDOM_WEIGHTS

# A background job of a non-interactive shell inherits SIGINT ignored, and stop() relies on it:
# restore the default action, then exec the real command in the same process (same PID).
_SIGINT_WRAPPER = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def ros_environment() -> dict[str, str]:
    """This environment, with DDS kept on this machine and a domain of this run's own."""
    return {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # Iron and later
        "ROS_LOCALHOST_ONLY": "1",  # Humble
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", str(100 + os.getpid() % 100)),
        "ROS_PYTHON_CHECK_FIELDS": "1",  # Jazzy/Kilted check message fields as Humble always does
    }


def weights_parameter(weights: str | None) -> str:
    """``weights_path`` for a ``--weights`` option: "" (the package's weights), random, a path."""
    if weights is None or weights == RANDOM_WEIGHTS:
        return weights or ""
    return str(Path(weights).resolve())


def write_params_file(path: Path, params: Mapping[str, object]) -> Path:
    """A ROS 2 params file for any node name (JSON scalars and lists are valid YAML)."""
    lines = ["/**:", "  ros__parameters:"]
    lines += [f"    {name}: {json.dumps(value)}" for name, value in params.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def python_command(arguments: list[str]) -> list[str]:
    """This interpreter running ``arguments`` (a script or ``-m module``, then its arguments)
    with SIGINT's default action restored first."""
    return [sys.executable, "-c", _SIGINT_WRAPPER, *arguments]


def start_logged(
    arguments: list[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    new_session: bool = False,
) -> subprocess.Popen:
    """Start :func:`python_command` of ``arguments``, its output written to ``log_path``.

    Args:
        arguments: A Python script or ``-m module``, then its arguments.
        log_path: Receives stdout and stderr.
        env: The child's environment; None = this one.
        new_session: Start it in a process group of its own.
    """
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            python_command(arguments),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,
        )


def start_matcher_node(
    params_file: Path, log_path: Path, env: Mapping[str, str]
) -> subprocess.Popen:
    """The matcher node (this package's module) in a process of its own, with ``params_file``."""
    arguments = ["-m", "edm_ros.ros.matcher_node", "--ros-args", "--params-file", str(params_file)]
    return start_logged(arguments, log_path, env)


def stop(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """SIGINT (a clean ROS shutdown), then SIGKILL of this PID if it hangs; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode

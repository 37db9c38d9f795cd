"""Package hygiene: what `import edm_ros` loads and changes, lint and format."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from test.conftest import PROJECT_ROOT

HEAVY_OPTIONAL = (
    "rclpy",
    "onnxruntime",
    "onnx",
    "tensorrt",
    "matplotlib",
    "tqdm",
    "poselib",
    "rosbags",
)

PROBE = """
import json, sys, cv2, numpy, torch
baseline = set(sys.modules)
before = (torch.get_float32_matmul_precision(), torch.get_num_threads(),
          torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
import edm_ros
after = (torch.get_float32_matmul_precision(), torch.get_num_threads(),
         torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
added = sorted(set(sys.modules) - baseline)
print(json.dumps({"modules": added, "before": before, "after": after}))
"""


def test_import_loads_no_optional_framework_and_changes_no_torch_flag():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd="/"
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = [name for name in probe["modules"] if name.split(".")[0] in HEAVY_OPTIONAL]
    assert loaded == [], f"import edm_ros imported {loaded}"
    assert probe["before"] == probe["after"]


def _dev_tool(name: str) -> str:
    """A development tool on PATH or in the dev venv; skips where neither has it (a ROS
    workspace's `colcon test`)."""
    path = shutil.which(name) or shutil.which(name, path=str(PROJECT_ROOT / ".venv" / "bin"))
    if path is None:
        pytest.skip(f"{name} is not installed (`make venv` installs it)")
    return path


@pytest.mark.parametrize(
    "command",
    [["check", "edm_ros", "test"], ["format", "--check", "edm_ros", "test"]],
    ids=["lint", "format"],
)
def test_ruff(command):
    result = subprocess.run(
        [_dev_tool("ruff"), *command], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = subprocess.run(
        [_dev_tool("mypy"), "--cache-dir", "/tmp/edm_ros_mypy_cache"],  # settings: pyproject.toml
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Top-level modules from pip (rosdep keys or pip, in package.xml's comments), not ROS packages.
PYTHON_DEPENDENCIES = {
    "torch",
    "numpy",
    "cv2",
    "yaml",
    "psutil",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "tensorrt",
    "matplotlib",
    "tqdm",
    "poselib",
    "rosbags",
    "h5py",
    "pytest",
}


def _imported_modules(path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_package_xml_declares_every_ros_package_the_code_imports():
    sources = [*(PROJECT_ROOT / "edm_ros").rglob("*.py"), *(PROJECT_ROOT / "launch").glob("*.py")]
    imported = set().union(*(_imported_modules(path) for path in sources))
    ros_packages = imported - set(sys.stdlib_module_names) - PYTHON_DEPENDENCIES - {"edm_ros"}
    xml = ET.parse(PROJECT_ROOT / "package.xml").getroot()
    declared = {element.text for element in xml if element.tag.endswith("depend")}
    assert ros_packages and ros_packages <= declared, sorted(ros_packages - declared)

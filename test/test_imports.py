"""The package's import graph: torch only where the network runs, rclpy only in ros/, no cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from test.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "edm_ros"

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def _modules_loaded_by(module: str) -> list[str]:
    """Names in sys.modules after importing ``module`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert out.returncode == 0, f"import {module} failed:\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "edm_ros",
        "edm_ros.msg",
        "edm_ros.results",
        "edm_ros.geometry",
        "edm_ros.pipeline",
    ],
)
def test_import_loads_neither_torch_nor_backends(module):
    """ROS tools (topic echo, rqt) and VO nodes read results without waiting for torch."""
    heavy = [
        name
        for name in _modules_loaded_by(module)
        if name.split(".")[0] == "torch" or name.startswith("edm_ros.backends")
    ]
    assert heavy == [], f"import {module} loaded {heavy[:5]}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> every module it imports (top-level and inside functions), by absolute name."""
    sources = {
        _module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "msg"  # generated messages, when built in place
    }
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    imported.add(submodule if submodule in sources else node.module)
        graph[name] = imported - {name}
    return graph


def test_only_the_ros_layer_imports_rclpy():
    outside = sorted(
        name
        for name, imported in _import_graph().items()
        if not name.startswith("edm_ros.ros")
        and any(module.split(".")[0] == "rclpy" for module in imported)
    )
    assert outside == [], f"rclpy imported outside edm_ros/ros/ by {outside}"


def test_no_two_modules_import_each_other():
    graph = _import_graph()
    mutual = sorted(
        (first, second)
        for first, imported in graph.items()
        for second in imported
        if first < second and first in graph.get(second, set())
    )
    assert mutual == [], f"modules importing each other: {mutual}"


@pytest.mark.parametrize("layer", ["edm_ros.geometry", "edm_ros.data"])
def test_geometry_and_data_import_nothing_else_of_the_package(layer):
    """The lowest layers: numpy and OpenCV code that everything else may build on."""
    allowed = (layer, "edm_ros.errors")
    reaching_out = sorted(
        (name, module)
        for name, imported in _import_graph().items()
        if name.startswith(layer)
        for module in imported
        if module.startswith("edm_ros") and not module.startswith(allowed)
    )
    assert reaching_out == [], f"{layer} imports other parts of edm_ros: {reaching_out}"

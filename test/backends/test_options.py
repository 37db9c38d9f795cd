"""Backend options, the default cache location and the 'auto' choice."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edm_ros.backends import BACKENDS, BackendOptions, choose_auto_backend, default_cache_dir
from edm_ros.backends.options import CACHE_DIR_ENV, parse_device
from edm_ros.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8"}, "precision must be one of fp32, fp16"),
        ({"onnx_provider": "coreml"}, "onnx_provider must be one of auto, cpu, cuda, tensorrt"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"num_threads": -1}, "num_threads must be >= 0"),
    ],
)
def test_invalid_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BackendOptions(**kwargs)


def test_default_cache_is_per_user_never_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "edm_ros"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert BackendOptions().resolved_cache_dir() == tmp_path / "mine"
    assert BackendOptions(cache_dir=Path("~/x")).resolved_cache_dir() == Path.home() / "x"


@pytest.mark.parametrize(
    ("device", "parsed"), [("cpu", ("cpu", 0)), ("cuda", ("cuda", 0)), ("cuda:2", ("cuda", 2))]
)
def test_device_strings(device, parsed):
    assert parse_device(device) == parsed


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", ""])
def test_bad_device_string_is_a_config_error(device):
    with pytest.raises(ConfigError, match="device must be"):
        parse_device(device)


def test_auto_is_a_listed_choice_and_picks_torch_without_a_fixed_size():
    assert set(BACKENDS) == {"torch", "onnxruntime", "tensorrt", "auto"}
    assert choose_auto_backend("cpu", None) == "torch"
    assert choose_auto_backend("cuda", None) == "torch"


def test_auto_picks_the_installed_runtime_for_the_device():
    installed = {
        p
        for p in ("onnxruntime", "onnx", "onnxscript", "tensorrt")
        if importlib.util.find_spec(p) is not None
    }
    on_cpu = "onnxruntime" if {"onnxruntime", "onnx", "onnxscript"} <= installed else "torch"
    assert choose_auto_backend("cpu", (640, 480)) == on_cpu
    on_cuda = "tensorrt" if {"tensorrt", "onnx"} <= installed else "torch"
    assert choose_auto_backend("cuda", (640, 480)) == on_cuda


def test_auto_keeps_torch_on_the_cpu_where_a_graph_would_hold_a_huge_similarity_matrix():
    """1152x1152: 20736^2 float32 = 1.7 GB per copy; torch computes it in chunks."""
    assert choose_auto_backend("cpu", (1152, 1152)) == "torch"


def test_importing_the_backends_loads_no_optional_runtime():
    probe = (
        "import sys; import edm_ros.backends, edm_ros.backends.export, "
        "edm_ros.backends.onnx_runtime, edm_ros.backends.tensorrt_engine; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'onnx', 'onnxruntime', 'onnxscript', 'tensorrt'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"

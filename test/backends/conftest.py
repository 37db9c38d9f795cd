"""Shared fixtures of the backend tests: one export per parity size for the whole session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edm_ros.backends import BackendOptions
from edm_ros.backends.export import ExportMetadata, GraphSpec, export_onnx
from edm_ros.matcher import EDMMatcher
from edm_ros.model.checkpoint import load_weights
from edm_ros.model.edm import EDM


def parity_size(name: str) -> tuple[int, int]:
    """'320x256' -> (320, 256)."""
    width, height = name.split("x")
    return int(width), int(height)


def fixture_pairs(fixture: dict) -> np.ndarray:
    """The fixture's network input as backend input [1, 2, H, W] float32."""
    return torch.cat([fixture["image0"], fixture["image1"]], dim=1).numpy()


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """One cache directory for every exported graph of the session."""
    return tmp_path_factory.mktemp("edm_cache")


@pytest.fixture(scope="session")
def parity_model(parity_weights) -> EDM:
    model = EDM().eval()
    load_weights(model, parity_weights)
    return model


@pytest.fixture(scope="session")
def exported_graphs(parity_model, parity_weights, onnx_cache):
    """export_onnx of the parity model per size (opset 17, B=1), done once on first use."""
    pytest.importorskip("onnx", reason="onnx is not installed")
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript")
    graphs: dict[str, tuple[Path, ExportMetadata]] = {}

    def get(size: str) -> tuple[Path, ExportMetadata]:
        if size not in graphs:
            path = onnx_cache / f"edm_{size}.onnx"
            spec = GraphSpec.for_model(parity_model, parity_size(size))
            graphs[size] = path, export_onnx(parity_model, path, spec, None, str(parity_weights))
        return graphs[size]

    return get


@pytest.fixture(scope="session")
def onnx_matchers(parity_weights, exported_graphs, onnx_cache):
    """EDMMatcher(backend="onnxruntime") per parity size, on the graphs of ``exported_graphs``."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    matchers: dict[str, EDMMatcher] = {}

    def get(size: str) -> EDMMatcher:
        if size not in matchers:
            options = BackendOptions(onnx_path=exported_graphs(size)[0], cache_dir=onnx_cache)
            matchers[size] = EDMMatcher(
                parity_weights,
                input_size=parity_size(size),
                backend="onnxruntime",
                backend_options=options,
            )
        return matchers[size]

    return get

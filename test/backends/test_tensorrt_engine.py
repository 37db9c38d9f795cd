"""Native TensorRT backend: runs where tensorrt and CUDA are; else the missing-package error."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from edm_ros.backends import BackendOptions
from edm_ros.backends.graphs import compare_candidates
from edm_ros.backends.pytorch import TorchBackend
from edm_ros.errors import BackendError
from edm_ros.matcher import EDMMatcher
from test.backends.conftest import fixture_pairs
from test.conftest import load_parity_fixture

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_tensorrt = pytest.mark.skipif(
    not (HAS_TENSORRT and torch.cuda.is_available()), reason="needs tensorrt and a CUDA GPU"
)


def test_missing_tensorrt_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendError, match=r"pip install tensorrt.*python3-libnvinfer"):
        EDMMatcher(None, device="cpu", input_size=(64, 64), backend="tensorrt")


@needs_tensorrt
def test_engine_output_equals_pytorch_and_the_engine_is_cached(
    parity_weights, parity_model, tmp_path
):
    fixture = load_parity_fixture("320x256")
    options = BackendOptions(cache_dir=tmp_path)
    matcher = EDMMatcher(
        parity_weights, "cuda", input_size=(320, 256), backend="tensorrt", backend_options=options
    )
    pairs = fixture_pairs(fixture)
    reference = TorchBackend(parity_model).run(pairs).pair(0)
    comparison = compare_candidates(reference, matcher.backend.run(pairs).pair(0))
    assert comparison.pair_overlap >= 0.99
    assert max(comparison.max_difference.values()) < 1e-3  # GPU fp32 kernels, TF32 off
    engines = sorted(tmp_path.glob("*.engine"))
    assert len(engines) == 1 and engines[0].with_name(engines[0].name + ".json").is_file()
    again = EDMMatcher(
        parity_weights, "cuda", input_size=(320, 256), backend="tensorrt", backend_options=options
    )
    np.testing.assert_array_equal(
        again.backend.run(pairs).confidence, matcher.backend.run(pairs).confidence
    )

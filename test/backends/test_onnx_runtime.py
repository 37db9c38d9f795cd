"""ONNX Runtime backend: same candidates and final matches as the PyTorch reference."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from edm_ros.backends import BackendOptions, create_backend
from edm_ros.backends.graphs import compare_candidates
from edm_ros.backends.onnx_runtime import OnnxRuntimeBackend, choose_provider, provider_list
from edm_ros.backends.pytorch import TorchBackend
from edm_ros.errors import BackendError, ConfigError, InputError
from edm_ros.matcher import EDMMatcher
from edm_ros.model.config import MatcherConfig
from test.backends.conftest import fixture_pairs, parity_size
from test.conftest import PARITY_SIZES, load_parity_fixture

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]
GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
SIZES = [pytest.param(s, marks=pytest.mark.slow) if s == "640x480" else s for s in PARITY_SIZES]


def uint8_images(fixture: dict) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's network inputs as the uint8 images they were made from."""
    return tuple(  # type: ignore[return-value]
        np.round(fixture[key][0, 0].numpy() * 255).astype(np.uint8) for key in ("image0", "image1")
    )


@pytest.mark.parametrize("size", SIZES)
def test_candidates_equal_the_pytorch_deploy_output(size, onnx_matchers, parity_model):
    fixture = load_parity_fixture(size)
    pairs = fixture_pairs(fixture)
    reference = TorchBackend(parity_model).run(pairs).pair(0)
    candidates = onnx_matchers(size).backend.run(pairs).pair(0)
    comparison = compare_candidates(reference, candidates)
    # Near-tied top-K rows may be ordered differently: compare as sets of (cell0, cell1) pairs.
    assert comparison.pair_overlap == 1.0
    for name, difference in comparison.max_difference.items():
        assert difference < 1e-4, f"{name} differs by {difference}"
    assert (np.diff(candidates.confidence) <= 0).all(), "sorted by confidence"


@pytest.mark.parametrize("size", SIZES)
def test_final_matches_equal_the_pytorch_matcher(size, onnx_matchers, parity_weights):
    fixture = load_parity_fixture(size)
    images = uint8_images(fixture)
    expected = EDMMatcher(parity_weights, input_size=parity_size(size)).match(*images)
    result = onnx_matchers(size).match(*images)
    assert len(result) == len(expected) == len(fixture["mconf"]) > 0
    order, expected_order = np.lexsort(result.keypoints0.T), np.lexsort(expected.keypoints0.T)
    for field, atol in (("keypoints0", 1e-3), ("keypoints1", 1e-3), ("confidence", 1e-5)):
        np.testing.assert_allclose(
            getattr(result, field)[order], getattr(expected, field)[expected_order], atol=atol
        )


def test_match_batch_with_a_batch_one_graph_runs_every_pair(onnx_matchers, parity_weights):
    images = uint8_images(load_parity_fixture("320x256"))
    pairs = [images, images[::-1], (images[0], images[0])]
    results = onnx_matchers("320x256").match_batch(pairs)
    expected = EDMMatcher(parity_weights, input_size=(320, 256)).match_batch(pairs)
    assert [len(r) for r in results] == [len(e) for e in expected]
    assert len(results[2]) > len(results[0]), "an image against itself matches more"


def test_backend_reports_the_graph_shapes(onnx_matchers):
    backend = onnx_matchers("320x256").backend
    assert isinstance(backend, OnnxRuntimeBackend)
    assert (backend.input_size, backend.batch_size, backend.num_candidates) == ((320, 256), 1, 448)
    assert backend.provider == "cpu" and backend.name == "onnxruntime"


def test_wrong_input_shape_is_an_input_error(onnx_matchers):
    with pytest.raises(InputError, match=r"expected pairs of shape \[N, 2, 256, 320\]"):
        onnx_matchers("320x256").backend.run(np.zeros((1, 2, 480, 640), np.float32))


def test_graph_is_exported_into_the_cache_once_and_reused(tmp_path, caplog):
    options = BackendOptions(cache_dir=tmp_path)
    first = EDMMatcher(None, input_size=(64, 64), backend="onnxruntime", backend_options=options)
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".onnx", ".json"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edm_ros.backends.engine_cache"):
        again = EDMMatcher(
            None, input_size=(64, 64), backend="onnxruntime", backend_options=options
        )
    assert "using cached ONNX graph" in caplog.text and "Building" not in caplog.text
    assert again.backend.onnx_path == first.backend.onnx_path  # type: ignore[attr-defined]
    image = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    torch_result = EDMMatcher(None, input_size=(64, 64), match_threshold=0.0).match(image, image)
    onnx_result = EDMMatcher(
        None,
        input_size=(64, 64),
        match_threshold=0.0,
        backend="onnxruntime",
        backend_options=options,
    ).match(image, image)
    assert len(onnx_result) == len(torch_result)


def test_given_graph_for_other_settings_is_refused(exported_graphs, parity_weights, tmp_path):
    path, _ = exported_graphs("320x256")
    options = BackendOptions(onnx_path=path, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"K 448 != 256 \(topk_ratio\)"):
        EDMMatcher(
            parity_weights,
            input_size=(320, 256),
            topk_ratio=0.2,
            backend="onnxruntime",
            backend_options=options,
        )
    with pytest.raises(ConfigError, match="weights differ"):
        EDMMatcher(None, input_size=(320, 256), backend="onnxruntime", backend_options=options)
    assert list(tmp_path.iterdir()) == [], "nothing exported"


def test_a_graph_that_is_not_an_edm_export_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 64, 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 64, 64])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(BackendError, match="not an edm-export graph"):
        OnnxRuntimeBackend(path)


def test_fixed_input_size_is_required():
    with pytest.raises(ConfigError, match="need a fixed input size"):
        EDMMatcher(None, input_size=None, backend="onnxruntime")


def test_missing_onnxruntime_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        EDMMatcher(None, input_size=(64, 64), backend="onnxruntime")


@pytest.mark.parametrize(
    ("available", "device", "provider", "chosen"),
    [
        (CPU_ONLY, "cpu", "auto", "cpu"),
        (GPU, "cuda", "auto", "tensorrt"),
        (GPU[1:], "cuda:1", "auto", "cuda"),
        (GPU, "cuda", "cuda", "cuda"),
        (GPU, "cpu", "cpu", "cpu"),
    ],
)
def test_provider_choice(available, device, provider, chosen):
    assert choose_provider(available, device, provider) == chosen


@pytest.mark.parametrize(
    ("available", "device", "provider", "error", "message"),
    [
        (CPU_ONLY, "cuda", "auto", BackendError, "install `onnxruntime-gpu`"),
        (CPU_ONLY, "cuda", "tensorrt", BackendError, "does not offer TensorrtExecutionProvider"),
        (GPU, "cuda", "cpu", ConfigError, "does not run on device 'cuda'"),
        (GPU, "cpu", "cuda", ConfigError, "does not run on device 'cpu'"),
    ],
)
def test_unavailable_provider_is_an_error_never_a_fallback(
    available, device, provider, error, message
):
    with pytest.raises(error, match=message):
        choose_provider(available, device, provider)


def test_tensorrt_provider_options_carry_device_precision_and_cache(tmp_path):
    providers = provider_list("tensorrt", "cuda:1", "fp16", tmp_path)
    assert [name for name, _ in providers] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    options = providers[0][1]
    assert options["device_id"] == 1 and options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_path"].startswith(str(tmp_path))
    with pytest.raises(ConfigError, match="fp16 needs TensorRT"):
        provider_list("cpu", "cpu", "fp16", tmp_path)


def test_unknown_backend_and_device_are_config_errors():
    config = MatcherConfig()
    with pytest.raises(ConfigError, match="unknown backend 'tflite'"):
        create_backend("tflite", None, "cpu", config)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        create_backend("onnxruntime", None, "gpu0", config)  # type: ignore[arg-type]


def test_given_graph_without_sidecar_is_checked_by_its_shapes(
    exported_graphs, parity_weights, tmp_path, caplog
):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(exported_graphs("320x256")[0].read_bytes())
    options = BackendOptions(onnx_path=bare, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="takes 320x256 with K=448; this matcher needs 640x480"):
        EDMMatcher(
            parity_weights, input_size=(640, 480), backend="onnxruntime", backend_options=options
        )
    assert "no edm-export sidecar" in caplog.text


def test_the_shipped_weights_give_the_same_final_matches_on_onnx_runtime(tmp_path):
    images = uint8_images(load_parity_fixture("320x256"))
    options = BackendOptions(cache_dir=tmp_path)
    exported = EDMMatcher(input_size=(320, 256), backend="onnxruntime", backend_options=options)
    reference = EDMMatcher(input_size=(320, 256))
    assert not exported.random_weights and "edm_ros_v1.ckpt" in exported.weights_description
    result, expected = exported.match(*images), reference.match(*images)
    assert len(result) == len(expected) > 20
    order, expected_order = np.lexsort(result.keypoints0.T), np.lexsort(expected.keypoints0.T)
    for field, atol in (("keypoints0", 1e-3), ("keypoints1", 1e-3), ("confidence", 1e-5)):
        np.testing.assert_allclose(
            getattr(result, field)[order], getattr(expected, field)[expected_order], atol=atol
        )

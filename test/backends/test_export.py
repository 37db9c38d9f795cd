"""ONNX export: static shapes, standard TensorRT-parsable operators, the metadata sidecar."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from edm_ros.backends.engine_cache import file_sha256
from edm_ros.backends.export import (
    OUTPUT_NAMES,
    GraphSpec,
    export_graph,
    export_onnx,
    read_metadata,
    topk_ratio_for,
    weights_sha256,
)
from edm_ros.backends.graphs import compare_candidates, run_in_fixed_batches
from edm_ros.backends.onnx_opset import lower_to_opset17
from edm_ros.backends.pytorch import TorchBackend
from edm_ros.errors import BackendError, ConfigError
from edm_ros.model.config import num_candidates
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays
from test.backends.conftest import fixture_pairs
from test.conftest import load_parity_fixture

onnx = pytest.importorskip("onnx", reason="onnx is not installed")

#: Operators of TensorRT's ONNX parser (onnx-tensorrt operators.md, TensorRT 8.5-10) that an
#: exported EDM may use. Anything else (NonZero, Loop, If, custom domains) fails the test.
TENSORRT_OPERATORS = frozenset(
    {
        "Add",
        "ArgMax",
        "Cast",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "Cos",
        "CumSum",
        "Div",
        "Einsum",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "Floor",
        "Gather",
        "GatherElements",
        "Identity",
        "LayerNormalization",
        "LeakyRelu",
        "Log",
        "MatMul",
        "Mod",
        "Mul",
        "Neg",
        "Pow",
        "Reciprocal",
        "ReduceL2",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceSum",
        "Relu",
        "Reshape",
        "Resize",
        "ScatterND",
        "Shape",
        "Sigmoid",
        "Sin",
        "Slice",
        "Softmax",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Tile",
        "TopK",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)


@pytest.fixture(scope="module")
def graph_320(exported_graphs):
    path, metadata = exported_graphs("320x256")
    return path, metadata, onnx.load(str(path))


def test_exported_graph_passes_the_full_onnx_checker_at_opset_17(graph_320):
    _, _, model = graph_320
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8, "the lowest IR version for opset 17: widest runtime support"


def test_exported_graph_uses_only_operators_tensorrt_parses(graph_320):
    _, _, model = graph_320
    used = {node.op_type for node in model.graph.node}
    assert used <= TENSORRT_OPERATORS, f"not parsable by TensorRT: {used - TENSORRT_OPERATORS}"
    assert all(node.domain == "" for node in model.graph.node)
    for node in model.graph.node:
        if node.op_type == "Einsum":  # TensorRT: two inputs, no ellipsis
            equation = onnx.helper.get_attribute_value(node.attribute[0]).decode()
            assert len(node.input) == 2 and "..." not in equation


def test_every_tensor_in_the_graph_has_a_static_shape(graph_320):
    _, _, model = graph_320
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    for value in [*inferred.value_info, *inferred.output, *inferred.input]:
        dims = value.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), f"{value.name} has a dynamic shape"
    outputs = {
        o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in inferred.output
    }
    assert tuple(outputs) == OUTPUT_NAMES
    k = num_candidates((320, 256), 0.35)
    assert outputs["points0"] == (1, k, 2) and outputs["confidence"] == (1, k)
    assert [d.dim_value for d in inferred.input[0].type.tensor_type.shape.dim] == [1, 2, 256, 320]


def test_sidecar_records_shapes_thresholds_npe_hashes_and_versions(graph_320, parity_model):
    path, metadata, _ = graph_320
    assert read_metadata(path) == metadata
    assert metadata.input_shape == (1, 2, 256, 320) and metadata.input_size == (320, 256)
    assert metadata.num_candidates == 448 and metadata.batch_size == 1
    assert metadata.npe == (832, 832, 256, 320)
    assert (metadata.match_threshold, metadata.fine_threshold, metadata.border_px) == (0.2, 1e-6, 0)
    assert metadata.weights_sha256 == weights_sha256(parity_model)
    assert metadata.onnx_sha256 == file_sha256(path)
    assert metadata.opset == 17 and metadata.weights_source.endswith("edm_random_weights.ckpt")
    assert {"torch", "onnx", "onnxscript", "edm_ros_export"} <= set(metadata.versions)


def test_export_leaves_the_model_usable_in_eager_mode(parity_model, exported_graphs):
    exported_graphs("320x256")
    fixture = load_parity_fixture("320x256")
    with torch.inference_mode():
        candidates = parity_model(fixture["image0"], fixture["image1"])
    assert torch.equal(candidates.points0[0], fixture["mkpts0_c"])


def test_opset_18_graph_runs_like_pytorch():
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = EDM().eval()
    pairs = np.random.default_rng(0).random((1, 2, 64, 96), dtype=np.float32)
    proto = export_graph(model, GraphSpec.for_model(model, (96, 64), opset=18))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 18)]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    candidates = CandidateArrays(*session.run(None, {"pairs": pairs}))
    comparison = compare_candidates(TorchBackend(model).run(pairs).pair(0), candidates.pair(0))
    assert comparison.pair_overlap == 1.0
    assert max(comparison.max_difference.values()) < 1e-4


def test_lowering_refuses_an_operator_it_does_not_know():
    helper = onnx.helper
    node = helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], name="pad_with_axes")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])],
        [
            onnx.numpy_helper.from_array(np.array([1, 1], np.int64), "pads"),
            onnx.numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(BackendError, match="cannot write Pad at opset 17; export with opset 18"):
        lower_to_opset17(model)


@pytest.mark.parametrize(
    ("spec_args", "message"),
    [
        (((330, 256), 1, 100), "multiple of 32"),
        (((320, 256), 0, 100), "batch size must be >= 1"),
        (((320, 256), 1, 1281), r"K must be in \[1, 1280\]"),
        (((320, 256), 1, 100, 16), "opset 16 is not supported"),
    ],
)
def test_invalid_graph_spec_says_what_is_wrong(spec_args, message):
    with pytest.raises(ConfigError, match=message):
        GraphSpec(*spec_args)


def test_export_refuses_a_model_whose_k_differs_from_the_spec(tmp_path):
    model = EDM(topk_ratio=0.35)
    with pytest.raises(ConfigError, match="gives K=448, the spec asks for K=100"):
        export_onnx(model, tmp_path / "edm.onnx", GraphSpec((320, 256), 1, 100))
    assert not (tmp_path / "edm.onnx").exists()


def test_missing_exporter_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript.optimizer", None)
    model = EDM()
    with pytest.raises(BackendError, match="pip install onnx onnxscript"):
        export_onnx(model, tmp_path / "edm.onnx", GraphSpec.for_model(model, (64, 64)))


@pytest.mark.parametrize("size", [(320, 256), (640, 480), (96, 64)])
def test_topk_ratio_for_gives_exactly_the_asked_k(size):
    cells = (size[0] // 8) * (size[1] // 8)
    for k in range(1, cells + 1):
        assert num_candidates(size, topk_ratio_for(k, size)) == k


def test_fixed_batch_graph_runs_any_number_of_pairs_with_padding():
    def run_two(batch: np.ndarray) -> list[np.ndarray]:  # a "graph" with B = 2
        assert batch.shape[0] == 2
        means = batch.mean(axis=(1, 2, 3))
        return [np.repeat(means[:, None, None], 3, axis=1)[..., [0, 0]]] * 2 + [
            np.repeat(means[:, None], 3, axis=1)
        ] * 5

    pairs = np.stack([np.full((2, 4, 4), value, np.float32) for value in (1.0, 2.0, 3.0)])
    result = run_in_fixed_batches(pairs, 2, run_two)
    assert result.confidence.shape == (3, 3)
    np.testing.assert_array_equal(result.confidence[:, 0], [1.0, 2.0, 3.0])


def test_comparison_matches_rows_by_cells_not_by_position(parity_model):
    fixture = load_parity_fixture("320x256")
    candidates = TorchBackend(parity_model).run(fixture_pairs(fixture)).pair(0)
    shuffled = CandidateArrays(*(field[::-1] for field in candidates))
    same = compare_candidates(candidates, shuffled)
    assert same.pair_overlap == 1.0 and max(same.max_difference.values()) == 0.0
    shifted = CandidateArrays(*(field if i else field + 8 for i, field in enumerate(candidates)))
    assert compare_candidates(candidates, shifted).pair_overlap < 0.1

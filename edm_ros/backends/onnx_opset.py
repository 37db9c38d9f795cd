"""Write an opset-18 ONNX graph (torch's exporter) as opset 17 for TensorRT 8.5/8.6 parsers.

Opset 18 changed Reduce* (axes became an input), Split (``num_outputs``), Resize (new attributes)
and Scatter* (min/max reductions); every other operator EDM uses is the same in both. Only
imported while exporting: it needs the onnx package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edm_ros.errors import BackendError


def lower_to_opset17(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite an opset-18 graph as opset 17 (same computation).

    An operator that changed between the two in a way not handled here is refused, not guessed.

    Raises:
        BackendError: naming the operator that has no opset-17 form here.
    """
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {v.name: static_shape(v) for v in [*inferred.graph.value_info, *inferred.graph.input]}
    constants = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    lowered = onnx.ModelProto()
    lowered.CopyFrom(proto)
    new_initializers = []
    for node in lowered.graph.node:
        if node.domain or _same_in_17(node.op_type):
            continue
        lowering = _LOWERINGS.get(node.op_type)
        if lowering is None:
            raise BackendError(f"cannot write {node.op_type} at opset 17; export with opset 18")
        new_initializers += lowering(node, constants, shapes)
    lowered.graph.initializer.extend(new_initializers)
    used = {name for node in lowered.graph.node for name in node.input}
    unused = [t for t in lowered.graph.initializer if t.name not in used]  # old Reduce axes
    for tensor in unused:
        lowered.graph.initializer.remove(tensor)
    del lowered.opset_import[:]
    lowered.opset_import.append(helper.make_opsetid("", 17))
    return lowered


def _same_in_17(op_type: str) -> bool:
    defs = onnx.defs
    return defs.get_schema(op_type, 17).since_version == defs.get_schema(op_type, 18).since_version


def _lower_reduce(node: Any, constants: dict[str, np.ndarray], _: Any) -> list[Any]:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axes_input = node.input[1] if len(node.input) > 1 else ""
    if axes_input and axes_input not in constants:
        raise BackendError(f"{node.name}: {node.op_type} axes are not a constant")
    if not axes_input and attributes.get("noop_with_empty_axes", 0):
        raise BackendError(f"{node.name}: {node.op_type} with noop_with_empty_axes has no opset 17")
    _keep_attributes(node, {"keepdims"})
    if axes_input:
        node.attribute.append(helper.make_attribute("axes", constants[axes_input].tolist()))
    del node.input[1:]
    return []


def _lower_split(node: Any, constants: dict[str, np.ndarray], shapes: dict) -> list[Any]:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    _keep_attributes(node, {"axis"})
    if len(node.input) > 1 and node.input[1]:
        return []
    shape = shapes.get(node.input[0])
    if shape is None:
        raise BackendError(f"{node.name}: Split of a tensor without a static shape")
    size, parts = shape[attributes.get("axis", 0)], len(node.output)
    step = -(-size // parts)  # opset 18: equal parts, the last one smaller
    sizes = np.array([min(step, size - i * step) for i in range(parts)], np.int64)
    name = f"{node.name}_split_sizes"
    node.input[1:] = [name]
    return [numpy_helper.from_array(sizes, name)]


def _lower_resize(node: Any, _: Any, __: Any) -> list[Any]:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    defaults = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
    if "axes" in attributes or any(attributes.get(k, v) != v for k, v in defaults.items()):
        raise BackendError(f"{node.name}: Resize uses opset-18 attributes {attributes}")
    _keep_attributes(node, set(attributes) - {"antialias", "keep_aspect_ratio_policy"})
    return []


def _lower_scatter(node: Any, _: Any, __: Any) -> list[Any]:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("reduction", b"none") not in (b"none", b"add", b"mul"):
        raise BackendError(f"{node.name}: {node.op_type} reduction {attributes} has no opset 17")
    return []


_REDUCE_OPS = (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
)
_LOWERINGS: dict[str, Callable[[Any, dict[str, np.ndarray], dict], list[Any]]] = {
    **dict.fromkeys(_REDUCE_OPS, _lower_reduce),
    "Split": _lower_split,
    "Resize": _lower_resize,
    "ScatterND": _lower_scatter,
    "ScatterElements": _lower_scatter,
}


def _keep_attributes(node: Any, names: set[str]) -> None:
    kept = [a for a in node.attribute if a.name in names]
    del node.attribute[:]
    node.attribute.extend(kept)


def static_shape(value_info: Any) -> tuple[int, ...] | None:
    """The static shape of an ONNX ValueInfo, or None if a dimension is unknown."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
    return None if any(d < 0 for d in dims) else dims

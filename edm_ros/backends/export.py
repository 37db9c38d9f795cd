"""Export EDM to ONNX with static shapes (the deploy graph).

The graph takes one input, ``pairs`` [B, 2, H, W] float32 in [0, 1] (image0 and image1 on the
channel axis, as the official deploy export), and returns the fields of
:class:`edm_ros.model.edm.Candidates` under their own names, batch-major ([B, K, ...]): row ``b``
of every output belongs to pair ``b``. B, H, W and K are fixed at export; nothing in the graph
depends on the data's values for its shapes. Thresholds, the border and the choice of refinement
direction stay outside (``edm_ros.model.selection``), as for every backend.

torch's ONNX exporter (torch.export + onnxscript) writes opset 18; for TensorRT 8.5/8.6 (JetPack
5 and 6.0), whose parsers stop at opset 17, the graph is lowered to opset 17 here (four operators
changed between the two; see ``onnx_opset.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from edm_ros.backends.engine_cache import (
    file_sha256,
    read_sidecar,
    sidecar_path,
    write_atomically,
)
from edm_ros.errors import BackendError, ConfigError
from edm_ros.model.config import COARSE_STRIDE, MatcherConfig, check_network_size, num_candidates
from edm_ros.model.edm import EDM, Candidates

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

INPUT_NAME = "pairs"
OUTPUT_NAMES: tuple[str, ...] = Candidates._fields
#: Opsets this module writes: 17 (TensorRT >= 8.5) and 18 (the exporter's own).
SUPPORTED_OPSETS = (17, 18)
DEFAULT_OPSET = 17
_EXPORTER_OPSET = 18
#: Largest K that TensorRT's TopK layer accepts (640x480 at ratio 0.35 needs 1680).
TENSORRT_MAX_TOPK = 3840
#: Version of the file layout below; bump when the graph interface changes.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GraphSpec:
    """The static shapes of one exported graph."""

    input_size: tuple[int, int]  # (W, H) network input, pixels
    batch_size: int  # B
    num_candidates: int  # K
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        check_network_size(self.input_size)
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        cells = (self.input_size[0] // COARSE_STRIDE) * (self.input_size[1] // COARSE_STRIDE)
        if not 1 <= self.num_candidates <= cells:
            raise ConfigError(
                f"K must be in [1, {cells}] for a {self.input_size[0]}x{self.input_size[1]} "
                f"input ({cells} coarse cells), got {self.num_candidates}"
            )
        if self.opset not in SUPPORTED_OPSETS:
            raise ConfigError(
                f"opset {self.opset} is not supported; choose one of {SUPPORTED_OPSETS} "
                "(17 for TensorRT 8.5/8.6, 18 for TensorRT >= 10)"
            )

    @classmethod
    def for_model(
        cls,
        model: EDM,
        input_size: tuple[int, int],
        batch_size: int = 1,
        opset: int = DEFAULT_OPSET,
    ) -> GraphSpec:
        """The spec of ``model`` exported at ``input_size``: K from the model's topk_ratio."""
        return cls(input_size, batch_size, num_candidates(input_size, model.topk_ratio), opset)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(B, 2, H, W)."""
        return (self.batch_size, 2, self.input_size[1], self.input_size[0])

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every output."""
        points = (self.batch_size, self.num_candidates, 2)
        scores = (self.batch_size, self.num_candidates)
        return {
            name: points if name.startswith(("points", "offsets")) else scores
            for name in OUTPUT_NAMES
        }


@dataclass(frozen=True)
class ExportMetadata:
    """The sidecar written beside an exported graph (``<file>.onnx.json``)."""

    input_name: str
    input_shape: tuple[int, ...]  # (B, 2, H, W) float32 in [0, 1]
    output_shapes: dict[str, tuple[int, ...]]
    input_size: tuple[int, int]  # (W, H)
    batch_size: int
    num_candidates: int  # K
    topk_ratio: float
    npe: tuple[int, int, int, int]  # official NPE: (train H, train W, input H, input W)
    temperature: float
    # Post-processing the graph does NOT apply; recommended values for consumers (selection.py).
    match_threshold: float
    fine_threshold: float
    border_px: int
    weights_sha256: str
    weights_source: str
    onnx_sha256: str
    opset: int
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


class DeployGraph(nn.Module):
    """EDM behind the deploy interface: ``pairs`` [B, 2, H, W] in, the Candidates fields out."""

    def __init__(self, model: EDM) -> None:
        super().__init__()
        self.model = model

    def forward(self, pairs: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model(pairs[:, 0:1], pairs[:, 1:2]))


def weights_sha256(model: EDM) -> str:
    """sha256 over the model's state_dict (names, dtypes, shapes, bytes), in key order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def topk_ratio_for(k: int, input_size: tuple[int, int]) -> float:
    """A topk_ratio for which ``num_candidates(input_size, ratio) == k`` exactly."""
    cells = (input_size[0] // COARSE_STRIDE) * (input_size[1] // COARSE_STRIDE)
    if not 1 <= k <= cells:
        raise ConfigError(f"K must be in [1, {cells}] for input {input_size}, got {k}")
    return min(1.0, (k + 0.5) / cells)  # the half keeps int(cells * ratio) off a rounding edge


def export_onnx(
    model: EDM,
    path: str | Path,
    spec: GraphSpec,
    config: MatcherConfig | None = None,
    weights_source: str = "",
) -> ExportMetadata:
    """Export ``model`` to ``path`` with the static shapes of ``spec`` and write the sidecar.

    Args:
        model: the network; its topk_ratio must give ``spec.num_candidates``.
        path: the .onnx file to write (atomically: a failed export leaves no file).
        spec: input size, batch size, K, opset.
        config: thresholds and border recorded in the sidecar for consumers (not in the graph).
        weights_source: where the weights came from (checkpoint path), for the sidecar.

    Returns:
        The metadata also written to ``<path>.json``.

    Raises:
        ConfigError: the model's K differs from the spec's.
        BackendError: onnx or onnxscript is missing, or the graph fails its checks.
    """
    model_k = num_candidates(spec.input_size, model.topk_ratio)
    if model_k != spec.num_candidates:
        raise ConfigError(
            f"the model's topk_ratio {model.topk_ratio} gives K={model_k}, the spec asks for "
            f"K={spec.num_candidates}; build the model with topk_ratio_for(K, input_size)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    proto = export_graph(model, spec)
    onnx = import_optional("onnx", "onnx")
    write_atomically(path, lambda tmp: onnx.save_model(proto, str(tmp)))
    metadata = _metadata(model, spec, config or MatcherConfig(), weights_source, path)
    sidecar = json.dumps(dataclasses.asdict(metadata), indent=2)
    write_atomically(sidecar_path(path), lambda tmp: tmp.write_text(sidecar))
    return metadata


def export_graph(model: EDM, spec: GraphSpec) -> onnx.ModelProto:
    """Trace ``model`` to a checked, static-shape ONNX graph (in memory)."""
    onnx = import_optional("onnx", "onnx")
    optimizer = import_optional("onnxscript.optimizer", "onnxscript")
    if spec.num_candidates > TENSORRT_MAX_TOPK:
        logger.warning(
            "K=%d: TensorRT's TopK layer accepts K <= %d; this graph runs on ONNX Runtime only",
            spec.num_candidates,
            TENSORRT_MAX_TOPK,
        )
    example = torch.zeros(spec.input_shape, device=next(model.parameters()).device)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export internals
            program = torch.onnx.export(
                DeployGraph(model).eval(),
                (example,),
                dynamo=True,
                optimize=False,
                opset_version=_EXPORTER_OPSET,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                verbose=False,
            )
    except Exception as err:  # the exporter raises many private types; keep the cause
        raise BackendError(f"ONNX export of EDM at {spec} failed: {err}") from err
    assert program is not None
    # Fold the RoPE tables and shape arithmetic into constants (limits above the defaults:
    # the 640x480 tables hold 76,800 values).
    optimizer.optimize(program.model, input_size_limit=1 << 22, output_size_limit=1 << 24)
    proto = program.model_proto
    if spec.opset == 17:
        from edm_ros.backends.onnx_opset import lower_to_opset17

        proto = lower_to_opset17(proto)
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    check_graph(proto, spec)
    return proto


def check_graph(proto: onnx.ModelProto, spec: GraphSpec) -> None:
    """onnx.checker (full), standard operators only, and every tensor shape static.

    Raises:
        BackendError: naming the first problem found.
    """
    onnx = import_optional("onnx", "onnx")
    from edm_ros.backends.onnx_opset import static_shape

    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise BackendError(f"exported graph fails onnx.checker: {err}") from err
    custom = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node if n.domain})
    if custom:
        raise BackendError(f"exported graph uses non-standard operators {custom}")
    graph = inferred.graph
    shapes = {v.name: static_shape(v) for v in [*graph.value_info, *graph.output]}
    dynamic = [name for name, shape in shapes.items() if shape is None]
    if dynamic:
        raise BackendError(f"exported graph has tensors without a static shape: {dynamic[:5]}")
    expected = spec.output_shapes()
    actual = {out.name: shapes[out.name] for out in graph.output}
    if actual != expected or static_shape(graph.input[0]) != spec.input_shape:
        raise BackendError(
            f"exported graph has input {static_shape(graph.input[0])} and outputs {actual}; "
            f"expected {spec.input_shape} and {expected}"
        )


def _metadata(
    model: EDM, spec: GraphSpec, config: MatcherConfig, weights_source: str, path: Path
) -> ExportMetadata:
    width, height = spec.input_size
    train_height, train_width = model.config.train_size
    return ExportMetadata(
        input_name=INPUT_NAME,
        input_shape=spec.input_shape,
        output_shapes=spec.output_shapes(),
        input_size=spec.input_size,
        batch_size=spec.batch_size,
        num_candidates=spec.num_candidates,
        topk_ratio=model.topk_ratio,
        npe=(train_height, train_width, height, width),
        temperature=model.config.temperature,
        match_threshold=config.match_threshold,
        fine_threshold=config.fine_threshold,
        border_px=config.border,
        weights_sha256=weights_sha256(model),
        weights_source=weights_source,
        onnx_sha256=file_sha256(path),
        opset=spec.opset,
        versions=exporter_versions(),
    )


def exporter_versions() -> dict[str, str]:
    """Versions of what shapes the exported graph: our export code, torch, onnxscript, onnx."""
    versions = {"edm_ros_export": _code_sha256()[:16], "torch": torch.__version__}
    for package in ("onnxscript", "onnx"):
        versions[package] = getattr(import_optional(package, package), "__version__", "unknown")
    return versions


def _code_sha256() -> str:
    """Digest of the sources that define the graph (a cached export is redone after changes)."""
    from edm_ros.model import edm

    digest = hashlib.sha256()
    for source in (Path(edm.__file__), Path(__file__)):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def read_metadata(path: str | Path) -> ExportMetadata | None:
    """The sidecar of an exported graph, or None if missing or of another format."""
    data = read_sidecar(sidecar_path(Path(path)))
    if data is None or data.get("format_version") != FORMAT_VERSION:
        return None
    names = {f.name for f in dataclasses.fields(ExportMetadata)}
    fields = {k: v for k, v in data.items() if k in names}
    try:
        for name in ("input_shape", "input_size", "npe"):  # JSON has lists, the record tuples
            fields[name] = tuple(fields[name])
        fields["output_shapes"] = {k: tuple(v) for k, v in fields["output_shapes"].items()}
        return ExportMetadata(**fields)
    except (KeyError, TypeError, AttributeError):  # a sidecar of another layout
        return None


def import_optional(module: str, package: str) -> Any:
    """Import an optional module, or raise BackendError naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackendError(
            f"ONNX export needs the '{package}' package ({err}); install it with "
            "`pip install onnx onnxscript` (or `pip install edm_ros[onnx]`)"
        ) from err

"""Running exported graphs: which ONNX file a backend runs, static batches, input checks.

Shared by the ONNX Runtime and TensorRT backends (and ``edm-export --verify``); the graph itself
is made by :mod:`edm_ros.backends.export`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edm_ros.backends.engine_cache import ArtifactCache, OnnxKey, file_sha256
from edm_ros.backends.export import (
    OUTPUT_NAMES,
    GraphSpec,
    export_graph,
    exporter_versions,
    import_optional,
    read_metadata,
    weights_sha256,
)
from edm_ros.backends.options import BackendOptions
from edm_ros.errors import BackendError, ConfigError, InputError
from edm_ros.model.config import MatcherConfig, num_candidates
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays

logger = logging.getLogger(__name__)


def onnx_for_backend(model: EDM, config: MatcherConfig, options: BackendOptions) -> Path:
    """The ONNX graph a backend should run for ``model`` and ``config``.

    With ``options.onnx_path``: that file, after checking its sidecar against the model's weights,
    the input size and K. Otherwise: the graph exported from ``model`` into the cache (exported
    now if the cache holds none for these weights, shapes and exporter versions).

    Raises:
        ConfigError: no fixed input size, or a given graph that does not fit the configuration.
        BackendError: the export failed or the given file does not exist.
    """
    if config.input_size is None:
        raise ConfigError(
            "exported-graph backends need a fixed input size; set input_size=(W, H) (node "
            "parameters input_width/input_height) or use backend 'torch'"
        )
    spec = GraphSpec.for_model(model, config.input_size, options.batch_size)
    if options.onnx_path is not None:
        return _checked_onnx_file(Path(options.onnx_path), model, spec)
    key = OnnxKey(
        weights_sha256=weights_sha256(model),
        architecture=repr(model.config),
        input_shape=spec.input_shape,
        num_candidates=spec.num_candidates,
        opset=spec.opset,
        exporter=json.dumps(exporter_versions(), sort_keys=True),
    )
    cache = ArtifactCache(options.resolved_cache_dir(), ".onnx", "ONNX graph")

    def build(temporary: Path) -> dict[str, Any]:
        proto = export_graph(model, spec)
        import_optional("onnx", "onnx").save_model(proto, str(temporary))
        return {"onnx_sha256": file_sha256(temporary)}

    return cache.get_or_build(key, build, rebuild=options.rebuild)


def check_graph_fits(
    source: Path, input_size: tuple[int, int], k: int, model: EDM, config: MatcherConfig
) -> None:
    """Raise ConfigError unless a loaded graph's (W, H) and K are what ``config`` asks for."""
    assert config.input_size is not None  # onnx_for_backend checked it
    wanted_k = num_candidates(config.input_size, model.topk_ratio)
    if (tuple(input_size), k) != (config.input_size, wanted_k):
        raise ConfigError(
            f"{source} takes {input_size[0]}x{input_size[1]} with K={k}; this matcher needs "
            f"{config.input_size[0]}x{config.input_size[1]} with K={wanted_k}"
        )


def _checked_onnx_file(path: Path, model: EDM, spec: GraphSpec) -> Path:
    if not path.is_file():
        raise BackendError(f"{path}: no such ONNX file; create it with edm-export")
    metadata = read_metadata(path)
    if metadata is None:
        logger.warning("%s has no edm-export sidecar (.json): weights and shapes unchecked", path)
        return path
    problems = []
    if tuple(metadata.input_size) != spec.input_size:
        problems.append(f"input size {tuple(metadata.input_size)} != {spec.input_size}")
    if metadata.num_candidates != spec.num_candidates:
        problems.append(f"K {metadata.num_candidates} != {spec.num_candidates} (topk_ratio)")
    if metadata.weights_sha256 != weights_sha256(model):
        problems.append(f"weights differ (graph from {metadata.weights_source or 'unknown'})")
    if problems:
        raise ConfigError(
            f"{path} does not fit this matcher: {'; '.join(problems)}. Export it again with "
            "edm-export for these weights and settings, or change the settings."
        )
    return path


def run_in_fixed_batches(
    pairs: np.ndarray, batch_size: int, run_batch: Callable[[np.ndarray], Sequence[np.ndarray]]
) -> CandidateArrays:
    """Run a static-batch graph on any number of pairs (chunks; the last one zero-padded).

    Args:
        pairs: [N, 2, H, W] float32.
        batch_size: the graph's B.
        run_batch: runs one [B, 2, H, W] batch, returns the outputs in Candidates order.

    Returns:
        Candidates for the N pairs, [N, K, ...].
    """
    chunks = []
    for start in range(0, pairs.shape[0], batch_size):
        chunk = pairs[start : start + batch_size]
        count = chunk.shape[0]
        if count < batch_size:
            padding = np.zeros((batch_size - count, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, padding])
        chunks.append([np.asarray(out)[:count] for out in run_batch(np.ascontiguousarray(chunk))])
    return CandidateArrays(*(np.concatenate(parts) for parts in zip(*chunks)))


@dataclass(frozen=True)
class CandidateComparison:
    """How far two backends' candidates for one pair agree."""

    pair_overlap: float  # |common (cell0, cell1) pairs| / K
    max_difference: dict[str, float]  # per value field, max |a - b| over the common pairs


def compare_candidates(reference: CandidateArrays, other: CandidateArrays) -> CandidateComparison:
    """Compare one pair's candidates ([K, ...]) as sets of (cell0, cell1) pairs.

    Runtimes may order near-tied top-K rows differently (random weights make many ties), so the
    rows are matched by their coarse cells, not by position.
    """
    rows_ref = {_cells(reference, i): i for i in range(len(reference.confidence))}
    rows_other = {_cells(other, i): i for i in range(len(other.confidence))}
    common = sorted(rows_ref.keys() & rows_other.keys())
    index_ref = np.array([rows_ref[c] for c in common], dtype=np.int64)
    index_other = np.array([rows_other[c] for c in common], dtype=np.int64)
    differences = {
        name: float(
            np.abs(getattr(reference, name)[index_ref] - getattr(other, name)[index_other]).max(
                initial=0.0
            )
        )
        for name in OUTPUT_NAMES
        if not name.startswith("points")
    }
    return CandidateComparison(len(common) / max(1, len(rows_ref)), differences)


def _cells(candidates: CandidateArrays, row: int) -> tuple[float, ...]:
    return (*candidates.points0[row].tolist(), *candidates.points1[row].tolist())


def check_pairs(pairs: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Validate backend input [N, 2, H, W] against the graph's (W, H); returns float32."""
    width, height = input_size
    if (
        not isinstance(pairs, np.ndarray)
        or pairs.ndim != 4
        or pairs.shape[1:] != (2, height, width)
    ):
        shape = getattr(pairs, "shape", type(pairs).__name__)
        raise InputError(f"expected pairs of shape [N, 2, {height}, {width}], got {shape}")
    return np.ascontiguousarray(pairs, dtype=np.float32)

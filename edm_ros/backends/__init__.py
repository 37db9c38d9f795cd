"""Inference backends: one way to run the EDM network per runtime, same inputs, same outputs.

Optional runtimes (onnxruntime, tensorrt, the ONNX exporter) are imported only when their
backend is created; a missing one raises BackendError naming the package to install.
"""

from __future__ import annotations

import importlib.util
import logging

from edm_ros.backends.base import Backend, CandidateArrays
from edm_ros.backends.options import BackendOptions, default_cache_dir, parse_device
from edm_ros.errors import ConfigError
from edm_ros.model.config import MatcherConfig
from edm_ros.model.edm import EDM, coarse_matrix_fits_in_one_piece

logger = logging.getLogger(__name__)

#: Backend names accepted by ``EDMMatcher(backend=...)``. "auto" logs the one it chooses.
BACKENDS = ("torch", "onnxruntime", "tensorrt", "auto")


def create_backend(
    name: str,
    model: EDM,
    device: str,
    config: MatcherConfig,
    options: BackendOptions | None = None,
) -> Backend:
    """Build the backend ``name`` for ``model`` on ``device`` (optional packages load here).

    Args:
        name: one of :data:`BACKENDS`.
        model: the network with its weights (exported for onnxruntime / tensorrt).
        device: "cpu", "cuda" or "cuda:N".
        config: the matcher's configuration (input size and K fix the exported shapes).
        options: cache directory, precision, static batch size, ... (defaults if None).

    Raises:
        ConfigError: unknown name or device, or a configuration the backend cannot run.
        BackendError: the backend's package is missing or cannot run here.
    """
    options = options or BackendOptions()
    kind, _ = parse_device(device)
    if name == "auto":
        name = choose_auto_backend(kind, config.input_size)
        logger.info("backend 'auto' chose %r for device %r", name, device)
    if name == "torch":
        from edm_ros.backends.pytorch import TorchBackend

        return TorchBackend(
            model,
            device,
            cuda_graph=options.cuda_graph,
            compile_backbone=options.compile_backbone,
            reuse_features=options.reuse_features,
        )
    if name == "onnxruntime":
        from edm_ros.backends.onnx_runtime import create_onnxruntime_backend

        return create_onnxruntime_backend(model, device, config, options)
    if name == "tensorrt":
        from edm_ros.backends.tensorrt_engine import create_tensorrt_backend

        return create_tensorrt_backend(model, device, config, options)
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def choose_auto_backend(device_kind: str, input_size: tuple[int, int] | None) -> str:
    """The fastest backend installed for the device and the network input size (W, H).

    With a fixed input size: tensorrt on CUDA, onnxruntime on the CPU (ahead of eager torch
    there, see README "Benchmarks"), when their packages are installed. On the CPU also only
    where the coarse similarity matrix fits in one piece: an exported graph holds it whole, torch
    computes large ones in chunks (1152x1152 would need 1.7 GB per copy). Otherwise torch.
    """
    if input_size is None:
        return "torch"
    if device_kind == "cpu" and not coarse_matrix_fits_in_one_piece(input_size):
        return "torch"
    wanted = (
        ("tensorrt", "onnx") if device_kind == "cuda" else ("onnxruntime", "onnx", "onnxscript")
    )
    if all(importlib.util.find_spec(package) is not None for package in wanted):
        return wanted[0]
    return "torch"


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "CandidateArrays",
    "create_backend",
    "default_cache_dir",
]

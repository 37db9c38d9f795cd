"""Deployment choices of the backends: where exported graphs live, precision, static batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from edm_ros.errors import ConfigError

#: Arithmetic of a TensorRT engine. fp32 also turns TF32 off: matching is precision-sensitive.
Precision = Literal["fp32", "fp16"]
#: ONNX Runtime execution provider; "auto" takes the best one the installed package offers.
OnnxProvider = Literal["auto", "cpu", "cuda", "tensorrt"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
ONNX_PROVIDERS: tuple[str, ...] = get_args(OnnxProvider)
#: Environment variable that moves the default cache (read, never written).
CACHE_DIR_ENV = "EDM_ROS_CACHE_DIR"


@dataclass(frozen=True)
class BackendOptions:
    """What the exported-graph backends (onnxruntime, tensorrt) and torch on CUDA may be told.

    The defaults suit a first run: the graph is exported from the weights into the cache on first
    use and reused afterwards; a TensorRT engine is built once per GPU, TensorRT version and shape.
    """

    cache_dir: Path | None = None  # exported ONNX graphs and engines; None = default_cache_dir()
    precision: Precision = "fp32"  # tensorrt and the TensorRT execution provider; fp16 is opt-in
    batch_size: int = 1  # static batch of the exported graph (2 = stereo + temporal in one run)
    rebuild: bool = False  # export / build again even if the cached file's key matches
    onnx_path: Path | None = None  # run this edm-export graph instead of exporting the weights
    onnx_provider: OnnxProvider = "auto"  # onnxruntime execution provider
    num_threads: int = 0  # onnxruntime intra-op threads; 0 = onnxruntime's default
    cuda_graph: bool = False  # torch on CUDA: capture the forward once per fixed input shape
    compile_backbone: bool = False  # torch: torch.compile the backbone (first call compiles)
    reuse_features: bool = False  # torch: keep the last call's backbone features (see TorchBackend)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.onnx_provider not in ONNX_PROVIDERS:
            raise ConfigError(
                f"onnx_provider must be one of {', '.join(ONNX_PROVIDERS)}, "
                f"got {self.onnx_provider!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0 (0 = default), got {self.num_threads}")

    def resolved_cache_dir(self) -> Path:
        """The cache directory to use: ``cache_dir`` or the default."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def default_cache_dir() -> Path:
    """$EDM_ROS_CACHE_DIR, else $XDG_CACHE_HOME/edm_ros, else ~/.cache/edm_ros.

    Never relative to the working directory: a node started from another directory must find
    the engine it built before.
    """
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "edm_ros"


def parse_device(device: str) -> tuple[str, int]:
    """ "cpu" -> ("cpu", 0); "cuda" -> ("cuda", 0); "cuda:N" -> ("cuda", N).

    Raises:
        ConfigError: any other string.
    """
    kind, _, index = str(device).partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        return "cuda", int(index or 0)
    raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")

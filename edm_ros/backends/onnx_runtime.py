"""EDM on ONNX Runtime: the exported static-shape graph on the CPU, CUDA or TensorRT provider."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edm_ros.backends.export import INPUT_NAME, OUTPUT_NAMES
from edm_ros.backends.graphs import (
    check_graph_fits,
    check_pairs,
    onnx_for_backend,
    run_in_fixed_batches,
)
from edm_ros.backends.options import BackendOptions, OnnxProvider, Precision, parse_device
from edm_ros.errors import BackendError, ConfigError
from edm_ros.model.config import MatcherConfig
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays

logger = logging.getLogger(__name__)

#: Our provider names -> ONNX Runtime's.
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime, or raise BackendError naming the package to install."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(
            f"backend 'onnxruntime' needs the onnxruntime package ({err}); install it with "
            "`pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` (CUDA, TensorRT)"
        ) from err
    return onnxruntime


def choose_provider(available: list[str], device: str, provider: OnnxProvider) -> str:
    """Our provider name for ``device`` among the ``available`` ONNX Runtime providers.

    "auto" takes TensorRT, then CUDA on a CUDA device, and the CPU provider on "cpu". An
    explicit choice that the installed onnxruntime does not offer is an error, never a fallback.

    Raises:
        BackendError: the provider (or any CUDA provider, for "auto" on CUDA) is not available.
        ConfigError: provider and device contradict each other.
    """
    on_cuda = parse_device(device)[0] == "cuda"
    if provider == "auto":
        candidates = ("tensorrt", "cuda") if on_cuda else ("cpu",)
        for name in candidates:
            if PROVIDER_NAMES[name] in available:
                return name
        raise BackendError(
            f"onnxruntime offers {available}, none of which runs on {device!r}; install "
            "`onnxruntime-gpu` (with CUDA and cuDNN) or use device 'cpu'"
        )
    if (provider == "cpu") == on_cuda:
        raise ConfigError(f"onnx provider {provider!r} does not run on device {device!r}")
    if PROVIDER_NAMES[provider] not in available:
        raise BackendError(
            f"onnxruntime does not offer {PROVIDER_NAMES[provider]} (it has {available}); "
            "install `onnxruntime-gpu` for 'cuda' and 'tensorrt' (TensorRT libraries too)"
        )
    return provider


def provider_list(
    provider: str, device: str, precision: Precision, cache_dir: Path
) -> list[tuple[str, dict[str, Any]]]:
    """ONNX Runtime's provider list with options, most preferred first."""
    _, device_id = parse_device(device)
    if provider == "cpu":
        if precision != "fp32":
            raise ConfigError("precision fp16 needs TensorRT (backend 'tensorrt' or provider)")
        return [("CPUExecutionProvider", {})]
    cuda: tuple[str, dict[str, Any]] = ("CUDAExecutionProvider", {"device_id": device_id})
    if provider == "cuda":
        if precision != "fp32":
            raise ConfigError("precision fp16 needs TensorRT (backend 'tensorrt' or provider)")
        return [cuda]
    tensorrt_options = {
        "device_id": device_id,
        "trt_fp16_enable": precision == "fp16",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir / "onnxruntime_tensorrt"),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir / "onnxruntime_tensorrt"),
    }
    return [("TensorrtExecutionProvider", tensorrt_options), cuda]


class OnnxRuntimeBackend:
    """Runs an exported EDM graph (``edm-export``) with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        device: str = "cpu",
        provider: OnnxProvider = "auto",
        precision: Precision = "fp32",
        num_threads: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        """Args:
        onnx_path: the exported graph.
        device: "cpu", "cuda" or "cuda:N".
        provider: "auto", "cpu", "cuda" or "tensorrt" (see :func:`choose_provider`).
        precision: "fp16" only with the TensorRT provider (logged as a risk).
        num_threads: intra-op threads on the CPU; 0 = onnxruntime's default.
        cache_dir: where the TensorRT provider keeps its engines (default: beside the graph).

        Raises:
            BackendError: onnxruntime is missing, the provider is unavailable or fails to start.
        """
        ort = import_onnxruntime()
        self.onnx_path = Path(onnx_path)
        chosen = choose_provider(ort.get_available_providers(), device, provider)
        if precision == "fp16":
            logger.warning("onnxruntime: fp16 TensorRT engine; matching is precision-sensitive")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if chosen == "cpu":
            # Waiting threads yield their core: on a loaded CPU a spinning thread takes the core
            # from the one it waits for (640x480, 2 threads, busy 2-core machine: 0.87x the time).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = provider_list(chosen, device, precision, cache_dir or self.onnx_path.parent)
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise BackendError(f"onnxruntime cannot load {self.onnx_path}: {err}") from err
        if self.session.get_providers()[0] != PROVIDER_NAMES[chosen]:
            raise BackendError(
                f"onnxruntime started {self.session.get_providers()} instead of "
                f"{PROVIDER_NAMES[chosen]}; check the CUDA/TensorRT libraries it needs"
            )
        self.provider = chosen
        self.device = device
        batch, _, height, width = self.session.get_inputs()[0].shape
        self.batch_size, self.input_size = int(batch), (int(width), int(height))
        self.num_candidates = int(self.session.get_outputs()[0].shape[1])
        self._check_interface()
        logger.info("onnxruntime: %s on %s (%s)", self.onnx_path.name, device, chosen)

    def _check_interface(self) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = tuple(o.name for o in self.session.get_outputs())
        if inputs != [INPUT_NAME] or outputs != OUTPUT_NAMES:
            raise BackendError(
                f"{self.onnx_path}: inputs {inputs} and outputs {list(outputs)} are not an "
                f"edm-export graph (expected [{INPUT_NAME!r}] and {list(OUTPUT_NAMES)})"
            )

    def run(self, pairs: np.ndarray) -> CandidateArrays:
        """pairs [N, 2, H, W] float32 in [0, 1] -> candidates [N, K, ...] (any N)."""
        pairs = check_pairs(pairs, self.input_size)
        return run_in_fixed_batches(pairs, self.batch_size, self._run_batch)

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})


def create_onnxruntime_backend(
    model: EDM, device: str, config: MatcherConfig, options: BackendOptions
) -> OnnxRuntimeBackend:
    """The backend for EDMMatcher: the model's graph (exported once, cached) on ``device``."""
    ort = import_onnxruntime()  # fail before a long export if the runtime or provider is missing
    choose_provider(ort.get_available_providers(), device, options.onnx_provider)
    onnx_path = onnx_for_backend(model, config, options)
    backend = OnnxRuntimeBackend(
        onnx_path,
        device,
        options.onnx_provider,
        options.precision,
        options.num_threads,
        options.resolved_cache_dir(),
    )
    check_graph_fits(onnx_path, backend.input_size, backend.num_candidates, model, config)
    return backend

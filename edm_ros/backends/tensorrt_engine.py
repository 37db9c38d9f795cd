"""EDM as a native TensorRT engine (tensorrt Python API; buffers are torch CUDA tensors).

The engine is built from the exported ONNX graph once and kept in the engine cache
(``engine_cache.EngineKey``: ONNX hash, TensorRT version, GPU name and compute capability,
precision, shapes). fp32 is the default and also turns TF32 off; fp16 is opt-in and logged as a
risk: the paper reports matching to be precision-sensitive.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from edm_ros.backends.engine_cache import ArtifactCache, EngineKey, file_sha256
from edm_ros.backends.export import INPUT_NAME, OUTPUT_NAMES
from edm_ros.backends.graphs import (
    check_graph_fits,
    check_pairs,
    onnx_for_backend,
    run_in_fixed_batches,
)
from edm_ros.backends.options import BackendOptions, Precision
from edm_ros.backends.pytorch import CudaTransfer, resolve_device
from edm_ros.errors import BackendError, ConfigError
from edm_ros.model.config import MatcherConfig
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays

logger = logging.getLogger(__name__)

BUILD_HINT = "This can take minutes (longer on a Jetson); keep the process running"


def import_tensorrt() -> ModuleType:
    """Import tensorrt, or raise BackendError naming the package to install."""
    try:
        import tensorrt
    except ImportError as err:
        raise BackendError(
            f"backend 'tensorrt' needs the TensorRT Python package ({err}); install it with "
            "`pip install tensorrt` (x86-64, CUDA 12) or, on a Jetson, JetPack's "
            "python3-libnvinfer; or use backend 'torch' / 'onnxruntime'"
        ) from err
    return tensorrt


def engine_key(
    onnx_path: Path, precision: Precision, device: torch.device, tensorrt_version: str
) -> EngineKey:
    """The cache key of the engine for ``onnx_path`` on ``device``."""
    input_shape, num_candidates = graph_shapes(onnx_path)
    return EngineKey(
        onnx_sha256=file_sha256(onnx_path),
        tensorrt_version=tensorrt_version,
        gpu_name=torch.cuda.get_device_name(device),
        compute_capability=tuple(torch.cuda.get_device_capability(device)),  # type: ignore[arg-type]
        precision=precision,
        input_shape=input_shape,
        num_candidates=num_candidates,
    )


def graph_shapes(onnx_path: Path) -> tuple[tuple[int, int, int, int], int]:
    """(B, 2, H, W) and K of an exported graph, read from the file."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = [tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in graph.input]
    outputs = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.output}
    if len(dims) != 1 or len(dims[0]) != 4 or "confidence" not in outputs:
        raise BackendError(f"{onnx_path}: not an edm-export graph (inputs {dims})")
    return dims[0], int(outputs["confidence"][1])  # type: ignore[return-value]


def build_engine(onnx_path: Path, precision: Precision, destination: Path) -> dict[str, Any]:
    """Parse ``onnx_path``, build a serialized engine and write it to ``destination``.

    Raises:
        BackendError: the parser or the builder failed (their messages are included).
    """
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # TensorRT 8.x: explicit batch is opt-in
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:
            raise BackendError(
                f"TensorRT {trt.__version__} has no fp16 builder flag (strong typing only); "
                "use precision fp32 or convert the ONNX graph to fp16 before building"
            )
        config.set_flag(flag)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # true fp32, as the reference backend
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see log)")
    destination.write_bytes(bytes(serialized))
    return {"onnx_path": str(onnx_path)}


_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
}


class TensorRTBackend:
    """Runs a serialized TensorRT engine of the exported EDM graph on one CUDA device."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: str = "cuda") -> None:
        """Args:
        engine_path: a serialized engine built for this GPU and TensorRT version.
        device: "cuda" or "cuda:N".

        Raises:
            BackendError: tensorrt or CUDA missing, or an engine that does not load here.
        """
        trt = import_tensorrt()
        self._device = resolve_device(device)
        if self._device.type != "cuda":
            raise ConfigError(f"backend 'tensorrt' runs on a CUDA device, not {device!r}")
        self.device = str(self._device)
        self.engine_path = Path(engine_path)
        self._logger = trt.Logger(trt.Logger.WARNING)  # must outlive runtime and engine
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise BackendError(
                    f"{self.engine_path}: TensorRT {trt.__version__} cannot load this engine "
                    "(built for another GPU or TensorRT version?); rebuild it (rebuild=True / "
                    "force_engine_update)"
                )
            self._context = self._engine.create_execution_context()
            self._buffers = self._bind_buffers(trt)
        self._transfer = CudaTransfer(self._device)
        self.batch_size, _, height, width = self._buffers[INPUT_NAME].shape
        self.input_size = (int(width), int(height))
        self.num_candidates = int(self._buffers["confidence"].shape[1])

    def _bind_buffers(self, trt: ModuleType) -> dict[str, Tensor]:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if inputs != [INPUT_NAME] or sorted(outputs) != sorted(OUTPUT_NAMES):
            raise BackendError(f"{self.engine_path}: tensors {names} are not an EDM engine")
        buffers = {}
        for name in names:
            dtype = _TORCH_DTYPES[self._engine.get_tensor_dtype(name).name]
            shape = tuple(self._engine.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=dtype, device=self._device)
            self._context.set_tensor_address(name, buffers[name].data_ptr())
        return buffers

    def run(self, pairs: np.ndarray) -> CandidateArrays:
        """pairs [N, 2, H, W] float32 in [0, 1] -> candidates [N, K, ...] (any N)."""
        pairs = check_pairs(pairs, self.input_size)
        with torch.cuda.device(self._device):
            return run_in_fixed_batches(pairs, self.batch_size, self._run_batch)

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        stream = torch.cuda.current_stream(self._device)
        self._transfer.upload(batch, into=self._buffers[INPUT_NAME])
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise BackendError(f"{self.engine_path}: TensorRT execution failed (see log)")
        return self._transfer.download([self._buffers[name] for name in OUTPUT_NAMES])


def create_tensorrt_backend(
    model: EDM, device: str, config: MatcherConfig, options: BackendOptions
) -> TensorRTBackend:
    """The backend for EDMMatcher: export (cached), build the engine (cached), load it."""
    import_tensorrt()  # fail before a long export if TensorRT is missing
    onnx_path = onnx_for_backend(model, config, options)
    engine_path = engine_for_onnx(
        onnx_path, options.precision, device, options.resolved_cache_dir(), options.rebuild
    )
    backend = TensorRTBackend(engine_path, device)
    check_graph_fits(engine_path, backend.input_size, backend.num_candidates, model, config)
    return backend


def engine_for_onnx(
    onnx_path: Path, precision: Precision, device: str, cache_dir: Path, rebuild: bool = False
) -> Path:
    """The cached engine of ``onnx_path`` for this GPU and TensorRT, built first if needed.

    Raises:
        ConfigError: ``device`` is not a CUDA device.
        BackendError: tensorrt or CUDA missing, or the build failed.
    """
    trt = import_tensorrt()
    torch_device = resolve_device(device)
    if torch_device.type != "cuda":
        raise ConfigError(f"backend 'tensorrt' runs on a CUDA device, not {device!r}")
    if precision == "fp16":
        logger.warning(
            "TensorRT precision fp16: matching is precision-sensitive (coarse dual-softmax, "
            "sub-pixel head); compare against fp32 on your data before deploying"
        )
    key = engine_key(onnx_path, precision, torch_device, trt.__version__)
    cache = ArtifactCache(cache_dir, ".engine", "TensorRT engine")
    return cache.get_or_build(
        key,
        lambda destination: build_engine(onnx_path, precision, destination),
        rebuild=rebuild,
        hint=BUILD_HINT,
    )

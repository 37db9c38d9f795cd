"""The reference backend: the PyTorch EDM on CPU or CUDA.

On CUDA a batch costs one upload from pinned memory and one download of all outputs packed in
one tensor, with one synchronisation; optionally the forward is captured as a CUDA graph for the
first input shape and replayed (no per-kernel launch cost). On every device the network runs as
prepared by :func:`edm_ros.model.inference.prepare_for_inference` (folded BatchNorms, NHWC
backbone and CIM on the CPU, reused coarse buffers), one call at a time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from edm_ros.errors import BackendError
from edm_ros.model.edm import EDM
from edm_ros.model.inference import prepare_for_inference
from edm_ros.model.selection import CandidateArrays

logger = logging.getLogger(__name__)

#: Eager runs before a CUDA graph is captured (cuDNN autotuning, allocator, RoPE tables).
CUDA_GRAPH_WARMUP_RUNS = 3


def resolve_device(device: str) -> torch.device:
    """Parse a device string ("cpu", "cuda", "cuda:1"); CUDA must be available if asked for."""
    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise BackendError(
            f"device {device!r} is not a torch device ('cpu', 'cuda', 'cuda:0')"
        ) from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"device {device!r} requested but this torch ({torch.__version__}) sees no CUDA GPU; "
            "use device 'cpu' or install a CUDA build of torch (README, 'GPU')."
        )
    if parsed.type not in ("cpu", "cuda"):
        raise BackendError(f"device {device!r}: only 'cpu' and 'cuda' are supported")
    return parsed


class TorchBackend:
    """EDM in eager PyTorch (fp32, eval mode, inference mode), prepared for inference."""

    name = "torch"

    def __init__(
        self,
        model: EDM,
        device: str = "cpu",
        cuda_graph: bool = False,
        compile_backbone: bool = False,
        reuse_features: bool = False,
    ) -> None:
        """Args:
        model: the network (left unchanged: the backend runs a prepared copy).
        device: "cpu", "cuda" or "cuda:N".
        cuda_graph: on CUDA, capture the forward for the first batch shape it sees and replay
            it for that shape (other shapes run eagerly). Ignored on the CPU.
        compile_backbone: run the backbone (most of the arithmetic) through ``torch.compile``;
            the first call of each input shape compiles it (minutes on a small CPU).
        reuse_features: keep the backbone's outputs for the images of the last call and reuse
            them for the same image (same bytes) in the next one: in a stream of frames the
            keyframe or the previous image skips the backbone (half of a CPU forward). Eager
            calls only (not a captured CUDA graph).
        """
        self._device = resolve_device(device)
        self.device = str(self._device)
        self.model = prepare_for_inference(model, self._device)
        self._lock = threading.Lock()  # the model's workspace serves one call at a time
        if compile_backbone:
            compiled = torch.compile(self.model.backbone, dynamic=False)
            self.model.backbone = compiled  # type: ignore[assignment]
        on_cuda = self._device.type == "cuda"
        self._transfer = CudaTransfer(self._device) if on_cuda else None
        self._graph: CapturedForward | None = None
        self._capture = on_cuda and cuda_graph
        #: backbone outputs of the last call's images by content key (None: reuse off)
        self._kept: dict[bytes, tuple[Tensor, ...]] | None = {} if reuse_features else None

    def run(self, pairs: np.ndarray) -> CandidateArrays:
        """pairs [B, 2, H, W] float32 -> candidates [B, K, ...] as host arrays."""
        with self._lock:
            return self._run(pairs)

    def _run(self, pairs: np.ndarray) -> CandidateArrays:
        if self._transfer is None:
            images, index, keys = distinct_images(pairs)
            with torch.inference_mode():
                levels = self._backbone(torch.from_numpy(images), keys)
                out = self.model.match_backbone_levels(levels, torch.from_numpy(index))
                return CandidateArrays(*(field.float().cpu().numpy() for field in out))
        with torch.inference_mode(), torch.cuda.device(self._device):
            if self._capture and self._graph is None:
                self._graph = CapturedForward(self.model, self._transfer.upload(pairs))
                logger.info("torch: CUDA graph captured for input %s", tuple(pairs.shape))
            if self._graph is not None and self._graph.shape == tuple(pairs.shape):
                self._transfer.upload(pairs, into=self._graph.input)
                return CandidateArrays(*self._transfer.download(self._graph.replay()))
            images, index, keys = distinct_images(pairs)
            levels = self._backbone(self._transfer.upload(images), keys)
            out = self.model.match_backbone_levels(levels, torch.from_numpy(index).to(self._device))
            return CandidateArrays(*self._transfer.download(out))

    def _backbone(self, images: Tensor, keys: list[bytes]) -> tuple[Tensor, ...]:
        """The backbone's outputs for images [N, 1, H, W] (content keys), kept ones reused."""
        if self._kept is None:
            return self.model.backbone(images)
        kept = self._kept
        missing = [slot for slot, key in enumerate(keys) if key not in kept]
        if missing:
            computed = self.model.backbone(images if len(missing) == len(keys) else images[missing])
            for row, slot in enumerate(missing):
                kept[keys[slot]] = tuple(level[row : row + 1] for level in computed)
        per_image = [kept[key] for key in keys]
        self._kept = dict(zip(keys, per_image))  # only this call's images stay
        return tuple(torch.cat(level) for level in zip(*per_image))


def distinct_images(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Each distinct image of a batch once, and the pairs as indices into them.

    A stereo frame's current left image belongs to both of its pairs (left-right and
    previous-current); it then goes through the backbone once instead of twice.

    Args:
        pairs: [B, 2, H, W] float32.

    Returns:
        images [N, 1, H, W] (N <= 2B), pairs [B, 2] int64 indices into images, and a content
        key (a hash of its bytes) per image.
    """
    slot_of: dict[bytes, int] = {}
    images: list[np.ndarray] = []
    index: list[int] = []
    for image in pairs.reshape(-1, 1, *pairs.shape[2:]):
        key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
        if key not in slot_of:
            slot_of[key] = len(images)
            images.append(image)
        index.append(slot_of[key])
    return np.stack(images), np.asarray(index, dtype=np.int64).reshape(-1, 2), list(slot_of)


class CudaTransfer:
    """Host <-> GPU copies through reused pinned buffers: one upload, one download per batch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._host_in: Tensor | None = None
        self._host_out: Tensor | None = None

    def upload(self, array: np.ndarray, into: Tensor | None = None) -> Tensor:
        """Copy ``array`` (float32) to the GPU, into ``into`` if given; asynchronous."""
        if self._host_in is None or tuple(self._host_in.shape) != array.shape:
            self._host_in = torch.empty(array.shape, dtype=torch.float32, pin_memory=True)
        self._host_in.numpy()[...] = array
        if into is None:
            return self._host_in.to(self.device, non_blocking=True)
        return into.copy_(self._host_in, non_blocking=True)

    def download(self, fields: Sequence[Tensor]) -> list[np.ndarray]:
        """Copy GPU tensors [B, ...] to host float32 arrays with one copy and one sync."""
        batch = fields[0].shape[0]
        packed = torch.cat([field.reshape(batch, -1).float() for field in fields], dim=1)
        if self._host_out is None or self._host_out.shape != packed.shape:
            self._host_out = torch.empty(packed.shape, dtype=torch.float32, pin_memory=True)
        self._host_out.copy_(packed, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        host = self._host_out.numpy()
        arrays, start = [], 0
        for field in fields:
            width = field[0].numel()
            arrays.append(host[:, start : start + width].reshape(field.shape).copy())
            start += width
        return arrays


class CapturedForward:
    """The model's forward captured as a CUDA graph for one input shape (static buffers)."""

    def __init__(self, model: EDM, example: Tensor) -> None:
        """Warm up on a side stream, then capture. ``example``: [B, 2, H, W] on the GPU."""
        self.input = example.clone()
        self.shape = tuple(example.shape)
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(CUDA_GRAPH_WARMUP_RUNS):
                model(self.input[:, 0:1], self.input[:, 1:2])
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(self.graph):
                self.outputs = tuple(model(self.input[:, 0:1], self.input[:, 1:2]))
        except RuntimeError as err:  # e.g. a host synchronisation inside the forward
            raise BackendError(
                f"CUDA graph capture of EDM failed ({err}); run without cuda_graph"
            ) from err

    def replay(self) -> tuple[Tensor, ...]:
        """Run the captured graph on the current contents of ``self.input``."""
        self.graph.replay()
        return self.outputs

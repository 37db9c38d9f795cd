"""The reference backend: the PyTorch EDM on CPU or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from edm_ros.errors import BackendError
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays


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
    """EDM in eager PyTorch (fp32, eval mode, inference mode)."""

    name = "torch"

    def __init__(self, model: EDM, device: str = "cpu") -> None:
        self._device = resolve_device(device)
        self.device = str(self._device)
        self.model = model.eval().to(self._device)

    def run(self, pairs: np.ndarray) -> CandidateArrays:
        """pairs [B, 2, H, W] float32 -> candidates [B, K, ...] as host arrays."""
        with torch.inference_mode():
            images = torch.from_numpy(pairs).to(self._device, non_blocking=True)
            out = self.model(images[:, 0:1], images[:, 1:2])
            return CandidateArrays(*(field.float().cpu().numpy() for field in out))

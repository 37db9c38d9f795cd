"""What every inference backend provides: the same inputs, the same fixed-size outputs."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edm_ros.model.selection import CandidateArrays

__all__ = ["Backend", "CandidateArrays"]


class Backend(Protocol):
    """Runs the EDM network. Post-processing (``model.selection``) is shared by all backends."""

    #: Short name: "torch", "onnxruntime", "tensorrt".
    name: str
    #: Where it runs, e.g. "cpu", "cuda:0".
    device: str

    def run(self, pairs: np.ndarray) -> CandidateArrays:
        """pairs: [B, 2, H, W] float32 in [0, 1] (image0, image1 on the channel axis).

        Returns:
            The network's candidates as host arrays, [B, K, ...].
        """
        ...

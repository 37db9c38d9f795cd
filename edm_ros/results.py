"""Result records of matching: plain numpy, so that readers of results never load torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: `import edm_ros.msg` stays free of numpy's start-up time
    import numpy as np


@dataclass(frozen=True)
class MatchResult:
    """Matches of one image pair, in pixels of the images as given."""

    keypoints0: np.ndarray  # [M, 2] float32 (x, y) in image0
    keypoints1: np.ndarray  # [M, 2] float32 (x, y) in image1
    confidence: np.ndarray  # [M] float32 coarse dual-softmax confidence, descending
    fine_confidence: np.ndarray  # [M] float32 P_f of the kept refinement direction
    image0_size: tuple[int, int]  # (width, height)
    image1_size: tuple[int, int]
    inference_ms: float  # this pair's share of the network's forward pass

    def __len__(self) -> int:
        return int(self.keypoints0.shape[0])

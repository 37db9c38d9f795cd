"""Training batches and the homography-pair dataset.

A batch is one of two typed records, by the kind of ground truth it carries:
:class:`HomographyBatch` (synthetic pairs: exact homography and valid masks) or
:class:`DepthBatch` (rendered rooms, MegaDepth/ScanNet: depth, intrinsics, relative pose; see
``loftr_data`` for the latter).
torch's default collate stacks these NamedTuples field by field. :func:`ground_truth` turns either
into the coarse ground truth of :mod:`edm_ros.training.supervision`.

Every sample is a function of (seed, stream, epoch, index) only, so runs are reproducible and a
resumed run sees the same pairs as an uninterrupted one, with any number of loader workers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from edm_ros.data.homography import HomographyPairGenerator, WarpedPair
from edm_ros.data.parallax import ParallaxPairGenerator
from edm_ros.data.synthetic import SyntheticPair
from edm_ros.model.config import COARSE_STRIDE
from edm_ros.training.supervision import (
    CoarseTruth,
    coarse_ground_truth,
    grid_points,
    warp_by_depth,
    warp_by_homography,
)

#: Random streams of one seed: training pairs and held-out validation pairs never coincide.
TRAIN_STREAM, VALIDATION_STREAM = 0, 1


class HomographyBatch(NamedTuple):
    """Pairs related by a homography (leading batch axis B after collation)."""

    image0: Tensor  # [B, 1, H, W] float32 in [0, 1]
    image1: Tensor  # [B, 1, H, W]
    valid0: Tensor  # [B, H, W] bool: pixel shows image content
    valid1: Tensor  # [B, H, W] bool
    H_0to1: Tensor  # [B, 3, 3] float64, x1 ~ H x0 in network-input pixels


class DepthBatch(NamedTuple):
    """Pairs of a rigid scene with depth (MegaDepth/ScanNet), all in network-input pixels."""

    image0: Tensor  # [B, 1, H, W] float32 in [0, 1]
    image1: Tensor  # [B, 1, H, W]
    depth0: Tensor  # [B, H, W] float32 metres; 0 = unknown (also in padding)
    depth1: Tensor  # [B, H, W]
    K0: Tensor  # [B, 3, 3] float64 intrinsics of the network input
    K1: Tensor  # [B, 3, 3]
    T_0to1: Tensor  # [B, 4, 4] float64, X_cam1 = R X_cam0 + t


PairBatch = HomographyBatch | DepthBatch


def batch_to(batch: PairBatch, device: torch.device | str) -> PairBatch:
    """The same batch with every tensor on ``device``."""
    return type(batch)(*(field.to(device, non_blocking=True) for field in batch))


def ground_truth(batch: PairBatch) -> CoarseTruth:
    """Coarse ground truth of a batch (both directions), on the batch's device."""
    height, width = batch.image0.shape[-2:]
    grid_size = (height // COARSE_STRIDE, width // COARSE_STRIDE)
    points = grid_points(grid_size, batch.image0.device)
    if isinstance(batch, HomographyBatch):
        H_0to1 = batch.H_0to1.double()
        forward = warp_by_homography(points, H_0to1, batch.valid0, batch.valid1)
        backward = warp_by_homography(points, torch.linalg.inv(H_0to1), batch.valid1, batch.valid0)
    else:
        T_1to0 = torch.linalg.inv(batch.T_0to1.double())
        forward = warp_by_depth(points, batch.depth0, batch.K0, batch.K1, batch.T_0to1)
        backward = warp_by_depth(points, batch.depth1, batch.K1, batch.K0, T_1to0)
    return coarse_ground_truth(forward, backward, grid_size)


def homography_sample(pair: WarpedPair) -> HomographyBatch:
    """One :class:`WarpedPair` as an un-batched HomographyBatch (no leading B axis)."""
    return HomographyBatch(
        image0=torch.from_numpy(pair.image0).float()[None] / 255.0,
        image1=torch.from_numpy(pair.image1).float()[None] / 255.0,
        valid0=torch.from_numpy(pair.valid0),
        valid1=torch.from_numpy(pair.valid1),
        H_0to1=torch.from_numpy(pair.H_0to1),
    )


def depth_sample(pair: SyntheticPair) -> DepthBatch:
    """One rendered :class:`SyntheticPair` as an un-batched DepthBatch (no leading B axis)."""
    T_0to1 = np.eye(4)
    T_0to1[:3, :3] = pair.rotation.T  # camera 1 in camera 0 -> X_cam1 = R^T (X_cam0 - t)
    T_0to1[:3, 3] = -pair.rotation.T @ pair.translation
    return DepthBatch(
        image0=torch.from_numpy(pair.image0).float()[None] / 255.0,
        image1=torch.from_numpy(pair.image1).float()[None] / 255.0,
        depth0=torch.from_numpy(np.where(np.isfinite(pair.depth0), pair.depth0, 0.0)).float(),
        depth1=torch.from_numpy(np.where(np.isfinite(pair.depth1), pair.depth1, 0.0)).float(),
        K0=torch.from_numpy(pair.K.copy()),
        K1=torch.from_numpy(pair.K.copy()),
        T_0to1=torch.from_numpy(T_0to1),
    )


class SyntheticPairDataset(Dataset):
    """``length`` random pairs per epoch, reproducible from (seed, stream, epoch, index).

    Homography pairs, and for a ``parallax_fraction`` of the batches pairs of rendered 3D rooms
    (depth + pose ground truth). The kind is drawn per batch of ``batch_size`` consecutive
    indices, so that a batch (read in order, as the training loop does) holds one kind and
    collates.
    """

    def __init__(
        self,
        homographies: HomographyPairGenerator,
        length: int,
        seed: int,
        stream: int = TRAIN_STREAM,
        rooms: ParallaxPairGenerator | None = None,
        parallax_fraction: float = 0.0,
        batch_size: int = 1,
    ) -> None:
        self.homographies = homographies
        self.rooms = rooms
        self.parallax_fraction = parallax_fraction if rooms is not None else 0.0
        self.length = length
        self.seed = seed
        self.stream = stream
        self.batch_size = batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of ``epoch`` from now on (call before iterating a new epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def is_parallax(self, index: int) -> bool:
        """Whether the pair at ``index`` is a rendered room (the same for its whole batch)."""
        if self.parallax_fraction <= 0.0:
            return False
        batch = index // self.batch_size
        draw = np.random.default_rng([self.seed, self.stream, self.epoch, batch, 1]).random()
        return bool(draw < self.parallax_fraction)

    def __getitem__(self, index: int) -> PairBatch:
        rng = np.random.default_rng([self.seed, self.stream, self.epoch, index])
        if self.is_parallax(index):
            assert self.rooms is not None
            return depth_sample(self.rooms.sample(rng))
        return homography_sample(self.homographies.sample(rng))

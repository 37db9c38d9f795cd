"""One training forward pass: EDM's stages composed with ground-truth padding and the losses.

The network is the inference network: :class:`edm_ros.model.edm.EDM`'s submodules are called in
the order of its ``forward`` (backbone, CIM, dual-softmax, top-K, ABRHead in both directions).
Training differs only where the official training differs: the full dual-softmax matrix is kept
for the focal loss, and the top-K candidates are padded with ground-truth matches before the head.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from edm_ros.model.config import COARSE_STRIDE, num_candidates
from edm_ros.model.edm import EDM, dual_softmax, select_top_k, stack_pairs
from edm_ros.training.data import PairBatch, ground_truth
from edm_ros.training.losses import (
    LossConfig,
    LossTerms,
    RealNVP,
    combine,
    focal_loss_on_positives,
    rle_loss,
)
from edm_ros.training.supervision import TRAIN_PAD_NUM, fine_targets, pad_with_ground_truth


class StepOutput(NamedTuple):
    """Losses of one batch and how much supervision they saw."""

    losses: LossTerms
    num_positives: int  # ground-truth coarse matches in the batch
    num_supervised: int  # head rows with a fine target inside the window


def training_losses(
    model: EDM,
    flow: RealNVP,
    batch: PairBatch,
    loss_config: LossConfig | None = None,
    pad_num: int = TRAIN_PAD_NUM,
    generator: torch.Generator | None = None,
) -> StepOutput:
    """Losses of one batch (the model is expected in train mode).

    Args:
        model: the network.
        flow: the RLE density of the fine residuals.
        batch: images and ground truth geometry, on the model's device.
        loss_config: weights and focal / RLE settings (None: the official ones).
        pad_num: in-window candidates guaranteed per pair (official 32; 0 disables padding).
        generator: CPU random source of the padding's choice of ground-truth matches.
    """
    loss_config = loss_config or LossConfig()
    height, width = batch.image0.shape[-2:]
    grid_width = width // COARSE_STRIDE
    coarse0, coarse1, fine0, fine1 = model.features(*stack_pairs(batch.image0, batch.image1))
    confidence = dual_softmax(coarse0, coarse1, model.config.temperature)  # [B, L0, L1]
    truth = ground_truth(batch)
    positives = truth.positives()
    coarse_loss = focal_loss_on_positives(
        confidence, positives, loss_config.focal_alpha, loss_config.focal_gamma
    )
    with torch.no_grad():
        row_max, row_argmax = confidence.max(dim=2)
    top_k = select_top_k(row_max, row_argmax, num_candidates((width, height), model.topk_ratio))
    if pad_num > 0:
        top_k = pad_with_ground_truth(top_k, truth, grid_width, generator, pad_num)
    refined = model.refine(coarse0, coarse1, fine0, fine1, top_k.rows, top_k.cols)
    targets = fine_targets(truth, top_k.rows, top_k.cols, grid_width)
    fine_loss = rle_loss(
        refined.offsets,
        refined.sigma,
        targets.offsets,
        targets.supervised,
        flow,
        loss_config.q_distribution,
    )
    return StepOutput(
        combine(coarse_loss, fine_loss, loss_config),
        num_positives=int(positives[0].numel()),
        num_supervised=int(targets.supervised.sum()),
    )


class TrainingModel(nn.Module):
    """The network and the flow as one module whose forward returns a batch's losses.

    This is the module DistributedDataParallel wraps for multi-GPU training (its forward is
    where gradient averaging is prepared); single-process training calls it the same way.
    """

    def __init__(
        self, model: EDM, flow: RealNVP, loss_config: LossConfig, pad_num: int = TRAIN_PAD_NUM
    ) -> None:
        super().__init__()
        self.model = model
        self.flow = flow
        self.loss_config = loss_config
        self.pad_num = pad_num

    def forward(self, batch: PairBatch, generator: torch.Generator | None = None) -> StepOutput:
        """:func:`training_losses` of ``batch`` (train mode expected)."""
        return training_losses(
            self.model, self.flow, batch, self.loss_config, self.pad_num, generator
        )

"""Validation during training: coarse precision on held-out pairs, or a full evaluation set.

* Held-out pairs with ground truth (:class:`~edm_ros.training.data.PairBatch`): the network runs as
  at inference (eval mode, :meth:`EDM.forward`); for every top-K candidate whose image-0 point has
  a ground-truth position inside image 1, it is correct when its image-1 cell is the cell that
  position rounds to. Chance is 1 / L (L cells per image). Final matches (the official selection
  at ``match_threshold``) of homography pairs count as correct within 3 px of ``H x0``.
* A dataset on disk (HPatches-style homographies or relative poses, anything
  :func:`edm_ros.data.datasets.load_dataset` reads): the saved checkpoint is evaluated with
  :mod:`edm_ros.evaluation.runner`, exactly as ``edm-eval`` would (AUC of the corner error or of
  the pose error).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edm_ros.model.config import COARSE_STRIDE, MatcherConfig
from edm_ros.model.edm import EDM
from edm_ros.model.selection import CandidateArrays, select_matches
from edm_ros.training.data import HomographyBatch, PairBatch, batch_to, ground_truth
from edm_ros.training.supervision import nearest_cell

#: A final match is correct within this distance of its ground-truth position (network pixels).
MATCH_CORRECT_PX = 3.0


@dataclass(frozen=True)
class HeldOutMetrics:
    """Matching quality on held-out pairs with ground truth."""

    coarse_precision: float  # correct top-K cells / candidates with ground truth
    chance_precision: float  # 1 / L: a random cell of image 1
    match_precision: float  # final matches within MATCH_CORRECT_PX (homography pairs; 0 if none)
    matches_per_pair: float  # final matches above the coarse threshold (homography pairs)
    pairs: int

    def as_dict(self) -> dict[str, float]:
        """Plain floats for logs and the history file."""
        return {
            "coarse_precision": self.coarse_precision,
            "chance_precision": self.chance_precision,
            "match_precision": self.match_precision,
            "matches_per_pair": self.matches_per_pair,
        }


@torch.no_grad()
def evaluate_held_out(
    model: EDM,
    batches: Iterable[PairBatch],
    device: torch.device | str = "cpu",
    selection: MatcherConfig | None = None,
) -> HeldOutMetrics:
    """Run the network in eval mode over ``batches`` and measure coarse and final precision.

    The model's train/eval mode is restored afterwards. ``selection`` sets the thresholds of the
    final matches (None = the MatcherConfig defaults).
    """
    selection = selection or MatcherConfig(input_size=None)
    was_training = model.training
    model.eval()
    correct = evaluated = good_matches = all_matches = pairs = 0
    cells = 1
    try:
        for batch in batches:
            batch = batch_to(batch, device)
            candidates = model(batch.image0, batch.image1)
            height, width = batch.image0.shape[-2:]
            grid = (height // COARSE_STRIDE, width // COARSE_STRIDE)
            cells = grid[0] * grid[1]
            truth = ground_truth(batch)
            rows = _cells(candidates.points0, grid[1])
            expected = torch.gather(nearest_cell(truth.forward, grid), 1, rows)
            has_truth = expected >= 0
            correct += int((has_truth & (expected == _cells(candidates.points1, grid[1]))).sum())
            evaluated += int(has_truth.sum())
            if isinstance(batch, HomographyBatch):
                good, total = _final_matches(candidates, batch.H_0to1, (width, height), selection)
                good_matches, all_matches = good_matches + good, all_matches + total
            pairs += batch.image0.shape[0]
    finally:
        model.train(was_training)
    return HeldOutMetrics(
        coarse_precision=correct / max(evaluated, 1),
        chance_precision=1.0 / cells,
        match_precision=good_matches / max(all_matches, 1),
        matches_per_pair=all_matches / max(pairs, 1),
        pairs=pairs,
    )


def _cells(points: torch.Tensor, grid_width: int) -> torch.Tensor:
    """Coarse points 8·(col, row) [B, K, 2] -> cell indices [B, K]."""
    col_row = torch.div(points, COARSE_STRIDE, rounding_mode="floor").long()
    return col_row[..., 1] * grid_width + col_row[..., 0]


def _final_matches(
    candidates: tuple[torch.Tensor, ...],
    H_0to1: torch.Tensor,
    size: tuple[int, int],
    selection: MatcherConfig,
) -> tuple[int, int]:
    """(correct, total) final matches of a batch under the official selection.

    Args:
        candidates: the network's Candidates, [B, K, ...].
        H_0to1: [B, 3, 3] ground-truth homographies, network-input pixels.
        size: (W, H) of the network input.
        selection: thresholds, border and match cap of the final selection.
    """
    arrays = CandidateArrays(*(field.float().cpu().numpy() for field in candidates))
    good = total = 0
    for index, homography in enumerate(H_0to1.cpu().numpy()):
        matches = select_matches(arrays.pair(index), (1.0, 1.0), (1.0, 1.0), size, size, selection)
        points0 = np.column_stack([matches.keypoints0, np.ones(len(matches.keypoints0))])
        projected = points0 @ homography.T
        expected = projected[:, :2] / projected[:, 2:]
        error = np.linalg.norm(expected - matches.keypoints1, axis=1)
        good += int(np.sum(error < MATCH_CORRECT_PX))
        total += len(error)
    return good, total


def evaluate_saved_checkpoint(
    checkpoint: Path,
    dataset_path: Path,
    input_size: tuple[int, int] | None,
    device: str = "cpu",
    max_pairs: int | None = None,
) -> dict[str, float]:
    """Evaluate a saved checkpoint on a dataset folder with the evaluation runner.

    Returns:
        ``{"auc@<threshold>": value, ..., "precision": mean matching precision,
        "matches_per_pair": mean count}``; the AUC is of the corner error (px) for homography sets
        and of the RANSAC pose error (deg) otherwise.
    """
    from edm_ros.data.datasets import load_dataset
    from edm_ros.data.pairs import HomographyDataset
    from edm_ros.evaluation.baselines import NamedMatcher
    from edm_ros.evaluation.metrics import HOMOGRAPHY_AUC_THRESHOLDS_PX, POSE_AUC_THRESHOLDS_DEG
    from edm_ros.evaluation.runner import evaluate
    from edm_ros.matcher import EDMMatcher

    dataset = load_dataset(dataset_path)
    matcher = EDMMatcher(checkpoint, device=device, input_size=input_size)
    named = NamedMatcher("edm", matcher, matcher.weights_description, matcher.random_weights)
    result = evaluate(named, dataset, max_pairs=max_pairs, show_progress=False)
    if isinstance(dataset, HomographyDataset):
        thresholds, auc = HOMOGRAPHY_AUC_THRESHOLDS_PX, result.auc()  # type: ignore[call-arg]
    else:
        thresholds, auc = POSE_AUC_THRESHOLDS_DEG, result.auc("ransac")  # type: ignore[call-arg]
    metrics = {f"auc@{t:g}": float(value) for t, value in zip(thresholds, auc)}
    metrics["precision"] = float(np.mean([pair.precision for pair in result.pairs]))
    metrics["matches_per_pair"] = float(np.mean([len(pair.matches) for pair in result.pairs]))
    return metrics

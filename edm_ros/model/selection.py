"""Final match selection on the fixed-size candidates of any backend (official final step).

For each candidate, the head refined both directions; the one with the higher fine confidence
P_f is kept (ties go to the 1 -> 0 refinement, as in the official Python code). A match survives
when its coarse confidence > match_threshold, its P_f > fine_threshold, and both points lie at
least ``border`` pixels inside their original images.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edm_ros.model.config import COARSE_STRIDE, MatcherConfig


class CandidateArrays(NamedTuple):
    """Host copy of ``edm_ros.model.edm.Candidates``: same fields, numpy float32, [B, K, ...]."""

    points0: np.ndarray  # [B, K, 2] network-input pixels
    points1: np.ndarray  # [B, K, 2]
    confidence: np.ndarray  # [B, K]
    offsets01: np.ndarray  # [B, K, 2] cells
    offsets10: np.ndarray  # [B, K, 2] cells
    fine_confidence01: np.ndarray  # [B, K]
    fine_confidence10: np.ndarray  # [B, K]

    def pair(self, index: int) -> CandidateArrays:
        """The candidates of pair ``index``, without the batch axis ([K, ...])."""
        return CandidateArrays(*(field[index] for field in self))


class Matches(NamedTuple):
    """Selected matches of one pair, in original-image pixels."""

    keypoints0: np.ndarray  # [M, 2] float32
    keypoints1: np.ndarray  # [M, 2] float32
    confidence: np.ndarray  # [M] float32 coarse confidence
    fine_confidence: np.ndarray  # [M] float32 P_f of the kept direction


def select_matches(
    candidates: CandidateArrays,
    scale0: tuple[float, float],
    scale1: tuple[float, float],
    size0: tuple[int, int],
    size1: tuple[int, int],
    config: MatcherConfig,
) -> Matches:
    """Choose the refinement direction, apply thresholds and border, map to original pixels.

    Args:
        candidates: one pair's candidates ([K, ...], from ``CandidateArrays.pair``), sorted by
            coarse confidence (descending).
        scale0, scale1: (sx, sy) original / network-input size per axis for each image.
        size0, size1: (W, H) of the original images.
        config: thresholds, border (original pixels) and max_matches.

    Returns:
        Matches sorted by coarse confidence, descending.
    """
    s0 = np.asarray(scale0, np.float32)
    s1 = np.asarray(scale1, np.float32)
    forward = candidates.fine_confidence01 > candidates.fine_confidence10  # keep 0 -> 1
    refined0 = candidates.points0 + COARSE_STRIDE * candidates.offsets10
    refined1 = candidates.points1 + COARSE_STRIDE * candidates.offsets01
    keypoints0 = np.where(forward[:, None], candidates.points0, refined0) * s0
    keypoints1 = np.where(forward[:, None], refined1, candidates.points1) * s1
    fine_confidence = np.where(forward, candidates.fine_confidence01, candidates.fine_confidence10)
    keep = (
        (candidates.confidence > config.match_threshold)
        & (fine_confidence > config.fine_threshold)
        & _inside(keypoints0, size0, config.border)
        & _inside(keypoints1, size1, config.border)
    )
    index = np.flatnonzero(keep)
    if config.max_matches is not None:
        index = index[: config.max_matches]
    return Matches(
        keypoints0[index].astype(np.float32),
        keypoints1[index].astype(np.float32),
        candidates.confidence[index].astype(np.float32),
        fine_confidence[index].astype(np.float32),
    )


def _inside(points: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    width, height = size
    x, y = points[:, 0], points[:, 1]
    return (x >= border) & (x <= width - border) & (y >= border) & (y <= height - border)

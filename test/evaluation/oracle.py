"""A matcher that returns known correspondences: the perfect matcher for one synthetic scene."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edm_ros.evaluation.baselines import NamedMatcher
from edm_ros.results import MatchResult


class OracleMatcher:
    """Returns the same correspondences for any pair (pixels of the images it is given)."""

    def __init__(self, points0: np.ndarray, points1: np.ndarray) -> None:
        self.points0 = np.asarray(points0, dtype=np.float32)
        self.points1 = np.asarray(points1, dtype=np.float32)

    def match(self, image0: np.ndarray, image1: np.ndarray) -> MatchResult:
        count = len(self.points0)
        return MatchResult(
            self.points0,
            self.points1,
            np.ones(count, np.float32),
            np.ones(count, np.float32),
            (image0.shape[1], image0.shape[0]),
            (image1.shape[1], image1.shape[0]),
            1.0,
        )

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        return [self.match(image0, image1) for image0, image1 in pairs]


def oracle(points0: np.ndarray, points1: np.ndarray) -> NamedMatcher:
    """The oracle with the labels the runners need."""
    return NamedMatcher("oracle", OracleMatcher(points0, points1), "exact correspondences", False)

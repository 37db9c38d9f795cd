"""Classical baseline matchers behind the interface of :class:`edm_ros.matcher.EDMMatcher`.

Every matcher the evaluation runs satisfies :class:`Matcher` (``match``/``match_batch`` returning
:class:`~edm_ros.results.MatchResult` in original-image pixels), so the runners treat EDM, SIFT and
ORB alike. :func:`build_matcher` makes any of them by name, as a :class:`NamedMatcher` that also
says what weights it runs (for report headers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

import cv2
import numpy as np

from edm_ros.errors import ConfigError
from edm_ros.matcher import EDMMatcher, to_grey
from edm_ros.model.config import MatcherConfig
from edm_ros.results import MatchResult

MatcherName = Literal["edm", "sift", "orb"]


class Matcher(Protocol):
    """What the evaluation needs from a matcher."""

    def match(self, image0: np.ndarray, image1: np.ndarray) -> MatchResult:
        """Matches of one pair, in pixels of the images as given."""
        ...

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        """Matches of several pairs (one forward pass where the matcher can batch)."""
        ...


def _as_uint8_grey(image: np.ndarray, name: str) -> np.ndarray:
    """EDM's input check and grey conversion; float [0, 1] images back to uint8 for OpenCV."""
    grey = to_grey(image, name)
    return grey if grey.dtype == np.uint8 else np.round(grey * 255.0).astype(np.uint8)


class ClassicalMatcher:
    """Detect keypoints, describe them, keep mutual nearest neighbours that pass the ratio test.

    ``confidence`` is ``1 - d1 / d2`` (Lowe's ratio margin, in [0, 1]); there is no refinement
    stage, so ``fine_confidence`` is 1. ``inference_ms`` covers detection, description and
    matching of the pair.
    """

    def __init__(self, detector: cv2.Feature2D, norm: int, ratio: float, description: str) -> None:
        """Args:
        detector: an OpenCV feature detector and descriptor extractor.
        norm: descriptor distance (``cv2.NORM_L2`` or ``cv2.NORM_HAMMING``).
        ratio: Lowe's ratio test, in (0, 1]; 1 disables it.
        description: shown in reports in place of a weights file.
        """
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"ratio: expected a value in (0, 1], got {ratio}")
        self._detector = detector
        self._matcher = cv2.BFMatcher(norm)
        self.ratio = ratio
        self.description = description

    def _describe(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        keypoints, descriptors = self._detector.detectAndCompute(grey, None)
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
        return points, descriptors

    def _mutual_ratio_matches(
        self, descriptors0: np.ndarray, descriptors1: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices (i0, i1) and ratio margins of mutual nearest neighbours passing the ratio."""
        forward = self._matcher.knnMatch(descriptors0, descriptors1, k=2)
        backward = self._matcher.match(descriptors1, descriptors0)
        best_in_0 = {m.queryIdx: m.trainIdx for m in backward}
        rows = []
        for candidates in forward:
            if not candidates:
                continue
            best = candidates[0]
            second = candidates[1].distance if len(candidates) > 1 else np.inf
            passes = best.distance < self.ratio * second or self.ratio == 1.0
            if passes and best_in_0.get(best.trainIdx) == best.queryIdx:
                margin = 1.0 - best.distance / second if second > 0 else 0.0
                rows.append((best.queryIdx, best.trainIdx, margin))
        table = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2]

    def match(self, image0: np.ndarray, image1: np.ndarray) -> MatchResult:
        """Match one pair: uint8 grey (H, W) or BGR (H, W, 3), any size.

        Raises:
            InputError: an image that is not a usable picture (as for EDMMatcher).
        """
        grey0, grey1 = _as_uint8_grey(image0, "image0"), _as_uint8_grey(image1, "image1")
        start = time.perf_counter()
        points0, descriptors0 = self._describe(grey0)
        points1, descriptors1 = self._describe(grey1)
        if descriptors0 is None or descriptors1 is None or len(points0) < 2 or len(points1) < 2:
            index0 = index1 = np.zeros(0, dtype=int)
            margins = np.zeros(0)
        else:
            index0, index1, margins = self._mutual_ratio_matches(descriptors0, descriptors1)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return MatchResult(
            keypoints0=points0[index0],
            keypoints1=points1[index1],
            confidence=np.clip(margins, 0.0, 1.0).astype(np.float32),
            fine_confidence=np.ones(len(index0), dtype=np.float32),
            image0_size=(grey0.shape[1], grey0.shape[0]),
            image1_size=(grey1.shape[1], grey1.shape[0]),
            inference_ms=elapsed_ms,
        )

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        """Match pairs one after the other (classical matchers do not batch)."""
        return [self.match(image0, image1) for image0, image1 in pairs]


class SIFTMatcher(ClassicalMatcher):
    """OpenCV SIFT, mutual nearest neighbours (L2) and Lowe's ratio test."""

    def __init__(self, max_features: int = 8000, ratio: float = 0.8) -> None:
        """Args:
        max_features: keep the strongest this many keypoints per image (0 = all).
        ratio: Lowe's ratio test threshold.
        """
        super().__init__(
            cv2.SIFT.create(nfeatures=max_features),
            cv2.NORM_L2,
            ratio,
            f"classical: OpenCV SIFT ({max_features} features, mutual NN, ratio {ratio})",
        )


class ORBMatcher(ClassicalMatcher):
    """OpenCV ORB, mutual nearest neighbours (Hamming) and a ratio test."""

    def __init__(self, max_features: int = 5000, ratio: float = 0.8) -> None:
        """Args:
        max_features: keypoints per image.
        ratio: ratio test threshold (1 disables it).
        """
        super().__init__(
            cv2.ORB.create(nfeatures=max_features),
            cv2.NORM_HAMMING,
            ratio,
            f"classical: OpenCV ORB ({max_features} features, mutual NN, ratio {ratio})",
        )


@dataclass(frozen=True)
class NamedMatcher:
    """A matcher with the labels a report shows."""

    name: str  # "edm", "sift", "orb"
    matcher: Matcher
    description: str  # the weights file or the classical configuration
    random_weights: bool  # True: EDM with random weights, its numbers mean nothing


@dataclass(frozen=True)
class EDMOptions:
    """How ``build_matcher`` makes EDM (the arguments of :class:`EDMMatcher`)."""

    weights: str | Path | None = None
    device: str = "cpu"
    config: MatcherConfig = field(default_factory=MatcherConfig)  # input size, thresholds, ...
    backend: str = "torch"


def build_matcher(name: str, edm: EDMOptions | None = None) -> NamedMatcher:
    """Make a matcher by name.

    Args:
        name: "edm", "sift" or "orb".
        edm: EDM's options (weights, device, matcher settings, backend); None = the defaults.

    Returns:
        The matcher and its labels.

    Raises:
        ConfigError: unknown name.
        CheckpointError: EDM weights that cannot be loaded.
    """
    if name in ("sift", "orb"):
        matcher = SIFTMatcher() if name == "sift" else ORBMatcher()
        return NamedMatcher(name, matcher, matcher.description, random_weights=False)
    if name != "edm":
        raise ConfigError(f"matcher {name!r} unknown; expected one of {get_args(MatcherName)}")
    edm = edm or EDMOptions()
    model = EDMMatcher(edm.weights, edm.device, config=edm.config, backend=edm.backend)
    return NamedMatcher("edm", model, model.weights_description, model.random_weights)

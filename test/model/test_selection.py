"""Final selection: direction choice, thresholds, border, mapping to original pixels."""

from __future__ import annotations

import numpy as np

from edm_ros.model.config import MatcherConfig
from edm_ros.model.selection import CandidateArrays, select_matches


def candidates(**overrides) -> CandidateArrays:
    """Three candidates in a 64x64 network input."""
    fields = {
        "points0": np.array([[8, 8], [16, 0], [56, 56]], np.float32),
        "points1": np.array([[24, 8], [32, 16], [0, 0]], np.float32),
        "confidence": np.array([0.9, 0.5, 0.3], np.float32),
        "offsets01": np.array([[0.25, -0.5], [0.0, 0.0], [0.1, 0.1]], np.float32),
        "offsets10": np.array([[-0.25, 0.5], [0.5, 0.5], [-0.5, -0.5]], np.float32),
        "fine_confidence01": np.array([0.8, 0.3, 0.6], np.float32),
        "fine_confidence10": np.array([0.7, 0.3, 0.2], np.float32),
    }
    fields.update(overrides)
    return CandidateArrays(**{k: v[None] for k, v in fields.items()}).pair(0)


def select(config: MatcherConfig, scale=(1.0, 1.0), size=(64, 64), **overrides):
    return select_matches(candidates(**overrides), scale, scale, size, size, config)


def test_higher_fine_confidence_picks_the_refined_side_ties_refine_image0():
    out = select(MatcherConfig(match_threshold=0.0, fine_threshold=0.0))
    # 0 -> 1 wins for the first candidate: image1's point moves by 8 px * offset.
    np.testing.assert_allclose(out.keypoints0[0], [8, 8])
    np.testing.assert_allclose(out.keypoints1[0], [26, 4])
    # A tie (0.3 == 0.3) refines image 0's point (official Python code).
    np.testing.assert_allclose(out.keypoints0[1], [20, 4])
    np.testing.assert_allclose(out.fine_confidence, [0.8, 0.3, 0.6])


def test_thresholds_are_strict_and_order_is_kept():
    out = select(MatcherConfig(match_threshold=0.5, fine_threshold=0.0))
    np.testing.assert_allclose(out.confidence, [0.9])
    out = select(MatcherConfig(match_threshold=0.0, fine_threshold=0.6))
    np.testing.assert_allclose(out.confidence, [0.9])


def test_border_and_image_bounds_use_original_pixels():
    config = MatcherConfig(match_threshold=0.0, fine_threshold=0.0, border=10)
    out = select(config)
    assert out.keypoints0.shape == (0, 2), "all three touch the 10-px border in image 0 or 1"
    out = select(
        MatcherConfig(match_threshold=0.0, fine_threshold=0.0, border=2),
        scale=(2.0, 0.5),
        size=(128, 32),
    )
    np.testing.assert_allclose(out.keypoints0[0], [16, 4])
    np.testing.assert_allclose(out.keypoints1[0], [52, 2])


def test_max_matches_keeps_the_most_confident():
    out = select(MatcherConfig(match_threshold=0.0, fine_threshold=0.0, max_matches=2))
    np.testing.assert_allclose(out.confidence, [0.9, 0.5])
    assert out.keypoints0.dtype == np.float32 and out.fine_confidence.dtype == np.float32

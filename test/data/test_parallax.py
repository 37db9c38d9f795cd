"""Parallax pairs: rendered rooms with exact depth, poses that keep the views overlapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from edm_ros.data.parallax import MotionRange, ParallaxPairGenerator
from edm_ros.data.synthetic import grid_points, transfer_points
from edm_ros.errors import ConfigError
from edm_ros.training.data import depth_sample
from edm_ros.training.supervision import warp_by_depth

SIZE = (160, 128)


def _bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    maps = points.astype(np.float32).reshape(-1, 1, 2)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR)[:, 0].astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correspondences_show_the_same_surface_in_both_views(seed):
    pair = ParallaxPairGenerator(None, SIZE, photometric=None).sample(np.random.default_rng(seed))
    assert len(pair.points0) > 0.3 * len(grid_points(*SIZE, 8))  # MotionRange.min_overlap
    seen = pair.image0[pair.points0[:, 1].astype(int), pair.points0[:, 0].astype(int)]
    same = np.abs(_bilinear(pair.image1, pair.points1) - seen)
    shifted = np.abs(_bilinear(pair.image1, pair.points1 + np.array([4.0, 0.0])) - seen)
    assert np.median(same) < 8.0 and np.median(shifted) > 2 * np.median(same)


def test_rooms_have_parallax_and_occlusions():
    generator = ParallaxPairGenerator(None, SIZE, photometric=None)
    pair = generator.sample(np.random.default_rng(3))
    depth = pair.depth0[np.isfinite(pair.depth0)]
    assert depth.max() > 2 * depth.min(), "surfaces at one depth only"
    # Points in view 0 whose surface is hidden behind another one in view 1 exist, and the
    # occlusion test removes them: without it more points would count as visible.
    grid = grid_points(*SIZE, 8)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = pair.rotation, pair.translation
    _, without_test = transfer_points(grid, pair.depth0, pair.K, pose)
    _, with_test = transfer_points(grid, pair.depth0, pair.K, pose, pair.depth1)
    assert with_test.sum() < without_test.sum()


def test_pairs_are_a_function_of_the_random_state():
    generator = ParallaxPairGenerator(None, SIZE)
    first, again = (generator.sample(np.random.default_rng(5)) for _ in range(2))
    other = generator.sample(np.random.default_rng(6))
    assert np.array_equal(first.image1, again.image1)
    assert np.array_equal(first.translation, again.translation)
    assert not np.array_equal(first.image1, other.image1)


def test_depth_sample_gives_the_ground_truth_the_renderer_computed():
    pair = ParallaxPairGenerator(None, SIZE).sample(np.random.default_rng(1))
    sample = depth_sample(pair)
    warped = warp_by_depth(
        torch.from_numpy(pair.points0).float(),
        sample.depth0[None],
        sample.K0[None],
        sample.K1[None],
        sample.T_0to1[None],
    )
    assert warped.valid.all()
    assert torch.allclose(warped.points[0].double(), torch.from_numpy(pair.points1), atol=1e-3)
    assert sample.image0.shape == (1, SIZE[1], SIZE[0]) and float(sample.image0.max()) <= 1.0


def test_invalid_motion_ranges_are_rejected():
    with pytest.raises(ConfigError, match="translation"):
        MotionRange(translation_m=(0.5, 0.1))
    with pytest.raises(ConfigError, match="min_overlap"):
        MotionRange(min_overlap=1.0)

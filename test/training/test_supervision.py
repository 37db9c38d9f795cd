"""Coarse and fine ground truth against analytic cases; the GT padding trick."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_ros.model.edm import TopK
from edm_ros.training.data import DepthBatch, HomographyBatch, ground_truth
from edm_ros.training.supervision import (
    fine_targets,
    grid_points,
    pad_with_ground_truth,
)

WIDTH, HEIGHT = 160, 128
GRID_H, GRID_W = HEIGHT // 8, WIDTH // 8


def homography_batch(H: np.ndarray, batch: int = 1, valid1: torch.Tensor | None = None):
    images = torch.zeros(batch, 1, HEIGHT, WIDTH)
    valid = torch.ones(batch, HEIGHT, WIDTH, dtype=torch.bool)
    return HomographyBatch(
        images,
        images,
        valid,
        valid if valid1 is None else valid1,
        torch.as_tensor(H, dtype=torch.float64).expand(batch, 3, 3).clone(),
    )


def translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def expected_translation_matches(shift_cells: tuple[int, int]) -> dict[int, int]:
    """Row -> col for a translation by whole cells (dx, dy) cells."""
    dx, dy = shift_cells
    return {
        r * GRID_W + c: (r + dy) * GRID_W + (c + dx)
        for r in range(GRID_H)
        for c in range(GRID_W)
        if 0 <= c + dx < GRID_W and 0 <= r + dy < GRID_H
    }


def matches_of(truth) -> dict[int, int]:
    rows = torch.nonzero(truth.match_of_row[0] >= 0).flatten()
    return {int(r): int(truth.match_of_row[0, r]) for r in rows}


def test_grid_points_are_cell_top_left_corners():
    points = grid_points((2, 3))
    assert points.tolist() == [[0, 0], [8, 0], [16, 0], [0, 8], [8, 8], [16, 8]]


def test_translation_by_whole_cells_gives_shifted_cells_and_zero_offsets():
    truth = ground_truth(homography_batch(translation(16, 8)))
    assert matches_of(truth) == expected_translation_matches((2, 1))
    _, rows, cols = truth.positives()
    targets = fine_targets(truth, rows[None], cols[None], GRID_W)
    assert targets.supervised.all()
    assert torch.allclose(targets.offsets, torch.zeros_like(targets.offsets), atol=1e-6)


def test_translation_by_a_fraction_of_a_cell_gives_the_exact_sub_cell_offsets():
    # x: 19 px = 2.375 cells -> cell +2, residual +3 px; y: 5 px = 0.625 cell -> +1, residual -3 px.
    truth = ground_truth(homography_batch(translation(19, 5)))
    assert matches_of(truth) == expected_translation_matches((2, 1))
    _, rows, cols = truth.positives()
    targets = fine_targets(truth, rows[None], cols[None], GRID_W)
    k = rows.numel()
    forward, backward = targets.offsets[0, :k], targets.offsets[0, k:]
    assert torch.allclose(forward, torch.tensor([3 / 8, -3 / 8]).expand(k, 2), atol=1e-6)
    assert torch.allclose(backward, torch.tensor([-3 / 8, 3 / 8]).expand(k, 2), atol=1e-6)
    assert targets.supervised.all()


def test_scaling_homography_matches_only_the_cells_it_maps_onto_cell_corners():
    truth = ground_truth(homography_batch(np.diag([2.0, 2.0, 1.0])))
    expected = {
        r * GRID_W + c: (2 * r) * GRID_W + 2 * c
        for r in range(GRID_H)
        for c in range(GRID_W)
        if 2 * c < GRID_W and 2 * r < GRID_H
    }
    assert matches_of(truth) == expected


def test_known_perspective_homography_matches_a_brute_force_reference():
    H = np.array([[0.9, 0.08, 6.0], [-0.05, 1.05, 3.0], [2e-4, -1e-4, 1.0]])
    truth = ground_truth(homography_batch(H))
    points = grid_points((GRID_H, GRID_W)).double().numpy()

    def nearest(points_px: np.ndarray, homography: np.ndarray) -> np.ndarray:
        projected = np.column_stack([points_px, np.ones(len(points_px))]) @ homography.T
        cells = np.floor(projected[:, :2] / projected[:, 2:] / 8 + 0.5).astype(int)
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < GRID_W) & (cells[:, 1] >= 0)
        inside &= cells[:, 1] < GRID_H
        return np.where(inside, cells[:, 1] * GRID_W + cells[:, 0], -1)

    forward, backward = nearest(points, H), nearest(points, np.linalg.inv(H))
    expected = {i: int(j) for i, j in enumerate(forward) if j >= 0 and backward[j] == i}
    assert len(expected) > 150
    assert matches_of(truth) == expected


def test_cells_landing_on_invalid_pixels_have_no_match():
    valid1 = torch.ones(1, HEIGHT, WIDTH, dtype=torch.bool)
    valid1[:, :, 80:] = False  # right half of image 1 shows no content
    truth = ground_truth(homography_batch(translation(16, 8), valid1=valid1))
    cols = torch.tensor(list(matches_of(truth).values()))
    assert len(cols) > 0
    assert ((cols % GRID_W) * 8 < 80).all()


def test_depth_of_a_fronto_parallel_plane_gives_the_translation_ground_truth():
    # Plane at 5 m, camera 1 moved so that X_cam1 = X_cam0 + (0.8, 0.4, 0): shift fx*t/Z = (16, 8).
    K = torch.tensor([[100.0, 0, 80], [0, 100.0, 64], [0, 0, 1]], dtype=torch.float64)[None]
    T_0to1 = torch.eye(4, dtype=torch.float64)[None].clone()
    T_0to1[0, :3, 3] = torch.tensor([0.8, 0.4, 0.0])
    depth = torch.full((1, HEIGHT, WIDTH), 5.0)
    images = torch.zeros(1, 1, HEIGHT, WIDTH)
    truth = ground_truth(DepthBatch(images, images, depth, depth, K, K, T_0to1))
    assert matches_of(truth) == expected_translation_matches((2, 1))


def test_unknown_depth_gives_no_match():
    K = torch.tensor([[100.0, 0, 80], [0, 100.0, 64], [0, 0, 1]], dtype=torch.float64)[None]
    depth = torch.full((1, HEIGHT, WIDTH), 5.0)
    depth[:, :, :40] = 0.0  # no depth in the left quarter of image 0
    images = torch.zeros(1, 1, HEIGHT, WIDTH)
    truth = ground_truth(DepthBatch(images, images, depth, depth.clone(), K, K, torch.eye(4)[None]))
    rows = torch.tensor(list(matches_of(truth)))
    assert ((rows % GRID_W) * 8 >= 40).all()
    assert len(rows) == GRID_H * (GRID_W - 5)


def test_offsets_on_the_window_border_are_not_supervised():
    # 20 px = 2.5 cells: round-half-to-even sends x to cell +2, a residual of exactly +4 px.
    truth = ground_truth(homography_batch(translation(20, 0)))
    rows = torch.tensor([[0]])
    targets = fine_targets(truth, rows, torch.tensor([[2]]), GRID_W)
    assert targets.offsets[0, 0].tolist() == pytest.approx([0.5, 0.0])
    assert not targets.supervised[0, 0]


def wrong_candidates(batch: int, k: int) -> TopK:
    """Candidates that all point to cell 0 of image 1 (outside the window for a translation)."""
    rows = torch.arange(k).expand(batch, k) + 3 * GRID_W
    cols = torch.zeros(batch, k, dtype=torch.long)
    return TopK(rows.clone(), cols, torch.linspace(1, 0.5, k).expand(batch, k).clone())


def test_padding_replaces_the_first_wrong_candidates_until_32_are_in_the_window():
    truth = ground_truth(homography_batch(translation(16, 8), batch=2))
    candidates = wrong_candidates(2, 100)
    generator = torch.Generator().manual_seed(0)
    padded = pad_with_ground_truth(candidates, truth, GRID_W, generator, pad_num=32)
    supervised = fine_targets(truth, padded.rows, padded.cols, GRID_W).supervised[:, :100]
    assert supervised.sum(dim=1).tolist() == [32, 32]
    assert supervised[:, :32].all() and not supervised[:, 32:].any()
    assert (padded.confidence[:, :32] == 0).all()
    assert torch.equal(padded.confidence[:, 32:], candidates.confidence[:, 32:])
    assert padded.rows.shape == candidates.rows.shape  # K is fixed
    expected = expected_translation_matches((2, 1))
    assert all(expected[int(r)] == int(c) for r, c in zip(padded.rows[0, :32], padded.cols[0, :32]))


def test_padding_leaves_pairs_with_enough_supervised_candidates_alone():
    truth = ground_truth(homography_batch(translation(16, 8)))
    _, rows, cols = truth.positives()
    candidates = TopK(rows[None, :40], cols[None, :40], torch.ones(1, 40))
    padded = pad_with_ground_truth(candidates, truth, GRID_W, pad_num=32)
    assert all(torch.equal(a, b) for a, b in zip(padded, candidates))


def test_padding_is_bounded_by_the_number_of_ground_truth_matches():
    valid1 = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.bool)
    valid1[:, 60:77, 60:77] = True  # only a few cells of image 1 have content
    truth = ground_truth(homography_batch(translation(16, 8), valid1=valid1))
    available = int((truth.match_of_row >= 0).sum())
    assert 0 < available < 32
    padded = pad_with_ground_truth(wrong_candidates(1, 100), truth, GRID_W, pad_num=32)
    supervised = fine_targets(truth, padded.rows, padded.cols, GRID_W).supervised[:, :100]
    assert int(supervised.sum()) == available

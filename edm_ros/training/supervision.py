"""Ground truth for training EDM: coarse matches, fine offsets and the GT padding trick.

Coarse (official code): the coarse point of cell i is its top-left pixel 8·(col, row), the
same convention as :func:`edm_ros.model.edm.cell_corners`. It is warped into the other image
(homography, or depth + intrinsics + relative pose) and rounded to the nearest cell. A pair of
cells (i, j) is positive when i goes to j and j comes back to i (cycle-consistent). A warp that is
undefined (no depth, no source content in either view) or leaves the grid yields no cell; the
official code sends those to cell 0 and then excludes cell 0, we mark them invalid instead, so
cell 0 can be a positive.

Fine (§9.3): for a candidate (i, j) the target of the 0 -> 1 row is (warp01(p0_i) - p1_j) / 8 and
of the 1 -> 0 row (warp10(p1_j) - p0_i) / 8, in cells; a row is supervised when both components
lie strictly inside the ±4 px window.

Shape letters as in edm.py: ``B`` pairs, ``L`` cells per image, ``K`` candidates.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from edm_ros.model.config import COARSE_STRIDE
from edm_ros.model.edm import TopK, cell_corners

#: Half the fine window in pixels: offsets must be strictly inside ±4 px (window 8 // 2).
FINE_WINDOW_HALF_PX = COARSE_STRIDE / 2
#: In-window candidates the GT padding guarantees per pair (official TRAIN_PAD_NUM).
TRAIN_PAD_NUM = 32


class Correspondence(NamedTuple):
    """Where the coarse points of one image land in the other."""

    points: Tensor  # [B, L, 2] network-input pixels of the other image (x, y)
    valid: Tensor  # [B, L] bool: the warp is defined (depth known, content in both views)


class CoarseTruth(NamedTuple):
    """Coarse ground truth of a batch, and the warps the fine targets are read from."""

    forward: Correspondence  # image 0's coarse points in image 1
    backward: Correspondence  # image 1's coarse points in image 0
    match_of_row: Tensor  # [B, L] cell of image 1 matched to each cell of image 0, -1 if none

    def positives(self) -> tuple[Tensor, Tensor, Tensor]:
        """(batch, row, col) index vectors [P] of the positive entries of the confidence matrix."""
        batch, row = torch.nonzero(self.match_of_row >= 0, as_tuple=True)
        return batch, row, self.match_of_row[batch, row]


class FineTargets(NamedTuple):
    """Targets for the 2K head rows (0 -> 1 rows first, as :meth:`EDM.refine` orders them)."""

    offsets: Tensor  # [B, 2K, 2] cells, inside (-0.5, 0.5) where supervised
    supervised: Tensor  # [B, 2K] bool: warp defined and both components inside the window


def grid_points(grid_size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """Coarse points 8·(col, row) of a (Hc, Wc) grid, row-major: [L, 2] float32 pixels."""
    height, width = grid_size
    cells = torch.arange(height * width, device=device)
    return cell_corners(cells[None], width)[0]


def warp_by_homography(
    points: Tensor,
    homography: Tensor,
    valid_source: Tensor,
    valid_target: Tensor,
) -> Correspondence:
    """Warp pixels with per-pair homographies.

    Args:
        points: [L, 2] pixels of the source image (shared by the batch).
        homography: [B, 3, 3] source pixels -> target pixels.
        valid_source, valid_target: [B, H, W] bool masks of pixels with content.

    Returns:
        Warped points [B, L, 2]; valid where the source pixel has content and the target pixel
        nearest to the warped point has content.
    """
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1).to(homography)
    projected = torch.einsum("bij,lj->bli", homography, homogeneous)  # [B, L, 3]
    depth = projected[..., 2:]
    warped = projected[..., :2] / torch.where(depth.abs() > 1e-12, depth, torch.ones_like(depth))
    valid = (depth[..., 0] > 0) & _sample_mask(valid_source, points[None].expand_as(warped))
    valid &= _sample_mask(valid_target, warped)
    return Correspondence(warped.float(), valid)


def warp_by_depth(
    points: Tensor,
    depth_source: Tensor,
    K_source: Tensor,
    K_target: Tensor,
    T_source_to_target: Tensor,
) -> Correspondence:
    """Warp pixels with depth, intrinsics and relative pose (LoFTR-style, no occlusion test).

    Args:
        points: [L, 2] pixels of the source image.
        depth_source: [B, H, W] depth in the source camera, same pixels as ``points``; 0 = unknown.
        K_source, K_target: [B, 3, 3] intrinsics in network-input pixels.
        T_source_to_target: [B, 4, 4] with X_target = R X_source + t.

    Returns:
        Warped points [B, L, 2]; valid where the depth is known and the point lies in front of the
        target camera. The depth-consistency (occlusion) test is deliberately not applied (official
        code: it "leads to worse results" for the coarse ground truth).
    """
    column = points[:, 0].round().long().clamp(0, depth_source.shape[2] - 1)
    row = points[:, 1].round().long().clamp(0, depth_source.shape[1] - 1)
    depth = depth_source[:, row, column].double()  # [B, L]
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1).double()
    rays = torch.einsum("bij,lj->bli", torch.linalg.inv(K_source.double()), homogeneous)
    camera_points = rays * depth[..., None]
    T = T_source_to_target.double()
    moved = torch.einsum("bij,blj->bli", T[:, :3, :3], camera_points) + T[:, None, :3, 3]
    projected = torch.einsum("bij,blj->bli", K_target.double(), moved)
    z = projected[..., 2:]
    warped = projected[..., :2] / torch.where(z > 1e-9, z, torch.ones_like(z))
    valid = (depth > 0) & (z[..., 0] > 1e-9)
    return Correspondence(warped.float(), valid)


def _sample_mask(mask: Tensor, points: Tensor) -> Tensor:
    """mask [B, H, W] at the nearest image pixel of points [B, L, 2] (clamped to the image).

    Clamping keeps points up to half a cell outside the image, whose nearest cell is still on
    the grid (the official ground truth only checks the cell); farther points leave the grid and
    are rejected by :func:`nearest_cell`.
    """
    height, width = mask.shape[-2:]
    column = points[..., 0].round().long().clamp(0, width - 1)
    row = points[..., 1].round().long().clamp(0, height - 1)
    return torch.gather(mask.flatten(1), 1, (row * width + column).view(mask.shape[0], -1))


def nearest_cell(correspondence: Correspondence, grid_size: tuple[int, int]) -> Tensor:
    """Cell index [B, L] each warped point rounds to; -1 if invalid or off the grid."""
    height, width = grid_size
    cell = torch.round(correspondence.points / COARSE_STRIDE).long()  # [B, L, 2] (col, row)
    inside = (cell[..., 0] >= 0) & (cell[..., 0] < width) & (cell[..., 1] >= 0)
    inside &= cell[..., 1] < height
    index = cell[..., 1] * width + cell[..., 0]
    return torch.where(inside & correspondence.valid, index, torch.full_like(index, -1))


def coarse_ground_truth(
    forward: Correspondence, backward: Correspondence, grid_size: tuple[int, int]
) -> CoarseTruth:
    """Cycle-consistent coarse matches from the warps in both directions.

    Args:
        forward: image 0's grid points warped into image 1 ([B, L] points).
        backward: image 1's grid points warped into image 0.
        grid_size: (Hc, Wc) of both images.
    """
    cell01 = nearest_cell(forward, grid_size)  # [B, L0]
    cell10 = nearest_cell(backward, grid_size)  # [B, L1]
    rows = torch.arange(cell01.shape[1], device=cell01.device).expand_as(cell01)
    comes_back = torch.gather(cell10, 1, cell01.clamp(min=0)) == rows
    match_of_row = torch.where((cell01 >= 0) & comes_back, cell01, torch.full_like(cell01, -1))
    return CoarseTruth(forward, backward, match_of_row)


def fine_targets(truth: CoarseTruth, rows: Tensor, cols: Tensor, grid_width: int) -> FineTargets:
    """Fine targets of candidates (rows[b, k] in image 0, cols[b, k] in image 1).

    Returns:
        Offsets [B, 2K, 2] in cells (0 -> 1 rows, then 1 -> 0 rows) and their supervision mask.
    """
    corners0, corners1 = cell_corners(rows, grid_width), cell_corners(cols, grid_width)
    forward, backward = truth.forward, truth.backward
    offsets01 = _gather_rows(forward.points, rows) - corners1
    offsets10 = _gather_rows(backward.points, cols) - corners0
    offsets = torch.cat([offsets01, offsets10], dim=1) / COARSE_STRIDE
    defined = torch.cat(
        [torch.gather(forward.valid, 1, rows), torch.gather(backward.valid, 1, cols)], dim=1
    )
    inside = (offsets.abs() < FINE_WINDOW_HALF_PX / COARSE_STRIDE).all(dim=-1)
    return FineTargets(offsets, defined & inside)


def _gather_rows(values: Tensor, index: Tensor) -> Tensor:
    """values [B, L, C], index [B, K] -> [B, K, C]."""
    return torch.gather(values, 1, index[..., None].expand(-1, -1, values.shape[-1]))


def pad_with_ground_truth(
    candidates: TopK,
    truth: CoarseTruth,
    grid_width: int,
    generator: torch.Generator | None = None,
    pad_num: int = TRAIN_PAD_NUM,
) -> TopK:
    """The supplementary's trick: make sure every pair has ``pad_num`` supervised candidates.

    Per pair, count candidates whose 0 -> 1 target lies inside the ±4 px window. If fewer than
    ``pad_num``, replace candidates outside the window (in top-K order, most confident first) by
    randomly chosen ground-truth matches until the count would reach ``pad_num`` (as far as there
    are ground-truth matches); replaced entries get confidence 0. K does not change.

    Args:
        candidates: top-K rows, cols and confidence, [B, K] each.
        truth: the batch's coarse ground truth.
        grid_width: Wc.
        generator: CPU random source of the choice of ground-truth matches (None: torch's global).
        pad_num: official TRAIN_PAD_NUM = 32.
    """
    rows, cols, confidence = (t.clone() for t in candidates)
    num_candidates = rows.shape[1]
    in_window = fine_targets(truth, rows, cols, grid_width).supervised[:, :num_candidates]
    for b in range(rows.shape[0]):
        truth_rows = torch.nonzero(truth.match_of_row[b] >= 0).flatten()
        outside = torch.nonzero(~in_window[b]).flatten()
        missing = pad_num - int(in_window[b].sum())
        count = min(missing, len(truth_rows), len(outside))
        if count <= 0:
            continue
        order = torch.randperm(len(truth_rows), generator=generator)[:count]  # CPU generator
        chosen = truth_rows[order.to(truth_rows.device)]
        slots = outside[:count]
        rows[b, slots] = chosen
        cols[b, slots] = truth.match_of_row[b, chosen]
        confidence[b, slots] = 0.0
    return TopK(rows, cols, confidence)

"""Parity of the PyTorch EDM with the official implementation (../shared/parity fixtures)."""

from __future__ import annotations

import pytest
import torch

from edm_ros.model import edm as edm_module
from edm_ros.model.checkpoint import load_weights
from edm_ros.model.config import EDMConfig, num_candidates
from edm_ros.model.edm import (
    EDM,
    EXP_FLUSH,
    dual_softmax,
    dual_softmax_row_max,
    rope_tables,
    row_max,
    row_max_and_runner_up,
    select_top_k,
    similarity,
)
from test.conftest import PARITY_SIZES, load_parity_fixture

DENSE = {"atol": 1e-4, "rtol": 1e-4}  # tolerance of the parity README for dense tensors


@pytest.fixture(scope="module")
def model(parity_weights) -> EDM:
    edm = EDM().eval()
    load_weights(edm, parity_weights)
    return edm


@pytest.fixture(scope="module", params=PARITY_SIZES)
def run(request, model):
    """Every intermediate of our model on one fixture's images."""
    return compute_run(request.param, model)


@pytest.fixture(scope="module")
def run_with_dense_tensors(model):
    """The fixture that also stores backbone and CIM tensors (320x256)."""
    return compute_run("320x256", model)


def compute_run(size: str, model: EDM):
    fixture = load_parity_fixture(size)
    image0, image1 = fixture["image0"], fixture["image1"]
    size = tuple(image0.shape[-2:])
    with torch.inference_mode():
        f8, f16, f32, fine = model.backbone(torch.cat([image0, image1]))
        cim32 = model.neck.loftr_32(*model.neck.fc32(f32).split(1), size)
        coarse0, coarse1 = model.neck(f8, f16, f32, size)
        flat0, flat1 = (c.flatten(2).transpose(1, 2) for c in (coarse0, coarse1))
        row_max, row_argmax = dual_softmax_row_max(flat0, flat1, 0.1)
        col_max, col_argmax = dual_softmax(flat0, flat1, 0.1).max(dim=1)
        candidates = model(image0, image1)
        fine0, fine1 = fine.flatten(2).transpose(1, 2).chunk(2)
        official_rows = model.refine(
            flat0, flat1, fine0, fine1, fixture["i_ids"][None], fixture["j_ids"][None]
        )
    return fixture, {
        "backbone": dict(zip(("f8", "f16", "f32", "f8_fine"), (f8, f16, f32, fine))),
        "cim32": cim32,
        "coarse_feats": (coarse0, coarse1),
        "row": (row_max, row_argmax),
        "col": (col_max, col_argmax),
        "candidates": candidates,
        "head_on_official_ids": official_rows,
    }


def test_backbone_matches_official(run_with_dense_tensors):
    fixture, ours = run_with_dense_tensors
    for name, tensor in fixture["backbone"].items():
        torch.testing.assert_close(ours["backbone"][name], tensor, **DENSE, msg=name)


def test_attention_and_cim_match_official(run_with_dense_tensors):
    fixture, ours = run_with_dense_tensors
    for mine, theirs in zip(ours["cim32"], fixture["cim32"]):
        torch.testing.assert_close(mine, theirs, **DENSE)
    for mine, theirs in zip(ours["coarse_feats"], fixture["coarse_feats"]):
        torch.testing.assert_close(mine, theirs, **DENSE)


def test_dual_softmax_row_and_column_maxima_match_official(run):
    fixture, ours = run
    row_max, row_argmax = ours["row"]
    col_max, col_argmax = ours["col"]
    torch.testing.assert_close(row_max, fixture["conf_row_max"], **DENSE)
    torch.testing.assert_close(col_max, fixture["conf_col_max"], **DENSE)
    assert torch.equal(row_argmax, fixture["conf_row_argmax"])
    assert torch.equal(col_argmax, fixture["conf_col_argmax"])


def test_top_k_pairs_equal_official_set(run):
    fixture, ours = run
    candidates = ours["candidates"]
    grid_width = fixture["W"] // 8
    cells0 = (candidates.points0[0, :, 1] / 8 * grid_width + candidates.points0[0, :, 0] / 8).long()
    cells1 = (candidates.points1[0, :, 1] / 8 * grid_width + candidates.points1[0, :, 0] / 8).long()
    assert candidates.points0.shape == (1, fixture["topk"], 2)
    official = set(zip(fixture["i_ids"].tolist(), fixture["j_ids"].tolist()))
    assert set(zip(cells0.tolist(), cells1.tolist())) == official
    torch.testing.assert_close(candidates.confidence[0], fixture["deploy_output"][:, 10], **DENSE)


def test_fine_head_on_official_candidates_matches(run):
    fixture, ours = run
    refined = ours["head_on_official_ids"]
    torch.testing.assert_close(refined.offsets[0], fixture["pred_coord"], **DENSE)
    torch.testing.assert_close(refined.fine_confidence[0], fixture["pred_score"], **DENSE)


def test_candidates_equal_official_deploy_output_row_by_row(run):
    """Rows are compared by (cell0, cell1) pair: near-tied rows may be ordered differently."""
    fixture, ours = run
    c = ours["candidates"]
    mine = torch.cat(
        [
            c.points0[0],
            c.points1[0],
            c.offsets01[0],
            c.offsets10[0],
            c.fine_confidence01[0, :, None],
            c.fine_confidence10[0, :, None],
            c.confidence[0, :, None],
        ],
        dim=1,
    )
    official = fixture["deploy_output"]
    assert mine.shape == official.shape

    def by_pair(rows: torch.Tensor) -> torch.Tensor:
        cells = rows[:, :4].double()
        key = cells[:, 0] + 1e4 * cells[:, 1] + 1e8 * cells[:, 2] + 1e12 * cells[:, 3]
        return rows[torch.argsort(key)]

    torch.testing.assert_close(by_pair(mine), by_pair(official), atol=1e-4, rtol=0)


@pytest.mark.parametrize("slice_rows", [1, 16, None])
def test_chunked_coarse_matching_equals_one_piece(slice_rows, monkeypatch):
    """Row blocks and, within them, row slices of any size give the one-piece maxima."""
    if slice_rows is not None:
        monkeypatch.setattr(edm_module, "SLICE_ELEMENTS", slice_rows * 280)
    torch.manual_seed(0)
    feat0, feat1 = torch.randn(2, 300, 64) * 3, torch.randn(2, 280, 64) * 3
    whole = dual_softmax_row_max(feat0, feat1, 0.1)
    chunked = dual_softmax_row_max(feat0, feat1, 0.1, chunk_rows=37)
    torch.testing.assert_close(chunked[0], whole[0], atol=1e-6, rtol=1e-4)
    assert torch.equal(chunked[1], whole[1])
    full = dual_softmax(feat0, feat1, 0.1)
    torch.testing.assert_close(whole[0], full.max(dim=2).values, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("columns", [4800, 1296, 96, 50])
def test_row_max_is_torch_max_with_the_first_index_of_ties(columns):
    torch.manual_seed(0)
    x = torch.randn(2, 30, columns).round(decimals=1)  # many exact ties
    x[0, 3, -1] = x[0, 3, 0] = x[0, 3].max() + 1
    values, indices = row_max(x)
    expected = x.max(dim=-1)
    assert torch.equal(values, expected.values)
    assert torch.equal(indices, expected.indices)
    assert indices[0, 3] == 0
    with_runner_up = row_max_and_runner_up(x)
    assert torch.equal(with_runner_up[0], values) and torch.equal(with_runner_up[1], indices)
    assert torch.equal(with_runner_up[2], x.topk(2, dim=-1).values[..., 1])
    assert with_runner_up[2][0, 3] == values[0, 3], "a repeated maximum is its own runner-up"


def test_chunked_top_k_is_exact_for_the_rows_it_keeps():
    """With top_k, only rows that can reach the K-th confidence get their exact maxima: the
    top K (rows, best columns, confidences) stay those of the exact path."""
    torch.manual_seed(0)
    feat0 = torch.randn(2, 400, 64)
    feat1 = feat0[:, torch.randperm(400)[:380]] + 0.8 * torch.randn(2, 380, 64)
    exact = dual_softmax_row_max(feat0, feat1, 0.1, chunk_rows=37)
    pruned = dual_softmax_row_max(feat0, feat1, 0.1, chunk_rows=37, top_k=140)
    assert not torch.equal(pruned[0], exact[0]), "the case should leave some rows inexact"
    assert (pruned[0] <= exact[0]).all(), "the others keep a lower bound"
    kept, expected = select_top_k(*pruned, 140), select_top_k(*exact, 140)
    assert torch.equal(kept.confidence, expected.confidence)
    by_row = [
        dict(zip(t.rows[b].tolist(), t.cols[b].tolist())) for t in (kept, expected) for b in (0, 1)
    ]
    assert by_row[:2] == by_row[2:]


def test_large_inputs_in_row_chunks_give_the_one_piece_candidates(model, monkeypatch):
    """The parity pair as EDM matches it when the similarity matrix is too large for one piece
    (row chunks, exact maxima only for rows that can make the top K): the same candidates."""
    fixture = load_parity_fixture("640x480")
    images = fixture["image0"], fixture["image1"]
    with torch.inference_mode():
        whole = model(*images)
        monkeypatch.setattr(edm_module, "COARSE_CHUNK_ELEMENTS", 4800 * 4800 // 4)
        chunked = model(*images)
    pairs = [
        set(zip(map(tuple, c.points0[0].tolist()), map(tuple, c.points1[0].tolist())))
        for c in (whole, chunked)
    ]
    assert pairs[0] == pairs[1]
    torch.testing.assert_close(chunked.confidence, whole.confidence, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("chunk_rows", [None, 7])
def test_row_max_does_not_overflow_where_exp_would(chunk_rows):
    """The official exp / L1-normalise form gives inf/NaN for similarities > ~88."""
    feat = torch.randn(1, 50, 32) * 40.0
    values, indices = dual_softmax_row_max(feat, feat, 0.1, chunk_rows)
    assert torch.isfinite(values).all() and (values <= 1.0 + 1e-6).all()
    assert torch.equal(indices[0], torch.arange(50)), "each feature matches itself"


@pytest.mark.parametrize("chunk_rows", [None, 37])
def test_row_max_is_exact_where_exp_of_the_spread_would_be_subnormal(chunk_rows):
    """Entries below exp(EXP_FLUSH) taken as 0 leave the row maxima as float64 computes them
    (confidences under 1e-6 are float32 noise in any formulation: the official one underflows)."""
    torch.manual_seed(0)
    feat0, feat1 = torch.randn(1, 400, 64) * 4, torch.randn(1, 380, 64) * 4
    sim = similarity(feat0, feat1, 0.1)
    assert sim.max() - sim.min() > 2 * -EXP_FLUSH, "the case needs a spread past float32's exp"
    reference = dual_softmax(feat0.double(), feat1.double(), 0.1).max(dim=2)
    values, indices = dual_softmax_row_max(feat0, feat1, 0.1, chunk_rows)
    torch.testing.assert_close(values, reference.values.float(), rtol=1e-4, atol=1e-6)
    confident = reference.values > 1e-6
    assert confident.sum() > 100
    assert torch.equal(indices[confident], reference.indices[confident])


@pytest.mark.parametrize("slice_rows", [5, None])
@pytest.mark.parametrize("wide_gain", [1.0, 12.0])
def test_narrow_and_wide_row_chunks_give_float64_row_maxima(wide_gain, slice_rows, monkeypatch):
    """Slices whose similarities spread less than -EXP_FLUSH take both log-sums from one exp,
    the others from two; either way, alone or mixed, the row maxima are float64's to 1e-4."""
    if slice_rows is not None:
        monkeypatch.setattr(edm_module, "SLICE_ELEMENTS", slice_rows * 380)
    torch.manual_seed(0)
    feat0, feat1 = torch.randn(1, 400, 64), torch.randn(1, 380, 64)
    feat0[:, 222:] *= wide_gain  # 12: the chunks of these rows spread past float32's exp range
    sim = similarity(feat0, feat1, 0.1)[0]
    narrow, rest = sim[:185], sim[222:]
    assert narrow.max() - narrow.min() < -EXP_FLUSH
    assert (rest.max() - rest.min() > -EXP_FLUSH) == (wide_gain > 1.0)
    reference = dual_softmax(feat0.double(), feat1.double(), 0.1).max(dim=2)
    values, indices = dual_softmax_row_max(feat0, feat1, 0.1, chunk_rows=37)
    representable = reference.values > 1e-30  # float32 keeps their relative precision
    assert representable[0, 222:].sum() > 100
    log_values = values.double().log()[representable]
    torch.testing.assert_close(log_values, reference.values.log()[representable], rtol=0, atol=1e-4)
    assert torch.equal(indices[representable], reference.indices[representable])


def test_log_sums_over_arguments_clamped_to_the_flush_equal_float64():
    """Arguments below EXP_FLUSH are clamped, not set to 0: the log-sums stay float64's."""
    torch.manual_seed(0)
    x = torch.randn(1, 64, 300) * 60.0  # spread of hundreds: most exps would be subnormal
    assert x.amax() - x.amin() > 4 * -EXP_FLUSH
    for dim in (1, 2):
        got = edm_module._logsumexp(x, dim, x.amax(dim=dim), torch.empty_like(x))
        reference = torch.logsumexp(x.double(), dim)
        torch.testing.assert_close(got.double(), reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_forward_shapes_follow_batch_and_topk_ratio(batch):
    torch.manual_seed(0)
    model = EDM(topk_ratio=0.25).eval()
    with torch.inference_mode():
        out = model(torch.rand(batch, 1, 64, 96), torch.rand(batch, 1, 64, 96))
    k = num_candidates((96, 64), 0.25)
    assert k == int(8 * 12 * 0.25)
    assert out.points0.shape == (batch, k, 2) and out.offsets10.shape == (batch, k, 2)
    assert out.confidence.shape == (batch, k)
    assert (out.confidence[:, :-1] >= out.confidence[:, 1:]).all(), "sorted descending"
    assert out.offsets01.abs().max() <= 0.5 and (out.fine_confidence01 <= 1).all()


def test_batched_forward_equals_single_forwards(model):
    torch.manual_seed(1)
    images0, images1 = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        batched = model(images0, images1)
        single = model(images0[1:], images1[1:])
    torch.testing.assert_close(batched.offsets01[1:], single.offsets01, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.confidence[1:], single.confidence, atol=1e-6, rtol=1e-4)


def test_rope_positions_follow_input_size():
    """NPE: positions are normalised by the actual input size, 1-based, tables in float16."""
    cos_a, sin_a = rope_tables((2, 3), (256, 320), (832, 832), 256)
    assert cos_a.dtype == torch.float16 and cos_a.shape == (1, 2, 3, 256)
    # Channel 0 rotates by row angle i * f_0 with f_0 = 1 and i = 1 * 832 / 256 at the first row.
    assert float(sin_a[0, 0, 0, 0]) == pytest.approx(
        torch.sin(torch.tensor(832 / 256)).item(), abs=1e-3
    )
    # Channel 2 rotates by the column angle: second column j = 2 * 832 / 320.
    assert float(sin_a[0, 0, 1, 2]) == pytest.approx(
        torch.sin(torch.tensor(2 * 832 / 320)).item(), abs=1e-3
    )
    cos_b, _ = rope_tables((2, 3), (480, 640), (832, 832), 256)
    assert not torch.equal(cos_a, cos_b)


def test_parameter_count_matches_the_paper():
    """10.24 M parameters at inference (official code without the training-only flow)."""
    assert sum(p.numel() for p in EDM(EDMConfig()).parameters()) == 10_243_332


def test_pairs_sharing_an_image_match_like_separate_pairs(model):
    """A stereo frame: [previous left, left, right], pairs left-right and previous-left."""
    torch.manual_seed(2)
    images = torch.rand(3, 1, 64, 96)
    with torch.inference_mode():
        shared = model.match_pairs(images, torch.tensor([[1, 2], [0, 1]]))
        separate = model(images[[1, 0]], images[[2, 1]])
    for mine, theirs in zip(shared, separate):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)


def test_backbone_on_a_batch_equals_one_image_at_a_time(model):
    torch.manual_seed(3)
    images = torch.rand(5, 1, 64, 64)
    with torch.inference_mode():
        batched = model.backbone(images)
        whole = [model.backbone(images[i : i + 1]) for i in range(5)]
    for level, pieces in zip(batched, zip(*whole)):
        torch.testing.assert_close(level, torch.cat(pieces), atol=1e-5, rtol=1e-5)

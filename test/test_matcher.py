"""EDMMatcher: the public inference API on numpy images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edm_ros import EDMMatcher, InputError, MatcherConfig
from edm_ros.errors import ConfigError
from test.conftest import PARITY_SIZES, load_parity_fixture


def fixture_images(fixture: dict) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's network inputs as the uint8 images they were made from."""
    return tuple(  # type: ignore[return-value]
        np.round(fixture[key][0, 0].numpy() * 255).astype(np.uint8) for key in ("image0", "image1")
    )


@pytest.fixture(scope="module")
def matchers(parity_weights) -> dict:
    return {
        size: EDMMatcher(parity_weights, input_size=tuple(int(s) for s in size.split("x")))
        for size in PARITY_SIZES
    }


def assert_same_matches(result, keypoints0, keypoints1, confidence) -> None:
    assert len(result) == len(keypoints0)
    mine, theirs = np.lexsort(result.keypoints0.T), np.lexsort(keypoints0.T)
    np.testing.assert_allclose(result.keypoints0[mine], keypoints0[theirs], atol=1e-3, rtol=0)
    np.testing.assert_allclose(result.keypoints1[mine], keypoints1[theirs], atol=1e-3, rtol=0)
    np.testing.assert_allclose(result.confidence[mine], confidence[theirs], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", PARITY_SIZES)
def test_match_returns_exactly_the_official_final_matches(matchers, size):
    fixture = load_parity_fixture(size)
    result = matchers[size].match(*fixture_images(fixture))
    assert len(result) > 0
    assert_same_matches(
        result, fixture["mkpts0_f"].numpy(), fixture["mkpts1_f"].numpy(), fixture["mconf"].numpy()
    )
    assert result.image0_size == (fixture["W"], fixture["H"])
    assert (np.diff(result.confidence) <= 0).all(), "sorted by confidence"
    assert result.keypoints0.dtype == np.float32 and result.fine_confidence.shape == (len(result),)
    assert ((result.fine_confidence > 0) & (result.fine_confidence <= 1)).all()


def test_keypoints_map_back_to_original_pixels_per_axis(matchers):
    fixture = load_parity_fixture("320x256")
    image0, image1 = fixture_images(fixture)
    # 2x wider and 3x taller by pixel replication: area-resizing back gives the same network input.
    big0, big1 = (np.repeat(np.repeat(im, 3, axis=0), 2, axis=1) for im in (image0, image1))
    result = matchers["320x256"].match(big0, big1)
    scale = np.array([2.0, 3.0], np.float32)
    assert_same_matches(
        result,
        fixture["mkpts0_f"].numpy() * scale,
        fixture["mkpts1_f"].numpy() * scale,
        fixture["mconf"].numpy(),
    )
    assert result.image1_size == (640, 768)


def test_colour_images_are_matched_as_grey(matchers):
    fixture = load_parity_fixture("320x256")
    grey0, grey1 = fixture_images(fixture)
    bgr0, bgra1 = np.dstack([grey0] * 3), np.dstack([grey1] * 3 + [np.full_like(grey1, 255)])
    grey = matchers["320x256"].match(grey0, grey1)
    colour = matchers["320x256"].match(bgr0, bgra1)
    np.testing.assert_array_equal(colour.keypoints0, grey.keypoints0)


def test_match_batch_equals_single_matches(matchers):
    fixture = load_parity_fixture("320x256")
    image0, image1 = fixture_images(fixture)
    batch = matchers["320x256"].match_batch([(image0, image1), (image1, image0)])
    single = matchers["320x256"].match(image1, image0)
    assert len(batch) == 2
    np.testing.assert_allclose(batch[1].keypoints0, single.keypoints0, atol=1e-3)
    np.testing.assert_allclose(batch[1].confidence, single.confidence, atol=1e-5)
    assert batch[0].inference_ms > 0


def test_input_size_none_rounds_the_image_size_to_32(parity_weights):
    matcher = EDMMatcher(parity_weights, input_size=None, match_threshold=0.0)
    image = np.random.default_rng(0).integers(0, 255, (100, 150), dtype=np.uint8)
    result = matcher.match(image, image)
    # 150x100 -> 160x96: 20x12 cells, K = int(240 * 0.35) candidates before selection.
    assert 0 < len(result) <= 84
    assert result.keypoints0[:, 0].max() <= 150 and result.keypoints0[:, 1].max() <= 100


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64), np.int32), "unsupported dtype int32"),
        (np.zeros((0, 64), np.uint8), "too small"),
        (np.zeros((1, 1), np.uint8), "1x1 pixels is too small"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
        (np.full((64, 64), 2.0, np.float32), r"lie in \[0, 1\]"),
        (np.zeros((64, 64, 2), np.uint8), r"expected shape \(H, W\)"),
        ([[0, 1], [2, 3]], "expected a numpy array"),
    ],
)
def test_invalid_images_raise_input_error(parity_weights, image, message):
    matcher = EDMMatcher(parity_weights, input_size=(64, 64))
    good = np.zeros((64, 64), np.uint8)
    with pytest.raises(InputError, match=message):
        matcher.match(good, image)
    with pytest.raises(ValueError, match=message):  # InputError is a ValueError
        matcher.match(image, good)


def test_invalid_batches_and_settings_raise(parity_weights):
    matcher = EDMMatcher(parity_weights, input_size=(64, 64))
    with pytest.raises(InputError, match="non-empty sequence"):
        matcher.match_batch([])
    with pytest.raises(InputError, match="pair 1: expected a tuple"):
        matcher.match_batch([(np.zeros((8, 8), np.uint8),) * 2, np.zeros((8, 8), np.uint8)])
    with pytest.raises(ConfigError, match="multiple of 32"):
        EDMMatcher(parity_weights, input_size=(100, 64))
    with pytest.raises(ConfigError, match="match_threshold"):
        EDMMatcher(parity_weights, match_threshold=1.5)


def test_keyword_settings_are_merged_into_the_given_config():
    base = MatcherConfig(input_size=(64, 64), border=4)
    matcher = EDMMatcher("random", config=base, match_threshold=0.0)
    assert matcher.config == MatcherConfig(input_size=(64, 64), border=4, match_threshold=0.0)
    assert matcher.backend.model.topk_ratio == base.topk_ratio
    assert EDMMatcher("random", "cpu", input_size=(32, 32), config=base).config.input_size == (
        32,
        32,
    )
    with pytest.raises(ConfigError, match="unknown matcher setting"):
        EDMMatcher("random", input_size=(64, 64), threshold=0.1)


def test_random_weights_say_so_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    matcher = EDMMatcher("random", input_size=(64, 64))
    assert torch.equal(state, torch.random.get_rng_state())
    assert matcher.random_weights and "RANDOM weights" in matcher.weights_description
    again = EDMMatcher("random", input_size=(64, 64))
    first = next(matcher.backend.model.parameters())
    assert torch.equal(first, next(again.backend.model.parameters())), "seeded"


def test_a_checkpoint_whose_note_says_random_is_reported_as_random(matchers):
    matcher = matchers["320x256"]
    assert matcher.random_weights
    assert matcher.weights_description.startswith("RANDOM weights from checkpoint")
    assert "meaningless" in matcher.weights_description

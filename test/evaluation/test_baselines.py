"""SIFT and ORB behind EDMMatcher's interface, and the matcher factory."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.errors import ConfigError, InputError
from edm_ros.evaluation.baselines import ORBMatcher, SIFTMatcher, build_matcher
from edm_ros.evaluation.metrics import transfer_errors_px
from test.evaluation.test_metrics import GRAFFITI_H_1_2


@pytest.fixture(scope="module")
def graffiti_pair(data_dir) -> tuple[np.ndarray, np.ndarray]:
    folder = data_dir / "hpatches_v_graffiti"
    return tuple(cv2.imread(str(folder / f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in (1, 2))  # type: ignore[return-value]


@pytest.mark.parametrize("matcher_class", [SIFTMatcher, ORBMatcher])
def test_matches_of_a_real_planar_pair_follow_the_homography(graffiti_pair, matcher_class) -> None:
    result = matcher_class().match(*graffiti_pair)
    assert result.keypoints0.dtype == np.float32 and result.keypoints0.shape[1] == 2
    assert len(result) == len(result.keypoints1) == len(result.confidence) > 100
    assert result.image0_size == (800, 640) and result.inference_ms > 0
    assert ((result.confidence >= 0) & (result.confidence <= 1)).all()
    errors = transfer_errors_px(
        result.keypoints0.astype(float), result.keypoints1.astype(float), GRAFFITI_H_1_2
    )
    assert np.mean(errors < 3.0) > 0.7


def test_colour_and_float_images_are_accepted_like_edm(graffiti_pair) -> None:
    grey = graffiti_pair[0][:200, :200]
    colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    as_float = grey.astype(np.float32) / 255.0
    results = [SIFTMatcher().match(image, image) for image in (grey, colour, as_float)]
    assert len({len(result) for result in results}) == 1


def test_textureless_images_give_no_matches() -> None:
    blank = np.full((120, 160), 100, np.uint8)
    result = SIFTMatcher().match(blank, blank)
    assert len(result) == 0 and result.keypoints0.shape == (0, 2)


def test_invalid_images_raise_input_error() -> None:
    with pytest.raises(InputError, match="expected shape"):
        SIFTMatcher().match(np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        ORBMatcher().match(np.full((10, 10), np.nan, np.float32), np.zeros((10, 10), np.uint8))


def test_batches_are_matched_pair_by_pair(graffiti_pair) -> None:
    crop = graffiti_pair[0][:240, :320]
    results = SIFTMatcher().match_batch([(crop, crop)] * 2)
    assert len(results) == 2 and len(results[0]) == len(results[1]) > 0


def test_factory_names_and_errors(parity_weights) -> None:
    assert build_matcher("sift").name == "sift" and not build_matcher("orb").random_weights
    with pytest.raises(ConfigError, match="matcher 'akaze' unknown"):
        build_matcher("akaze")
    assert "the package's weights" in build_matcher("edm").description  # the default EDM
    with pytest.raises(ConfigError, match=r"ratio: expected a value in \(0, 1\]"):
        SIFTMatcher(ratio=1.5)


def test_edm_with_the_random_test_checkpoint_is_labelled_random(parity_weights) -> None:
    from edm_ros.evaluation.baselines import EDMOptions
    from edm_ros.model.config import MatcherConfig

    named = build_matcher(
        "edm", EDMOptions(parity_weights, config=MatcherConfig(input_size=(160, 128)))
    )
    assert named.random_weights and "RANDOM" in named.description
    result = named.matcher.match(np.zeros((128, 160), np.uint8), np.zeros((128, 160), np.uint8))
    assert result.image0_size == (160, 128)

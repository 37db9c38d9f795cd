"""Homography pair generator: exact geometry, valid masks, augmentation, image folders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.data.homography import (
    HomographyPairGenerator,
    PhotometricRange,
    WarpRange,
    list_images,
    photometric_augmentation,
    render_view,
    visible_fraction,
)
from edm_ros.errors import ConfigError, InputError

SIZE = (160, 128)


def _mean_abs_difference(pair, H_0to1) -> float:
    """Mean |image1 - warp(image0)| where both views show source content."""
    warped = cv2.warpPerspective(pair.image0, H_0to1, SIZE, flags=cv2.INTER_LINEAR)
    warped_valid = cv2.warpPerspective(pair.valid0.astype(np.uint8), H_0to1, SIZE) > 0
    overlap = pair.valid1 & cv2.erode(warped_valid.astype(np.uint8), np.ones((5, 5))).astype(bool)
    return float(np.abs(warped.astype(float) - pair.image1)[overlap].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_views_agree_under_the_returned_homography_and_not_under_a_shifted_one(seed):
    generator = HomographyPairGenerator(None, SIZE, photometric=None)
    pair = generator.sample(np.random.default_rng(seed))
    shifted = np.array([[1, 0, 3], [0, 1, 0], [0, 0, 1]]) @ pair.H_0to1
    exact, wrong = _mean_abs_difference(pair, pair.H_0to1), _mean_abs_difference(pair, shifted)
    assert exact < 4.0, f"views differ by {exact:.1f} grey levels under the true homography"
    assert wrong > 2 * exact


def test_pair_is_a_function_of_the_random_state():
    generator = HomographyPairGenerator(None, SIZE)
    first = generator.sample(np.random.default_rng(7))
    second = generator.sample(np.random.default_rng(7))
    other = generator.sample(np.random.default_rng(8))
    assert np.array_equal(first.image0, second.image0) and np.array_equal(
        first.H_0to1, second.H_0to1
    )
    assert not np.array_equal(first.image1, other.image1)
    assert first.image0.shape == (SIZE[1], SIZE[0]) and first.image0.dtype == np.uint8
    assert first.H_0to1[2, 2] == pytest.approx(1.0)


def test_valid_mask_marks_exactly_the_source_content():
    source = np.full((40, 50), 200, np.uint8)
    view_to_source = np.array([[0.5, 0, -10], [0, 0.5, -10], [0, 0, 1]], float)  # zoom out
    view, valid = render_view(source, view_to_source, (160, 128))
    assert valid[40, 60] and not valid[5, 5] and not valid[120, 150]
    assert np.all(view[~valid] < 200)  # outside (or at the blended edge of) the source
    assert np.all(view[valid] == 200)


def test_generated_views_overlap_at_least_the_requested_fraction():
    warp = WarpRange(min_overlap=0.5)
    generator = HomographyPairGenerator(None, SIZE, warp=warp, photometric=None)
    fractions = []
    for seed in range(6):
        pair = generator.sample(np.random.default_rng(seed))
        fractions.append(visible_fraction(pair.valid0, pair.valid1, pair.H_0to1))
    assert min(fractions) >= 0.5, fractions


def test_photometric_augmentation_keeps_shape_and_changes_intensities():
    image = cv2.resize(np.arange(256, dtype=np.uint8).reshape(16, 16), (64, 64))
    out = photometric_augmentation(image, np.random.default_rng(0), PhotometricRange())
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    # Order-preserving changes dominate: the result still correlates strongly with the input.
    assert np.corrcoef(out.ravel(), image.ravel())[0, 1] > 0.8


def test_generator_reads_a_folder_of_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("0.png", "sub/1.jpg"):
        texture = np.random.default_rng(len(name)).integers(0, 255, (90, 120), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / name), texture)
    (tmp_path / "notes.txt").write_text("not an image")
    paths = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["0.png", "sub/1.jpg"]
    pair = HomographyPairGenerator(paths, (64, 64)).sample(np.random.default_rng(0))
    assert pair.image0.shape == (64, 64)


def test_folder_errors_say_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_invalid_ranges_are_rejected():
    with pytest.raises(ConfigError, match="scale_range"):
        WarpRange(scale_range=(1.2, 0.8))
    with pytest.raises(ConfigError, match="min_overlap"):
        WarpRange(min_overlap=1.0)
    with pytest.raises(ConfigError, match="at least 16x16"):
        HomographyPairGenerator(None, (8, 8))


def test_each_photometric_change_can_be_forced_and_keeps_the_image_usable():
    image = cv2.resize(np.arange(256, dtype=np.uint8).reshape(16, 16), (64, 64))
    always = PhotometricRange(
        vignetting_probability=1.0,
        blur_probability=1.0,
        motion_blur_probability=1.0,
        jpeg_probability=1.0,
        jpeg_quality=(30, 30),
    )
    out = photometric_augmentation(image, np.random.default_rng(1), always)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.corrcoef(out.ravel(), image.ravel())[0, 1] > 0.7
    darker = PhotometricRange(exposure=(0.5, 0.5), brightness=0.0, contrast=(1, 1), gamma=(1, 1))
    dark = photometric_augmentation(image, np.random.default_rng(1), darker)
    assert abs(dark.astype(float).mean() - image.mean() / 2) < 3.0


def test_relative_scale_and_rotation_reach_the_robot_range():
    generator = HomographyPairGenerator(None, SIZE, photometric=None)
    scales, angles = [], []
    for seed in range(40):
        H = generator.sample(np.random.default_rng(seed)).H_0to1
        scales.append(np.sqrt(abs(np.linalg.det(H[:2, :2]))))
        angles.append(np.degrees(np.arctan2(H[1, 0] - H[0, 1], H[0, 0] + H[1, 1])))
    assert min(scales) < 0.75 and max(scales) > 1.35
    assert max(np.abs(angles)) > 25.0


def test_held_aside_sub_folders_are_left_out(tmp_path):
    for name in ("a/0.png", "held/1.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), np.zeros((20, 20), np.uint8))
    assert [p.name for p in list_images(tmp_path, exclude=["held"])] == ["0.png"]

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edm_ros.data.images import read_grey
from edm_ros.errors import InputError


def test_colour_file_is_read_as_the_matcher_converts_bgr(tmp_path):
    bgr = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "colour.png"), bgr)
    grey = read_grey(tmp_path / "colour.png")
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_16_bit_file_is_scaled_to_its_maximum(tmp_path):
    deep = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(read_grey(tmp_path / "deep.png"), [[0, 64], [128, 255]])


def test_missing_or_unreadable_file_says_so(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    for path in (tmp_path / "missing.png", tmp_path / "notes.png"):
        with pytest.raises(InputError, match="cannot read this file as an image"):
            read_grey(path)

"""edm-match and edm-bench from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edm_ros.cli.match import main
from test.conftest import load_parity_fixture


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    fixture = load_parity_fixture("320x256")
    folder = tmp_path_factory.mktemp("pair")
    paths = []
    for key in ("image0", "image1"):
        path = folder / f"{key}.png"
        cv2.imwrite(str(path), np.round(fixture[key][0, 0].numpy() * 255).astype(np.uint8))
        paths.append(path)
    return fixture, paths


def test_edm_match_draws_and_writes_the_official_matches(
    pair_files, parity_weights, tmp_path, capsys
):
    fixture, (image0, image1) = pair_files
    out, matches = tmp_path / "m.png", tmp_path / "m.json"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    code = main(
        [str(image0), str(image1), "--weights", str(parity_weights), "--size", "320x256",
         "--out", str(out), "--json", str(matches)]
    )  # fmt: skip
    assert code == 0
    drawing = cv2.imread(str(out))
    assert drawing.shape == (256, 640, 3)
    saved = json.loads(matches.read_text())
    assert len(saved["keypoints0"]) == len(fixture["mkpts0_f"]) == len(saved["confidence"])
    assert saved["image0_size"] == [320, 256]
    assert "checkpoint" in saved["weights"]
    assert f"{len(fixture['mkpts0_f'])} matches" in capsys.readouterr().out


def test_edm_match_reports_bad_files_without_a_traceback(pair_files, tmp_path, capsys):
    _, (image0, _) = pair_files
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"junk")
    assert main([str(image0), str(image0), "--weights", str(bogus)]) == 1
    assert "unreadable as a torch checkpoint" in capsys.readouterr().err
    assert main([str(image0), str(tmp_path / "none.png"), "--random-weights"]) == 1
    assert "cannot read this file as an image" in capsys.readouterr().err


def test_edm_match_uses_the_shipped_weights_by_default(pair_files, tmp_path, capsys):
    _, (image0, image1) = pair_files
    assert (
        main([str(image0), str(image1), "--size", "160x128", "--out", str(tmp_path / "m.png")]) == 0
    )
    out = capsys.readouterr().out
    assert "weights: the package's weights" in out and "edm_ros_v1.ckpt" in out
    with pytest.raises(SystemExit):  # one weights choice at most
        main([str(image0), str(image1), "--random-weights", "--weights", "w.ckpt"])


def test_bench_reports_stages_memory_and_coarse_comparison(tmp_path):
    out = tmp_path / "bench.json"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    subprocess.run(
        [sys.executable, "-m", "edm_ros.cli.bench", "--sizes", "128x96", "--batches", "1", "2",
         "--runs", "1", "--threads", "1", "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    reports = json.loads(out.read_text())
    assert [r["batch"] for r in reports] == [1, 2]
    first = reports[0]
    assert set(first["stages_ms"]) == {"backbone", "cim", "coarse", "fine"}
    assert first["peak_rss_mb"] > 0 and first["same_top_k"] == 1.0
    assert "the package's weights" in first["weights"]

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
        [
            str(image0),
            str(image1),
            "--weights",
            str(parity_weights),
            "--size",
            "320x256",
            "--out",
            str(out),
            "--json",
            str(matches),
        ]
    )
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


def test_bench_without_the_reference_times_ours_alone(tmp_path):
    out = tmp_path / "bench"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "edm_ros.cli.bench",
            "--sizes",
            "128x96",
            "--stereo-size",
            "128x96",
            "--rounds",
            "2",
            "--runs",
            "1",
            "--threads",
            "1",
            "--backends",
            "torch",
            "--out",
            str(out),
            "--reference",
            str(tmp_path / "absent"),
            "--parity",
            str(tmp_path / "absent"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "absent: timing edm_ros only" in run.stdout
    report = json.loads((out / "bench.json").read_text())
    (row,) = report["rows"]
    assert row["side"] == "edm_ros/torch" and len(row["runs_ms"]) == 2, "one run per round"
    assert set(row["stages_ms"]) == {"backbone", "cim", "coarse", "fine"}
    assert row["peak_rss_mb"] > 0 and row["stereo_over_pair"] > 0
    assert "over_official" not in row
    assert "| 128x96 | edm_ros/torch |" in (out / "bench.md").read_text()


def test_bench_match_check_names_the_difference():
    from edm_ros.cli.bench import same_matches

    ours = {
        "keypoints0": [[1.0, 2.0], [3.0, 4.0]],
        "keypoints1": [[5.0, 6.0], [7.0, 8.0]],
        "confidence": [0.9, 0.5],
    }
    moved = dict(ours, keypoints1=[[5.0, 6.0], [7.0, 8.01]])
    assert same_matches(ours, dict(ours))[0]
    assert not same_matches(ours, moved)[0] and "1.0e-02 px" in same_matches(ours, moved)[1]
    assert same_matches(ours, dict(ours, keypoints0=[[1.0, 2.0]]))[1] == "2 matches against 1"

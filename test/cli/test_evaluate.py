"""edm-eval end to end: EDM with the shipped weights beside the baselines, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from edm_ros.cli.evaluate import main


def evaluate_quietly(out: Path, arguments: list[str]) -> int:
    """edm-eval with ``arguments``, no latency sweep, progress bars or drawings, into ``out``."""
    quiet = ["--no-latency", "--no-progress", "--visualize", "0", "--out", str(out)]
    return main([*arguments, *quiet])


def test_default_run_evaluates_edm_with_the_shipped_weights_and_the_baselines(
    data_dir, tmp_path
) -> None:
    out = tmp_path / "report"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = evaluate_quietly(
        out,
        [
            str(data_dir / "euroc_v101_micro_stereo"),
            str(data_dir / "hpatches_v_graffiti"),
            "--max-pairs",
            "1",
        ],
    )
    assert status == 0
    text = (out / "report.md").read_text()
    assert "the package's weights" in text and "edm_ros_v1.ckpt" in text and "RANDOM" not in text
    assert "## euroc_v101_micro_stereo (stereo rig, relative pose, 1 pairs)" in text
    assert "## hpatches_v_graffiti (homography, 1 pairs)" in text
    assert "EDM ran at the images' own size on homography sets and at 640x480 on the" in text
    results = json.loads((out / "results.json").read_text())
    assert [(e["dataset"], e["matcher"]) for e in results["evaluations"]] == [
        ("euroc_v101_micro_stereo", "edm"),
        ("euroc_v101_micro_stereo", "sift"),
        ("euroc_v101_micro_stereo", "orb"),
        ("hpatches_v_graffiti", "edm"),
        ("hpatches_v_graffiti", "sift"),
        ("hpatches_v_graffiti", "orb"),
    ]


def test_edm_with_random_weights_reports_so_with_latency_tables(
    data_dir, parity_weights, tmp_path
) -> None:
    out = tmp_path / "report"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = main(
        [
            str(data_dir / "scannet1500_sample"),
            "--matchers",
            "edm",
            "--weights",
            str(parity_weights),
            "--input-size",
            "160x128",
            "--max-pairs",
            "2",
            "--latency-resolutions",
            "160x128",
            "--batch-sizes",
            "1,2",
            "--latency-repeats",
            "1",
            "--visualize",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    text = (out / "report.md").read_text()
    assert "WARNING: edm ran with RANDOM weights" in text.split("## ")[0]
    assert "| edm | 160x128 | 2 |" in text  # latency vs batch size, the paper's Tab. 11
    assert "| edm | scannet1500_sample | 2 |" in text  # evaluation time
    assert (out / "figures" / "latency_vs_batch.png").is_file()
    assert (out / "figures" / "matches_scannet1500_sample_0_edm.png").is_file()


def test_homography_sets_have_an_input_size_of_their_own(data_dir, tmp_path) -> None:
    out = tmp_path / "report"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = evaluate_quietly(
        out,
        [
            str(data_dir / "scannet1500_sample"),
            str(data_dir / "hpatches_v_graffiti"),
            "--matchers",
            "edm",
            "--input-size",
            "160x128",
            "--homography-input-size",
            "96x64",
            "--match-threshold",
            "0",
            "--max-pairs",
            "1",
        ],
    )
    assert status == 0
    pairs = {
        e["dataset"]: e["pairs"][0]
        for e in json.loads((out / "results.json").read_text())["evaluations"]
    }
    # at most one match per coarse cell (1/8 of the network input)
    assert pairs["hpatches_v_graffiti"]["matches"] <= (96 // 8) * (64 // 8)
    assert (96 // 8) * (64 // 8) < pairs["scannet1500_sample"]["matches"] <= (160 // 8) * (128 // 8)
    assert "EDM ran at 96x64 on homography sets and at 160x128 on the others" in (
        (out / "report.md").read_text()
    )


def test_missing_weights_and_missing_data_are_explained(data_dir, tmp_path, capsys) -> None:
    missing, graffiti = tmp_path / "edm.ckpt", data_dir / "hpatches_v_graffiti"
    assert main([str(graffiti), "--weights", str(missing), "--out", str(tmp_path / "r")]) == 2
    assert f"{missing}: no such weights file" in capsys.readouterr().err
    assert main([str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no dataset found" in capsys.readouterr().err


def test_odometry_option_adds_the_vo_section_plot_and_numbers(data_dir, tmp_path) -> None:
    out = tmp_path / "report"
    status = evaluate_quietly(
        out,
        [
            str(data_dir / "euroc_v101_micro_stereo"),
            "--odometry",
            "--matchers",
            "sift",
            "--max-pairs",
            "3",
            "--odometry-frames",
            "6",
            "--odometry-size",
            "320x240",
        ],
    )
    assert status == 0
    text = (out / "report.md").read_text()
    assert "## Stereo visual odometry (PnP against keyframes)" in text
    assert "![odometry trajectories](figures/odometry.png)" in text
    assert (out / "figures" / "odometry.png").is_file()
    odometry = json.loads((out / "results.json").read_text())["odometry"]
    by_sequence = {entry["sequence"]: entry for entry in odometry}
    assert sorted(by_sequence) == [
        "euroc_v101_micro_stereo",
        "rendered_straight",
        "rendered_turn_in_place",
    ]
    assert by_sequence["euroc_v101_micro_stereo"]["frames"] == 3
    for name in ("rendered_straight", "rendered_turn_in_place"):
        entry = by_sequence[name]
        assert entry["lost_frames"] == 0, entry
        assert entry["frame_rotation_error_max_deg"] < 0.2, entry
        assert entry["frame_translation_error_max_m"] < 0.01, entry
    assert by_sequence["rendered_turn_in_place"]["rotation_travelled_deg"] > 2.0
    assert by_sequence["rendered_straight"]["end_drift_percent"] < 5.0

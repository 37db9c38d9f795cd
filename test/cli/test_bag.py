"""edm-bag: a EuRoC bag replayed into a real subscriber process, and matched offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edm_ros.cli.bag import main
from edm_ros.data.bags import euroc_to_bag
from edm_ros.ros.processes import ros_environment, stop

SUBSCRIBER = Path(__file__).with_name("bag_subscriber.py")
FRAMES = 3


@pytest.fixture
def euroc_bag(data_dir, tmp_path) -> tuple[Path, Path, list[int]]:
    euroc = data_dir / "euroc_v101_micro_stereo"
    bag = tmp_path / "euroc_bag"
    return euroc, bag, euroc_to_bag(euroc, bag, storage="mcap", max_frames=FRAMES)


def test_play_delivers_recorded_stamps_and_pixels_to_a_subscriber(euroc_bag, tmp_path) -> None:
    euroc, bag, stamps = euroc_bag
    received_path = tmp_path / "received.jsonl"
    env = ros_environment()
    subscriber = subprocess.Popen(
        [
            sys.executable,
            str(SUBSCRIBER),
            str(received_path),
            str(2 * FRAMES),
            "60",
            "/left/image_raw",
            "/cam1/image_raw",
        ],
        env=env,
    )
    try:
        player = subprocess.run(
            [
                sys.executable,
                "-m",
                "edm_ros.cli.bag",
                "play",
                str(bag),
                "--topics",
                "/cam0/image_raw",
                "/cam1/image_raw",
                "--remap",
                "/cam0/image_raw:=/left/image_raw",
                "--wait-for-subscribers",
                "1",
                "--wait-timeout",
                "60",
                "--rate",
                "2",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert player.returncode == 0, player.stderr
        assert f"published {2 * FRAMES} messages" in player.stdout
        assert subscriber.wait(timeout=60) == 0, "the subscriber did not get all images in 60 s"
    finally:
        stop(subscriber)
    received = [json.loads(line) for line in received_path.read_text().splitlines()]
    expected = []
    for stamp in stamps:
        for topic, camera in (("/left/image_raw", "cam0"), ("/cam1/image_raw", "cam1")):
            pixels = cv2.imread(str(euroc / camera / f"{stamp}.png"), cv2.IMREAD_GRAYSCALE)
            md5 = hashlib.md5(pixels.tobytes()).hexdigest()
            expected.append(
                {
                    "topic": topic,
                    "stamp_ns": stamp,
                    "frame_id": camera,
                    "size": [752, 480],
                    "encoding": "mono8",
                    "md5": md5,
                }
            )
    key = lambda item: (item["stamp_ns"], item["topic"])  # noqa: E731
    assert sorted(received, key=key) == sorted(expected, key=key)


def test_offline_stereo_matching_tracks_with_a_metric_pose(euroc_bag, tmp_path) -> None:
    _, bag, stamps = euroc_bag
    out = tmp_path / "matches.jsonl"
    status = main(
        [
            "match",
            str(bag),
            "--left",
            "/cam0/image_raw",
            "--right",
            "/cam1/image_raw",
            "--matcher",
            "sift",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    stereo = [r for r in records if r["mode"] == "stereo"]
    temporal = [r for r in records if r["mode"] == "sequential"]
    assert [(r["stamp0_ns"], r["stamp1_ns"]) for r in stereo] == [(s, s) for s in stamps]
    assert [(r["stamp0_ns"], r["stamp1_ns"]) for r in temporal] == [
        (stamps[0], s) for s in stamps[1:]
    ]  # the first frame stays the keyframe over so little motion
    for record in stereo:
        assert record["num_matches"] == len(record["keypoints0"]) == len(record["keypoints1"]) > 100
        assert record["pose"] is None
        # rectified with the bag's camera_info: matches lie on the same row, right of the left
        left, right = (np.asarray(record[k]).reshape(-1, 2) for k in ("keypoints0", "keypoints1"))
        assert np.median(np.abs(left[:, 1] - right[:, 1])) < 1.0
        assert np.median(left[:, 0] - right[:, 0]) > 0
    for record in temporal:
        pose = record["pose"]
        assert pose["success"] and pose["metric"], record["reason"]
        # 20 Hz frames of a hand-held camera: centimetres and below a few degrees per frame
        assert np.linalg.norm(pose["translation"]) < 0.2
        angle = np.degrees(np.arccos((np.trace(np.asarray(pose["rotation"])) - 1) / 2))
        assert angle < 5.0


def test_offline_sequential_matching_with_edm_plumbing(euroc_bag, parity_weights, tmp_path) -> None:
    _, bag, stamps = euroc_bag
    out = tmp_path / "matches.jsonl"
    status = main(
        [
            "match",
            str(bag),
            "--topic",
            "/cam0/image_raw",
            "--matcher",
            "edm",
            "--weights",
            str(parity_weights),
            "--input-size",
            "160x128",
            "--max-pairs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["stamp0_ns"], record["stamp1_ns"]) == (stamps[0], stamps[1])
    assert record["matcher"] == "edm" and record["frame_id0"] == record["frame_id1"] == "cam0"
    keypoints = np.asarray(record["keypoints0"]).reshape(-1, 2)
    assert ((keypoints >= 0) & (keypoints < [752, 480])).all()
    assert record["pose"] is not None  # camera_info is in the bag; success depends on the matches


def test_bad_options_are_explained(euroc_bag, tmp_path, capsys) -> None:
    _, bag, _ = euroc_bag
    out = str(tmp_path / "m.jsonl")
    assert (
        main(["match", str(bag), "--left", "/cam0/image_raw", "--matcher", "sift", "--out", out])
        == 2
    )
    assert "either --left and --right" in capsys.readouterr().err
    missing = tmp_path / "edm.ckpt"
    assert (
        main(
            [
                "match",
                str(bag),
                "--topic",
                "/cam0/image_raw",
                "--weights",
                str(missing),
                "--out",
                out,
            ]
        )
        == 2
    )
    assert "no such weights file" in capsys.readouterr().err
    assert main(["play", str(bag), "--remap", "/cam0/image_raw"]) == 2
    assert "--remap expects FROM:=TO" in capsys.readouterr().err

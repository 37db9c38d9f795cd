"""edm-export from the command line."""

from __future__ import annotations

import json

import pytest

from edm_ros.cli.export import main

pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript")
pytest.importorskip("onnxruntime", reason="--verify runs ONNX Runtime")


def test_export_writes_graph_and_sidecar_and_verifies_against_pytorch(tmp_path, capsys):
    output = tmp_path / "edm.onnx"
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = main(
        [
            "--random-weights",
            "--size",
            "96x64",
            "--batch-size",
            "2",
            "--topk",
            "40",
            "--match-threshold",
            "0.05",
            "--border",
            "16",
            "--output",
            str(output),
            "--verify",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "input (2, 2, 64, 96), K=40, opset 17" in printed
    assert "100.0% of the top-K cell pairs shared" in printed
    sidecar = json.loads((tmp_path / "edm.onnx.json").read_text())
    assert sidecar["num_candidates"] == 40 and sidecar["batch_size"] == 2
    assert (sidecar["match_threshold"], sidecar["border_px"]) == (0.05, 16)
    assert sidecar["weights_source"].startswith("RANDOM weights (seed 0)")


def test_impossible_k_fails_with_one_clear_line(tmp_path, capsys):
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = main(
        [
            "--random-weights",
            "--size",
            "64x64",
            "--topk",
            "65",
            "--output",
            str(tmp_path / "edm.onnx"),
        ]
    )
    assert status == 1
    assert "edm-export: K must be in [1, 64]" in capsys.readouterr().err
    assert not (tmp_path / "edm.onnx").exists()


def test_tensorrt_without_the_package_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    status = main(
        ["--random-weights", "--size", "64x64", "--output", str(tmp_path / "e.onnx"), "--tensorrt"]
    )
    assert status == 1 and "pip install tensorrt" in capsys.readouterr().err

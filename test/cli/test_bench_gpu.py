"""bench_gpu without a GPU: the CPU reference runs, every GPU variant is skipped with its reason."""

from __future__ import annotations

import json

import pytest
import torch

from edm_ros.cli.bench_gpu import VARIANTS, main


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run bench_gpu itself")
def test_without_cuda_every_variant_is_skipped_and_the_tables_are_written(tmp_path):
    assert (
        main(
            [
                "--size",
                "64x64",
                "--batches",
                "1",
                "2",
                "--runs",
                "1",
                "--warmup",
                "0",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert report["device"] == "no CUDA" and report["cpu_reference_ms"] > 0
    assert [(r["variant"], r["batch"]) for r in report["rows"]] == [
        (v.name, b) for v in VARIANTS for b in (1, 2)
    ]
    reasons = {r["variant"]: r["skipped"] for r in report["rows"]}
    assert "sees no CUDA GPU" in reasons["torch CUDA eager"]
    assert "onnxruntime" in reasons["ONNX Runtime CUDA EP"]
    assert "tensorrt" in reasons["TensorRT fp32"].lower()
    assert "| TensorRT fp32 | 2 | skipped:" in (tmp_path / "gpu_bench.md").read_text()
    assert not list((tmp_path / "cache").glob("*.onnx")), "no export before a provider check"

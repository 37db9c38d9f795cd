"""The Markdown report: tables, figures, JSON numbers, the random-weights warning."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edm_ros.data.pairs import HomographyDataset, HomographyPair
from edm_ros.evaluation.baselines import NamedMatcher
from edm_ros.evaluation.latency import LatencyPoint, LatencyResults
from edm_ros.evaluation.report import ReportContext, write_report
from edm_ros.evaluation.runner import evaluate
from test.evaluation.oracle import OracleMatcher, oracle
from test.evaluation.scene import blank_images

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluations(tmp_path, scannet_like_dataset) -> list:
    dataset, points0, points1 = scannet_like_dataset
    perfect = evaluate(oracle(points0, points1), dataset, show_progress=False)
    wrong = NamedMatcher("shuffled", OracleMatcher(points0, points1[::-1]), "wrong", True)
    failing = evaluate(wrong, dataset, show_progress=False)
    image0, image1 = blank_images(tmp_path, (200, 160))
    plane = HomographyDataset("plane", (HomographyPair("1-2", image0, image1, np.eye(3)),))
    grid = np.stack(np.meshgrid(np.arange(10, 190, 20.0), np.arange(10, 150, 20.0)), -1)
    homography = evaluate(
        oracle(grid.reshape(-1, 2), grid.reshape(-1, 2)), plane, show_progress=False
    )
    return [perfect, failing, homography]


def _context(evaluations) -> ReportContext:
    matchers = (
        oracle(np.zeros((0, 2)), np.zeros((0, 2))),
        NamedMatcher("shuffled", OracleMatcher(np.zeros((0, 2)), np.zeros((0, 2))), "wrong", True),
    )
    return ReportContext("edm-eval test --out x", "cpu", matchers, ("a note",))


def test_report_has_tables_figures_and_numbers(tmp_path, evaluations) -> None:
    latency = LatencyResults(
        resolution=(
            LatencyPoint("oracle", 320, 240, 1, 2.0, 1),
            LatencyPoint("oracle", 640, 480, 1, 5.0, 1),
        ),
        batch=(
            LatencyPoint("oracle", 640, 480, 1, 5.0, 1),
            LatencyPoint("oracle", 640, 480, 4, 12.0, 1),
        ),
    )
    report = write_report(tmp_path / "out", evaluations, _context(evaluations), latency, 1)
    text = report.read_text()
    assert (
        "## synthetic (relative pose, 1 pairs)" in text and "## plane (homography, 1 pairs)" in text
    )
    assert "| oracle | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in text
    assert "| oracle | 100.0 | 100.0 | 100.0 | 0.00 | 100.0 |" in text
    assert "| oracle | 640x480 | 4 | 12.0 | 3.0 | 1 |" in text
    assert "- a note" in text and "## Evaluation time" in text
    figures = [
        line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")
    ]
    assert len(figures) >= 8
    for figure in figures:
        assert (tmp_path / "out" / figure).read_bytes()[:8] == PNG_SIGNATURE, figure
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    failed = results["evaluations"][1]["pairs"][0]["ransac"]
    assert results["evaluations"][0]["auc"]["ransac"] == pytest.approx([1.0, 1.0, 1.0], abs=0.02)
    assert failed["error_deg"] is None or failed["error_deg"] > 5.0
    assert {entry["kind"] for entry in results["latency"]} == {"resolution", "batch"}


def test_random_weights_are_announced_in_the_header(tmp_path, evaluations) -> None:
    text = write_report(
        tmp_path, evaluations, _context(evaluations), visualised_pairs=0
    ).read_text()
    header = text.split("## ")[0]
    assert "WARNING: shuffled ran with RANDOM weights" in header
    assert "oracle ran with RANDOM" not in header


def test_report_modules_do_not_import_matplotlib_until_plotting() -> None:
    code = (
        "import sys, edm_ros, edm_ros.evaluation.report, edm_ros.cli.evaluate; "
        "print('matplotlib' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"

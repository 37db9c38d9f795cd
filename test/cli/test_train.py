"""edm-train: config and overrides, schedule plot, a tiny end-to-end run, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from edm_ros.cli.train import main


@pytest.fixture(autouse=True)
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_print_config_applies_file_and_overrides(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("batch_size: 8\nloss:\n  fine_weight: 0.4\n")
    assert (
        main(["--config", str(config), "--set", "epochs=3", "--device", "cpu", "--print-config"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert (printed["batch_size"], printed["epochs"], printed["loss"]["fine_weight"]) == (8, 3, 0.4)
    assert printed["schedule"]["canonical_lr"] == 2e-3


def test_plot_schedule_only(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "lr.png"
    assert (
        main(["--plot-schedule", str(path), "--set", "pairs_per_epoch=320", "batch_size=32"]) == 0
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "10 steps per epoch" in capsys.readouterr().out


def test_tiny_run_and_resume(tmp_path):
    # fmt: skip keeps each flag next to its value (formatted: one word per line)
    run = [
        "--set",
        "image_size=64,64",
        "batch_size=2",
        "pairs_per_epoch=2",
        "validation_pairs=2",
        "--output-dir",
        str(tmp_path),
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main([*run, "--set", "epochs=1"]) == 0
    assert main([*run, "--set", "epochs=2", "--resume", str(tmp_path / "last.ckpt")]) == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "batch_sise=2"], "unknown config key"),
        (["--set", "image_size=100,100"], "multiple of 32"),
        (["--resume", "/nonexistent/last.ckpt", "--set", "image_size=64,64"], "no such weights"),
    ],
)
def test_errors_exit_2_with_one_clear_line(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("edm-train: ") and message in error


def test_importing_the_training_code_loads_no_plotting_or_progress_bar():
    probe = (  # torch itself imports tqdm (torch.hub): compare with what torch loads
        "import sys, torch; baseline = set(sys.modules); "
        "import edm_ros.cli.train, edm_ros.training.loop, edm_ros.training.config; "
        "print([m for m in set(sys.modules) - baseline if m.split('.')[0] in "
        "('matplotlib', 'tqdm')])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

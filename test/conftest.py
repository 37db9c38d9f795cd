"""Shared fixtures: locations of the parity fixtures and real data beside the project."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
PARITY_DIR = SHARED / "parity"
DATA_DIR = SHARED / "data"
PARITY_WEIGHTS = PARITY_DIR / "edm_random_weights.ckpt"
PARITY_SIZES = ("320x256", "640x480")


@pytest.fixture(autouse=True)
def package_logs_reach_caplog() -> None:
    """The ROS launch pytest plugins install a logger class that never propagates, so loggers
    made after them (ours, at import) would bypass caplog; ours propagate, as library loggers do."""
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith("edm_ros") and isinstance(logger, logging.Logger):
            logger.propagate = True


@pytest.fixture(scope="session")
def parity_weights() -> Path:
    """The official-layout checkpoint with seeded random weights (skips if absent)."""
    if not PARITY_WEIGHTS.is_file():
        pytest.skip(f"parity weights not found at {PARITY_WEIGHTS}")
    return PARITY_WEIGHTS


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data with real image sets (skips if absent)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data not found at {DATA_DIR}")
    return DATA_DIR


def load_parity_fixture(size: str) -> dict:
    """The official implementation's tensors for one input size (skips if absent)."""
    import torch

    path = PARITY_DIR / f"edm_parity_{size}.pt"
    if not path.is_file():
        pytest.skip(f"parity fixture not found at {path}")
    return torch.load(path, weights_only=True)

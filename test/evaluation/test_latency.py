"""Latency sweeps: one point per resolution or batch size, per-pair time derived from the call."""

from __future__ import annotations

import numpy as np
import pytest

from edm_ros.errors import ConfigError
from edm_ros.evaluation.baselines import build_matcher
from edm_ros.evaluation.latency import latency_vs_batch, latency_vs_resolution

IMAGE = np.tile((np.arange(320)[None, :] * 7 % 255).astype(np.uint8), (240, 1))


def test_resolution_sweep_runs_at_each_size() -> None:
    points = latency_vs_resolution(
        build_matcher("orb"), IMAGE, IMAGE, [(160, 120), (320, 240)], repeats=2, warmup=0
    )
    assert [(p.width, p.height, p.batch_size) for p in points] == [(160, 120, 1), (320, 240, 1)]
    assert all(p.call_ms > 0 and p.repeats == 2 for p in points)


@pytest.mark.parametrize("batch_sizes", [[1], [1, 3]])
def test_batch_sweep_reports_time_per_pair(batch_sizes) -> None:
    points = latency_vs_batch(build_matcher("orb"), IMAGE, IMAGE, batch_sizes, repeats=1, warmup=0)
    assert [p.batch_size for p in points] == batch_sizes
    for point in points:
        assert point.per_pair_ms == pytest.approx(point.call_ms / point.batch_size)
        assert (point.width, point.height) == (320, 240)


def test_invalid_counts_are_rejected() -> None:
    with pytest.raises(ConfigError, match="batch sizes must be >= 1"):
        latency_vs_batch(build_matcher("orb"), IMAGE, IMAGE, [0], repeats=1)
    with pytest.raises(ConfigError, match="repeats must be >= 1"):
        latency_vs_resolution(build_matcher("orb"), IMAGE, IMAGE, [(64, 64)], repeats=0)

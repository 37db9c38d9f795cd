"""The paper's learning-rate schedule (supplementary §6.1, Fig. 6)."""

from __future__ import annotations

import pytest

from edm_ros.errors import ConfigError
from edm_ros.training.schedule import LRSchedule, learning_rate, schedule_curve

STEPS = 1150  # official: 36,800 pairs per epoch / batch 32


def lr_at(epoch: float, batch: int = 32) -> float:
    return learning_rate(round(epoch * STEPS), STEPS, batch)


def test_warm_up_rises_linearly_from_a_tenth_over_three_epochs():
    assert lr_at(0) == pytest.approx(2e-4)
    assert lr_at(1.5) == pytest.approx(2e-4 + 0.5 * 1.8e-3)
    assert learning_rate(3 * STEPS - 1, STEPS, 32) == pytest.approx(2e-3, rel=1e-3)
    assert lr_at(3) == pytest.approx(2e-3)  # warm-up over: 3450 steps, as the official config


def test_rate_halves_every_four_epochs_from_epoch_eight():
    expected = {3: 2e-3, 7.99: 2e-3, 8: 1e-3, 11.99: 1e-3, 12: 5e-4, 16: 2.5e-4, 20: 1.25e-4}
    expected |= {24: 6.25e-5, 29.99: 6.25e-5}
    for epoch, rate in expected.items():
        assert lr_at(epoch) == pytest.approx(rate), f"epoch {epoch}"


def test_rate_scales_linearly_with_the_batch():
    assert lr_at(5, batch=4) == pytest.approx(2e-3 * 4 / 32)
    assert lr_at(0, batch=8) == pytest.approx(0.1 * 2e-3 / 4)


def test_curve_covers_thirty_epochs_and_never_rises_after_the_warm_up():
    epochs, rates = schedule_curve(30, 10, 32)
    assert len(rates) == 300 and epochs[-1] == pytest.approx(29.9)
    assert rates[:30] == sorted(rates[:30])
    assert rates[30:] == sorted(rates[30:], reverse=True)
    assert min(rates) == pytest.approx(2e-3 / 32)


def test_plot_like_the_papers_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from edm_ros.training.plots import plot_schedule

    path = plot_schedule(tmp_path / "lr.png", epochs=30, steps_per_epoch=50, batch_size=32)
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_invalid_schedules_and_steps_are_rejected():
    with pytest.raises(ConfigError, match="milestones must be ascending"):
        LRSchedule(milestones=(12, 8))
    with pytest.raises(ConfigError, match="warmup_ratio"):
        LRSchedule(warmup_ratio=2.0)
    with pytest.raises(ConfigError, match="steps_per_epoch >= 1"):
        learning_rate(0, 0, 32)

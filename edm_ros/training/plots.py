"""Figures of a training run: the learning-rate schedule (paper Fig. 6) and the learning curve.

matplotlib is imported here only (``import edm_ros`` never imports it), and only its object API
(no pyplot), so plotting never changes the caller's backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edm_ros.training.schedule import LRSchedule, schedule_curve


def _figure(columns: int, size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    return figure, figure.subplots(1, columns)


def plot_schedule(
    path: str | Path,
    epochs: int = 30,
    steps_per_epoch: int = 1150,
    batch_size: int = 32,
    schedule: LRSchedule | None = None,
) -> Path:
    """Plot the learning rate against epochs (defaults: the official run, 36,800 pairs / 32).

    Returns:
        The written PNG path.
    """
    schedule = schedule or LRSchedule()
    epoch, rate = schedule_curve(epochs, steps_per_epoch, batch_size, schedule)
    figure, axis = _figure(1, (6, 3.2))
    axis.plot(epoch, rate, color="tab:blue")
    for milestone in schedule.milestones:
        if milestone < epochs:
            axis.axvline(milestone, color="grey", linewidth=0.5, linestyle=":")
    axis.set_xlabel("epoch")
    axis.set_ylabel("learning rate")
    axis.set_title(
        f"EDM schedule: batch {batch_size}, warm-up {schedule.warmup_epochs:g} epochs, "
        f"x{schedule.gamma:g} at {list(schedule.milestones)}",
        fontsize=8,
    )
    axis.set_xlim(0, epochs)
    axis.grid(alpha=0.3)
    return _save(figure, path)


def plot_learning_curve(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss per epoch (left) and validation metrics (right) of a run's history."""
    figure, (losses, validation) = _figure(2, (9, 3.2))
    epochs = [record["epoch"] for record in history]
    for key in ("loss", "coarse_loss", "fine_loss"):
        losses.plot(epochs, [record[key] for record in history], marker="o", label=key)
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean training loss")
    losses.legend(fontsize=8)
    # Fractions in [0, 1] share the right axis; counts would squash them.
    metric_keys = sorted(
        {
            k
            for r in history
            for k in r
            if k.startswith("val_") and not k.endswith("matches_per_pair")
        }
    )
    for key in metric_keys:
        validation.plot(epochs, [r.get(key, float("nan")) for r in history], marker="o", label=key)
    validation.set_xlabel("epoch")
    validation.set_ylabel("validation")
    validation.legend(fontsize=8)
    for axis in (losses, validation):
        axis.grid(alpha=0.3)
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path

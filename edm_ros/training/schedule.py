"""EDM's learning-rate schedule (paper supplementary §6.1, Fig. 6).

The canonical rate 2e-3 belongs to a batch of 32 pairs and scales linearly with the batch. For
the first 3 epochs it rises linearly, step by step, from 0.1·LR to LR; from epoch 8 it halves every
4 epochs (milestones 8, 12, 16, 20, 24), over 30 epochs. As in the official Lightning code the
warm-up is counted in optimiser steps and the halving in whole epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edm_ros.errors import ConfigError


@dataclass(frozen=True)
class LRSchedule:
    """Learning-rate recipe; defaults are the official outdoor values (official configs)."""

    canonical_lr: float = 2e-3  # TRAINER.CANONICAL_LR, for canonical_batch pairs per step
    canonical_batch: int = 32  # TRAINER.CANONICAL_BS
    warmup_epochs: float = 3.0  # WARMUP_STEP 3450 = 3 epochs of 36,800 pairs at batch 32
    warmup_ratio: float = 0.1  # the warm-up starts at this fraction of the rate
    milestones: tuple[int, ...] = (8, 12, 16, 20, 24)  # epochs (0-based) where the rate halves
    gamma: float = 0.5  # factor at each milestone

    def __post_init__(self) -> None:
        if self.canonical_lr <= 0 or self.canonical_batch < 1:
            raise ConfigError(
                f"canonical_lr must be > 0 and canonical_batch >= 1, got {self.canonical_lr}, "
                f"{self.canonical_batch}"
            )
        if self.warmup_epochs < 0 or not 0.0 <= self.warmup_ratio <= 1.0:
            raise ConfigError(
                f"warmup_epochs must be >= 0 and warmup_ratio in [0, 1], got "
                f"{self.warmup_epochs}, {self.warmup_ratio}"
            )
        if list(self.milestones) != sorted(self.milestones) or not 0.0 < self.gamma <= 1.0:
            raise ConfigError(
                f"milestones must be ascending and gamma in (0, 1], got {self.milestones}, "
                f"{self.gamma}"
            )

    def base_lr(self, batch_size: int) -> float:
        """The rate for ``batch_size`` pairs per step: linear scaling from the canonical batch."""
        return self.canonical_lr * batch_size / self.canonical_batch


def learning_rate(
    step: int, steps_per_epoch: int, batch_size: int, schedule: LRSchedule = LRSchedule()
) -> float:
    """Learning rate at optimiser step ``step`` (0-based).

    Args:
        step: global step, counted from the start of training.
        steps_per_epoch: optimiser steps in one epoch.
        batch_size: pairs per step (all devices together).
        schedule: the recipe.

    Returns:
        The rate; during the warm-up ``base·(r + (1 - r)·step / warmup_steps)``, afterwards
        ``base·γ^(milestones passed by the current epoch)``.
    """
    if steps_per_epoch < 1 or step < 0:
        raise ConfigError(f"need steps_per_epoch >= 1 and step >= 0, got {steps_per_epoch}, {step}")
    base = schedule.base_lr(batch_size)
    warmup_steps = schedule.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        ratio = schedule.warmup_ratio
        return base * (ratio + (1.0 - ratio) * step / warmup_steps)
    epoch = step // steps_per_epoch
    passed = sum(1 for milestone in schedule.milestones if epoch >= milestone)
    return base * schedule.gamma**passed


def schedule_curve(
    epochs: int, steps_per_epoch: int, batch_size: int, schedule: LRSchedule = LRSchedule()
) -> tuple[list[float], list[float]]:
    """(epoch as a float, rate) at every step of a run, e.g. for plotting."""
    steps = range(epochs * steps_per_epoch)
    return (
        [step / steps_per_epoch for step in steps],
        [learning_rate(step, steps_per_epoch, batch_size, schedule) for step in steps],
    )

"""The training loop: plain PyTorch, one process, CPU or one CUDA device.

Per step: losses of a batch (:func:`~edm_ros.training.step.training_losses`), backward, gradient
clipping to norm 0.5, AdamW (weight decay 0.1) at the rate of
:func:`~edm_ros.training.schedule.learning_rate`. After every epoch: validation, ``last.ckpt``
(official layout plus optimiser state), ``best.ckpt`` when the validation score improved,
``history.json`` and ``learning_curve.png``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edm_ros.backends.pytorch import resolve_device
from edm_ros.data.homography import HomographyPairGenerator, list_images
from edm_ros.data.parallax import ParallaxPairGenerator
from edm_ros.errors import ConfigError
from edm_ros.model.edm import EDM
from edm_ros.training.checkpointing import (
    TrainingState,
    load_model_weights,
    resume,
    save_checkpoint,
)
from edm_ros.training.config import TrainConfig
from edm_ros.training.data import (
    TRAIN_STREAM,
    VALIDATION_STREAM,
    SyntheticPairDataset,
    batch_to,
)
from edm_ros.training.distributed import join_process_group
from edm_ros.training.losses import RealNVP
from edm_ros.training.schedule import learning_rate
from edm_ros.training.step import TrainingModel
from edm_ros.training.validation import evaluate_held_out, evaluate_saved_checkpoint

logger = logging.getLogger(__name__)

LAST_CHECKPOINT, BEST_CHECKPOINT, HISTORY_FILE = "last.ckpt", "best.ckpt", "history.json"


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """(training set, held-out set or None when a dataset folder validates)."""
    train: Dataset
    held_out: Dataset | None = None
    if config.data == "homography":
        sources = list_images(config.images, config.exclude_images) if config.images else None
        size, photometric = config.image_size, config.photometric
        homographies = HomographyPairGenerator(sources, size, config.warp, photometric)
        rooms = ParallaxPairGenerator(sources, size, config.motion, photometric)

        def pairs(length: int, stream: int) -> SyntheticPairDataset:
            return SyntheticPairDataset(
                homographies,
                length,
                config.seed,
                stream,
                rooms,
                config.parallax_fraction,
                config.batch_size,
            )

        train = pairs(config.pairs_per_epoch, TRAIN_STREAM)
        held_out = pairs(config.validation_pairs, VALIDATION_STREAM)
    else:
        from edm_ros.training.loftr_data import loftr_training_set

        train = loftr_training_set(config)
    return train, (None if config.validation else held_out)


def steps_in_epoch(num_pairs: int, batch_size: int) -> int:
    """Optimiser steps per epoch (incomplete last batches are dropped).

    Raises:
        ConfigError: fewer pairs than one batch.
    """
    if num_pairs < batch_size:
        raise ConfigError(
            f"the training set has {num_pairs} pairs per epoch, fewer than batch_size {batch_size}"
        )
    return num_pairs // batch_size


class Trainer:
    """Runs :class:`TrainConfig`: builds the model, data and optimiser, trains and validates."""

    def __init__(self, config: TrainConfig, resume_from: str | Path | None = None) -> None:
        """Args:
        config: the run.
        resume_from: a checkpoint of an earlier run to continue (weights, flow, optimiser,
            epoch and step); its config is not read, ``config`` applies.
        """
        self.config = config
        self.group = join_process_group(config.device)  # None unless started by torchrun
        self.device = resolve_device(
            self.group.device(config.device) if self.group else config.device
        )
        with torch.random.fork_rng(devices=[]):  # seeded init, caller's random state untouched
            torch.manual_seed(config.seed)
            self.model = EDM(topk_ratio=config.topk_ratio).to(self.device)
            self.flow = RealNVP().to(self.device)
        if config.init_weights is not None and resume_from is None:
            flow_found = load_model_weights(self.model, self.flow, config.init_weights)
            logger.info(
                "initial weights %s (flow %s)",
                config.init_weights,
                "loaded" if flow_found else "not in the file, fresh",
            )
        self.training_model = TrainingModel(self.model, self.flow, config.loss, config.pad_num)
        self.step_module: torch.nn.Module = self.training_model
        if self.group is not None:
            if self.device.type == "cuda":
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            # The flow gets no gradient in a batch without fine supervision.
            self.step_module = DistributedDataParallel(
                self.training_model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        parameters = [*self.model.parameters(), *self.flow.parameters()]
        self.optimizer = torch.optim.AdamW(
            parameters,
            lr=config.schedule.base_lr(config.batch_size),
            weight_decay=config.weight_decay,
        )
        self.state = TrainingState(epoch=0, global_step=0, history=[])
        if resume_from is not None:
            self.state = resume(resume_from, self.model, self.flow, self.optimizer)
            logger.info(
                "resumed %s at epoch %d, step %d",
                resume_from,
                self.state.epoch,
                self.state.global_step,
            )
        self.train_set, self.held_out = build_datasets(config)
        self.output_dir = Path(config.output_dir)
        self.steps_per_epoch = steps_in_epoch(len(self.train_set), config.batch_size)  # type: ignore[arg-type]
        self.padding_generator = torch.Generator()

    def fit(self, time_budget_s: float | None = None) -> list[dict[str, Any]]:
        """Train until ``config.epochs``, validating and saving after every epoch.

        Args:
            time_budget_s: stop early once this much wall time has passed; the running epoch
                then ends at once (and counts as done: validated, saved, in the history).

        Returns:
            The history: one record per epoch (losses, rate, validation metrics, seconds).
        """
        deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        for epoch in range(self.state.epoch, self.config.epochs):
            record = self.train_epoch(epoch, deadline)
            main = self.group is None or self.group.is_main
            if main:
                record.update(self.validate())
            self.state = TrainingState(
                epoch + 1, self.state.global_step, [*self.state.history, record]
            )
            if main:
                self._save(record)
                logger.info("epoch %d: %s", epoch, _format(record))
            if self.group is not None:
                self.group.barrier()
            if self._past(deadline):
                break
        return self.state.history

    def train_epoch(self, epoch: int, deadline: float | None = None) -> dict[str, Any]:
        """One pass over the training set; returns the epoch's mean losses and timing."""
        self.model.train()
        self.flow.train()
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        sums = {"loss": 0.0, "coarse_loss": 0.0, "fine_loss": 0.0}
        steps, lr, start = 0, 0.0, time.monotonic()
        bar = _Progress(self.config.progress, epoch, self.steps_per_epoch)
        for batch in self._batches():
            lr, losses = self._step(batch)
            steps += 1
            for name, value in zip(sums, losses):
                sums[name] += value
            bar.update(self.state.global_step, lr, losses)
            if self._past(deadline):
                break
        bar.close()
        record: dict[str, Any] = {name: value / max(steps, 1) for name, value in sums.items()}
        record.update(epoch=epoch, steps=steps, lr=lr, seconds=time.monotonic() - start)
        return record

    def _past(self, deadline: float | None) -> bool:
        """Whether the time budget is spent (decided together by all processes of a job)."""
        past = deadline is not None and time.monotonic() >= deadline
        return self.group.any(past, self.device) if self.group is not None else past

    def _batches(self) -> Iterator[Any]:
        # Pairs are already random draws: no shuffling, the order is part of reproducibility.
        # Under torchrun each process reads every world_size-th pair of each step's batch.
        sampler: DistributedSampler | None = None
        batch_size = self.config.batch_size
        if self.group is not None:
            sampler = DistributedSampler(
                self.train_set,  # type: ignore[arg-type]
                num_replicas=self.group.world_size,
                rank=self.group.rank,
                shuffle=False,
                drop_last=True,
            )
            batch_size = self.group.share_of(batch_size)
        loader = DataLoader(
            self.train_set,
            batch_size=batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.config.num_workers,
            drop_last=True,
        )
        for batch in loader:
            yield batch_to(batch, self.device)

    def _step(self, batch: Any) -> tuple[float, list[float]]:
        """One optimiser step; returns (rate, [total, coarse, fine] losses)."""
        step = self.state.global_step
        lr = learning_rate(step, self.steps_per_epoch, self.config.batch_size, self.config.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.padding_generator.manual_seed(self.config.seed * 1_000_003 + step)
        output = self.step_module(batch, self.padding_generator)
        self.optimizer.zero_grad(set_to_none=True)
        output.losses.total.backward()
        parameters = [*self.model.parameters(), *self.flow.parameters()]
        torch.nn.utils.clip_grad_norm_(parameters, self.config.gradient_clip)
        self.optimizer.step()
        self.state = TrainingState(self.state.epoch, step + 1, self.state.history)
        return lr, [float(v.detach()) for v in output.losses]

    def validate(self) -> dict[str, float]:
        """Validation metrics of the current weights (prefixed ``val_``)."""
        if self.held_out is not None:
            loader = DataLoader(self.held_out, batch_size=self.config.batch_size)
            metrics = evaluate_held_out(
                self.model, loader, self.device, self.config.matcher_config()
            ).as_dict()
        else:
            path = self.save_weights(self.output_dir / "validation_weights.ckpt")
            size = self.config.validation_size or self.config.image_size
            results = {
                Path(folder).name: evaluate_saved_checkpoint(
                    path, Path(folder), size, str(self.device), self.config.validation_pairs
                )
                for folder in self.config.validation
            }
            if len(results) == 1:
                metrics = next(iter(results.values()))
            else:  # several sets: per-set keys, and their mean AUC@10 picks the best checkpoint
                metrics = {f"{s}_{k}": v for s, found in results.items() for k, v in found.items()}
                metrics["auc@10"] = float(np.mean([found["auc@10"] for found in results.values()]))
        return {f"val_{name}": value for name, value in metrics.items()}

    def save_weights(self, path: Path) -> Path:
        """Write the current network and flow weights (official layout, no optimiser state)."""
        return save_checkpoint(path, self.model, self.flow, None, self.state, self.config.to_dict())

    def _save(self, record: dict[str, Any]) -> None:
        out = self.output_dir
        save_checkpoint(
            out / LAST_CHECKPOINT,
            self.model,
            self.flow,
            self.optimizer,
            self.state,
            self.config.to_dict(),
        )
        score_key = validation_score_key(record)
        scores = [r[score_key] for r in self.state.history if score_key in r]
        if score_key in record and record[score_key] >= max(scores):
            self.save_weights(out / BEST_CHECKPOINT)
        (out / HISTORY_FILE).write_text(json.dumps(self.state.history, indent=1))
        try:
            from edm_ros.training.plots import plot_learning_curve

            plot_learning_curve(self.state.history, out / "learning_curve.png")
        except ImportError:
            logger.info("matplotlib not installed: no learning_curve.png")


def validation_score_key(record: dict[str, Any]) -> str:
    """The metric that decides the best checkpoint: AUC@10 (the official monitor) when a dataset
    validates, else the held-out coarse precision."""
    return "val_auc@10" if "val_auc@10" in record else "val_coarse_precision"


def _format(record: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
    )


class _Progress:
    """A tqdm bar with loss and rate when enabled and installed, otherwise periodic log lines."""

    LOG_EVERY = 50

    def __init__(self, enabled: bool, epoch: int, steps_per_epoch: int) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", unit="step")
            except ImportError:
                logger.info("tqdm not installed: progress is logged every %d steps", self.LOG_EVERY)

    def update(self, global_step: int, lr: float, losses: list[float]) -> None:
        loss, coarse, fine = losses
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{loss:.3f}",
                coarse=f"{coarse:.3f}",
                fine=f"{fine:.3f}",
                lr=f"{lr:.2e}",
                refresh=False,
            )
            self.bar.update(1)
        elif global_step % self.LOG_EVERY == 0:
            logger.info(
                "step %d: loss %.4f (coarse %.4f, fine %.4f), lr %.3g",
                global_step,
                loss,
                coarse,
                fine,
                lr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

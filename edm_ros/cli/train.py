"""edm-train: train or fine-tune EDM (the paper's recipe) from a config file and overrides.

Examples::

    edm-train --set images=~/my_pictures image_size=320,256 batch_size=2 epochs=5
    edm-train --config my_run.yaml --device cuda --output-dir runs/indoor
    edm-train --config my_run.yaml --resume runs/indoor/last.ckpt
    edm-train --plot-schedule lr.png --set batch_size=8
    torchrun --nproc-per-node 4 -m edm_ros.cli.train --config my_run.yaml --device cuda

See docs/training.md for every key.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from edm_ros.errors import EDMError
from edm_ros.training.distributed import leave_process_group

if TYPE_CHECKING:
    from edm_ros.training.config import TrainConfig


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edm-train",
        description="Train or fine-tune EDM: focal + RLE losses, GT padding, the paper's schedule.",
    )
    parser.add_argument("--config", help="YAML or JSON file with config keys (docs/training.md)")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. batch_size=2 schedule.canonical_lr=1e-3",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (key 'device')")
    parser.add_argument("--output-dir", help="checkpoints, history and plots (key 'output_dir')")
    parser.add_argument("--init-weights", help="start from this checkpoint (key 'init_weights')")
    parser.add_argument("--resume", help="continue a run from its last.ckpt")
    parser.add_argument("--threads", type=int, help="torch CPU threads (key 'threads')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--time-budget-min",
        type=float,
        help="stop after the epoch running when this many minutes pass",
    )
    parser.add_argument(
        "--plot-schedule", metavar="PNG", help="only plot the learning-rate schedule and exit"
    )
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")
    return parser.parse_args(argv)


def _overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "device": args.device,
        "output_dir": args.output_dir,
        "init_weights": args.init_weights,
        "threads": args.threads,
    }
    overrides = list(args.overrides)
    overrides += [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if args.no_progress:
        overrides.append("progress=false")
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edm-train``; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        from edm_ros.training.config import load_config

        config = load_config(args.config, _overrides(args))
        if args.print_config:
            print(json.dumps(config.to_dict(), indent=1))
            return 0
        if args.plot_schedule:
            return _plot_schedule(config, args.plot_schedule)
        from edm_ros.training.loop import Trainer

        if config.threads is not None:
            torch.set_num_threads(config.threads)
        trainer = Trainer(config, resume_from=args.resume)
        budget = None if args.time_budget_min is None else 60.0 * args.time_budget_min
        history = trainer.fit(time_budget_s=budget)
    except EDMError as err:
        print(f"edm-train: {err}", file=sys.stderr)
        return 2
    finally:
        leave_process_group()
    if trainer.group is not None and not trainer.group.is_main:
        return 0
    if history:
        print(json.dumps(history[-1], indent=1))
    print(f"checkpoints and curves in {trainer.output_dir}")
    return 0


def _plot_schedule(config: TrainConfig, path: str) -> int:
    from edm_ros.training.loop import build_datasets, steps_in_epoch
    from edm_ros.training.plots import plot_schedule

    train_set, _ = build_datasets(config)
    steps = steps_in_epoch(len(train_set), config.batch_size)  # type: ignore[arg-type]
    written = plot_schedule(path, config.epochs, steps, config.batch_size, config.schedule)
    print(f"schedule for {steps} steps per epoch written to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

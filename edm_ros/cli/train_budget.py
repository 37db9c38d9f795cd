"""Train EDM on synthetic homography pairs for a fixed time, then measure it on an HPatches set.

A benchmark script, not a test. It answers "what does N minutes of this machine buy?": training
from random weights on the homography generator (procedural textures, or ``--images``), with the
paper's losses and GT padding at a constant rate after one warm-up epoch; then the official
selection on the HPatches pairs, before and after training, measured with the evaluation runner
(matching precision within 3 px, matches per pair, AUC of the corner error at 3/5/10 px).

    python -m edm_ros.cli.train_budget --minutes 30 --threads 1 \\
        --hpatches ../shared/data/hpatches_v_graffiti --output-dir runs/budget
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from edm_ros.cli.arguments import parse_size
from edm_ros.errors import EDMError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m edm_ros.cli.train_budget", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--hpatches", required=True, help="HPatches sequence or release folder")
    parser.add_argument("--images", help="folder of source images; default procedural textures")
    parser.add_argument("--size", type=parse_size, default=(320, 256), help="training input WxH")
    parser.add_argument(
        "--eval-size", type=parse_size, help="evaluation input WxH (default --size)"
    )
    parser.add_argument("--batch", type=int, default=2, help="pairs per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="rate after the warm-up epoch")
    parser.add_argument(
        "--pairs-per-epoch", type=int, default=400, help="pairs between validations"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=66)
    parser.add_argument("--output-dir", default="runs/budget")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train for the budget, evaluate before/after, print and write ``summary.json``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from edm_ros.training.config import TrainConfig
    from edm_ros.training.loop import Trainer
    from edm_ros.training.schedule import LRSchedule
    from edm_ros.training.validation import evaluate_saved_checkpoint

    torch.set_num_threads(args.threads)
    try:
        config = TrainConfig(
            images=args.images,
            image_size=args.size,
            pairs_per_epoch=args.pairs_per_epoch,
            batch_size=args.batch,
            epochs=1_000_000,  # the time budget ends the run
            # canonical_lr is per 32 pairs: scale so that the rate at this batch is --lr.
            schedule=LRSchedule(
                canonical_lr=args.lr * 32 / args.batch, warmup_epochs=1.0, milestones=()
            ),
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            output_dir=args.output_dir,
            progress=args.progress,
        )
        trainer = Trainer(config)
        eval_size = args.eval_size or args.size
        initial = trainer.save_weights(Path(args.output_dir) / "initial.ckpt")

        def measure(checkpoint: Path) -> dict[str, float]:
            return evaluate_saved_checkpoint(
                checkpoint, Path(args.hpatches), eval_size, args.device
            )

        before = measure(initial)
        start = time.monotonic()
        history = trainer.fit(time_budget_s=60.0 * args.minutes)
        trained_s = time.monotonic() - start
        after = measure(Path(args.output_dir) / "last.ckpt")
    except EDMError as err:
        print(f"train_budget: {err}", file=sys.stderr)
        return 2
    summary = {
        "minutes_budget": args.minutes,
        "seconds_trained": trained_s,
        "threads": args.threads,
        "steps": trainer.state.global_step,
        "pairs_seen": trainer.state.global_step * args.batch,
        "train_size": list(args.size),
        "eval_size": list(eval_size),
        "sources": args.images or "procedural",
        "hpatches": args.hpatches,
        "hpatches_before": before,
        "hpatches_after": after,
        "history": history,
    }
    (Path(args.output_dir) / "summary.json").write_text(json.dumps(summary, indent=1))
    _print_table(summary)
    return 0


def _print_table(summary: dict) -> None:
    print(
        f"\n{summary['steps']} steps ({summary['pairs_seen']} pairs) in "
        f"{summary['seconds_trained'] / 60:.1f} min, {summary['threads']} thread(s)"
    )
    first, last = summary["history"][0], summary["history"][-1]
    print(f"training loss (epoch mean): {first['loss']:.3f} -> {last['loss']:.3f}")
    print(
        f"held-out coarse precision: {first['val_coarse_precision']:.3f} after epoch 0 -> "
        f"{last['val_coarse_precision']:.3f} (chance {last['val_chance_precision']:.4f})"
    )
    print(f"{'HPatches':<24}{'before':>10}{'after':>10}")
    for key in summary["hpatches_after"]:
        before, after = summary["hpatches_before"][key], summary["hpatches_after"][key]
        print(f"{key:<24}{before:>10.3f}{after:>10.3f}")


if __name__ == "__main__":
    sys.exit(main())

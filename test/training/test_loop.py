"""The training loop: it learns, it checkpoints in the official layout, it resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from edm_ros.data.homography import WarpRange
from edm_ros.matcher import EDMMatcher
from edm_ros.training.config import TrainConfig
from edm_ros.training.loop import Trainer
from edm_ros.training.schedule import LRSchedule
from edm_ros.training.validation import evaluate_held_out


def tiny_config(tmp_path, **changes) -> TrainConfig:
    """64x64 pairs, 2 steps per epoch: plumbing only."""
    values = dict(
        image_size=(64, 64),
        batch_size=2,
        pairs_per_epoch=4,
        epochs=2,
        validation_pairs=2,
        schedule=LRSchedule(canonical_lr=0.016, warmup_epochs=0.5),
        output_dir=str(tmp_path),
        progress=False,
        seed=5,
    )
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.slow
def test_training_from_random_weights_lowers_the_loss_and_learns_to_match(tmp_path):
    """200 steps of batch 2 at 160x128 on procedural homography pairs (~60 s on one thread).

    Measured (seed 66, one thread): mean loss 2.66 in epoch 0 -> 1.10 in epoch 3; held-out
    coarse precision 0.008 -> 0.49 (chance 0.003); final matches 52 % within 3 px, 39 per pair.
    """
    config = TrainConfig(
        image_size=(160, 128),
        batch_size=2,
        pairs_per_epoch=100,
        epochs=4,
        validation_pairs=16,
        schedule=LRSchedule(canonical_lr=1e-3 * 32 / 2, warmup_epochs=0.3, milestones=()),
        output_dir=str(tmp_path),
        progress=False,
        # The view range these numbers were measured with (narrower than the default).
        warp=WarpRange(
            max_rotation_deg=25.0, scale_range=(0.75, 1.3), max_shift=0.1, min_overlap=0.35
        ),
    )
    trainer = Trainer(config)
    held_out = DataLoader(trainer.held_out, batch_size=8)
    before = evaluate_held_out(trainer.model, held_out)
    history = trainer.fit()
    after = evaluate_held_out(trainer.model, held_out)
    first, last = history[0]["loss"], history[-1]["loss"]
    assert last < 0.6 * first, f"mean loss only went from {first:.3f} to {last:.3f}"
    assert after.coarse_precision > 0.25, after
    assert after.coarse_precision > 30 * after.chance_precision
    assert after.coarse_precision > 10 * before.coarse_precision
    assert after.match_precision > 0.3 and after.matches_per_pair > 10, after
    assert history[-1]["val_coarse_precision"] == pytest.approx(after.coarse_precision)


def test_run_writes_official_checkpoints_history_and_curve(tmp_path):
    history = Trainer(tiny_config(tmp_path)).fit()
    assert [record["epoch"] for record in history] == [0, 1]
    assert all(record["steps"] == 2 for record in history)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert all(key.startswith("matcher.") for key in checkpoint["state_dict"])
    assert any(".flow." in key for key in checkpoint["state_dict"])
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] == 4
    assert checkpoint["optimizer_states"][0]["state"]
    assert json.loads((tmp_path / "history.json").read_text()) == checkpoint["history"]
    assert (tmp_path / "best.ckpt").is_file()
    if pytest.importorskip("matplotlib"):
        assert (tmp_path / "learning_curve.png").stat().st_size > 0
    matcher = EDMMatcher(tmp_path / "last.ckpt", input_size=(64, 64))  # strict load
    assert not matcher.random_weights


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    straight = Trainer(tiny_config(tmp_path / "straight"))
    straight.fit()
    first_half = Trainer(tiny_config(tmp_path / "resumed", epochs=1))
    first_half.fit()
    second_half = Trainer(
        tiny_config(tmp_path / "resumed"), resume_from=tmp_path / "resumed" / "last.ckpt"
    )
    assert (second_half.state.epoch, second_half.state.global_step) == (1, 2)
    second_half.fit()
    assert second_half.state.global_step == 4 and len(second_half.state.history) == 2
    for name, value in straight.model.state_dict().items():
        assert torch.allclose(value.float(), second_half.model.state_dict()[name].float()), name
    for name, value in straight.flow.state_dict().items():
        assert torch.allclose(value, second_half.flow.state_dict()[name]), name


def test_validation_on_a_dataset_folder_reports_its_auc(tmp_path, data_dir):
    config = tiny_config(
        tmp_path,
        epochs=1,
        validation=str(data_dir / "hpatches_v_graffiti"),
        validation_pairs=2,
        validation_size=(160, 128),
    )
    history = Trainer(config).fit()
    keys = {key for key in history[0] if key.startswith("val_")}
    assert {"val_auc@3", "val_auc@5", "val_auc@10", "val_precision"} <= keys
    assert all(0.0 <= history[0][key] <= 1.0 for key in keys - {"val_matches_per_pair"})


def test_several_validation_sets_are_reported_per_set_and_their_mean_picks_the_best(
    tmp_path, data_dir
):
    sets = ("hpatches_v_graffiti", "euroc_v101_micro_stereo")
    config = tiny_config(
        tmp_path,
        epochs=1,
        validation=tuple(str(data_dir / name) for name in sets),
        validation_pairs=2,
        validation_size=(160, 128),
    )
    record = Trainer(config).fit()[0]
    for name in sets:
        assert {f"val_{name}_auc@10", f"val_{name}_precision"} <= set(record)
    mean = (record[f"val_{sets[0]}_auc@10"] + record[f"val_{sets[1]}_auc@10"]) / 2
    assert record["val_auc@10"] == pytest.approx(mean)
    assert (tmp_path / "best.ckpt").exists()


def test_parallax_batches_train_beside_homography_batches(tmp_path):
    config = tiny_config(tmp_path, epochs=1, pairs_per_epoch=8, parallax_fraction=0.5)
    trainer = Trainer(config)
    kinds = [type(batch).__name__ for batch in trainer._batches()]
    assert set(kinds) == {"HomographyBatch", "DepthBatch"}, kinds
    record = trainer.fit()[0]
    assert record["steps"] == 4 and torch.isfinite(torch.tensor(record["loss"]))

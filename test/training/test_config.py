"""Training config: official defaults, files, overrides, and errors that name the key."""

from __future__ import annotations

import json

import pytest

from edm_ros.errors import ConfigError
from edm_ros.training.config import TrainConfig, load_config


def test_defaults_are_the_official_outdoor_recipe():
    config = TrainConfig()
    assert config.schedule.canonical_lr == 2e-3 and config.schedule.canonical_batch == 32
    assert config.schedule.warmup_epochs == 3 and config.schedule.warmup_ratio == 0.1
    assert config.schedule.milestones == (8, 12, 16, 20, 24) and config.schedule.gamma == 0.5
    assert (config.epochs, config.weight_decay, config.gradient_clip) == (30, 0.1, 0.5)
    assert (config.loss.focal_alpha, config.loss.focal_gamma) == (0.25, 2.0)
    assert (config.loss.coarse_weight, config.loss.fine_weight) == (1.0, 0.2)
    assert config.loss.q_distribution == "laplace"
    assert (config.pad_num, config.topk_ratio, config.seed) == (32, 0.35, 66)
    assert config.image_size == (832, 832)


def test_yaml_file_and_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("batch_size: 8\nschedule:\n  canonical_lr: 0.001\nimage_size: [320, 256]\n")
    config = load_config(path, ["schedule.milestones=[2,4]", "images=none", "progress=false"])
    assert config.batch_size == 8 and config.image_size == (320, 256)
    assert config.schedule.canonical_lr == 1e-3 and config.schedule.milestones == (2, 4)
    assert config.schedule.gamma == 0.5  # untouched nested fields keep their defaults
    assert config.images is None and config.progress is False


def test_override_values_are_parsed_by_type(tmp_path):
    overrides = ["image_size=320,256", "device=cuda:0", f"output_dir={tmp_path}", "threads=2"]
    config = load_config(None, overrides)
    assert config.image_size == (320, 256) and config.device == "cuda:0"
    assert config.output_dir == str(tmp_path) and config.threads == 2


def test_json_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"loss": {"fine_weight": 0.5}, "epochs": 2}))
    config = load_config(path)
    assert config.loss.fine_weight == 0.5 and config.epochs == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_sise=2", "unknown config key.*batch_sise.*valid keys"),
        ("schedule.lr=1", "unknown config key.*schedule.lr"),
        ("batch_size=two", "batch_size: expected int, got 'two'"),
        ("data=kitti", "data: expected one of 'homography', 'megadepth', 'scannet'"),
        ("image_size=100,100", "multiple of 32"),
        ("image_size=320", "image_size: expected a list"),
        ("batch_size", "expected key=value"),
        ("data=megadepth", "needs data_root"),
    ],
)
def test_bad_values_raise_errors_that_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unreadable_files_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")

"""Checkpoint loading: official and plain layouts, strict keys, clear errors."""

from __future__ import annotations

import pytest
import torch

from edm_ros.errors import CheckpointError
from edm_ros.model.checkpoint import (
    FLOW_KEYS,
    FLOW_PREFIX,
    declares_random_weights,
    load_weights,
    read_checkpoint,
)
from edm_ros.model.edm import EDM


@pytest.fixture(scope="module")
def official_state(parity_weights) -> dict:
    return torch.load(parity_weights, weights_only=True)["state_dict"]


def test_official_release_layout_loads_strictly_and_returns_the_flow(parity_weights):
    model = EDM()
    flow, note = load_weights(model, parity_weights)
    assert set(flow) == FLOW_KEYS and len(flow) == 75
    assert declares_random_weights(note), "the parity file's note says its weights are random"
    reference = torch.load(parity_weights, weights_only=True)["state_dict"]
    torch.testing.assert_close(
        model.backbone.conv1.weight, reference["matcher.backbone.conv1.weight"], atol=0, rtol=0
    )


def test_plain_state_dict_without_flow_loads(tmp_path, official_state):
    plain = {k.removeprefix("matcher."): v for k, v in official_state.items()}
    plain = {k: v for k, v in plain.items() if not k.startswith(FLOW_PREFIX)}
    path = tmp_path / "plain.pt"
    torch.save(plain, path)
    assert load_weights(EDM(), path) == ({}, "")


def test_checkpoint_with_missing_keys_names_them(tmp_path, official_state):
    broken = dict(official_state)
    del broken["matcher.neck.fc32.c.weight"]
    broken["matcher.fine_matching.flow.extra"] = torch.zeros(1)
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": broken}, path)
    with pytest.raises(
        CheckpointError,
        match=r"1 missing keys \(neck\.fc32\.c\.weight\).*"
        r"1 unexpected keys \(fine_matching\.flow\.extra\)",
    ):
        load_weights(EDM(), path)


def test_checkpoint_with_wrong_shape_names_the_tensor(tmp_path, official_state):
    broken = dict(official_state)
    broken["matcher.neck.fc8.c.weight"] = torch.zeros(256, 64, 1, 1)
    path = tmp_path / "shape.ckpt"
    torch.save({"state_dict": broken}, path)
    with pytest.raises(CheckpointError, match=r"neck\.fc8\.c\.weight \(256, 64, 1, 1\)"):
        load_weights(EDM(), path)


def test_truncated_file_gives_a_clear_error(tmp_path, parity_weights):
    path = tmp_path / "partial.ckpt"
    path.write_bytes(parity_weights.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match=r"partial\.ckpt: unreadable as a torch checkpoint"):
        read_checkpoint(path)


def test_garbage_and_missing_files_give_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_checkpoint(tmp_path / "absent.ckpt")
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        read_checkpoint(not_weights)

"""The training forward: every trainable parameter learns, the flow stays out of inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from edm_ros.data.homography import HomographyPairGenerator
from edm_ros.model.checkpoint import load_weights
from edm_ros.model.edm import EDM
from edm_ros.training.checkpointing import TrainingState, official_state_dict, save_checkpoint
from edm_ros.training.data import homography_sample
from edm_ros.training.losses import RealNVP
from edm_ros.training.step import training_losses

SIZE = (128, 96)


@pytest.fixture(scope="module")
def batch():
    generator = HomographyPairGenerator(None, SIZE)
    pairs = [generator.sample(np.random.default_rng(seed)) for seed in range(2)]
    return default_collate([homography_sample(pair) for pair in pairs])


def test_every_trainable_parameter_gets_a_finite_nonzero_gradient(batch):
    torch.manual_seed(0)
    model, flow = EDM().train(), RealNVP()
    output = training_losses(model, flow, batch, generator=torch.Generator().manual_seed(0))
    output.losses.total.backward()
    assert output.num_positives > 50 and output.num_supervised >= 2 * 32
    missing = [
        name
        for name, parameter in [*model.named_parameters(), *flow.named_parameters(prefix="flow")]
        if parameter.grad is None
        or not torch.isfinite(parameter.grad).all()
        or parameter.grad.abs().sum() == 0
    ]
    assert missing == []


def test_padding_guarantees_32_supervised_head_rows_per_pair(batch):
    torch.manual_seed(0)
    model, flow = EDM().train(), RealNVP()
    with torch.no_grad():
        padded = training_losses(model, flow, batch, pad_num=32)
        unpadded = training_losses(model, flow, batch, pad_num=0)
    # Random weights rarely hit the window; padding brings each pair to 32 forward rows.
    assert unpadded.num_supervised < 2 * 32 <= padded.num_supervised


def test_flow_weights_do_not_change_inference(tmp_path, batch):
    torch.manual_seed(0)
    model = EDM().eval()
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = save_checkpoint(
            tmp_path / f"flow{seed}.ckpt", model, RealNVP(), None, TrainingState(0, 0, []), {}
        )
        loaded = EDM().eval()
        flow = load_weights(loaded, path).flow
        assert set(flow) == set(RealNVP().state_dict())  # the flow is in the file ...
        with torch.inference_mode():
            outputs.append(loaded(batch.image0, batch.image1))
    assert not any("flow" in key for key in EDM().state_dict())  # ... but not in the network
    for first, second in zip(*outputs):
        assert torch.equal(first, second)


def test_saved_state_dict_has_exactly_the_official_keys(parity_weights):
    official = torch.load(parity_weights, weights_only=True)["state_dict"]
    ours = official_state_dict(EDM(), RealNVP())
    assert set(ours) == set(official)
    assert all(ours[key].shape == official[key].shape for key in official)

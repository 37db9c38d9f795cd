"""Focal and RLE losses, and the RealNVP flow in the official checkpoint layout."""

from __future__ import annotations

import math

import pytest
import torch

from edm_ros.errors import ConfigError
from edm_ros.model.checkpoint import FLOW_PREFIX, OFFICIAL_PREFIX
from edm_ros.training.losses import (
    LossConfig,
    RealNVP,
    combine,
    focal_loss_on_positives,
    rle_loss,
)


def identity_flow() -> RealNVP:
    flow = RealNVP()
    with torch.no_grad():
        for net in [*flow.s, *flow.t]:
            net[4].weight.zero_()
            net[4].bias.zero_()
    return flow


def test_flow_keys_and_shapes_are_those_of_the_official_checkpoint(parity_weights):
    official = torch.load(parity_weights, weights_only=True)["state_dict"]
    prefix = OFFICIAL_PREFIX + FLOW_PREFIX
    expected = {k[len(prefix) :]: v.shape for k, v in official.items() if k.startswith(prefix)}
    ours = {key: value.shape for key, value in RealNVP().state_dict().items()}
    assert ours == expected
    flow = RealNVP()
    flow.load_state_dict({key: official[prefix + key] for key in expected}, strict=True)
    assert torch.equal(flow.mask, torch.tensor([[0.0, 1.0], [1.0, 0.0]] * 3))


def test_flow_is_a_normalised_density():
    torch.manual_seed(0)
    flow = RealNVP()
    with torch.no_grad():  # make the couplings matter, not just the near-identity init
        for net in [*flow.s, *flow.t]:
            net[4].weight.mul_(300)
    step = 0.05
    axis = torch.arange(-8, 8, step) + step / 2
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum() * step**2
    assert mass.item() == pytest.approx(1.0, abs=5e-3)


def test_flow_with_identity_couplings_is_the_standard_normal():
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    expected = -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)
    assert torch.allclose(identity_flow().log_prob(x), expected, atol=1e-6)


def test_focal_loss_known_value_on_positive_entries_only():
    confidence = torch.full((1, 3, 3), 0.01)
    confidence[0, 1, 2] = 0.5
    positives = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    loss = focal_loss_on_positives(confidence, positives, alpha=0.25, gamma=2.0)
    assert loss.item() == pytest.approx(-0.25 * 0.25 * math.log(0.5))


def test_focal_loss_without_positives_is_zero_and_differentiable():
    confidence = torch.rand(2, 4, 4, requires_grad=True)
    empty = torch.zeros(0, dtype=torch.long)
    loss = focal_loss_on_positives(confidence, (empty, empty, empty))
    loss.backward()
    assert loss.item() == 0.0 and confidence.grad is not None


@pytest.mark.parametrize("q_distribution", ["laplace", "gaussian"])
def test_rle_loss_known_value(q_distribution):
    # One supervised row: mu - gt = (0.1, -0.2) cells, sigma = (0.2, 0.4); standard-normal flow.
    offsets = torch.tensor([[[0.1, -0.2], [0.3, 0.3]]])
    targets = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    sigma = torch.tensor([[[0.2, 0.4], [0.5, 0.5]]])
    supervised = torch.tensor([[True, False]])
    residual = torch.tensor([0.5, -0.5])
    log_phi = -0.5 * (residual**2).sum() - math.log(2 * math.pi)
    sigma_row = torch.tensor([0.2, 0.4])
    if q_distribution == "laplace":
        prior = torch.log(2 * sigma_row) + residual.abs()
    else:
        prior = torch.log(sigma_row * math.sqrt(2 * math.pi)) + residual**2 / 2
    expected = (torch.log(sigma_row) - log_phi + prior).mean()
    loss = rle_loss(offsets, sigma, targets, supervised, identity_flow(), q_distribution)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_rle_loss_ignores_unsupervised_rows_and_trains_the_flow():
    flow = RealNVP()
    targets = torch.zeros(1, 4, 2)
    sigma = torch.full((1, 4, 2), 0.3)
    supervised = torch.tensor([[True, True, False, False]])
    offsets = torch.tensor([[[0.1, 0.0], [0.0, -0.1], [0.4, 0.4], [-0.4, 0.2]]])
    changed = offsets.clone()
    changed[0, 2:] = 0.0
    loss = rle_loss(offsets, sigma, targets, supervised, flow)
    assert loss.item() == pytest.approx(rle_loss(changed, sigma, targets, supervised, flow).item())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_rle_loss_prefers_the_right_offset_and_a_sigma_that_fits_the_error():
    flow = identity_flow()
    targets = torch.zeros(1, 1, 2)
    supervised = torch.ones(1, 1, dtype=torch.bool)

    def loss(mu: float, sigma: float) -> float:
        offsets = torch.full((1, 1, 2), mu)
        return rle_loss(offsets, torch.full((1, 1, 2), sigma), targets, supervised, flow).item()

    assert loss(0.0, 0.1) < loss(0.2, 0.1)
    assert loss(0.2, 0.2) < loss(0.2, 0.01)  # confident and wrong costs most


def test_rle_loss_without_supervised_rows_is_zero():
    offsets = torch.zeros(1, 2, 2, requires_grad=True)
    loss = rle_loss(
        offsets,
        torch.full((1, 2, 2), 0.5),
        offsets.detach(),
        torch.zeros(1, 2, dtype=torch.bool),
        RealNVP(),
    )
    loss.backward()
    assert loss.item() == 0.0


def test_total_is_the_official_weighting():
    terms = combine(torch.tensor(2.0), torch.tensor(3.0), LossConfig())
    assert terms.total.item() == pytest.approx(1.0 * 2.0 + 0.2 * 3.0)
    assert (terms.coarse.item(), terms.fine.item()) == (2.0, 3.0)


def test_invalid_loss_settings_are_rejected():
    with pytest.raises(ConfigError, match="loss weights"):
        LossConfig(fine_weight=-1)
    with pytest.raises(ConfigError, match="focal_alpha"):
        LossConfig(focal_alpha=0)
    with pytest.raises(ConfigError, match="q_distribution"):
        LossConfig(q_distribution="cauchy")  # type: ignore[arg-type]

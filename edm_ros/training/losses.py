"""EDM's training losses: sparse focal loss on the coarse matches, RLE loss on the fine offsets.

Total loss (official code): ``L = 1.0 · L_coarse + 0.2 · L_fine``.

* ``L_coarse``: focal loss on the ground-truth positive entries of the dual-softmax matrix only
  (sparse supervision, α 0.25, γ 2); the softmax normalisation is the implicit negative term.
* ``L_fine``: residual log-likelihood estimation (RLE, Li et al., ICCV 2021). The normalised
  residual ū = (μ - gt) / σ is scored by a learned density (a 2-D RealNVP flow) and by a Laplace
  prior Q: per row and axis ``log σ - log φ(ū) + log(2σ) + |μ - gt| / σ``.

The flow is training-only. Its keys follow the official checkpoint (``fine_matching.flow.loc``,
``cov``, ``mask``, ``s.{0..5}.{0,2,4}.{weight,bias}``, ``t.…``) so that a trained checkpoint loads
in the official code and in ours (:data:`edm_ros.model.checkpoint.FLOW_PREFIX`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from edm_ros.errors import ConfigError

#: Probabilities and σ are clamped to [eps, 1 - eps] before taking logs (official value).
CLAMP_EPS = 1e-6


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and shapes; defaults are the official outdoor recipe (official configs)."""

    coarse_weight: float = 1.0  # LOSS.COARSE_WEIGHT
    fine_weight: float = 0.2  # LOSS.FINE_WEIGHT
    focal_alpha: float = 0.25  # LOSS.FOCAL_ALPHA
    focal_gamma: float = 2.0  # LOSS.FOCAL_GAMMA
    q_distribution: Literal["laplace", "gaussian"] = "laplace"  # LOSS.Q_DISTRIBUTION

    def __post_init__(self) -> None:
        if self.coarse_weight < 0 or self.fine_weight < 0:
            raise ConfigError(
                f"loss weights must be >= 0, got coarse {self.coarse_weight}, "
                f"fine {self.fine_weight}"
            )
        if not 0.0 < self.focal_alpha <= 1.0 or self.focal_gamma < 0:
            raise ConfigError(
                f"focal_alpha must be in (0, 1] and focal_gamma >= 0, got {self.focal_alpha}, "
                f"{self.focal_gamma}"
            )
        if self.q_distribution not in ("laplace", "gaussian"):
            raise ConfigError(
                f"q_distribution must be 'laplace' or 'gaussian', got {self.q_distribution!r}"
            )


class LossTerms(NamedTuple):
    """The weighted total (with its graph) and the two unweighted parts (detached scalars)."""

    total: Tensor
    coarse: Tensor
    fine: Tensor


def _coupling_net(final: nn.Module | None) -> nn.Sequential:
    """2 -> 64 -> 64 -> 2 MLP; module indices 0, 2, 4 are the Linear layers (official keys)."""
    layers: list[nn.Module] = [nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU()]
    layers.append(nn.Linear(64, 2))
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """2-D RealNVP density: base N(loc, cov), six affine couplings with alternating masks.

    Only :meth:`log_prob` is needed (the loss scores residuals); sampling is never used.
    """

    loc: Tensor  # [2] buffers, saved under the official names
    cov: Tensor  # [2, 2]
    mask: Tensor  # [num_couplings, 2]

    def __init__(self, num_couplings: int = 6) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(2))
        self.register_buffer("cov", torch.eye(2))
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(num_couplings // 2, 1)
        self.register_buffer("mask", masks)  # [num_couplings, 2]
        self.s = nn.ModuleList(_coupling_net(nn.Tanh()) for _ in range(num_couplings))
        self.t = nn.ModuleList(_coupling_net(None) for _ in range(num_couplings))
        for module in self.modules():
            if isinstance(module, nn.Linear):  # official init: small weights, default biases
                nn.init.xavier_uniform_(module.weight, gain=0.01)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of samples x [N, 2] -> [N]."""
        z, log_det = x, x.new_zeros(x.shape[0])
        for index in reversed(range(len(self.s))):  # invert the couplings, last one first
            mask = self.mask[index]
            kept = z * mask
            scale = self.s[index](kept) * (1 - mask)
            shift = self.t[index](kept) * (1 - mask)
            z = (1 - mask) * (z - shift) * torch.exp(-scale) + kept
            log_det = log_det - scale.sum(dim=1)
        return self._base_log_prob(z) + log_det

    def _base_log_prob(self, z: Tensor) -> Tensor:
        """Log-density of N(loc, cov) at z [N, 2] (closed form; cov is the official buffer)."""
        centred = z - self.loc
        solved = torch.linalg.solve(self.cov, centred.T).T
        _, log_abs_det = torch.linalg.slogdet(self.cov)
        return -0.5 * ((centred * solved).sum(dim=1) + log_abs_det + 2 * math.log(2 * math.pi))


def focal_loss_on_positives(
    confidence: Tensor,
    positives: tuple[Tensor, Tensor, Tensor],
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Tensor:
    """Sparse focal loss: mean over ground-truth positives of -α (1 - P)^γ log P.

    Args:
        confidence: [B, L0, L1] dual-softmax matrix.
        positives: (batch, row, col) index vectors [P].
        alpha, gamma: focal parameters.

    Returns:
        Scalar; 0 (still attached to the graph) when there is no positive.
    """
    batch, row, col = positives
    if batch.numel() == 0:
        return confidence.sum() * 0.0
    probability = confidence[batch, row, col].clamp(CLAMP_EPS, 1 - CLAMP_EPS)
    return (-alpha * (1 - probability) ** gamma * probability.log()).mean()


def rle_loss(
    offsets: Tensor,
    sigma: Tensor,
    targets: Tensor,
    supervised: Tensor,
    flow: RealNVP,
    q_distribution: Literal["laplace", "gaussian"] = "laplace",
) -> Tensor:
    """Residual log-likelihood loss of the fine head.

    Args:
        offsets: [B, 2K, 2] predicted μ, cells.
        sigma: [B, 2K, 2] predicted σ in (0, 1), cells.
        targets: [B, 2K, 2] ground-truth offsets, cells.
        supervised: [B, 2K] bool rows to use.
        flow: the RealNVP density of normalised residuals.
        q_distribution: the prior Q ("laplace" official, or "gaussian").

    Returns:
        Scalar mean over supervised rows and both axes; 0 (attached) without supervised rows.
    """
    if not bool(supervised.any()):
        return (offsets.sum() + sigma.sum()) * 0.0
    mu, gt = offsets[supervised], targets[supervised]  # [N, 2]
    sigma_rows = sigma[supervised].clamp(CLAMP_EPS, 1 - CLAMP_EPS)
    residual = (mu - gt) / sigma_rows
    log_phi = flow.log_prob(residual)[:, None]  # one value per row, shared by both axes
    flow_term = sigma_rows.log() - log_phi
    if q_distribution == "laplace":
        prior_term = torch.log(2 * sigma_rows) + residual.abs()
    else:
        prior_term = torch.log(sigma_rows * math.sqrt(2 * math.pi)) + 0.5 * residual**2
    return (flow_term + prior_term).mean()


def combine(coarse: Tensor, fine: Tensor, config: LossConfig) -> LossTerms:
    """Weighted total of the two losses."""
    total = config.coarse_weight * coarse + config.fine_weight * fine
    return LossTerms(total, coarse.detach(), fine.detach())

"""Inference backends: one way to run the EDM network per runtime, same inputs, same outputs."""

from __future__ import annotations

from edm_ros.backends.base import Backend, CandidateArrays
from edm_ros.errors import ConfigError
from edm_ros.model.config import MatcherConfig
from edm_ros.model.edm import EDM

#: Backend names accepted by ``EDMMatcher(backend=...)``.
BACKENDS = ("torch",)


def create_backend(name: str, model: EDM, device: str, config: MatcherConfig) -> Backend:
    """Build the backend ``name`` for ``model`` on ``device`` (optional packages load here)."""
    if name == "torch":
        from edm_ros.backends.pytorch import TorchBackend

        return TorchBackend(model, device)
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "CandidateArrays", "create_backend"]

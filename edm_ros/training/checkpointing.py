"""Training checkpoints in the official layout, plus what a resumed run needs.

File content (``torch.save``, loadable with ``weights_only=True``)::

    {"state_dict": {"matcher.<EDM key>": tensor, ..., "matcher.fine_matching.flow.<key>": tensor},
     "optimizer_states": [AdamW state_dict], "epoch": int, "global_step": int,
     "config": {...}, "history": [{...}, ...]}

``state_dict`` is what the official Lightning checkpoint holds (the flow included), so the file
loads in the official code and in :func:`edm_ros.model.checkpoint.load_weights` (``EDMMatcher``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edm_ros.errors import CheckpointError
from edm_ros.model.checkpoint import FLOW_PREFIX, OFFICIAL_PREFIX, load_weights
from edm_ros.model.edm import EDM
from edm_ros.training.losses import RealNVP


@dataclass(frozen=True)
class TrainingState:
    """Where a saved run stopped."""

    epoch: int  # epochs completed
    global_step: int  # optimiser steps taken
    history: list[dict[str, Any]]  # one record per completed epoch


def official_state_dict(model: EDM, flow: RealNVP) -> dict[str, torch.Tensor]:
    """The network and flow tensors under the official key names ("matcher." prefix)."""
    state = {OFFICIAL_PREFIX + key: value for key, value in model.state_dict().items()}
    for key, value in flow.state_dict().items():
        state[OFFICIAL_PREFIX + FLOW_PREFIX + key] = value
    return {key: value.detach().cpu() for key, value in state.items()}


def save_checkpoint(
    path: str | Path,
    model: EDM,
    flow: RealNVP,
    optimizer: torch.optim.Optimizer | None,
    state: TrainingState,
    config: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "state_dict": official_state_dict(model, flow),
        "optimizer_states": [optimizer.state_dict()] if optimizer is not None else [],
        "epoch": state.epoch,
        "global_step": state.global_step,
        "config": config,
        "history": state.history,
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(content, temporary)
    os.replace(temporary, path)
    return path


def load_flow(flow: RealNVP, flow_state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load flow weights found in a checkpoint (strict names and shapes).

    Raises:
        CheckpointError: flow keys that do not fit the RealNVP of the RLE loss.
    """
    try:
        flow.load_state_dict(flow_state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: its RLE flow ({FLOW_PREFIX}*) does not fit the 6-coupling RealNVP: {err}"
        ) from err


def load_model_weights(model: EDM, flow: RealNVP, path: str | Path) -> bool:
    """Load network weights (strict) and, if the file has them, flow weights.

    Returns:
        True when the flow was found and loaded; False when it kept its initialisation.
    """
    flow_state = load_weights(model, path).flow
    if flow_state:
        load_flow(flow, flow_state, path)
    return bool(flow_state)


def resume(
    path: str | Path, model: EDM, flow: RealNVP, optimizer: torch.optim.Optimizer
) -> TrainingState:
    """Restore network, flow and optimiser from a training checkpoint written by this module.

    Raises:
        CheckpointError: the file is not such a checkpoint (no optimiser state or step count).
    """
    if not load_model_weights(model, flow, path):
        raise CheckpointError(f"{path}: holds no RLE flow weights, so it is not a training run")
    content = torch.load(path, map_location="cpu", weights_only=True)
    states = content.get("optimizer_states") or []
    if not states or "global_step" not in content:
        raise CheckpointError(
            f"{path}: no optimizer state or step count; it holds weights only. Start a new run "
            "with init_weights=<this file> instead of resuming."
        )
    try:
        optimizer.load_state_dict(states[0])
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({err})") from err
    return TrainingState(
        epoch=int(content.get("epoch", 0)),
        global_step=int(content["global_step"]),
        history=list(content.get("history", [])),
    )

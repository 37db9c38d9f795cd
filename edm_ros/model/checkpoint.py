"""Load EDM weights: the official release (Lightning) or a plain state_dict, strictly checked."""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from edm_ros.errors import CheckpointError
from edm_ros.model.edm import EDM

#: Key prefix of the official Lightning checkpoint (the LightningModule's ``matcher`` attribute).
OFFICIAL_PREFIX = "matcher."
#: The training-only RealNVP flow of the RLE loss is stored inside the head's weights; inference
#: does not use it, training (``edm_ros.training``) reads it back from here.
FLOW_PREFIX = "fine_matching.flow."
#: Key names of that flow (RealNVP, 6 coupling layers with scale "s" and translation "t" nets).
FLOW_KEYS = frozenset(
    ["loc", "cov", "mask"]
    + [
        f"{net}.{layer}.{linear}.{param}"
        for net in ("s", "t")
        for layer in range(6)
        for linear in (0, 2, 4)
        for param in ("weight", "bias")
    ]
)


#: Passed as ``weights``: a seeded random initialisation (tests, plumbing), never a default.
RANDOM_WEIGHTS = "random"
#: The package's own weights (trained with edm-train; card: docs/weights.md), used by default.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "edm_ros_v1.ckpt"


def resolve_weights(weights: str | Path | None) -> Path | None:
    """The weights file to load: ``None`` is the shipped file, ``"random"`` is no file (None).

    Raises:
        CheckpointError: ``None`` given but the shipped file is not installed.
    """
    if weights is None:
        if not SHIPPED_WEIGHTS.is_file():
            raise CheckpointError(
                f"the package's weights are not installed ({SHIPPED_WEIGHTS} is missing); pass a "
                "checkpoint (official edm_outdoor.ckpt: README, 'Weights') or "
                f"{RANDOM_WEIGHTS!r} for random weights"
            )
        return SHIPPED_WEIGHTS
    if str(weights) == RANDOM_WEIGHTS:
        return None
    return Path(weights)


class Checkpoint(NamedTuple):
    """What a weights file holds."""

    state: dict[str, Tensor]  # network (and flow) tensors, 'matcher.' prefix removed
    note: str  # the file's free-text "note" ("" if none); test files say "random weights ..."


class LoadedWeights(NamedTuple):
    """What :func:`load_weights` found besides the network weights."""

    flow: dict[str, Tensor]  # training-only RealNVP flow (empty if the file has none)
    note: str


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read the network's tensors from an official or plain checkpoint, prefix removed.

    Accepts ``{"state_dict": {"matcher.<key>": ...}}`` (the released ``edm_outdoor.ckpt``), the
    same without the prefix, and a bare ``{<key>: tensor}`` state_dict.

    Raises:
        CheckpointError: missing, unreadable or truncated file, or no state_dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such weights file. Download the official EDM checkpoint (see README, "
            "'Weights') and pass its path."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (  # what torch.load raises on damaged or foreign files
        OSError,
        RuntimeError,
        EOFError,
        ValueError,
        KeyError,
        struct.error,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        raise CheckpointError(
            f"{path}: unreadable as a torch checkpoint ({type(err).__name__}: {err}). Is the file "
            "complete (a partial download is a common cause)?"
        ) from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path}: holds no state_dict of tensors (top-level type {type(checkpoint).__name__}). "
            "Expected the official release ('state_dict' with 'matcher.' keys) or a plain "
            "state_dict."
        )
    if state and all(key.startswith(OFFICIAL_PREFIX) for key in state):
        state = {key[len(OFFICIAL_PREFIX) :]: value for key, value in state.items()}
    note = checkpoint.get("note", "") if "state_dict" in checkpoint else ""
    return Checkpoint(state, note if isinstance(note, str) else "")


def declares_random_weights(note: str) -> bool:
    """True for a checkpoint whose note says its weights are random (test fixtures)."""
    return note.lower().startswith("random")


def split_flow(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split a checkpoint into (network weights, RealNVP flow weights without their prefix)."""
    network = {k: v for k, v in state.items() if not k.startswith(FLOW_PREFIX)}
    flow = {k[len(FLOW_PREFIX) :]: v for k, v in state.items() if k.startswith(FLOW_PREFIX)}
    return network, flow


def load_weights(model: EDM, path: str | Path) -> LoadedWeights:
    """Load a checkpoint into ``model`` with strict key and shape checks.

    Returns:
        The training-only flow weights found in the file (empty if none) and its note.

    Raises:
        CheckpointError: the file is unreadable or its keys or shapes do not fit EDM.
    """
    checkpoint = read_checkpoint(path)
    network, flow = split_flow(checkpoint.state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(network))
    unexpected = sorted(set(network) - set(expected))
    unexpected += sorted(FLOW_PREFIX + key for key in set(flow) - FLOW_KEYS)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not an EDM checkpoint: {len(missing)} missing keys "
            f"({_preview(missing)}), {len(unexpected)} unexpected keys ({_preview(unexpected)}). "
            "Expected the official release ('state_dict', 'matcher.' prefix) or a plain "
            "state_dict of edm_ros.model.EDM."
        )
    wrong = [
        f"{key} {tuple(network[key].shape)} != {tuple(value.shape)}"
        for key, value in expected.items()
        if network[key].shape != value.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{path}: {len(wrong)} tensors have the wrong shape for this EDM configuration: "
            f"{_preview(wrong)}"
        )
    model.load_state_dict(network, strict=True)
    return LoadedWeights(flow, checkpoint.note)


def _preview(items: list[str], count: int = 3) -> str:
    shown = ", ".join(items[:count])
    return shown + (", ..." if len(items) > count else "") if items else "none"

"""EDMMatcher: numpy images in, sub-pixel matches in original-image pixels out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from edm_ros.backends import BackendOptions, create_backend
from edm_ros.errors import InputError
from edm_ros.model.checkpoint import (
    SHIPPED_WEIGHTS,
    declares_random_weights,
    load_weights,
    resolve_weights,
)
from edm_ros.model.config import SIZE_MULTIPLE, EDMConfig, MatcherConfig, check_network_size
from edm_ros.model.edm import EDM
from edm_ros.model.selection import select_matches
from edm_ros.results import MatchResult

logger = logging.getLogger(__name__)

#: Seed of the random initialisation of ``weights="random"`` (tests, plumbing demos).
RANDOM_WEIGHTS_SEED = 0
MEANINGLESS = ": matches are meaningless; use the default or the official EDM weights"


class BuiltModel(NamedTuple):
    """An EDM network ready for inference, and what its weights are."""

    model: EDM
    description: str  # says plainly which weights these are
    random_weights: bool  # True: seeded random init, or a file whose note says "random"


def build_model(
    weights: str | Path | None,
    config: EDMConfig | None = None,
    topk_ratio: float = MatcherConfig.topk_ratio,
) -> BuiltModel:
    """EDM in eval mode with weights from a checkpoint.

    Args:
        weights: a checkpoint file; None = the package's shipped weights; ``"random"`` = seeded
            random weights (meaningless matches, for tests and plumbing).
    """
    path = resolve_weights(weights)
    if path is None:
        with torch.random.fork_rng(devices=[]):  # no effect on the caller's random state
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = EDM(config, topk_ratio).eval()
        return BuiltModel(model, f"RANDOM weights (seed {RANDOM_WEIGHTS_SEED}){MEANINGLESS}", True)
    model = EDM(config, topk_ratio)
    note = load_weights(model, path).note
    name = "the package's weights" if path == SHIPPED_WEIGHTS else "checkpoint"
    description = f"{name} {path.resolve()}" + (f" ({note})" if note else "")
    if declares_random_weights(note):
        return BuiltModel(model.eval(), f"RANDOM weights from {description}{MEANINGLESS}", True)
    return BuiltModel(model.eval(), description, False)


class EDMMatcher:
    """Match image pairs with EDM.

    Example:
        >>> matcher = EDMMatcher(weights="edm_outdoor.ckpt", device="cpu", input_size=(640, 480))
        >>> result = matcher.match(image0, image1)
        >>> result.keypoints0, result.keypoints1  # [M, 2] pixels of the original images
        >>> outdoor = EDMMatcher(config=MatcherConfig(match_threshold=0.05), backend="onnxruntime")

    Images of any size are resized (without keeping the aspect ratio, as the official demos do)
    to the network input size, and the keypoints mapped back per axis.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "cpu",
        *,
        config: MatcherConfig | None = None,
        backend: str = "torch",
        backend_options: BackendOptions | None = None,
        **settings: Any,
    ) -> None:
        """Args:
        weights: EDM checkpoint (official ``.ckpt`` or a plain state_dict); None = the weights
            shipped with the package (docs/weights.md); ``"random"`` = seeded random weights,
            whose matches are meaningless (tests and plumbing only).
        device: "cpu", "cuda" or "cuda:N".
        config: the matcher settings (:class:`MatcherConfig`); None = its defaults.
        backend: "torch" (reference), "onnxruntime", "tensorrt" or "auto" (docs/deployment.md).
        backend_options: cache directory, precision, static batch size, CUDA graph, ...
        **settings: MatcherConfig fields by name (``input_size=(640, 480)``,
            ``match_threshold=0.05``, ``border=8``, ...); they override ``config``.

        Raises:
            ConfigError: an unknown setting or an invalid value.
        """
        self.config = (config or MatcherConfig()).updated(**settings)
        model, self.weights_description, self.random_weights = build_model(
            weights, topk_ratio=self.config.topk_ratio
        )
        self.backend = create_backend(backend, model, device, self.config, backend_options)
        if self.random_weights:
            logger.warning("EDMMatcher: %s", self.weights_description)

    def match(self, image0: np.ndarray, image1: np.ndarray) -> MatchResult:
        """Match one pair. Images: uint8 grey (H, W) or BGR (H, W, 3), any size.

        Raises:
            InputError: an image that is not a usable picture (dtype, shape, size, NaN).
        """
        return self.match_batch([(image0, image1)])[0]

    def match_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[MatchResult]:
        """Match several pairs in one forward pass (all resized to one network size).

        With ``input_size=None`` the network size is the first image rounded to /32.
        """
        if not isinstance(pairs, Sequence) or len(pairs) == 0:
            raise InputError("match_batch needs a non-empty sequence of (image0, image1) pairs")
        for index, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InputError(
                    f"pair {index}: expected a tuple (image0, image1), got {pair!r:.60}"
                )
        grey = [
            [to_grey(image, f"pair {i} image{side}") for side, image in enumerate(pair)]
            for i, pair in enumerate(pairs)
        ]
        network_size = self.config.input_size or round_to_network_size(grey[0][0].shape[::-1])
        batch = np.stack(
            [np.stack([resize_to_network(g, network_size) for g in pair]) for pair in grey]
        )
        start = time.perf_counter()
        candidates = self.backend.run(batch)
        per_pair_ms = (time.perf_counter() - start) * 1e3 / len(pairs)
        results = []
        for index, (grey0, grey1) in enumerate(grey):
            size0, size1 = _size(grey0), _size(grey1)
            matches = select_matches(
                candidates.pair(index),
                _scale(size0, network_size),
                _scale(size1, network_size),
                size0,
                size1,
                self.config,
            )
            results.append(MatchResult(*matches, size0, size1, per_pair_ms))
        return results


def to_grey(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an image and convert it to one grey channel (uint8 kept, others to float [0, 1]).

    Accepts uint8, uint16 and float images in [0, 1], with 1 (H, W), 3 (BGR) or 4 (BGRA) channels.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(
            f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"{name}: image of {image.shape[1]}x{image.shape[0]} pixels is too small")
    if image.dtype == np.uint8:
        grey = image
    elif image.dtype == np.uint16:
        grey = image.astype(np.float32) / 65535.0
    elif image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise InputError(f"{name}: contains NaN or infinite values")
        if image.min() < 0.0 or image.max() > 1.0:
            raise InputError(
                f"{name}: float images must lie in [0, 1], got [{image.min()}, {image.max()}]"
            )
        grey = image.astype(np.float32)
    else:
        raise InputError(
            f"{name}: unsupported dtype {image.dtype}; use uint8, uint16 or float in [0, 1]"
        )
    if grey.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if grey.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        grey = cv2.cvtColor(np.ascontiguousarray(grey), code)
    return grey


def round_to_network_size(size: tuple[int, int]) -> tuple[int, int]:
    """(W, H) -> the nearest multiple of 32 per side (at least 32)."""
    rounded = tuple(
        max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE) for side in size
    )
    check_network_size(rounded)  # type: ignore[arg-type]
    return rounded  # type: ignore[return-value]


def resize_to_network(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a grey image to (W, H) and return float32 in [0, 1] (area when shrinking)."""
    if _size(grey) != size:
        shrinking = size[0] < grey.shape[1] or size[1] < grey.shape[0]
        grey = cv2.resize(
            grey, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    return grey.astype(np.float32) / 255.0 if grey.dtype == np.uint8 else grey


def _size(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[0])


def _scale(size: tuple[int, int], network_size: tuple[int, int]) -> tuple[float, float]:
    return size[0] / network_size[0], size[1] / network_size[1]

"""Latency of a matcher against image resolution and batch size (the paper's Tab. 10 and 11).

Wall-clock time of ``match`` / ``match_batch`` on host arrays, after warm-up runs; the median of
the timed repetitions is reported. For EDM, build the matcher with ``input_size=None`` so that it
runs at each image size given here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edm_ros.errors import ConfigError
from edm_ros.evaluation.baselines import NamedMatcher


@dataclass(frozen=True)
class LatencyPoint:
    """Median time of one call at one resolution and batch size."""

    matcher: str
    width: int
    height: int
    batch_size: int
    call_ms: float  # median wall time of one call (a whole batch)
    repeats: int

    @property
    def per_pair_ms(self) -> float:
        """Time per image pair."""
        return self.call_ms / self.batch_size


def _median_ms(call: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _check_counts(repeats: int, warmup: int) -> None:
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")


def latency_vs_resolution(
    matcher: NamedMatcher,
    image0: np.ndarray,
    image1: np.ndarray,
    resolutions: Sequence[tuple[int, int]],
    *,
    repeats: int = 3,
    warmup: int = 1,
) -> list[LatencyPoint]:
    """Time ``match`` on the pair resized to each (W, H).

    Args:
        matcher: a matcher that runs at the size of its input images.
        image0, image1: one image pair (grey or BGR uint8).
        resolutions: (width, height) pixels; use multiples of 32 for EDM.
        repeats: timed calls per resolution.
        warmup: untimed calls first (allocations, kernel selection).

    Returns:
        One point per resolution, batch size 1.
    """
    _check_counts(repeats, warmup)
    points = []
    for width, height in resolutions:
        resized0 = cv2.resize(image0, (width, height), interpolation=cv2.INTER_AREA)
        resized1 = cv2.resize(image1, (width, height), interpolation=cv2.INTER_AREA)
        call_ms = _median_ms(
            functools.partial(matcher.matcher.match, resized0, resized1), repeats, warmup
        )
        points.append(LatencyPoint(matcher.name, width, height, 1, call_ms, repeats))
    return points


def latency_vs_batch(
    matcher: NamedMatcher,
    image0: np.ndarray,
    image1: np.ndarray,
    batch_sizes: Sequence[int],
    *,
    repeats: int = 3,
    warmup: int = 1,
) -> list[LatencyPoint]:
    """Time ``match_batch`` on ``batch_size`` copies of one pair (as the paper's Tab. 11).

    Args:
        matcher: the matcher (its own input size applies).
        image0, image1: one image pair at the resolution to time.
        batch_sizes: pairs per call.
        repeats: timed calls per batch size.
        warmup: untimed calls first.

    Returns:
        One point per batch size.
    """
    _check_counts(repeats, warmup)
    height, width = image0.shape[:2]
    points = []
    for batch_size in batch_sizes:
        if batch_size < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {batch_size}")
        batch = [(image0, image1)] * batch_size
        call_ms = _median_ms(functools.partial(matcher.matcher.match_batch, batch), repeats, warmup)
        points.append(LatencyPoint(matcher.name, width, height, batch_size, call_ms, repeats))
    return points


@dataclass(frozen=True)
class LatencyResults:
    """The latency sweeps shown in the report (either may be empty)."""

    resolution: tuple[LatencyPoint, ...] = ()
    batch: tuple[LatencyPoint, ...] = ()

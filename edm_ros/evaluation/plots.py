"""Line plots of the report as PNG (matplotlib is imported here only, on first use).

matplotlib is used through ``Figure`` and its Agg canvas, never ``pyplot``: no global backend or
state is touched, so the plots work in headless runs and inside other programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edm_ros.errors import ConfigError


@dataclass(frozen=True)
class Curve:
    """One line of a plot."""

    x: np.ndarray
    y: np.ndarray
    style: str = "-o"  # matplotlib format string


def plot_curves(
    path: Path,
    curves: Mapping[str, Curve],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
) -> Path:
    """Draw labelled lines into one PNG.

    Args:
        path: the PNG to write (its folder must exist).
        curves: label -> line.
        title, xlabel, ylabel: texts of the axes.
        log_x: logarithmic x axis (base 2, for batch sizes).

    Returns:
        ``path``.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ConfigError(f"plots need matplotlib ({err}): pip install matplotlib") from err
    figure = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        axes.plot(curve.x, curve.y, curve.style, label=label, markersize=3)
    if log_x:
        axes.set_xscale("log", base=2)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return path


def cumulative_curve(errors: np.ndarray, limit: float, steps: int = 200) -> Curve:
    """Fraction of pairs (or matches) with error <= x, for x in [0, limit] (an error CDF)."""
    thresholds = np.linspace(0.0, limit, steps)
    values = np.sort(np.where(np.isnan(errors), np.inf, errors))
    fraction = np.searchsorted(values, thresholds, side="right") / max(len(values), 1)
    return Curve(thresholds, fraction, style="-")

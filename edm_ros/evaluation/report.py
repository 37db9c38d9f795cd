"""The evaluation report: one Markdown file with tables, PNG plots and a JSON of all numbers.

Layout of the output folder::

    report.md            tables per dataset, latency, evaluation time, links to the figures
    results.json         every per-pair number (errors, precision, matches, latency)
    figures/*.png        error CDFs, AUC curves, latency plots, match drawings
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edm_ros.evaluation.baselines import NamedMatcher
from edm_ros.evaluation.latency import LatencyPoint, LatencyResults
from edm_ros.evaluation.metrics import (
    HOMOGRAPHY_AUC_THRESHOLDS_PX,
    POSE_AUC_THRESHOLDS_DEG,
    error_auc,
)
from edm_ros.evaluation.odometry import OdometryResult, odometry_section
from edm_ros.evaluation.plots import Curve, cumulative_curve, plot_curves
from edm_ros.evaluation.records import json_ready, results_json
from edm_ros.evaluation.runner import (
    EPIPOLAR_PRECISION_PX,
    HOMOGRAPHY_THRESHOLD_PX,
    POSE_ESTIMATORS,
    Evaluation,
    HomographyEvaluation,
    HomographyPairResult,
    PoseEvaluation,
    PosePairResult,
    load_grey,
)
from edm_ros.visualization import draw_matches

_ESTIMATOR_LABELS = {"ransac": "RANSAC", "poselib": "LO-RANSAC"}


@dataclass(frozen=True)
class ReportContext:
    """What the header says about the run."""

    command: str
    device: str
    matchers: tuple[NamedMatcher, ...]
    notes: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))


def _percent(value: float) -> str:
    return f"{100.0 * value:.1f}"


def _number(value: float, digits: int = 1) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _header(context: ReportContext) -> list[str]:
    import torch

    lines = ["# edm_ros evaluation report", ""]
    for matcher in context.matchers:
        if matcher.random_weights:
            lines += [
                f"> **WARNING: {matcher.name} ran with RANDOM weights. Its numbers below are "
                "meaningless (plumbing and timing only).** Pass the official EDM checkpoint "
                "with `--weights` for real results.",
                "",
            ]
    lines += [
        f"- created: {context.created}",
        f"- command: `{context.command}`",
        f"- device: {context.device}; host: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, OpenCV {cv2.__version__}",
        "",
    ]
    lines += _table(
        ["matcher", "weights / configuration"],
        [[m.name, m.description] for m in context.matchers],
    )
    return lines + [f"- {note}" for note in context.notes] + ([""] if context.notes else [])


def _pose_summary_rows(evaluations: Sequence[PoseEvaluation]) -> list[list[str]]:
    rows = []
    for evaluation in evaluations:
        row = [evaluation.matcher]
        for estimator in POSE_ESTIMATORS:
            row += [_percent(auc) for auc in evaluation.auc(estimator)]
        matches = [len(pair.matches) for pair in evaluation.pairs]
        latency = [pair.latency_ms for pair in evaluation.pairs]
        row += [
            _percent(float(np.mean([pair.precision for pair in evaluation.pairs]))),
            _percent(float(np.mean([pair.precision_px for pair in evaluation.pairs]))),
            _number(float(np.mean(matches)), 0),
            _number(float(np.median(latency)), 0),
        ]
        rows.append(row)
    return rows


def _pose_section(evaluations: Sequence[PoseEvaluation], figures: Path) -> list[str]:
    dataset = evaluations[0].dataset
    kind = "stereo rig, relative pose" if dataset.stereo else "relative pose"
    lines = [f"## {dataset.name} ({kind}, {len(evaluations[0].pairs)} pairs)", ""]
    thresholds = [f"{t:g}°" for t in POSE_AUC_THRESHOLDS_DEG]
    header = ["matcher"]
    for estimator in POSE_ESTIMATORS:
        header += [f"AUC@{t} {_ESTIMATOR_LABELS[estimator]}" for t in thresholds]
    header += [
        f"precision (<{dataset.epipolar_threshold:g})",
        f"within {EPIPOLAR_PRECISION_PX:g} px",
        "matches",
        "latency ms",
    ]
    lines += _table(header, _pose_summary_rows(evaluations))
    for estimator in POSE_ESTIMATORS:
        curves = {e.matcher: cumulative_curve(e.errors_deg(estimator), 30.0) for e in evaluations}
        name = f"{dataset.name}_pose_error_cdf_{estimator}.png"
        plot_curves(
            figures / name,
            curves,
            title=f"{dataset.name}: {_ESTIMATOR_LABELS[estimator]}",
            xlabel="pose error (deg)",
            ylabel="fraction of pairs",
        )
        lines.append(f"![pose error CDF {estimator}](figures/{name})")
    lines.append(_auc_curve_figure(figures, dataset.name, evaluations))
    lines.append("")
    if dataset.stereo:
        lines += _stereo_table(evaluations)
    if len(evaluations[0].pairs) <= 25:
        lines += _pose_pair_table(evaluations)
    return lines


def _auc_curve_figure(figures: Path, name: str, evaluations: Sequence[Evaluation]) -> str:
    """AUC as a function of its threshold, one line per matcher (and estimator)."""
    curves = {}
    for evaluation in evaluations:
        if isinstance(evaluation, PoseEvaluation):
            limits = np.arange(1.0, 31.0)
            for estimator in POSE_ESTIMATORS:
                aucs = error_auc(evaluation.errors_deg(estimator), limits)
                label = f"{evaluation.matcher} {_ESTIMATOR_LABELS[estimator]}"
                curves[label] = Curve(limits, np.array(aucs) * 100.0, style="-")
            xlabel = "AUC threshold (deg)"
        else:
            limits = np.arange(1.0, 21.0)
            aucs = error_auc(evaluation.corner_errors_px(), limits)
            curves[evaluation.matcher] = Curve(limits, np.array(aucs) * 100.0, style="-")
            xlabel = "AUC threshold (px)"
    filename = f"{name}_auc_curve.png"
    plot_curves(
        figures / filename,
        curves,
        title=f"{name}: AUC vs threshold",
        xlabel=xlabel,
        ylabel="AUC (%)",
    )
    return f"![AUC curve](figures/{filename})"


def _stereo_table(evaluations: Sequence[PoseEvaluation]) -> list[str]:
    rows = []
    for evaluation in evaluations:
        disparity = [pair.stereo.vertical_disparity_px for pair in evaluation.pairs if pair.stereo]
        all_disparity = np.abs(np.concatenate(disparity)) if disparity else np.zeros(0)
        baseline = [
            pair.stereo.baseline_direction_error_deg for pair in evaluation.pairs if pair.stereo
        ]
        rotation = [pair.estimates["ransac"].rotation_error_deg for pair in evaluation.pairs]
        rows.append(
            [
                evaluation.matcher,
                _number(float(np.median(all_disparity)) if len(all_disparity) else math.nan, 2),
                _percent(float(np.mean(all_disparity < 1.0)) if len(all_disparity) else 0.0),
                _number(float(np.median(baseline)), 1),
                _number(float(np.median(rotation)), 2),
            ]
        )
    header = [
        "matcher",
        "median \\|dy\\| px",
        "\\|dy\\| < 1 px %",
        "baseline direction error ° (median)",
        "rotation error ° (median, RANSAC)",
    ]
    title = "Stereo (rectified with the calibration; RANSAC pose vs the calibrated extrinsic):"
    return [title, "", *_table(header, rows)]


def _pose_pair_table(evaluations: Sequence[PoseEvaluation]) -> list[str]:
    header = ["pair"] + [f"{e.matcher} R / t ° (RANSAC), matches" for e in evaluations]
    rows = []
    for index, pair in enumerate(evaluations[0].pairs):
        row = [pair.name]
        for evaluation in evaluations:
            result = evaluation.pairs[index]
            estimate = result.estimates["ransac"]
            row.append(
                f"{_number(estimate.rotation_error_deg, 2)} / "
                f"{_number(estimate.translation_error_deg, 1)}, {len(result.matches)}"
            )
        rows.append(row)
    return ["Per pair:", "", *_table(header, rows)]


def _homography_section(evaluations: Sequence[HomographyEvaluation], figures: Path) -> list[str]:
    dataset = evaluations[0].dataset
    lines = [f"## {dataset.name} (homography, {len(evaluations[0].pairs)} pairs)", ""]
    header = ["matcher"] + [f"AUC@{t:g}px" for t in HOMOGRAPHY_AUC_THRESHOLDS_PX]
    header += [
        "mean corner error px",
        f"precision (<{HOMOGRAPHY_THRESHOLD_PX:g}px)",
        "matches",
        "latency ms",
    ]
    rows = []
    for evaluation in evaluations:
        errors = evaluation.corner_errors_px()
        rows.append(
            [evaluation.matcher]
            + [_percent(auc) for auc in evaluation.auc()]
            + [
                _number(float(np.mean(errors)), 2),
                _percent(float(np.mean([pair.precision for pair in evaluation.pairs]))),
                _number(float(np.mean([len(pair.matches) for pair in evaluation.pairs])), 0),
                _number(float(np.median([pair.latency_ms for pair in evaluation.pairs])), 0),
            ]
        )
    lines += _table(header, rows)
    curves = {e.matcher: cumulative_curve(e.corner_errors_px(), 20.0) for e in evaluations}
    name = f"{dataset.name}_corner_error_cdf.png"
    plot_curves(
        figures / name,
        curves,
        title=f"{dataset.name}: corner error",
        xlabel="mean corner error (px)",
        ylabel="fraction of pairs",
    )
    lines += [
        f"![corner error CDF](figures/{name})",
        _auc_curve_figure(figures, dataset.name, evaluations),
        "",
    ]
    return lines


def _latency_curves(points: Sequence[LatencyPoint], batch: bool) -> dict[str, Curve]:
    curves = {}
    for matcher in sorted({p.matcher for p in points}):
        series = [p for p in points if p.matcher == matcher]
        if batch:
            sizes = np.array([p.batch_size for p in series])
            curves[f"{matcher} per batch"] = Curve(sizes, np.array([p.call_ms for p in series]))
            per_pair = np.array([p.per_pair_ms for p in series])
            curves[f"{matcher} per pair"] = Curve(sizes, per_pair, style="--o")
        else:
            megapixels = np.array([p.width * p.height / 1e6 for p in series])
            curves[matcher] = Curve(megapixels, np.array([p.call_ms for p in series]))
    return curves


def _latency_section(latency: LatencyResults, figures: Path) -> list[str]:
    lines = []
    for title, points, batch in (
        ("Latency vs resolution (batch 1)", latency.resolution, False),
        ("Latency vs batch size (paper Tab. 11)", latency.batch, True),
    ):
        if not points:
            continue
        rows = [
            [
                p.matcher,
                f"{p.width}x{p.height}",
                str(p.batch_size),
                _number(p.call_ms),
                _number(p.per_pair_ms),
                str(p.repeats),
            ]
            for p in points
        ]
        lines += [f"## {title}", ""]
        lines += _table(
            ["matcher", "resolution", "batch", "ms per call", "ms per pair", "repeats (median)"],
            rows,
        )
        name = "latency_vs_batch.png" if batch else "latency_vs_resolution.png"
        plot_curves(
            figures / name,
            _latency_curves(points, batch),
            title=title,
            xlabel="pairs per batch" if batch else "megapixels per image",
            ylabel="ms",
            log_x=batch,
        )
        lines += [f"![{title}](figures/{name})", ""]
    return lines


def _timing_section(evaluations: Sequence[Evaluation]) -> list[str]:
    rows = []
    for evaluation in evaluations:
        inference_s = sum(pair.matches.inference_ms for pair in evaluation.pairs) / 1e3
        rows.append(
            [
                evaluation.matcher,
                evaluation.dataset.name,
                str(len(evaluation.pairs)),
                _number(evaluation.seconds),
                _number(inference_s),
                _number(evaluation.seconds - inference_s),
            ]
        )
    header = ["matcher", "dataset", "pairs", "wall s", "inference s", "beyond inference s"]
    return ["## Evaluation time", "", *_table(header, rows)]


def _visualisation_section(
    evaluations: Sequence[Evaluation], figures: Path, pairs_per_dataset: int
) -> list[str]:
    if pairs_per_dataset <= 0:
        return []
    lines = [
        "## Match visualisations",
        "",
        "Coloured by confidence (blue low, red high): correct under the ground truth "
        "(epipolar / homography error below the precision threshold); grey: wrong.",
        "",
    ]
    for evaluation in evaluations:
        results: Sequence[PosePairResult | HomographyPairResult] = evaluation.pairs
        for number, pair in enumerate(results[:pairs_per_dataset]):
            dataset_pair = evaluation.dataset.pairs[number]
            correct = pair.correct
            name = f"matches_{evaluation.dataset.name}_{number}_{evaluation.matcher}.png"
            canvas = draw_matches(
                load_grey(dataset_pair.image0)[0],
                load_grey(dataset_pair.image1)[0],
                pair.matches,
                correct,
            )
            caption = (
                f"{evaluation.matcher} {pair.name}: {int(correct.sum())}/{len(correct)} correct"
            )
            scale = max(0.7, canvas.shape[1] / 2000)  # legible after the report shrinks it
            cv2.putText(
                canvas,
                caption,
                (10, int(35 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (255, 255, 255),
                max(2, round(2 * scale)),
            )
            cv2.imwrite(str(figures / name), canvas)
            lines.append(f"![{pair.name}](figures/{name})")
        lines.append("")
    return lines


def write_report(
    folder: str | Path,
    evaluations: Sequence[Evaluation],
    context: ReportContext,
    latency: LatencyResults | None = None,
    visualised_pairs: int = 2,
    odometry: Sequence[OdometryResult] = (),
) -> Path:
    """Write report.md, results.json and the figures into ``folder`` (created if needed).

    Args:
        folder: output folder.
        evaluations: results of the runners, any mix of datasets and matchers.
        context: header information (command, device, matchers and their weights).
        latency: latency sweeps to tabulate and plot (None: none).
        visualised_pairs: match drawings for the first this many pairs of each dataset.
        odometry: stereo visual-odometry runs (a section with a table and a trajectory plot).

    Returns:
        The path of report.md.
    """
    folder, latency = Path(folder), latency or LatencyResults()
    figures = folder / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    lines = _header(context)
    for dataset_name in dict.fromkeys(e.dataset.name for e in evaluations):
        group = [e for e in evaluations if e.dataset.name == dataset_name]
        if isinstance(group[0], PoseEvaluation):
            lines += _pose_section(group, figures)  # type: ignore[arg-type]
        else:
            lines += _homography_section(group, figures)  # type: ignore[arg-type]
    lines += odometry_section(odometry, figures)
    lines += _latency_section(latency, figures)
    lines += _timing_section(evaluations)
    lines += _visualisation_section(evaluations, figures, visualised_pairs)
    report = folder / "report.md"
    report.write_text("\n".join(lines))
    results = results_json(evaluations, latency)
    results["odometry"] = [
        {"matcher": r.matcher, "sequence": r.sequence, **dataclasses.asdict(r.metrics)}
        for r in odometry
    ]
    (folder / "results.json").write_text(json.dumps(json_ready(results), indent=1))
    return report

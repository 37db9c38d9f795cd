"""results.json of an evaluation: every per-pair number, as plain JSON values."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edm_ros.evaluation.latency import LatencyResults
from edm_ros.evaluation.runner import (
    POSE_ESTIMATORS,
    Evaluation,
    HomographyPairResult,
    PoseEvaluation,
    PosePairResult,
)


def pair_record(pair: PosePairResult | HomographyPairResult) -> dict[str, object]:
    """JSON-ready numbers of one pair (no match arrays)."""
    record: dict[str, object] = {"name": pair.name}
    if isinstance(pair, PosePairResult):
        record.update(
            matches=len(pair.matches),
            precision=pair.precision,
            precision_px=pair.precision_px,
            latency_ms=pair.latency_ms,
            inference_ms=pair.matches.inference_ms,
        )
        for estimator, estimate in pair.estimates.items():
            record[estimator] = {
                "success": estimate.success,
                "error_deg": estimate.error_deg,
                "rotation_error_deg": estimate.rotation_error_deg,
                "translation_error_deg": estimate.translation_error_deg,
                "inliers": estimate.num_inliers,
            }
        if pair.stereo is not None:
            record["stereo"] = {
                "median_abs_vertical_disparity_px": pair.stereo.median_abs_vertical_disparity_px,
                "baseline_direction_error_deg": pair.stereo.baseline_direction_error_deg,
            }
    else:
        record.update(
            matches=len(pair.matches),
            precision=pair.precision,
            corner_error_px=pair.corner_error_px,
            inliers=pair.num_inliers,
            latency_ms=pair.latency_ms,
            inference_ms=pair.matches.inference_ms,
        )
    return record


def results_json(evaluations: Sequence[Evaluation], latency: LatencyResults) -> dict[str, object]:
    """The evaluations and latency sweeps as one JSON-ready mapping (before :func:`json_ready`)."""
    entries = []
    for evaluation in evaluations:
        entry: dict[str, object] = {
            "dataset": evaluation.dataset.name,
            "matcher": evaluation.matcher,
            "seconds": evaluation.seconds,
        }
        if isinstance(evaluation, PoseEvaluation):
            entry["auc"] = {e: evaluation.auc(e) for e in POSE_ESTIMATORS}
        else:
            entry["auc"] = evaluation.auc()
        entry["pairs"] = [pair_record(pair) for pair in evaluation.pairs]
        entries.append(entry)
    return {
        "evaluations": entries,
        "latency": [
            vars(p) | {"kind": kind}
            for kind, points in (("resolution", latency.resolution), ("batch", latency.batch))
            for p in points
        ],
    }


def json_ready(value: object) -> object:
    """numpy values to Python; JSON has no inf or NaN, so failures become null."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value

"""Run a matcher over a dataset and measure it: relative pose, homography and stereo protocols.

Relative pose (LoFTR/EDM protocol, official code): the essential matrix from the matches with
OpenCV RANSAC and with poselib LO-RANSAC (both 0.5 px, confidence 0.99999, via
:func:`edm_ros.geometry.pose.relative_pose_from_matches`), error = max(rotation error, translation
direction error), AUC@5/10/20°, matching precision (squared symmetric epipolar distance below the
set's threshold), number of matches and latency. Homography (HPatches): OpenCV RANSAC homography,
mean corner error, AUC@3/5/10 px. Stereo (calibrated rigs): vertical disparity of the matches after
rectification and the recovered baseline direction against the calibration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args

import cv2
import numpy as np

from edm_ros.data.images import read_grey
from edm_ros.data.pairs import HomographyDataset, HomographyPair, PoseDataset, PosePair
from edm_ros.evaluation.baselines import NamedMatcher
from edm_ros.evaluation.metrics import (
    HOMOGRAPHY_AUC_THRESHOLDS_PX,
    POSE_AUC_THRESHOLDS_DEG,
    angle_between_deg,
    epipolar_distances,
    error_auc,
    estimate_homography,
    homography_corner_error,
    matching_precision,
    transfer_errors_px,
    vertical_disparity_px,
)
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import pose_error_deg, relative_pose_from_matches
from edm_ros.results import MatchResult

PoseEstimator = Literal["ransac", "poselib"]
POSE_ESTIMATORS: tuple[PoseEstimator, ...] = get_args(PoseEstimator)
RANSAC_THRESHOLD_PX = 0.5  # LoFTR/EDM protocol
RANSAC_CONFIDENCE = 0.99999
HOMOGRAPHY_THRESHOLD_PX = 3.0  # RANSAC reprojection threshold and "correct match" radius
_Item = TypeVar("_Item")


#: A match is within the pixel epipolar precision when both points lie this close to their lines.
EPIPOLAR_PRECISION_PX = 2.0


@dataclass(frozen=True)
class PoseEstimate:
    """One robust estimator's pose for a pair, against ground truth (degrees)."""

    success: bool
    rotation_error_deg: float  # inf on failure
    translation_error_deg: float  # direction, min(e, 180 - e); inf on failure
    num_inliers: int
    rotation: np.ndarray  # [3, 3] R_0_1: camera 1 in camera 0 (identity on failure)
    translation: np.ndarray  # [3] unit t_0_1: position of camera 1 in camera 0

    @property
    def error_deg(self) -> float:
        """Protocol error: max(rotation, translation direction); a NaN direction is ignored."""
        return float(np.nanmax([self.rotation_error_deg, self.translation_error_deg]))


@dataclass(frozen=True)
class StereoMetrics:
    """Stereo-rig checks of one pair."""

    vertical_disparity_px: np.ndarray  # [M] signed, rectified pixels
    baseline_direction_error_deg: (
        float  # RANSAC translation vs calibration, [0, 180]; inf on failure
    )

    @property
    def median_abs_vertical_disparity_px(self) -> float:
        """Median |y0 - y1| over all matches (NaN without matches)."""
        disparity = self.vertical_disparity_px
        return float(np.median(np.abs(disparity))) if len(disparity) else float("nan")


@dataclass(frozen=True)
class PosePairResult:
    """Matches and metrics of one relative-pose pair."""

    name: str
    matches: MatchResult  # keypoints in original-image pixels
    epipolar_distances: np.ndarray  # [M] squared symmetric epipolar distance, normalised units²
    correct: np.ndarray  # [M] bool: distance below the set's precision threshold
    precision: float
    precision_px: float  # fraction of matches within EPIPOLAR_PRECISION_PX of the epipolar lines
    estimates: dict[PoseEstimator, PoseEstimate]
    stereo: StereoMetrics | None
    latency_ms: float  # wall time of matcher.match


@dataclass(frozen=True)
class HomographyPairResult:
    """Matches and metrics of one homography pair."""

    name: str
    matches: MatchResult
    transfer_errors_px: np.ndarray  # [M] |H_gt x0 - x1|, pixels of image 1
    correct: np.ndarray  # [M] bool: transfer error within HOMOGRAPHY_THRESHOLD_PX
    precision: float  # fraction of matches within HOMOGRAPHY_THRESHOLD_PX
    corner_error_px: float  # inf when no homography was found
    num_inliers: int
    latency_ms: float


@dataclass(frozen=True)
class PoseEvaluation:
    """A matcher on a relative-pose dataset."""

    dataset: PoseDataset
    matcher: str
    pairs: tuple[PosePairResult, ...]
    seconds: float  # wall time of the whole evaluation

    def errors_deg(self, estimator: PoseEstimator) -> np.ndarray:
        """[N] protocol errors (inf for failures)."""
        return np.array([pair.estimates[estimator].error_deg for pair in self.pairs])

    def auc(self, estimator: PoseEstimator) -> list[float]:
        """AUC@5/10/20° in [0, 1]."""
        return error_auc(self.errors_deg(estimator), POSE_AUC_THRESHOLDS_DEG)


@dataclass(frozen=True)
class HomographyEvaluation:
    """A matcher on a homography dataset."""

    dataset: HomographyDataset
    matcher: str
    pairs: tuple[HomographyPairResult, ...]
    seconds: float

    def corner_errors_px(self) -> np.ndarray:
        """[N] mean corner errors (inf for failures)."""
        return np.array([pair.corner_error_px for pair in self.pairs])

    def auc(self) -> list[float]:
        """AUC@3/5/10 px in [0, 1]."""
        return error_auc(self.corner_errors_px(), HOMOGRAPHY_AUC_THRESHOLDS_PX)


Evaluation = PoseEvaluation | HomographyEvaluation


def progress(items: Iterable[_Item], total: int, label: str, enabled: bool) -> Iterator[_Item]:
    """``items`` with a tqdm progress bar on stderr when enabled and tqdm is installed."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            enabled = False
    if not enabled:
        yield from items
        return
    yield from tqdm(items, total=total, desc=label, unit="pair", leave=False)


def load_grey(path: Path, long_side: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Read an image as grey uint8, optionally resized to a long side.

    Returns:
        (image, (sx, sy)) where original pixels = returned pixels * (sx, sy).

    Raises:
        InputError: the file is missing or not an image.
    """
    image = read_grey(path)
    if long_side is None or max(image.shape) == long_side:
        return image, (1.0, 1.0)
    scale = long_side / max(image.shape)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return resized, (image.shape[1] / size[0], image.shape[0] / size[1])


def match_files(
    matcher: NamedMatcher, image0: Path, image1: Path, long_side: int | None = None
) -> tuple[MatchResult, float]:
    """Match two image files; keypoints and sizes come back in original-image pixels.

    Returns:
        (matches, wall latency of ``match`` in ms).
    """
    grey0, scale0 = load_grey(image0, long_side)
    grey1, scale1 = load_grey(image1, long_side)
    start = time.perf_counter()
    result = matcher.matcher.match(grey0, grey1)
    latency_ms = (time.perf_counter() - start) * 1e3
    if scale0 == scale1 == (1.0, 1.0):
        return result, latency_ms
    return dataclasses.replace(
        result,
        keypoints0=(result.keypoints0 * np.asarray(scale0, dtype=np.float32)).astype(np.float32),
        keypoints1=(result.keypoints1 * np.asarray(scale1, dtype=np.float32)).astype(np.float32),
        image0_size=(
            round(result.image0_size[0] * scale0[0]),
            round(result.image0_size[1] * scale0[1]),
        ),
        image1_size=(
            round(result.image1_size[0] * scale1[0]),
            round(result.image1_size[1] * scale1[1]),
        ),
    ), latency_ms


def protocol_cameras(
    pair: PosePair, image0_size: tuple[int, int], image1_size: tuple[int, int]
) -> tuple[CameraModel, CameraModel, np.ndarray, np.ndarray]:
    """Cameras in the protocol's pixel frame, and the factors that take image pixels there.

    The frame is ``pair.evaluation_size`` (ScanNet: 640x480) or the images as stored; K is scaled
    from ``pair.intrinsics_size`` to it, so the 0.5 px RANSAC threshold means what the protocol
    means.

    Returns:
        (camera0, camera1, [2] scale0, [2] scale1) with protocol pixels = image pixels * scale.
    """
    cameras, scales = [], []
    for K, distortion, size in (
        (pair.K0, pair.distortion0, image0_size),
        (pair.K1, pair.distortion1, image1_size),
    ):
        target = pair.evaluation_size or size
        calibrated = pair.intrinsics_size or size
        K_target = np.diag([target[0] / calibrated[0], target[1] / calibrated[1], 1.0]) @ K
        cameras.append(
            CameraModel(K_target, target[0], target[1], distortion, pair.distortion_model)  # type: ignore[arg-type]
        )
        scales.append(np.array([target[0] / size[0], target[1] / size[1]]))
    return cameras[0], cameras[1], scales[0], scales[1]


def estimate_pose(
    estimator: PoseEstimator,
    points0: np.ndarray,
    points1: np.ndarray,
    camera0: CameraModel,
    camera1: CameraModel,
    T_0to1: np.ndarray,
) -> PoseEstimate:
    """Relative pose from matches by the protocol (0.5 px, 0.99999), scored against ``T_0to1``.

    Args:
        estimator: "ransac" (OpenCV, LoFTR/EDM) or "poselib" (LO-RANSAC).
        points0, points1: [M, 2] matched pixels in the frame of ``camera0``/``camera1``.
        camera0, camera1: the cameras (see :func:`protocol_cameras`).
        T_0to1: [4, 4] ground truth, ``X_1 = R X_0 + t``.

    Returns:
        The estimate and its errors; infinite errors when the estimator fails (< 5 matches).
    """
    pose = relative_pose_from_matches(
        points0,
        points1,
        camera0,
        camera1,
        method=estimator,
        threshold_px=RANSAC_THRESHOLD_PX,
        confidence=RANSAC_CONFIDENCE,
        min_inliers=5,
    )
    if not pose.success:
        return PoseEstimate(False, np.inf, np.inf, pose.num_inliers, np.eye(3), np.zeros(3))
    # Ground truth in the estimate's frame convention: camera 1 in camera 0 = inv(T_0to1).
    rotation_gt = T_0to1[:3, :3].T
    translation_gt = -rotation_gt @ T_0to1[:3, 3]
    rotation_error, translation_error = pose_error_deg(
        pose.rotation, pose.translation, rotation_gt, translation_gt
    )
    return PoseEstimate(
        True, rotation_error, translation_error, pose.num_inliers, pose.rotation, pose.translation
    )


def evaluate_pose_pair(
    matcher: NamedMatcher,
    pair: PosePair,
    *,
    stereo: bool = False,
    epipolar_threshold: float = 5e-4,
    long_side: int | None = None,
    estimators: tuple[PoseEstimator, ...] = POSE_ESTIMATORS,
) -> PosePairResult:
    """Match one pair and measure precision, pose errors and (for stereo rigs) stereo metrics."""
    matches, latency_ms = match_files(matcher, pair.image0, pair.image1, long_side)
    camera0, camera1, scale0, scale1 = protocol_cameras(
        pair, matches.image0_size, matches.image1_size
    )
    points0 = matches.keypoints0.astype(np.float64) * scale0
    points1 = matches.keypoints1.astype(np.float64) * scale1
    distances = epipolar_distances(points0, points1, camera0, camera1, pair.T_0to1)
    estimates = {
        name: estimate_pose(name, points0, points1, camera0, camera1, pair.T_0to1)
        for name in estimators
    }
    stereo_metrics = None
    if stereo:
        ransac = estimates[estimators[0]]
        baseline_gt = -pair.T_0to1[:3, :3].T @ pair.T_0to1[:3, 3]  # right camera in the left frame
        stereo_metrics = StereoMetrics(
            vertical_disparity_px(points0, points1, camera0, camera1, pair.T_0to1),
            angle_between_deg(ransac.translation, baseline_gt) if ransac.success else np.inf,
        )
    return PosePairResult(
        name=pair.name,
        matches=matches,
        epipolar_distances=distances,
        correct=distances < epipolar_threshold,
        precision=matching_precision(distances, epipolar_threshold),
        precision_px=matching_precision(
            epipolar_distances(points0, points1, camera0, camera1, pair.T_0to1, in_pixels=True),
            EPIPOLAR_PRECISION_PX,
        ),
        estimates=estimates,
        stereo=stereo_metrics,
        latency_ms=latency_ms,
    )


def evaluate_pose(
    matcher: NamedMatcher,
    dataset: PoseDataset,
    *,
    max_pairs: int | None = None,
    show_progress: bool = True,
    estimators: tuple[PoseEstimator, ...] = POSE_ESTIMATORS,
) -> PoseEvaluation:
    """Run ``matcher`` over a relative-pose dataset (LoFTR/EDM protocol).

    Args:
        matcher: the matcher and its labels.
        dataset: pairs and protocol settings (precision threshold, image resize, stereo).
        max_pairs: evaluate only the first this many pairs.
        show_progress: draw a progress bar on stderr.
        estimators: robust estimators to run, the first one feeds the stereo baseline metric.

    Returns:
        Per-pair results in dataset order, and the wall time.
    """
    pairs = dataset.pairs[:max_pairs]
    start = time.perf_counter()
    results = tuple(
        evaluate_pose_pair(
            matcher,
            pair,
            stereo=dataset.stereo,
            epipolar_threshold=dataset.epipolar_threshold,
            long_side=dataset.image_long_side,
            estimators=estimators,
        )
        for pair in progress(pairs, len(pairs), f"{matcher.name} {dataset.name}", show_progress)
    )
    return PoseEvaluation(dataset, matcher.name, results, time.perf_counter() - start)


def evaluate_homography_pair(matcher: NamedMatcher, pair: HomographyPair) -> HomographyPairResult:
    """Match one pair, fit a homography, and measure its corner error (HPatches protocol)."""
    matches, latency_ms = match_files(matcher, pair.image0, pair.image1)
    points0 = matches.keypoints0.astype(np.float64)
    points1 = matches.keypoints1.astype(np.float64)
    homography, inliers = estimate_homography(points0, points1, HOMOGRAPHY_THRESHOLD_PX)
    width, height = matches.image0_size
    corner_error = (
        homography_corner_error(homography, pair.H_0to1, width, height)
        if homography is not None
        else float("inf")
    )
    errors = transfer_errors_px(points0, points1, pair.H_0to1)
    return HomographyPairResult(
        name=pair.name,
        matches=matches,
        transfer_errors_px=errors,
        correct=errors < HOMOGRAPHY_THRESHOLD_PX,
        precision=matching_precision(errors, HOMOGRAPHY_THRESHOLD_PX),
        corner_error_px=corner_error,
        num_inliers=int(inliers.sum()),
        latency_ms=latency_ms,
    )


def evaluate_homography(
    matcher: NamedMatcher,
    dataset: HomographyDataset,
    *,
    max_pairs: int | None = None,
    show_progress: bool = True,
) -> HomographyEvaluation:
    """Run ``matcher`` over a homography dataset (HPatches protocol)."""
    pairs = dataset.pairs[:max_pairs]
    start = time.perf_counter()
    results = tuple(
        evaluate_homography_pair(matcher, pair)
        for pair in progress(pairs, len(pairs), f"{matcher.name} {dataset.name}", show_progress)
    )
    return HomographyEvaluation(dataset, matcher.name, results, time.perf_counter() - start)


def evaluate(
    matcher: NamedMatcher,
    dataset: PoseDataset | HomographyDataset,
    *,
    max_pairs: int | None = None,
    show_progress: bool = True,
) -> Evaluation:
    """:func:`evaluate_pose` or :func:`evaluate_homography`, whichever fits the dataset."""
    if isinstance(dataset, HomographyDataset):
        return evaluate_homography(
            matcher, dataset, max_pairs=max_pairs, show_progress=show_progress
        )
    return evaluate_pose(matcher, dataset, max_pairs=max_pairs, show_progress=show_progress)

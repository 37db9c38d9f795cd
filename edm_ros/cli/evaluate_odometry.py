"""Stereo visual odometry against ground truth: relative pose error (RPE), trajectory error (ATE).

    python -m edm_ros.cli.evaluate_odometry --out vo_report [--euroc DIR] [--matchers sift edm]
        [--weights W] [--synthetic-frames 200]

Runs the stereo pipeline (PnP against keyframes) with a matcher behind the matcher interface on
(1) a real EuRoC stereo folder (rectified here as stereo_image_proc would), and (2) a rendered
long straight drive (KITTI-like: constant forward motion past textured planes). Reports per-frame
translation / rotation errors (standing still), RPE (translation % of distance, rotation deg/m)
and ATE (RMS position error, trajectories aligned at the first frame), as JSON and a plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edm_ros.data.calibration import read_euroc_stereo
from edm_ros.data.synthetic import stereo_sequence
from edm_ros.evaluation.baselines import EDMOptions, build_matcher
from edm_ros.evaluation.runner import load_grey
from edm_ros.geometry.camera import CameraModel
from edm_ros.pipeline import (
    MatchingPipeline,
    MonoFrame,
    PairMatcher,
    PipelineConfig,
    Stamped,
    StereoFrame,
)


def _rotation_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))


def trajectory_errors(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """RPE over consecutive frames and ATE of [N, 4, 4] camera poses (both start at identity)."""
    translation_errors, rotation_errors, lengths = [], [], []
    for index in range(1, len(truth)):
        step_est = np.linalg.inv(estimated[index - 1]) @ estimated[index]
        step_true = np.linalg.inv(truth[index - 1]) @ truth[index]
        error = np.linalg.inv(step_true) @ step_est
        translation_errors.append(float(np.linalg.norm(error[:3, 3])))
        rotation_errors.append(_rotation_deg(error[:3, :3]))
        lengths.append(float(np.linalg.norm(step_true[:3, 3])))
    distance = float(sum(lengths))
    ate = np.linalg.norm(estimated[:, :3, 3] - truth[:, :3, 3], axis=1)
    return {
        "frames": len(truth),
        "distance_m": distance,
        "step_translation_error_max_m": max(translation_errors),
        "step_rotation_error_max_deg": max(rotation_errors),
        "rpe_translation_percent": 100 * sum(translation_errors) / distance if distance else None,
        "rpe_rotation_deg_per_m": sum(rotation_errors) / distance if distance else None,
        "ate_rmse_m": float(np.sqrt(np.mean(ate**2))),
        "end_drift_percent": 100 * float(ate[-1]) / distance if distance else None,
    }


def run_pipeline(matcher: PairMatcher, frames: list[StereoFrame]) -> tuple[np.ndarray, list[str]]:
    """[N, 4, 4] odometry poses (the last one kept for a lost frame) and the states."""
    pipeline = MatchingPipeline(matcher, PipelineConfig(mode="stereo"))
    poses, states, last = [], [], np.eye(4)
    for frame in frames:
        output = pipeline.process(frame)
        if output.odometry is not None:
            last = output.odometry.pose.transform
        poses.append(last)
        states.append(output.state.value)
    return np.array(poses), states


def euroc_frames(folder: Path) -> tuple[list[StereoFrame], np.ndarray]:
    """Rectified stereo frames of a EuRoC folder and the ground-truth left-camera poses."""
    dataset = read_euroc_stereo(folder)
    first = dataset.pairs[0]
    left0, _ = load_grey(first.image0)
    size = (left0.shape[1], left0.shape[0])
    rotation, translation = first.T_0to1[:3, :3], first.T_0to1[:3, 3].reshape(3, 1)
    r1, r2, p1, p2, *_ = cv2.stereoRectify(
        first.K0,
        first.distortion0,
        first.K1,
        first.distortion1,
        size,
        rotation,
        translation,
        alpha=0,
    )
    maps = [cv2.initUndistortRectifyMap(K, D, R, P, size, cv2.CV_32FC1)
            for K, D, R, P in ((first.K0, first.distortion0, r1, p1),
                               (first.K1, first.distortion1, r2, p2))]  # fmt: skip
    camera = CameraModel(p1[:, :3], size[0], size[1])
    frames = []
    for pair in dataset.pairs:
        stamp = Stamped(int(pair.name), "cam0_rect")
        images = [cv2.remap(load_grey(path)[0], *m, cv2.INTER_LINEAR)
                  for path, m in ((pair.image0, maps[0]), (pair.image1, maps[1]))]  # fmt: skip
        right = MonoFrame(images[1], Stamped(stamp.stamp_ns, "cam1_rect"), camera)
        frames.append(StereoFrame(MonoFrame(images[0], stamp, camera), right, p1, p2))
    truth = _euroc_truth(folder, [int(p.name) for p in dataset.pairs], r1)
    return frames, truth


def _euroc_truth(folder: Path, stamps_ns: list[int], rectification: np.ndarray) -> np.ndarray:
    """Rectified left-camera poses relative to the first, from groundtruth_body_tum.txt."""
    from edm_ros.data.calibration import read_euroc_rig

    left, _ = read_euroc_rig(folder)
    table = np.loadtxt(folder / "groundtruth_body_tum.txt")
    rect = np.eye(4)
    rect[:3, :3] = rectification.T  # rectified camera in the raw camera frame
    poses = []
    for stamp_ns in stamps_ns:
        row = table[np.argmin(np.abs(table[:, 0] - stamp_ns * 1e-9))]
        world_body = np.eye(4)
        x, y, z, w = row[4:8]
        world_body[:3, :3] = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
        world_body[:3, 3] = row[1:4]
        poses.append(world_body @ left.T_body_cam @ rect)
    return np.array([np.linalg.inv(poses[0]) @ pose for pose in poses])


def synthetic_frames(count: int, width: int, height: int) -> tuple[list[StereoFrame], np.ndarray]:
    """A rendered straight drive: 2 cm forward and 0.5 cm sideways per frame."""
    sequence = stereo_sequence(count, width, height, step_m=(0.005, 0.0, 0.02),
                               step_rotation_deg=(0.0, 0.0, 0.0), seed=5)  # fmt: skip
    camera = CameraModel(sequence.K, width, height)
    frames = []
    for index, frame in enumerate(sequence.frames):
        stamp_ns = 1_000_000_000 + index * 100_000_000
        frames.append(StereoFrame(MonoFrame(frame.left, Stamped(stamp_ns, "l"), camera),
                                  MonoFrame(frame.right, Stamped(stamp_ns, "r"), camera),
                                  sequence.projection_left, sequence.projection_right))  # fmt: skip
    first = np.linalg.inv(sequence.frames[0].pose_world_left)
    return frames, np.array([first @ f.pose_world_left for f in sequence.frames])


def _plot(results: dict, trajectories: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(trajectories), figsize=(6 * len(trajectories), 5))
    for axis, (name, (estimated, truth)) in zip(np.atleast_1d(axes), trajectories.items()):
        axis.plot(truth[:, 0, 3], truth[:, 2, 3], "k-", label="ground truth")
        axis.plot(estimated[:, 0, 3], estimated[:, 2, 3], "r--", label="estimated")
        axis.set_title(f"{name}: ATE {results[name]['ate_rmse_m'] * 100:.2f} cm")
        axis.set_xlabel("x (m)")
        axis.set_ylabel("z (m)")
        axis.axis("equal")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("vo_report"))
    parser.add_argument(
        "--euroc", type=Path, default=Path("../shared/data/euroc_v101_micro_stereo")
    )
    parser.add_argument("--matchers", nargs="+", default=["sift"], choices=("sift", "orb", "edm"))
    parser.add_argument("--weights", type=Path, help="EDM checkpoint (default: the shipped one)")
    parser.add_argument("--synthetic-frames", type=int, default=200)
    parser.add_argument("--synthetic-size", type=int, nargs=2, default=(640, 480))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    datasets = {}
    if args.euroc.is_dir():
        datasets["euroc_still"] = euroc_frames(args.euroc)
    if args.synthetic_frames > 1:
        datasets["rendered_straight"] = synthetic_frames(
            args.synthetic_frames, *args.synthetic_size
        )
    results, trajectories = {}, {}
    for matcher_name in args.matchers:
        options = EDMOptions(weights=args.weights, device="cpu") if matcher_name == "edm" else None
        matcher = build_matcher(matcher_name, options).matcher
        for data_name, (frames, truth) in datasets.items():
            estimated, states = run_pipeline(matcher, frames)
            name = f"{matcher_name}/{data_name}"
            results[name] = {**trajectory_errors(estimated, truth),
                             "lost_frames": states.count("lost")}  # fmt: skip
            trajectories[name] = (estimated, truth)
            print(name, json.dumps(results[name]), flush=True)
    (args.out / "odometry.json").write_text(json.dumps(results, indent=1))
    _plot(results, trajectories, args.out / "odometry.png")
    print(f"written {args.out / 'odometry.json'} and odometry.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

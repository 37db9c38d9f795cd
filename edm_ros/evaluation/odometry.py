"""Stereo visual odometry against ground truth: per-frame pose error, RPE, ATE, and a plot.

The stereo pipeline (PnP against keyframes, `edm_ros.pipeline`) runs with any matcher behind the
matcher interface on

* a real EuRoC stereo folder with a body trajectory (``groundtruth_body_tum.txt``), rectified
  here with the Kalibr calibration as stereo_image_proc would (the raw images are distorted);
* rendered sequences with exact ground truth: a long straight drive (KITTI-like: forward and a
  little sideways past textured planes) and a turn in place.

Errors:

* **per frame**: each frame's ``T_keyframe_cur`` (what `/edm/relative_pose` carries) against
  the true motion between the same two images; ``frame_*_motion_*`` is the estimated motion
  itself (against zero), which for a camera standing still says what ground truth noise hides;
* **RPE**: the odometry's consecutive steps against the true steps; translation as a percentage
  of the distance travelled (sum of step errors / sum of true step lengths), rotation in degrees
  per metre;
* **ATE**: RMS of the position error, trajectories anchored at the first frame (no alignment);
* **end drift**: final position error / distance travelled, and final rotation error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edm_ros.data.calibration import read_euroc_rig, read_euroc_stereo
from edm_ros.data.synthetic import stereo_sequence
from edm_ros.errors import InputError
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

EUROC_TRAJECTORY = "groundtruth_body_tum.txt"  # TUM rows: t tx ty tz qx qy qz qw (T_world_body)
_RENDERED_PERIOD_NS = 100_000_000  # rendered frames are stamped at 10 Hz


@dataclass(frozen=True)
class OdometrySequence:
    """Rectified stereo frames with the true left-camera poses.

    Attributes:
        name: Shown in reports ("euroc_v101_micro_stereo", "rendered_straight", ...).
        frames: The N stereo frames, in time order.
        truth: [N, 4, 4] T_first_cur of the (rectified) left camera; truth[0] is the identity.
        description: One line: what the sequence is (real / rendered, motion).
    """

    name: str
    frames: tuple[StereoFrame, ...]
    truth: np.ndarray
    description: str


@dataclass(frozen=True)
class OdometryMetrics:
    """The errors of one run (module docstring); translations in metres, rotations in degrees.

    ``None`` where a value is undefined (no tracked frame, no distance travelled).
    """

    frames: int
    lost_frames: int
    distance_m: float
    rotation_travelled_deg: float
    frame_translation_error_median_m: float | None
    frame_translation_error_max_m: float | None
    frame_rotation_error_median_deg: float | None
    frame_rotation_error_max_deg: float | None
    frame_translation_motion_max_m: float | None
    frame_rotation_motion_max_deg: float | None
    rpe_translation_percent: float | None
    rpe_rotation_deg_per_m: float | None
    ate_rmse_m: float
    end_drift_percent: float | None
    end_rotation_error_deg: float


@dataclass(frozen=True)
class OdometryResult:
    """One matcher on one sequence.

    Attributes:
        matcher: Matcher name.
        sequence: Sequence name.
        description: What the sequence is (`OdometrySequence.description`).
        metrics: Its errors.
        estimated: [N, 4, 4] odometry poses T_first_cur (a lost frame keeps the last pose).
        truth: [N, 4, 4] the true poses.
        states: [N] tracking state of each frame ("ok", "lost", ...).
    """

    matcher: str
    sequence: str
    description: str
    metrics: OdometryMetrics
    estimated: np.ndarray
    truth: np.ndarray
    states: tuple[str, ...]


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a [3, 3] rotation, degrees (from the rotation vector: exact for small angles)."""
    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(np.asarray(rotation, np.float64))[0])))


def rotation_from_quaternion(quaternion_xyzw: Sequence[float] | np.ndarray) -> np.ndarray:
    """[3, 3] rotation of a quaternion (x, y, z, w), normalised first.

    Files store quaternions rounded to a few digits; without normalising, a 1e-6 error in the
    norm alone reads as a rotation of about 0.1 degrees.
    """
    q = np.asarray(quaternion_xyzw, np.float64)
    norm = float(np.linalg.norm(q))
    if not (np.all(np.isfinite(q)) and norm > 0):
        raise InputError(f"quaternion {q.tolist()}: expected 4 finite values, not all zero")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def is_euroc_trajectory_folder(folder: Path) -> bool:
    """A EuRoC stereo folder with a body trajectory: usable for odometry."""
    from edm_ros.data.calibration import is_euroc_folder

    return folder.is_dir() and is_euroc_folder(folder) and (folder / EUROC_TRAJECTORY).is_file()


def euroc_sequence(folder: str | Path, max_frames: int | None = None) -> OdometrySequence:
    """The rectified stereo frames of a EuRoC folder and the true rectified left-camera poses.

    Args:
        folder: The sequence folder (with ``groundtruth_body_tum.txt``).
        max_frames: Keep only the first this many frames; None = all.

    The pair is rectified with ``cv2.stereoRectify`` on the Kalibr calibration (radtan
    distortion, cam0 -> cam1 extrinsic; ``alpha=0``: valid pixels only), giving a left P with
    Tx = 0 and a right P with Tx = -fx * baseline, as stereo_image_proc publishes them.

    Raises:
        InputError: A calibration, frame list or trajectory is missing or unreadable.
    """
    folder = Path(folder)
    pairs = read_euroc_stereo(folder).pairs[:max_frames]
    first = pairs[0]
    size = load_grey(first.image0)[0].shape[::-1]
    rect_left, rect_right, projection_left, projection_right, *_ = cv2.stereoRectify(
        first.K0,
        first.distortion0,
        first.K1,
        first.distortion1,
        size,
        first.T_0to1[:3, :3],
        first.T_0to1[:3, 3].reshape(3, 1),
        alpha=0,
    )
    maps = [
        cv2.initUndistortRectifyMap(K, D, R, P, size, cv2.CV_32FC1)
        for K, D, R, P in (
            (first.K0, first.distortion0, rect_left, projection_left),
            (first.K1, first.distortion1, rect_right, projection_right),
        )
    ]
    camera = CameraModel(projection_left[:, :3], size[0], size[1])
    frames = []
    for pair in pairs:
        stamp_ns = int(pair.name)
        left, right = (
            cv2.remap(load_grey(path)[0], *rectify, cv2.INTER_LINEAR)
            for path, rectify in ((pair.image0, maps[0]), (pair.image1, maps[1]))
        )
        frames.append(
            StereoFrame(
                MonoFrame(left, Stamped(stamp_ns, "cam0_rect"), camera),
                MonoFrame(right, Stamped(stamp_ns, "cam1_rect"), camera),
                projection_left,
                projection_right,
            )
        )
    truth = _euroc_truth(folder, [int(pair.name) for pair in pairs], rect_left)
    return OdometrySequence(
        folder.name, tuple(frames), truth, "real EuRoC stereo (raw images rectified here)"
    )


def _euroc_truth(folder: Path, stamps_ns: list[int], rect_left: np.ndarray) -> np.ndarray:
    """[N, 4, 4] rectified left-camera poses relative to the first, at the image stamps."""
    try:
        table = np.loadtxt(folder / EUROC_TRAJECTORY, ndmin=2)
    except (OSError, ValueError) as err:
        raise InputError(f"{folder / EUROC_TRAJECTORY}: unreadable trajectory ({err})") from err
    left, _ = read_euroc_rig(folder)
    raw_rect = np.eye(4)
    raw_rect[:3, :3] = rect_left.T  # X_raw = R1^T X_rect (stereoRectify's R1 maps raw -> rect)
    poses = []
    for stamp_ns in stamps_ns:
        nearest = int(np.argmin(np.abs(table[:, 0] - stamp_ns * 1e-9)))
        if abs(table[nearest, 0] - stamp_ns * 1e-9) > 5e-3:
            raise InputError(
                f"{folder / EUROC_TRAJECTORY}: no pose within 5 ms of image stamp {stamp_ns}"
            )
        world_body = np.eye(4)
        world_body[:3, :3] = rotation_from_quaternion(table[nearest, 4:8])
        world_body[:3, 3] = table[nearest, 1:4]
        poses.append(world_body @ left.T_body_cam @ raw_rect)
    return np.array([np.linalg.inv(poses[0]) @ pose for pose in poses])


def rendered_sequence(
    name: str,
    num_frames: int,
    size: tuple[int, int],
    step_m: Sequence[float],
    step_rotation_deg: Sequence[float],
    description: str,
) -> OdometrySequence:
    """A rendered rectified stereo sequence (`stereo_sequence`, seed 5) with exact ground truth."""
    width, height = size
    sequence = stereo_sequence(
        num_frames, width, height, step_m=step_m, step_rotation_deg=step_rotation_deg, seed=5
    )
    camera = CameraModel(sequence.K, width, height)
    frames = []
    for index, frame in enumerate(sequence.frames):
        stamp_ns = 1_000_000_000 + index * _RENDERED_PERIOD_NS
        frames.append(
            StereoFrame(
                MonoFrame(frame.left, Stamped(stamp_ns, "left"), camera),
                MonoFrame(frame.right, Stamped(stamp_ns, "right"), camera),
                sequence.projection_left,
                sequence.projection_right,
            )
        )
    first = np.linalg.inv(sequence.frames[0].pose_world_left)
    truth = np.array([first @ frame.pose_world_left for frame in sequence.frames])
    return OdometrySequence(name, tuple(frames), truth, description)


def rendered_sequences(num_frames: int, size: tuple[int, int]) -> list[OdometrySequence]:
    """The rendered drive (1 cm forward, 0.5 cm sideways per frame) and a turn in place.

    The turn is 0.5 degrees of yaw per frame, at most 60 frames (30 degrees), about the optical
    centre: no translation at all, the case where an essential matrix has no solution.
    """
    straight = rendered_sequence(
        "rendered_straight",
        num_frames,
        size,
        (0.005, 0.0, 0.01),
        (0.0, 0.0, 0.0),
        f"rendered, {num_frames} frames, straight: 1 cm forward + 0.5 cm sideways per frame",
    )
    turn_frames = min(num_frames, 60)
    turn = rendered_sequence(
        "rendered_turn_in_place",
        turn_frames,
        size,
        (0.0, 0.0, 0.0),
        (0.0, 0.5, 0.0),
        f"rendered, {turn_frames} frames, turning in place: 0.5 deg yaw per frame",
    )
    return [straight, turn]


def run_odometry(
    matcher: PairMatcher,
    matcher_name: str,
    sequence: OdometrySequence,
    config: PipelineConfig | None = None,
) -> OdometryResult:
    """Runs the stereo pipeline over a sequence and measures its errors.

    Args:
        matcher: The matcher (EDM, or a baseline behind the same interface).
        matcher_name: Its name in the report.
        sequence: Frames and ground truth.
        config: Pipeline settings; default `PipelineConfig(mode="stereo")` (the node's defaults).
    """
    pipeline = MatchingPipeline(matcher, config or PipelineConfig(mode="stereo"))
    index_of_stamp = {frame.left.stamp.stamp_ns: i for i, frame in enumerate(sequence.frames)}
    poses, states, frame_errors, frame_motions = [], [], [], []
    last = np.eye(4)
    for index, frame in enumerate(sequence.frames):
        output = pipeline.process(frame)
        states.append(output.state.value)
        if output.odometry is not None:
            last = output.odometry.pose.transform
        poses.append(last)
        if output.tracked:
            assert output.pose is not None
            estimate = np.eye(4)
            estimate[:3, :3], estimate[:3, 3] = output.pose.rotation, output.pose.translation
            reference = index_of_stamp[output.reference.stamp_ns]
            true = np.linalg.inv(sequence.truth[reference]) @ sequence.truth[index]
            frame_errors.append(np.linalg.inv(true) @ estimate)
            frame_motions.append(estimate)
    estimated = np.array(poses)
    metrics = odometry_metrics(
        estimated, sequence.truth, frame_errors, frame_motions, states.count("lost")
    )
    return OdometryResult(
        matcher_name,
        sequence.name,
        sequence.description,
        metrics,
        estimated,
        sequence.truth,
        tuple(states),
    )


def _median_max(values: list[float]) -> tuple[float | None, float | None]:
    return (float(np.median(values)), float(np.max(values))) if values else (None, None)


def odometry_metrics(
    estimated: np.ndarray,
    truth: np.ndarray,
    frame_errors: Sequence[np.ndarray],
    frame_motions: Sequence[np.ndarray],
    lost_frames: int,
) -> OdometryMetrics:
    """The errors of a run (module docstring).

    Args:
        estimated: [N, 4, 4] odometry poses T_first_cur.
        truth: [N, 4, 4] true poses T_first_cur.
        frame_errors: [4, 4] T_true^-1 T_estimated of each tracked frame's keyframe pose.
        frame_motions: [4, 4] each tracked frame's estimated T_keyframe_cur.
        lost_frames: Frames without a pose.
    """
    step_translation_errors, step_rotation_errors, step_lengths, step_angles = [], [], [], []
    for index in range(1, len(truth)):
        step_estimated = np.linalg.inv(estimated[index - 1]) @ estimated[index]
        step_true = np.linalg.inv(truth[index - 1]) @ truth[index]
        error = np.linalg.inv(step_true) @ step_estimated
        step_translation_errors.append(float(np.linalg.norm(error[:3, 3])))
        step_rotation_errors.append(rotation_angle_deg(error[:3, :3]))
        step_lengths.append(float(np.linalg.norm(step_true[:3, 3])))
        step_angles.append(rotation_angle_deg(step_true[:3, :3]))
    distance_m = float(sum(step_lengths))
    moved = distance_m > 0
    position_errors = np.linalg.norm(estimated[:, :3, 3] - truth[:, :3, 3], axis=1)
    frame_t = [float(np.linalg.norm(e[:3, 3])) for e in frame_errors]
    frame_r = [rotation_angle_deg(e[:3, :3]) for e in frame_errors]
    motion_t = [float(np.linalg.norm(m[:3, 3])) for m in frame_motions]
    motion_r = [rotation_angle_deg(m[:3, :3]) for m in frame_motions]
    end_error = np.linalg.inv(truth[-1]) @ estimated[-1]
    return OdometryMetrics(
        frames=len(truth),
        lost_frames=lost_frames,
        distance_m=distance_m,
        rotation_travelled_deg=float(sum(step_angles)),
        frame_translation_error_median_m=_median_max(frame_t)[0],
        frame_translation_error_max_m=_median_max(frame_t)[1],
        frame_rotation_error_median_deg=_median_max(frame_r)[0],
        frame_rotation_error_max_deg=_median_max(frame_r)[1],
        frame_translation_motion_max_m=_median_max(motion_t)[1],
        frame_rotation_motion_max_deg=_median_max(motion_r)[1],
        rpe_translation_percent=100 * sum(step_translation_errors) / distance_m if moved else None,
        rpe_rotation_deg_per_m=sum(step_rotation_errors) / distance_m if moved else None,
        ate_rmse_m=float(np.sqrt(np.mean(position_errors**2))),
        end_drift_percent=100 * float(position_errors[-1]) / distance_m if moved else None,
        end_rotation_error_deg=rotation_angle_deg(end_error[:3, :3]),
    )


def plot_odometry(results: Sequence[OdometryResult], path: Path) -> None:
    """Top view (x, z) of each trajectory and its rotation from the start, per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(results)
    figure, axes = plt.subplots(2, columns, figsize=(4.5 * columns, 8), squeeze=False)
    for column, result in enumerate(results):
        top, angle = axes[0, column], axes[1, column]
        top.plot(result.truth[:, 0, 3], result.truth[:, 2, 3], "k-", label="ground truth")
        top.plot(result.estimated[:, 0, 3], result.estimated[:, 2, 3], "r--", label="estimated")
        top.set_title(
            f"{result.matcher} / {result.sequence}\nATE {result.metrics.ate_rmse_m * 100:.2f} cm",
            fontsize=9,
        )
        top.set_xlabel("x (m)")
        top.set_ylabel("z (m)")
        top.axis("equal")
        top.legend(fontsize=8)
        for poses, style, label in (
            (result.truth, "k-", "ground truth"),
            (result.estimated, "r--", "estimated"),
        ):
            angle.plot([rotation_angle_deg(p[:3, :3]) for p in poses], style, label=label)
        angle.set_xlabel("frame")
        angle.set_ylabel("rotation from the start (deg)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _cell(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def odometry_section(results: Sequence[OdometryResult], figures: Path) -> list[str]:
    """The report's Markdown section (a table, and the plot written into ``figures``)."""
    if not results:
        return []
    lines = ["## Stereo visual odometry (PnP against keyframes)", ""]
    descriptions = {result.sequence: result.description for result in results}
    lines += [f"- `{name}`: {text}" for name, text in descriptions.items()]
    lines += [
        "",
        "Per frame: each frame's pose relative to its keyframe against the true motion between "
        "the same images (`motion`: the estimated motion itself). RPE: consecutive odometry "
        "steps against the true steps. ATE: RMS position error, trajectories anchored at the "
        "first frame. Drift: final position error / distance.",
        "",
        "| matcher | sequence | lost | distance m | frame t err median / max cm | frame rot err "
        "median / max deg | frame motion max cm / deg | RPE t % | RPE rot deg/m | ATE cm | "
        "drift % | end rot err deg |",
        "|" + "---|" * 12,
    ]
    for result in results:
        m = result.metrics
        lines.append(
            f"| {result.matcher} | {result.sequence} | {m.lost_frames}/{m.frames} | "
            f"{m.distance_m:.3f} | {_cell(m.frame_translation_error_median_m, 100, 2)} / "
            f"{_cell(m.frame_translation_error_max_m, 100, 2)} | "
            f"{_cell(m.frame_rotation_error_median_deg)} / {_cell(m.frame_rotation_error_max_deg)}"
            f" | {_cell(m.frame_translation_motion_max_m, 100, 2)} / "
            f"{_cell(m.frame_rotation_motion_max_deg)} | {_cell(m.rpe_translation_percent, 1, 2)}"
            f" | {_cell(m.rpe_rotation_deg_per_m)} | {_cell(m.ate_rmse_m, 100, 2)} | "
            f"{_cell(m.end_drift_percent, 1, 2)} | {_cell(m.end_rotation_error_deg)} |"
        )
    plot_odometry(results, figures / "odometry.png")
    return [*lines, "", "![odometry trajectories](figures/odometry.png)", ""]

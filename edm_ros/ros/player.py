"""Play a synthetic image sequence into a running matcher node and collect what it publishes.

Used by the demo, the node benchmark and the tests, always in another process than the node:

    python -m edm_ros.ros.player --mode sequential --frames 20 --width 320 --height 256

The sequence is rendered procedurally (``edm_ros.data.synthetic``: a rectified stereo camera
moving past textured planes, with ground-truth poses), so nothing is read from disk. Frames are
published with increasing stamps; ``--rate-hz 0`` waits for each frame's results before
publishing the next (latency without queueing), a positive rate streams at that rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from edm_ros.data.synthetic import StereoSequence, stereo_sequence
from edm_ros.geometry.pose import pose_error_deg
from edm_ros.msg import MatchArray, RelativePose
from edm_ros.pipeline import PairMode, Stamped
from edm_ros.ros.conversions import (
    camera_info_from_matrices,
    header_of,
    image_to_numpy,
    numpy_to_image,
    stamp_to_ns,
)
from edm_ros.ros.inputs import InputSpec
from edm_ros.ros.outputs import matrix_from_pose
from edm_ros.ros.shutdown import shutdown_ros

LEFT_FRAME, RIGHT_FRAME = "camera_left_optical_frame", "camera_right_optical_frame"
_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
_FIRST_STAMP_NS = 1_700_000_000_000_000_000
_FRAME_PERIOD_NS = 33_333_333  # stamps advance like a 30 Hz camera whatever the playback rate


@dataclass
class FrameRecord:
    """What was published for one frame and what came back for it.

    Attributes:
        index: Frame number in playback order.
        stamp_ns: Stamp of its images.
        published_s: ``time.perf_counter()`` at publication.
        matches: (receive time, message) of each MatchArray of this frame (stereo: its left
            image; sequential: its current image has the frame's stamp).
        pose: The relative pose stamped with this frame, if one came with a pose (state OK or
            FEW_MATCHES); ``relative_poses`` of the player has every one.
    """

    index: int
    stamp_ns: int
    published_s: float
    matches: list[tuple[float, MatchArray]] = field(default_factory=list)
    pose: RelativePose | None = None


def match_array_problems(msg: MatchArray) -> list[str]:
    """What is malformed in a MatchArray (empty when it is well-formed).

    Checks array lengths (2N, 2N, N, N, and 0 or N for the mask), finite keypoints inside the
    stated image sizes, confidences in [0, 1], the mode, the sizes and ``inference_ms``.
    """
    count = len(msg.confidence)
    problems = []
    lengths = (len(msg.keypoints0), len(msg.keypoints1), len(msg.fine_confidence))
    if lengths != (2 * count, 2 * count, count) or len(msg.inlier_mask) not in (0, count):
        problems.append(f"lengths kp0/kp1/fine/mask {lengths} {len(msg.inlier_mask)} for N={count}")
        return problems
    if msg.mode not in get_args(PairMode):
        problems.append(f"mode {msg.mode!r}")
    if min(msg.width, msg.height, msg.reference_width, msg.reference_height) == 0:
        problems.append("zero image size")
    for name, values, size in (
        ("keypoints0", msg.keypoints0, (msg.reference_width, msg.reference_height)),
        ("keypoints1", msg.keypoints1, (msg.width, msg.height)),
    ):
        points = np.asarray(values, np.float32).reshape(-1, 2)
        inside = (points >= -0.5) & (points <= np.array(size, np.float32) - 0.5)
        if not np.all(np.isfinite(points)) or not np.all(inside):
            problems.append(f"{name} not finite or outside {size[0]}x{size[1]}")
    for name, values in (("confidence", msg.confidence), ("fine_confidence", msg.fine_confidence)):
        array = np.asarray(values, np.float32)
        if not np.all((array >= 0) & (array <= 1)):
            problems.append(f"{name} outside [0, 1]")
    if not (np.isfinite(msg.inference_ms) and msg.inference_ms >= 0):
        problems.append(f"inference_ms {msg.inference_ms}")
    return problems


class FramePlayer:
    """Publishes frames to the matcher node's inputs and records its outputs.

    Args:
        node: A node of this process (its context is spun by :meth:`wait_until`).
        mode: The node's mode: which input topics to publish.
        node_name: The matcher node's fully qualified name (outputs are ``<node_name>/...``).
        debug_image: Also subscribe to ``<node_name>/debug_image`` (the node then draws).
    """

    def __init__(
        self, node: Node, mode: PairMode, node_name: str = "/edm", debug_image: bool = False
    ) -> None:
        self.node = node
        self.mode = mode
        self.inputs = InputSpec.node_default(mode)
        self.frames: dict[int, FrameRecord] = {}
        self.matches: list[tuple[float, MatchArray]] = []
        self.poses: list[RelativePose] = []  # those with a pose
        self.relative_poses: list[RelativePose] = []  # every one, lost frames included
        self.diagnostics: list[DiagnosticStatus] = []
        self.debug_images: list[Image] = []
        self._node_name = node_name.rstrip("/")
        self.publishers: dict[str, Any] = {
            topic: node.create_publisher(msg_type, topic, _RELIABLE)
            for msg_type, topic in zip(self.inputs.message_types, self.inputs.topics)
        }
        node.create_subscription(MatchArray, f"{node_name}/matches", self._on_matches, _RELIABLE)
        node.create_subscription(
            RelativePose, f"{node_name}/relative_pose", self._on_pose, _RELIABLE
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if debug_image:
            node.create_subscription(
                Image, f"{node_name}/debug_image", self.debug_images.append, _RELIABLE
            )
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(node)

    def _on_matches(self, msg: MatchArray) -> None:
        received_s = time.perf_counter()
        self.matches.append((received_s, msg))
        left = msg.reference_header if msg.mode == "stereo" else msg.header  # the frame's stamp
        record = self.frames.get(stamp_to_ns(left.stamp))
        if record is not None:
            record.matches.append((received_s, msg))

    def _on_pose(self, msg: RelativePose) -> None:
        self.relative_poses.append(msg)
        if msg.state not in (RelativePose.STATE_OK, RelativePose.STATE_FEW_MATCHES):
            return
        self.poses.append(msg)
        record = self.frames.get(stamp_to_ns(msg.header.stamp))
        if record is not None:
            record.pose = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = self._node_name.rsplit("/", 1)[-1] + ":"
        self.diagnostics += [status for status in msg.status if status.name.startswith(prefix)]

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Spin until ``condition()`` holds.

        Raises:
            TimeoutError: After ``timeout_s`` seconds, naming ``what`` was awaited.
        """
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
            self._executor.spin_once(timeout_sec=0.02)

    def spin_until(self, time_s: float) -> None:
        """Spin (receiving outputs) until ``time.perf_counter()`` reaches ``time_s``: pacing."""
        while time.perf_counter() < time_s:
            self._executor.spin_once(timeout_sec=min(0.005, max(time_s - time.perf_counter(), 0)))

    def wait_for_node(self, timeout_s: float) -> None:
        """Wait until the node subscribes to every input and publishes matches (discovery)."""

        def connected() -> bool:
            inputs = all(pub.get_subscription_count() > 0 for pub in self.publishers.values())
            return inputs and self.node.count_publishers(f"{self._node_name}/matches") > 0

        self.wait_until(connected, timeout_s, f"the matcher node {self._node_name} to connect")

    def wait_for_running(self, timeout_s: float) -> None:
        """Wait for the node's first diagnostics (about 1 s after it connects): it has started."""
        self.wait_until(lambda: bool(self.diagnostics), timeout_s, f"{self._node_name} diagnostics")

    def diagnostic_values(self) -> dict[str, str]:
        """Key/values of the node's latest diagnostic (empty before the first)."""
        if not self.diagnostics:
            return {}
        return {pair.key: pair.value for pair in self.diagnostics[-1].values}

    def wait_for_processed(self, minimum: int, timeout_s: float) -> None:
        """Wait until the node's diagnostics count ``minimum`` processed frames (about 1 Hz).

        The only sign of a processed first sequential frame, which publishes nothing: the next
        frame must not be sent before, or the drop-if-busy slot may replace the first one.
        """
        self.wait_until(
            lambda: int(self.diagnostic_values().get("frames processed", 0)) >= minimum,
            timeout_s,
            f"diagnostics counting {minimum} processed frame(s)",
        )

    def publish(self, topic: str, msg: Image | CameraInfo) -> None:
        """Publish any message on one of the node's input topics (bad-input tests)."""
        self.publishers[topic].publish(msg)

    def publish_frame(
        self,
        index: int,
        images: Sequence[np.ndarray],
        infos: Sequence[CameraInfo],
        encoding: str = "mono8",
    ) -> FrameRecord:
        """Publish one frame: its images (left, right or the single image) and camera_infos.

        The stamp is taken from ``infos[0].header``; images get the infos' headers.
        """
        stamp_ns = stamp_to_ns(infos[0].header.stamp)
        record = FrameRecord(index, stamp_ns, time.perf_counter())
        self.frames[stamp_ns] = record
        for image, info, camera in zip(images, infos, self.inputs.cameras):
            self.publish(camera.info, info)
            self.publish(camera.image, numpy_to_image(image, encoding, info.header))
        record.published_s = time.perf_counter()
        return record


def playback_stamp_ns(index: int) -> int:
    """The image stamp of playback frame ``index``, nanoseconds."""
    return _FIRST_STAMP_NS + index * _FRAME_PERIOD_NS


def sequence_frame_messages(
    sequence: StereoSequence, mode: PairMode, index: int
) -> tuple[list[np.ndarray], list[CameraInfo]]:
    """Images and camera_infos of playback frame ``index`` (the sequence repeats cyclically)."""
    frame = sequence.frames[index % len(sequence.frames)]
    stamp = Stamped(playback_stamp_ns(index), LEFT_FRAME)
    size = (sequence.width, sequence.height)
    left_info = camera_info_from_matrices(
        sequence.K, size, header_of(stamp), sequence.projection_left
    )
    if mode == "sequential":
        return [frame.left], [left_info]
    right_header = header_of(Stamped(stamp.stamp_ns, RIGHT_FRAME))
    right_info = camera_info_from_matrices(
        sequence.K, size, right_header, sequence.projection_right
    )
    return [frame.left, frame.right], [left_info, right_info]


def expected_matches(mode: PairMode, index: int) -> int:
    """MatchArrays a frame yields when every frame is processed: stereo 1 (+1 after the first)."""
    return (1 if mode == "stereo" else 0) + (index > 0)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=get_args(PairMode), default="sequential")
    parser.add_argument("--frames", type=int, default=10, help="frames to publish")
    parser.add_argument("--unique-frames", type=int, default=8, help="rendered frames, cycled")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate-hz", type=float, default=0.0, help="0: wait for each result")
    parser.add_argument("--node-name", default="/edm")
    parser.add_argument("--startup-timeout-s", type=float, default=120.0)
    parser.add_argument("--frame-timeout-s", type=float, default=30.0)
    parser.add_argument("--debug-png", type=Path, help="save the node's last debug image here")
    parser.add_argument("--summary-json", type=Path, help="write latencies and checks here")
    parser.add_argument("--quiet", action="store_true", help="no line per frame")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Play the sequence, print one line per frame, optionally write a summary; 0 if all good."""
    args = _parse_args(argv)
    sequence = stereo_sequence(
        min(args.unique_frames, args.frames), args.width, args.height, seed=0
    )
    rclpy.init(args=[])  # no ROS arguments: ours are parsed by argparse
    node = Node("edm_player")
    player = FramePlayer(node, args.mode, args.node_name, debug_image=args.debug_png is not None)
    try:
        player.wait_for_node(args.startup_timeout_s)
        if args.debug_png is not None:
            player.wait_until(
                lambda: node.count_subscribers(f"{args.node_name}/debug_image") > 0,
                10.0,
                "the debug image subscription to be matched",
            )
        summary = _play(player, sequence, args)
    finally:
        node.destroy_node()
        shutdown_ros()
    if args.debug_png is not None and player.debug_images:
        import cv2

        args.debug_png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.debug_png), image_to_numpy(player.debug_images[-1]))
        summary["debug_png"] = str(args.debug_png)
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(summary, indent=1))
    return 0 if not summary["problems"] and summary["frames_with_results"] > 0 else 1


def _play(player: FramePlayer, sequence: StereoSequence, args: argparse.Namespace) -> dict:
    """Publish every frame (paced or ping-pong), wait for the last results, summarise."""
    start_s = time.perf_counter()
    for index in range(args.frames):
        images, infos = sequence_frame_messages(sequence, args.mode, index)
        record = player.publish_frame(index, images, infos)
        if args.rate_hz > 0:
            player.spin_until(start_s + (index + 1) / args.rate_hz)
        elif expected_matches(args.mode, index) > 0:
            _wait_for_frame(player, record, args.mode, args.frame_timeout_s)
        else:
            player.wait_for_processed(1, args.frame_timeout_s)
        if not args.quiet and args.rate_hz <= 0:
            print(_frame_line(record, sequence), flush=True)
    last = player.frames[max(player.frames)]
    try:
        _wait_for_frame(player, last, args.mode, args.frame_timeout_s)
        seen = len(player.diagnostics)  # the next status describes the last frame
        player.wait_until(lambda: len(player.diagnostics) > seen, 3.0, "a last diagnostic")
    except TimeoutError as err:
        print(f"last frame: {err}", file=sys.stderr)
    return _summary(player, args, sequence)


def _wait_for_frame(
    player: FramePlayer, record: FrameRecord, mode: PairMode, timeout_s: float
) -> None:
    """Wait for a frame's MatchArrays, and for its pose when the temporal mask says one exists."""
    expected = expected_matches(mode, record.index)
    player.wait_until(
        lambda: len(record.matches) >= expected,
        timeout_s,
        f"{expected} MatchArray(s) of frame {record.index}",
    )
    if any(len(msg.inlier_mask) for _, msg in record.matches):
        player.wait_until(
            lambda: record.pose is not None, timeout_s, f"the relative pose of frame {record.index}"
        )


def _frame_line(record: FrameRecord, sequence: StereoSequence) -> str:
    """One human-readable line: matches per pair, inliers, pose and its ground truth."""
    parts = [f"frame {record.index:3d}"]
    for _, msg in record.matches:
        inliers = int(np.count_nonzero(np.frombuffer(bytes(msg.inlier_mask), np.uint8)))
        detail = f", {inliers} inliers" if len(msg.inlier_mask) else ""
        parts.append(f"{msg.mode}: {len(msg.confidence)} matches{detail}")
    if record.pose is None:
        parts.append("no pose" if record.index else "first frame")
    else:
        position = record.pose.pose.pose.position
        parts.append(f"t = ({position.x:+.3f}, {position.y:+.3f}, {position.z:+.3f})")
        _, truth = _true_pose(record.pose, record.index, sequence)
        parts.append(f"true t = ({truth[0]:+.3f}, {truth[1]:+.3f}, {truth[2]:+.3f}) m")
    return " | ".join(parts)


def _true_pose(
    pose: RelativePose, index: int, sequence: StereoSequence
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth (R_ref_cur, t_ref_cur) of a pose message of playback frame ``index``."""
    count = len(sequence.frames)
    reference = (stamp_to_ns(pose.reference_header.stamp) - _FIRST_STAMP_NS) // _FRAME_PERIOD_NS
    return sequence.relative_pose(reference % count, index % count)


def pose_error(pose: RelativePose, index: int, sequence: StereoSequence) -> dict:
    """Error of a pose message of playback frame ``index`` against the rendered ground truth.

    Returns:
        ``frame``, ``metric``, ``rotation_error_deg`` and ``translation_error``: metres for a
        metric pose, else the angle between the unit direction and the true one, degrees.
    """
    rotation_true, translation_true = _true_pose(pose, index, sequence)
    estimate = matrix_from_pose(pose.pose.pose)
    rotation_deg, _ = pose_error_deg(
        estimate[:3, :3], estimate[:3, 3], rotation_true, translation_true
    )
    if pose.metric:
        translation_error = float(np.linalg.norm(estimate[:3, 3] - translation_true))
    else:  # the sign matters for a direction: pose_error_deg folds it, so measure it here
        cosine = float(estimate[:3, 3] @ translation_true) / max(
            float(np.linalg.norm(estimate[:3, 3]) * np.linalg.norm(translation_true)), 1e-12
        )
        translation_error = float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return {
        "frame": index,
        "metric": bool(pose.metric),
        "rotation_error_deg": rotation_deg,
        "translation_error": translation_error,
    }


def _summary(player: FramePlayer, args: argparse.Namespace, sequence: StereoSequence) -> dict:
    latency_ms, inference_ms, problems = [], [], []
    for record in player.frames.values():
        for received_s, msg in record.matches:
            latency_ms.append((received_s - record.published_s) * 1e3)
            inference_ms.append(float(msg.inference_ms))
    for _, msg in player.matches:
        problems += match_array_problems(msg)
    return {
        "mode": args.mode,
        "size": [args.width, args.height],
        "frames_published": len(player.frames),
        "frames_with_results": sum(1 for r in player.frames.values() if r.matches),
        "frames_with_all_results": sum(
            len(r.matches) >= expected_matches(args.mode, r.index) for r in player.frames.values()
        ),
        "match_arrays": len(player.matches),
        "poses": len(player.poses),
        "latency_ms": latency_ms,
        "inference_ms": inference_ms,
        "problems": problems,
        "pose_errors": [
            pose_error(record.pose, record.index, sequence)
            for record in player.frames.values()
            if record.pose is not None
        ],
        "last_diagnostic": player.diagnostics[-1].message if player.diagnostics else "",
        "diagnostic_values": player.diagnostic_values(),
        "weights": player.diagnostics[-1].hardware_id if player.diagnostics else "",
    }


if __name__ == "__main__":
    sys.exit(main())

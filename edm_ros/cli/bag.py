"""edm-bag: replay rosbag2 recordings (sqlite3 or MCAP) into ROS, or match their images offline.

Subcommands::

    edm-bag info BAG                                   topics, types and message counts
    edm-bag play BAG [--rate 1] [--remap /a:=/b]       publish with the recorded timing
    edm-bag match BAG --out matches.jsonl --left /cam0/image_raw --right /cam1/image_raw
    edm-bag match BAG --out matches.jsonl --topic /cam0/image_raw   (sequential pairs)
    edm-bag from-euroc EUROC_FOLDER BAG [--storage mcap] [--max-frames N]

``play`` publishes each message's recorded bytes unchanged (header stamps included) on the
recorded topic, after the recorded delay since the first message divided by ``--rate``; run the
matcher node beside it to process recorded data. ``match`` needs no ROS graph: it pairs images
(stereo: equal header stamps; sequential: consecutive frames), matches them and, when the bag has
``camera_info`` beside the image topics, estimates the relative pose; one JSON line per pair.
Both decode messages with ROS 2 Python (rclpy and sensor_msgs), as the node does.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edm_ros.cli.arguments import parse_size
from edm_ros.data.bags import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPE,
    BagMessage,
    bag_topics,
    euroc_to_bag,
    read_bag,
)
from edm_ros.errors import ConfigError, EDMError, InputError
from edm_ros.evaluation.baselines import EDMOptions, NamedMatcher, build_matcher
from edm_ros.geometry.camera import CameraModel
from edm_ros.geometry.pose import PoseMethod, RelativePose, relative_pose_from_matches
from edm_ros.model.config import MatcherConfig


def _message_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class ``sensor_msgs.msg.Image``."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"message type {msgtype}: not importable ({err}); install its ROS 2 package"
        ) from err


def _parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for remap in remaps:
        source, separator, target = remap.partition(":=")
        if not separator or not source or not target:
            raise ConfigError(f"--remap expects FROM:=TO, got {remap!r}")
        pairs[source] = target
    return pairs


def play(
    bag: Path,
    *,
    topics: Sequence[str] | None = None,
    rate: float = 1.0,
    remaps: dict[str, str] | None = None,
    reliable: bool = True,
    wait_for_subscribers: int = 0,
    wait_timeout_s: float = 30.0,
) -> int:
    """Publish a bag's messages into the ROS graph with the recorded timing.

    Args:
        bag: the rosbag2 folder or file.
        topics: publish only these recorded topics; None = all.
        rate: playback speed factor (2 = twice as fast).
        remaps: recorded topic -> published topic.
        reliable: reliable QoS (depth 10); False = sensor_data (best effort, depth 5).
        wait_for_subscribers: before the first message, wait until every publisher has this
            many subscribers (instead of guessing a discovery delay).
        wait_timeout_s: give up waiting after this long.

    Returns:
        The number of messages published.

    Raises:
        EDMError: bad bag or options, or subscribers that did not appear in time.
    """
    if rate <= 0:
        raise ConfigError(f"--rate must be positive, got {rate}")
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    types = {t: m for t, m in bag_topics(bag).items() if topics is None or t in topics}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    rclpy.init(args=[])  # our own argparse owns sys.argv
    node = rclpy.create_node("edm_bag_player")
    try:
        publishers = {
            topic: node.create_publisher(
                _message_class(msgtype),
                (remaps or {}).get(topic, topic),
                qos if reliable else qos_profile_sensor_data,
            )
            for topic, msgtype in types.items()
        }
        _wait_for_subscribers(node, publishers, wait_for_subscribers, wait_timeout_s)
        count = _publish_timed(read_bag(bag, list(types)), publishers, rate)
        if reliable:  # let the last messages arrive before the publishers go away
            _wait_for_delivery(publishers, wait_timeout_s)
        return count
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _wait_for_subscribers(
    node: Any, publishers: dict[str, Any], count: int, timeout_s: float
) -> None:
    import rclpy

    deadline = time.monotonic() + timeout_s
    missing = list(publishers)
    while count > 0 and time.monotonic() < deadline:
        missing = [t for t, p in publishers.items() if p.get_subscription_count() < count]
        if not missing:
            return
        rclpy.spin_once(node, timeout_sec=0.05)
    if count > 0:
        raise EDMError(
            f"waited {timeout_s:.0f} s for {count} subscriber(s) on {', '.join(missing)}; "
            "start the consumer first, check ROS_DOMAIN_ID, or drop --wait-for-subscribers"
        )


def _wait_for_delivery(publishers: dict[str, Any], timeout_s: float) -> None:
    from rclpy.duration import Duration

    for publisher in publishers.values():
        publisher.wait_for_all_acked(Duration(seconds=timeout_s))


def _publish_timed(messages: Iterator[BagMessage], publishers: dict[str, Any], rate: float) -> int:
    start = time.monotonic()
    first_ns = None
    count = 0
    for message in messages:
        first_ns = message.log_time_ns if first_ns is None else first_ns
        due = start + (message.log_time_ns - first_ns) / 1e9 / rate
        # Sleeping reproduces the recorded timing; it is the purpose of play, not a synchronisation.
        time.sleep(max(0.0, due - time.monotonic()))
        publishers[message.topic].publish(message.raw)
        count += 1
    return count


@dataclass(frozen=True)
class Frame:
    """A decoded image from the bag and the camera that took it (None without camera_info)."""

    topic: str
    stamp_ns: int
    frame_id: str
    grey: np.ndarray  # [H, W] uint8
    camera: CameraModel | None


def _info_topic(image_topic: str) -> str:
    """``/cam0/image_raw`` -> ``/cam0/camera_info`` (image_transport's convention)."""
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def _frames(bag: Path, image_topics: Sequence[str]) -> Iterator[Frame]:
    """Decoded images of the topics in recording order, each with its latest camera_info.

    camera_info is looked up beside each image topic (``<namespace>/camera_info``).
    """
    from rclpy.serialization import deserialize_message

    from edm_ros.ros.conversions import camera_from_info, grey_for_matcher, image_to_numpy

    available = bag_topics(bag)
    info_topics = {t: _info_topic(t) for t in image_topics if _info_topic(t) in available}
    info_class = _message_class(CAMERA_INFO_TYPE)
    # Start from each camera's first camera_info: a driver may record it just after the image.
    latest_info: dict[str, Any] = {}
    for message in read_bag(bag, list(info_topics.values())):
        latest_info.setdefault(message.topic, deserialize_message(message.raw, info_class))
        if len(latest_info) == len(set(info_topics.values())):
            break
    for message in read_bag(bag, [*image_topics, *info_topics.values()]):
        if message.msgtype == CAMERA_INFO_TYPE:
            latest_info[message.topic] = deserialize_message(message.raw, info_class)
            continue
        if message.msgtype != IMAGE_TYPE:
            raise InputError(f"{message.topic}: type {message.msgtype}, expected {IMAGE_TYPE}")
        image = deserialize_message(message.raw, _message_class(IMAGE_TYPE))
        grey = grey_for_matcher(image_to_numpy(image), image.encoding)
        info = latest_info.get(info_topics.get(message.topic, ""))
        camera = None
        if info is not None:
            size = (grey.shape[1], grey.shape[0])
            camera = camera_from_info(info, size, rectified=False, topic=_info_topic(message.topic))
        stamp_ns = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
        yield Frame(message.topic, stamp_ns, image.header.frame_id, grey, camera)


def stereo_pairs(frames: Iterator[Frame], left: str, right: str) -> Iterator[tuple[Frame, Frame]]:
    """Left/right frames with equal header stamps (exact synchronisation, as stereo drivers do)."""
    pending: dict[str, dict[int, Frame]] = {left: {}, right: {}}
    for frame in frames:
        other = right if frame.topic == left else left
        partner = pending[other].pop(frame.stamp_ns, None)
        if partner is None:
            pending[frame.topic][frame.stamp_ns] = frame
            continue
        yield (frame, partner) if frame.topic == left else (partner, frame)
        for side in pending.values():  # unpaired older frames will never find a partner
            for stamp in [s for s in side if s < frame.stamp_ns]:
                del side[stamp]


def sequential_pairs(frames: Iterator[Frame]) -> Iterator[tuple[Frame, Frame]]:
    """(frame k-1, frame k) of one topic."""
    previous = None
    for frame in frames:
        if previous is not None:
            yield previous, frame
        previous = frame


def _pose_record(pose: RelativePose | None) -> dict[str, Any] | None:
    if pose is None:
        return None
    return {
        "success": pose.success,
        "reason": pose.reason,
        "rotation": pose.rotation.tolist(),
        "translation": pose.translation.tolist(),
        "num_inliers": pose.num_inliers,
    }


def match_bag(
    out: TextIO,
    matcher: NamedMatcher,
    pairs: Iterator[tuple[Frame, Frame]],
    *,
    ransac_method: PoseMethod = "magsac",
    threshold_px: float = 1.0,
    max_pairs: int | None = None,
) -> int:
    """Match image pairs of a bag and write one JSON line per pair.

    Each line holds the two stamps (ns) and frame ids, the matches (``keypoints0``,
    ``keypoints1`` in original-image pixels, ``confidence``), ``inference_ms``, and ``pose``:
    ``T_ref_cur`` (camera of image 1 in the camera of image 0; unit translation) from
    :func:`edm_ros.geometry.pose.relative_pose_from_matches`, or null without camera_info.

    Returns:
        The number of pairs written.
    """
    count = 0
    for reference, current in pairs:
        if max_pairs is not None and count >= max_pairs:
            break
        result = matcher.matcher.match(reference.grey, current.grey)
        pose = None
        if reference.camera is not None and current.camera is not None:
            pose = relative_pose_from_matches(
                result.keypoints0,
                result.keypoints1,
                reference.camera,
                current.camera,
                method=ransac_method,
                threshold_px=threshold_px,
            )
        record = {
            "stamp0_ns": reference.stamp_ns,
            "stamp1_ns": current.stamp_ns,
            "frame_id0": reference.frame_id,
            "frame_id1": current.frame_id,
            "matcher": matcher.name,
            "num_matches": len(result.keypoints0),
            "inference_ms": result.inference_ms,
            "keypoints0": result.keypoints0.tolist(),
            "keypoints1": result.keypoints1.tolist(),
            "confidence": result.confidence.tolist(),
            "pose": _pose_record(pose),
        }
        out.write(json.dumps(record) + "\n")
        count += 1
    return count


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of edm-bag."""
    parser = argparse.ArgumentParser(prog="edm-bag", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="list topics, types and message counts")
    info.add_argument("bag", type=Path)
    player = commands.add_parser("play", help="publish the bag with its timing")
    player.add_argument("bag", type=Path)
    player.add_argument("--topics", nargs="+", help="only these recorded topics")
    player.add_argument("--rate", type=float, default=1.0, help="speed factor")
    player.add_argument("--remap", action="append", default=[], help="FROM:=TO (repeatable)")
    player.add_argument("--qos", choices=("reliable", "sensor_data"), default="reliable")
    player.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait for N subscribers per topic before publishing",
    )
    player.add_argument("--wait-timeout", type=float, default=30.0, help="seconds")
    matching = commands.add_parser("match", help="match image pairs offline, write JSON lines")
    matching.add_argument("bag", type=Path)
    matching.add_argument("--out", type=Path, required=True, help="output .jsonl file")
    matching.add_argument("--left", help="left image topic (stereo pairs)")
    matching.add_argument("--right", help="right image topic (stereo pairs)")
    matching.add_argument("--topic", help="image topic (sequential pairs)")
    matching.add_argument("--matcher", default="edm", choices=("edm", "sift", "orb"))
    matching.add_argument(
        "--weights", type=Path, help="EDM checkpoint; default: the package's own weights"
    )
    matching.add_argument("--device", default="cpu")
    matching.add_argument(
        "--input-size",
        type=functools.partial(parse_size, allow_auto=True),
        default=MatcherConfig.input_size,
        help="EDM WxH or auto",
    )
    matching.add_argument(
        "--ransac-method", default="magsac", choices=("magsac", "ransac", "poselib")
    )
    matching.add_argument("--ransac-threshold-px", type=float, default=1.0)
    matching.add_argument("--max-pairs", type=int)
    converter = commands.add_parser("from-euroc", help="write a EuRoC stereo folder as a bag")
    converter.add_argument("euroc", type=Path)
    converter.add_argument("bag", type=Path)
    converter.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    converter.add_argument("--max-frames", type=int)
    return parser


def _run_match(args: argparse.Namespace) -> str:
    if bool(args.left) != bool(args.right) or bool(args.left) == bool(args.topic):
        raise ConfigError("give either --left and --right (stereo) or --topic (sequential)")
    matcher = build_matcher(
        args.matcher,
        EDMOptions(args.weights, args.device, MatcherConfig(input_size=args.input_size)),
    )
    topics = [args.left, args.right] if args.left else [args.topic]
    frames = _frames(args.bag, topics)
    pairs = stereo_pairs(frames, args.left, args.right) if args.left else sequential_pairs(frames)
    with args.out.open("w") as out:
        count = match_bag(
            out,
            matcher,
            pairs,
            ransac_method=args.ransac_method,
            threshold_px=args.ransac_threshold_px,
            max_pairs=args.max_pairs,
        )
    return f"{count} pairs -> {args.out}"


def _run(args: argparse.Namespace) -> str:
    if args.command == "info":
        counts: dict[str, int] = {}
        for message in read_bag(args.bag):
            counts[message.topic] = counts.get(message.topic, 0) + 1
        return "\n".join(f"{t}  {m}  {counts.get(t, 0)}" for t, m in bag_topics(args.bag).items())
    if args.command == "play":
        count = play(
            args.bag,
            topics=args.topics,
            rate=args.rate,
            remaps=_parse_remaps(args.remap),
            reliable=args.qos == "reliable",
            wait_for_subscribers=args.wait_for_subscribers,
            wait_timeout_s=args.wait_timeout,
        )
        return f"published {count} messages"
    if args.command == "match":
        return _run_match(args)
    stamps = euroc_to_bag(args.euroc, args.bag, storage=args.storage, max_frames=args.max_frames)
    return f"{len(stamps)} stereo frames -> {args.bag}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edm-bag``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        print(_run(args))
    except EDMError as err:
        print(f"edm-bag: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

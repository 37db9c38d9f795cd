"""edm-bag: replay rosbag2 recordings (sqlite3 or MCAP) into ROS, or match their images offline.

Subcommands::

    edm-bag info BAG                                   topics, types and message counts
    edm-bag play BAG [--rate 1] [--remap /a:=/b]       publish with the recorded timing
    edm-bag match BAG --out matches.jsonl --left /cam0/image_raw --right /cam1/image_raw
    edm-bag match BAG --out matches.jsonl --topic /cam0/image_raw   (sequential pairs)
    edm-bag from-euroc EUROC_FOLDER BAG [--storage mcap] [--max-frames N]

``play`` publishes each message's recorded bytes unchanged (header stamps included) on the
recorded topic, after the recorded delay since the first message divided by ``--rate``; run the
matcher node beside it to process recorded data. ``match`` needs no ROS graph: it pairs each
image with the ``camera_info`` beside it (equal header stamps) and runs the node's pipeline
(:class:`edm_ros.pipeline.MatchingPipeline`): stereo pairs give metric poses, one camera gives
poses with a unit translation; one JSON line per matched pair. Raw stereo images are rectified
with their camera_info first; give ``--rectified`` for ``image_rect`` topics. Both decode
messages with ROS 2 Python (rclpy and sensor_msgs, ``edm_ros.ros.bag_io``), as the node does.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

from edm_ros.cli.arguments import parse_size
from edm_ros.data.bags import bag_topics, euroc_to_bag, read_bag
from edm_ros.errors import ConfigError, EDMError
from edm_ros.evaluation.baselines import EDMOptions, build_matcher
from edm_ros.geometry.pose import PoseMethod, RelativePose
from edm_ros.model.config import MatcherConfig
from edm_ros.pipeline import (
    MatchingPipeline,
    MonoFrame,
    PairMatches,
    PipelineConfig,
    PipelineOutput,
    StereoFrame,
)


def _parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for remap in remaps:
        source, separator, target = remap.partition(":=")
        if not separator or not source or not target:
            raise ConfigError(f"--remap expects FROM:=TO, got {remap!r}")
        pairs[source] = target
    return pairs


def _info_topic(image_topic: str) -> str:
    """``/cam0/image_raw`` -> ``/cam0/camera_info`` (image_transport's convention)."""
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def _pose_record(pose: RelativePose | None) -> dict[str, Any] | None:
    if pose is None:
        return None
    return {
        "success": pose.success,
        "reason": pose.reason,
        "rotation": pose.rotation.tolist(),
        "translation": pose.translation.tolist(),
        "metric": pose.metric,
        "num_inliers": pose.num_inliers,
    }


def _pair_record(matcher: str, output: PipelineOutput, pair: PairMatches) -> dict[str, Any]:
    """One JSON line: a matched pair; the temporal pair also carries the frame's pose."""
    mask = pair.inlier_mask
    return {
        "mode": pair.mode,
        "stamp0_ns": pair.reference.stamp_ns,
        "stamp1_ns": pair.current.stamp_ns,
        "frame_id0": pair.reference.frame_id,
        "frame_id1": pair.current.frame_id,
        "matcher": matcher,
        "num_matches": len(pair.result.keypoints0),
        "inference_ms": pair.result.inference_ms,
        "keypoints0": pair.result.keypoints0.tolist(),
        "keypoints1": pair.result.keypoints1.tolist(),
        "confidence": pair.result.confidence.tolist(),
        "inlier_mask": None if mask is None else mask.tolist(),
        "state": output.state.value,
        "reason": output.reason,
        "pose": _pose_record(output.pose) if pair.mode == "sequential" else None,
    }


def match_bag(
    out: TextIO,
    matcher_name: str,
    pipeline: MatchingPipeline,
    frames: Iterable[MonoFrame | StereoFrame],
    *,
    max_pairs: int | None = None,
) -> int:
    """Track the frames of a bag with the node's pipeline and write one JSON line per pair.

    A stereo frame gives its left <-> right pair, then (from the second frame on) the
    keyframe <-> current pair; a sequential frame gives the keyframe <-> current pair. Each line
    holds the pair's mode, stamps (ns) and frame ids, the matches (``keypoints0``,
    ``keypoints1`` in original-image pixels, ``confidence``, ``inlier_mask``), ``inference_ms``,
    the frame's tracking ``state`` and ``reason``, and on the keyframe <-> current pair ``pose``:
    ``T_ref_cur`` of the current camera in the keyframe's (metric in stereo mode, unit
    translation in sequential mode), as the node publishes it on ``~/relative_pose``.

    Returns:
        The number of lines written.
    """
    count = 0
    for frame in frames:
        output = pipeline.process(frame)
        for pair in output.pairs:
            if max_pairs is not None and count >= max_pairs:
                return count
            out.write(json.dumps(_pair_record(matcher_name, output, pair)) + "\n")
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
        "--rectified", action="store_true", help="the images are rectified (image_rect topics)"
    )
    matching.add_argument(
        "--ransac-method", default=PipelineConfig.ransac_method, choices=get_args(PoseMethod)
    )
    matching.add_argument(
        "--ransac-threshold-px", type=float, default=PipelineConfig.ransac_threshold_px
    )
    matching.add_argument("--min-inliers", type=int, default=PipelineConfig.min_inliers)
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
    from edm_ros.ros.bag_io import bag_frames
    from edm_ros.ros.inputs import CameraTopics, InputSpec

    def camera(image_topic: str) -> CameraTopics:
        return CameraTopics(image_topic, _info_topic(image_topic))

    if args.left:
        spec = InputSpec.stereo(camera(args.left), camera(args.right))
    else:
        spec = InputSpec.sequential(camera(args.topic))
    matcher = build_matcher(
        args.matcher,
        EDMOptions(args.weights, args.device, MatcherConfig(input_size=args.input_size)),
    )
    config = PipelineConfig(
        mode=spec.mode,
        ransac_method=args.ransac_method,
        ransac_threshold_px=args.ransac_threshold_px,
        min_inliers=args.min_inliers,
    )
    frames = bag_frames(args.bag, spec, rectified=args.rectified)
    with args.out.open("w") as out:
        count = match_bag(
            out,
            matcher.name,
            MatchingPipeline(matcher.matcher, config),
            frames,
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
        from edm_ros.ros.bag_io import play

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

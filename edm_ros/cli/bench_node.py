"""Benchmark of the matcher node: latency, memory over a long run, and the stereo batch.

    python -m edm_ros.cli.bench_node --out bench_output [--weights edm.ckpt | random] [--device cpu]

1. latency: image published -> MatchArray received, node and player in separate processes
   (sequential mode, each frame sent when the previous one's result arrived), against the
   matcher's own latency (``EDMMatcher.match`` in this process on the same frames, same threads).
2. soak: ``--soak-frames`` stereo frames (default 2000) of 640x480 images, the network at a small
   input size (``--soak-input-size``, default 160x128) so that the run takes minutes on a CPU.
   The player publishes a frame only after the node's MatchArray pair of the previous one arrived
   (bounded wait, ``--frame-timeout-s``), so every frame is processed and the count is exact:
   2N - 1 MatchArrays expected (the first frame has no temporal pair). Counted: MatchArrays
   received and malformed, the node's processing errors (diagnostics ``internal errors`` and
   ``frames rejected``, "unexpected error" lines in its log), its resident memory after warm-up
   and at the end, and whether it is alive. Messages are checked field by field
   (ROS_PYTHON_CHECK_FIELDS=1 in the node and the player).
3. stereo batch: ``match_batch`` of the two pairs of a stereo frame vs two ``match`` calls.
4. odometry: building the Odometry and /tf messages of one frame (body frame, twist, covariances).

Writes ``node_bench.json`` into ``--out`` and prints a summary. Timings depend on the machine:
report them with the device and thread count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch

from edm_ros.cli.arguments import parse_size
from edm_ros.data.synthetic import stereo_sequence
from edm_ros.matcher import EDMMatcher
from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.model.config import MatcherConfig
from edm_ros.ros.processes import (
    ros_environment,
    start_matcher_node,
    stop,
    weights_parameter,
    write_params_file,
)

_WARMUP_FRAMES = 3  # latency samples dropped at the start (first inference, allocator growth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_node", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--weights", help="EDM checkpoint, or 'random' (default: the package's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, node and here")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="latency image WxH")
    parser.add_argument("--latency-frames", type=int, default=30)
    parser.add_argument("--soak-frames", type=int, default=2000)
    parser.add_argument("--soak-warmup-frames", type=int, default=100)
    parser.add_argument("--soak-size", type=parse_size, default=(640, 480), help="image WxH")
    parser.add_argument(
        "--soak-input-size",
        type=parse_size,
        default=(160, 128),
        help="soak network input WxH (multiples of 32)",
    )
    parser.add_argument(
        "--frame-timeout-s", type=float, default=60.0, help="longest wait for one frame's results"
    )
    parser.add_argument("--batch-runs", type=int, default=10)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("latency", "soak", "batch", "odometry")
    )
    return parser


class NodeRun:
    """The node in its own process for the duration of a ``with`` block."""

    def __init__(
        self, args: argparse.Namespace, name: str, input_size: tuple[int, int], mode: str
    ) -> None:
        params = {
            "weights_path": weights_parameter(args.weights),
            "device": args.device,
            "cpu_threads": args.threads,
            "input_width": input_size[0],
            "input_height": input_size[1],
            "match_threshold": _match_threshold(args),
            "mode": mode,
            "image_qos": "reliable",
        }
        self.mode = mode
        self.frame_timeout_s = args.frame_timeout_s
        self.params_file = write_params_file(args.out / f"params_{name}.yaml", params)
        self.log_path = args.out / f"node_{name}.log"
        self.env = ros_environment()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> NodeRun:
        self.process = start_matcher_node(self.params_file, self.log_path, self.env)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        stop(self.process)

    def rss_mb(self) -> float:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def play(self, out: Path, frames: int, size: tuple[int, int], name: str) -> dict:
        """Run the player to the end (ping-pong); its JSON summary."""
        summary_path = out / f"summary_{name}.json"
        command = [
            sys.executable,
            "-m",
            "edm_ros.ros.player",
            "--mode",
            self.mode,
            "--quiet",
            "--frames",
            str(frames),
            "--width",
            str(size[0]),
            "--height",
            str(size[1]),
            "--frame-timeout-s",
            str(self.frame_timeout_s),
            "--summary-json",
            str(summary_path),
        ]
        subprocess.run(command, env=self.env, check=False, timeout=3600)
        return json.loads(summary_path.read_text()) if summary_path.is_file() else {}


def matcher_latency_ms(matcher: EDMMatcher, size: tuple[int, int], runs: int) -> list[float]:
    """Wall time of EDMMatcher.match in this process on the player's frames, milliseconds."""
    frames = stereo_sequence(min(runs + 1, 8), size[0], size[1], seed=0).frames
    matcher.match(frames[0].left, frames[1].left)  # warm-up
    times = []
    for index in range(runs):
        pair = (frames[index % len(frames)].left, frames[(index + 1) % len(frames)].left)
        start = time.perf_counter()
        matcher.match(*pair)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _matcher(args: argparse.Namespace, size: tuple[int, int]) -> EDMMatcher:
    config = MatcherConfig(input_size=size, match_threshold=_match_threshold(args))
    return EDMMatcher(args.weights, args.device, config=config)


def _match_threshold(args: argparse.Namespace) -> float:
    """Random weights are never confident: keep every match so that the work is realistic."""
    return 0.0 if args.weights == RANDOM_WEIGHTS else 0.2


def bench_latency(args: argparse.Namespace) -> dict:
    """The node end to end against EDMMatcher.match here, timed before and after the node's run
    (both halves pooled), so that a change of the machine's load shows in both."""
    matcher = _matcher(args, args.size)
    runs = max(args.latency_frames // 2, 5)
    before = matcher_latency_ms(matcher, args.size, runs)
    with NodeRun(args, "latency", args.size, "sequential") as node:
        summary = node.play(args.out, args.latency_frames, args.size, "latency")
    after = matcher_latency_ms(matcher, args.size, runs)
    end_to_end = summary.get("latency_ms", [])[_WARMUP_FRAMES:]
    inference = summary.get("inference_ms", [])[_WARMUP_FRAMES:]
    matcher_ms = before + after
    result = {
        "frames": len(end_to_end),
        "end_to_end_ms_median": statistics.median(end_to_end) if end_to_end else None,
        "node_inference_ms_median": statistics.median(inference) if inference else None,
        "matcher_match_ms_median": statistics.median(matcher_ms),
        "matcher_match_ms_before_after": [statistics.median(before), statistics.median(after)],
        "problems": summary.get("problems", ["no summary"]),
    }
    if result["end_to_end_ms_median"] is not None:
        result["ratio_end_to_end_over_matcher"] = (
            result["end_to_end_ms_median"] / result["matcher_match_ms_median"]
        )
    return result


def bench_soak(args: argparse.Namespace) -> dict:
    with NodeRun(args, "soak", args.soak_input_size, "stereo") as node:
        warm = node.play(args.out, args.soak_warmup_frames, args.soak_size, "soak_warmup")
        rss_warm_mb = node.rss_mb()
        start = time.perf_counter()
        soak = node.play(args.out, args.soak_frames, args.soak_size, "soak")
        seconds = time.perf_counter() - start
        rss_end_mb = node.rss_mb()
        assert node.process is not None
        alive = node.process.poll() is None
    status = soak.get("diagnostic_values", {})
    log = node.log_path.read_text(errors="replace")
    return {
        "frames": args.soak_frames,
        "image_size": list(args.soak_size),
        "network_input_size": list(args.soak_input_size),
        "mode": "stereo, each frame published after the previous frame's MatchArray pair",
        "seconds": seconds,
        "frames_per_second": args.soak_frames / seconds,
        "rss_after_warmup_mb": rss_warm_mb,
        "rss_end_mb": rss_end_mb,
        "rss_growth_percent": 100.0 * (rss_end_mb - rss_warm_mb) / rss_warm_mb,
        "match_arrays": soak.get("match_arrays", 0),
        "match_arrays_expected": 2 * args.soak_frames - 1,  # no temporal pair for the first
        "frames_with_both_pairs": soak.get("frames_with_all_results", 0),
        "malformed": len(soak.get("problems", [])) + len(warm.get("problems", [])),
        "node_internal_errors": int(status.get("internal errors", -1)),
        "node_frames_rejected": int(status.get("frames rejected", -1)),
        "node_frames_dropped_busy": int(status.get("frames dropped (busy)", -1)),
        "unexpected_error_log_lines": log.count("unexpected error"),
        "node_alive_at_end": alive,
    }


def bench_batch(args: argparse.Namespace) -> dict:
    matcher = _matcher(args, args.size)
    frames = stereo_sequence(2, args.size[0], args.size[1], seed=0).frames
    pairs = [(frames[1].left, frames[1].right), (frames[0].left, frames[1].left)]
    matcher.match_batch(pairs)  # warm-up
    batched, single = [], []
    for _ in range(args.batch_runs):
        start = time.perf_counter()
        matcher.match_batch(pairs)
        batched.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        for pair in pairs:
            matcher.match(*pair)
        single.append((time.perf_counter() - start) * 1e3)
    return {
        "batched_two_pairs_ms_median": statistics.median(batched),
        "two_single_pairs_ms_median": statistics.median(single),
        "ratio_batched_over_single": statistics.median(batched) / statistics.median(single),
    }


def bench_odometry(args: argparse.Namespace, runs: int = 2000) -> dict:
    """Time to build one frame's Odometry and TFMessage from the camera odometry, ms."""
    import numpy as np

    from edm_ros.geometry.odometry import OdometryIntegrator, body_odometry
    from edm_ros.geometry.pose import RelativePose
    from edm_ros.pipeline import Stamped
    from edm_ros.ros.conversions import header_of
    from edm_ros.ros.frames import TF_MESSAGE, mounting_from_parameter
    from edm_ros.ros.outputs import odometry_msg, transform_msg

    mounting = mounting_from_parameter((0.1, 0.0, 0.2, -0.5, 0.5, -0.5, 0.5))
    integrator = OdometryIntegrator()
    integrator.start(0)
    pose = RelativePose(
        True, "", np.eye(3), np.array([0.0, 0.0, 0.05]), True, np.ones(500, bool), 1e-6 * np.eye(6)
    )
    times = []
    for index in range(1, runs + 1):
        start = time.perf_counter()
        step = integrator.update(pose, index * 33_333_333, new_keyframe=index % 10 == 0)
        body, twist = body_odometry(step, mounting)
        header = header_of(Stamped(index * 33_333_333, "odom"))
        odometry_msg(body, twist, header, "base_link")
        if TF_MESSAGE is not None:
            TF_MESSAGE(transforms=[transform_msg(body.transform, header, "base_link")])
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "runs": runs,
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "tf_included": TF_MESSAGE is not None,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)  # the matcher measured here uses what the node uses
    report: dict = {
        "device": args.device,
        "threads": args.threads,
        "weights": args.weights or "the package's (edm_ros/weights/edm_ros_v1.ckpt)",
        "cpu": psutil.cpu_count(logical=True),
    }
    benches = (
        ("latency", bench_latency),
        ("soak", bench_soak),
        ("batch", bench_batch),
        ("odometry", bench_odometry),
    )
    for name, bench in benches:
        if name not in args.skip:
            print(f"[bench_node] {name} ...", flush=True)
            report[name] = bench(args)
            print(json.dumps(report[name], indent=1), flush=True)
    (args.out / "node_bench.json").write_text(json.dumps(report, indent=1))
    print(f"[bench_node] written {args.out / 'node_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

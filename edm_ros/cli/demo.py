"""Demo: the matcher node and a player of a rendered image sequence, in separate processes.

    python -m edm_ros.cli.demo --out demo_output [--weights edm.ckpt | random] [--mode stereo]

For each mode (stereo, then sequential) it starts the node, plays a few frames of a procedurally
rendered stereo sequence into it (nothing is downloaded or read from disk), prints per frame the
matches, inliers and pose next to the true motion, saves the node's debug image as a PNG, stops
the node, and prints the pose errors against the sequence's ground truth and which weights the
node used. Without ``--weights`` the node loads the package's shipped weights; ``--weights
random`` gives seeded random weights, whose matches and poses are meaningless (said at the start
and at the end).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from edm_ros.cli.arguments import parse_size
from edm_ros.model.checkpoint import RANDOM_WEIGHTS
from edm_ros.ros.processes import (
    ros_environment,
    start_matcher_node,
    stop,
    weights_parameter,
    write_params_file,
)

MODES = ("stereo", "sequential")
_RANDOM_WEIGHTS_NOTICE = (
    "RANDOM WEIGHTS (--weights random): the network is randomly initialised. Everything runs end "
    "to end, but the matches and poses below are MEANINGLESS. Leave --weights out for the "
    "package's weights, or pass an EDM checkpoint."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edm-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    parser.add_argument("--weights", help="EDM checkpoint, or 'random' (default: the package's)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--frames", type=int, default=6, help="frames per mode")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="image WxH")
    parser.add_argument(
        "--input-size",
        type=parse_size,
        default=(640, 480),
        help="network input WxH (multiples of 32)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per mode")
    return parser


def node_params(args: argparse.Namespace, mode: str) -> dict[str, object]:
    """The node parameters of one demo run (the rest keep the node's defaults)."""
    random_weights = args.weights == RANDOM_WEIGHTS
    return {
        "weights_path": weights_parameter(args.weights),
        "device": args.device,
        "cpu_threads": args.threads,
        "input_width": args.input_size[0],
        "input_height": args.input_size[1],
        # random weights are never confident: keep every match so that the plumbing shows
        "match_threshold": 0.0 if random_weights else 0.2,
        "mode": mode,
        "image_qos": "reliable",  # player and node on one machine; no best-effort size limit
    }


def run_mode(args: argparse.Namespace, mode: str) -> dict:
    """Start the node, play the sequence, stop the node; the player's summary."""
    params = write_params_file(args.out / f"params_{mode}.yaml", node_params(args, mode))
    summary_path = args.out / f"summary_{mode}.json"
    summary_path.unlink(missing_ok=True)
    env = ros_environment()
    node = start_matcher_node(params, args.out / f"node_{mode}.log", env)
    width, height = args.size
    player_command = [
        sys.executable,
        "-m",
        "edm_ros.ros.player",
        "--mode",
        mode,
        "--frames",
        str(args.frames),
        "--width",
        str(width),
        "--height",
        str(height),
        "--debug-png",
        str(args.out / f"debug_{mode}.png"),
        "--summary-json",
        str(summary_path),
    ]
    try:
        subprocess.run(player_command, env=env, timeout=args.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        print(f"[demo] {mode}: the player did not finish within {args.timeout_s:.0f} s")
    finally:
        node_code = stop(node)
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["node_exit_code"] = node_code
    return summary


def pose_error_line(errors: list[dict]) -> str:
    """Median / max translation and rotation error of the published poses vs ground truth."""
    if not errors:
        return "no pose published: no pose error to report"
    rotation = np.array([error["rotation_error_deg"] for error in errors])
    translation = np.array([error["translation_error"] for error in errors])
    metric = all(error["metric"] for error in errors)
    unit = "m" if metric else "deg (unit direction; the scale is unobservable)"
    return (
        f"pose error vs ground truth over {len(errors)} poses: translation median "
        f"{np.median(translation):.4f} / max {translation.max():.4f} {unit}; rotation median "
        f"{np.median(rotation):.3f} / max {rotation.max():.3f} deg"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.weights not in (None, RANDOM_WEIGHTS) and not Path(args.weights).is_file():
        print(f"[demo] --weights {args.weights}: no such file")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    random_weights = args.weights == RANDOM_WEIGHTS
    notice = _RANDOM_WEIGHTS_NOTICE if random_weights else f"weights: {args.weights or 'shipped'}"
    print(f"[demo] {notice}\n", flush=True)
    results = {}
    for mode in MODES if args.mode == "both" else (args.mode,):
        print(f"[demo] {mode} mode: starting the node and playing {args.frames} frames", flush=True)
        results[mode] = run_mode(args, mode)
    print()
    ok = True
    for mode, summary in results.items():
        good = bool(summary) and not summary["problems"] and summary["node_exit_code"] == 0
        ok &= good
        print(
            f"[demo] {mode}: {summary.get('match_arrays', 0)} MatchArrays, "
            f"{summary.get('poses', 0)} poses, malformed: {len(summary.get('problems', []))}, "
            f"debug image: {summary.get('debug_png', 'none')}, node exit code "
            f"{summary['node_exit_code']} -> {'OK' if good else 'FAILED'} (logs in {args.out})"
        )
        print(f"[demo] {mode}: last node status: {summary.get('last_diagnostic') or 'none'}")
        print(f"[demo] {mode}: {pose_error_line(summary.get('pose_errors', []))}")
        print(f"[demo] {mode}: weights used by the node: {summary.get('weights') or 'unknown'}")
    if random_weights:
        print(f"\n[demo] {_RANDOM_WEIGHTS_NOTICE}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Latency of the backends on one machine: median time of EDMMatcher.match per backend.

Example (the figure in docs/deployment.md):
    python -m edm_ros.cli.bench_backends --size 640x480 --threads 2 --backends torch onnxruntime
The ONNX graph is exported into the cache on the first run (reported separately, not timed).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edm_ros.backends import BACKENDS, BackendOptions
from edm_ros.cli.arguments import parse_size
from edm_ros.cli.export import textured_pair
from edm_ros.errors import EDMError
from edm_ros.matcher import EDMMatcher
from edm_ros.model.config import MatcherConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_backends", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="EDM checkpoint (default: seeded random)")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="network input WxH")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ORT)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per backend")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=BACKENDS)
    parser.add_argument("--cache-dir", type=Path, help="exported graphs / engines cache")
    return parser


def time_backend(
    name: str, args: argparse.Namespace, images: tuple[np.ndarray, np.ndarray]
) -> list[float]:
    """Seconds per EDMMatcher.match for ``args.runs`` runs of one backend."""
    options = BackendOptions(cache_dir=args.cache_dir, num_threads=args.threads)
    start = time.perf_counter()
    config = MatcherConfig(input_size=args.size)
    matcher = EDMMatcher(
        args.weights, args.device, config=config, backend=name, backend_options=options
    )
    print(f"{name}: ready in {time.perf_counter() - start:.1f} s (export/build if not cached)")
    for _ in range(args.warmup):
        matcher.match(*images)
    seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        matcher.match(*images)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)  # a benchmark process: set once, here
    pair = textured_pair(args.size)
    images = (pair[0] * 255).astype(np.uint8), (pair[1] * 255).astype(np.uint8)
    print(
        f"EDM {args.size[0]}x{args.size[1]} on {args.device}, {args.threads} threads, "
        f"{args.runs} runs after {args.warmup} warm-up; torch {torch.__version__}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    medians = {}
    try:
        for name in args.backends:
            seconds = time_backend(name, args, images)
            medians[name] = statistics.median(seconds)
            runs = ", ".join(f"{s * 1e3:.0f}" for s in seconds)
            print(f"{name}: median {medians[name] * 1e3:.0f} ms (runs: {runs} ms)")
    except EDMError as err:
        print(f"bench_backends: {err}", file=sys.stderr)
        return 1
    if "torch" in medians and len(medians) > 1:
        for name, median in medians.items():
            if name != "torch":
                print(f"{name} / torch: {median / medians['torch']:.2f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""edm-bench: CPU/GPU latency, per-stage times, peak memory and throughput of the EDM core.

Each (input size, batch size) runs in its own process so that peak memory is measured per
configuration. Example (the figures quoted in the README):

    python -m edm_ros.cli.bench --sizes 640x480 1152x1152 --batches 1 2 4 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edm_ros.cli.arguments import parse_size
from edm_ros.matcher import EDMMatcher
from edm_ros.model.edm import dual_softmax_row_max, select_top_k, similarity

STAGES = ("backbone", "neck", "fine_matching")


def bench_images(size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured pair at (W, H): blocky noise and the same shifted by 13 px."""
    rng = np.random.default_rng(seed)
    width, height = size
    noise = rng.random((height // 4 + 8, width // 4 + 8)).astype(np.float32)
    big = np.kron(noise, np.ones((4, 4), np.float32))
    image = (255 * big[: height + 13, : width + 13] / big.max()).astype(np.uint8)
    return image[:height, :width].copy(), image[13 : height + 13, 13 : width + 13].copy()


class StageTimer:
    """Wall-clock time of the backbone, CIM, coarse matching and head, via module hooks."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.marks: dict[str, float] = {}
        self.device = device
        for name in STAGES:
            module = getattr(model, name)
            module.register_forward_pre_hook(self._mark(f"{name}_start"))
            module.register_forward_hook(self._mark(f"{name}_end"))

    def _mark(self, key: str):  # a forward (pre-)hook that records the time
        def hook(*_: object) -> None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.marks[key] = time.perf_counter()

        return hook

    def stages_ms(self, end: float) -> dict[str, float]:
        m = self.marks
        return {
            "backbone": (m["backbone_end"] - m["backbone_start"]) * 1e3,
            "cim": (m["neck_end"] - m["neck_start"]) * 1e3,
            "coarse": (m["fine_matching_start"] - m["neck_end"]) * 1e3,
            "fine": (end - m["fine_matching_start"]) * 1e3,
        }


def official_coarse(coarse0: torch.Tensor, coarse1: torch.Tensor, k: int) -> torch.Tensor:
    """The official eval formulation: exp(S), L1-normalise both ways, multiply, row max, top-K."""
    exp = torch.exp(similarity(coarse0, coarse1, 0.1))
    conf = torch.nn.functional.normalize(exp, p=1, dim=1) * torch.nn.functional.normalize(
        exp, p=1, dim=2
    )
    row_max, row_argmax = conf.max(dim=2)
    return select_top_k(row_max, row_argmax, k).rows


def compare_coarse(size: tuple[int, int], runs: int) -> dict[str, float]:
    """Our coarse matching vs the official formulation on the same random features."""
    cells = (size[0] // 8) * (size[1] // 8)
    if cells > 6000:  # the official form needs several L x L matrices; skip where it would swap
        return {}
    generator = torch.Generator().manual_seed(0)
    coarse0, coarse1 = (torch.randn(1, cells, 256, generator=generator) for _ in range(2))
    k = int(cells * 0.35)
    times: dict[str, list[float]] = {"official": [], "ours": []}
    with torch.inference_mode():
        for _ in range(runs + 1):
            start = time.perf_counter()
            theirs = official_coarse(coarse0, coarse1, k)
            times["official"].append(time.perf_counter() - start)
            start = time.perf_counter()
            row_max, row_argmax = dual_softmax_row_max(coarse0, coarse1, 0.1)
            ours = select_top_k(row_max, row_argmax, k).rows
            times["ours"].append(time.perf_counter() - start)
    same = set(theirs[0].tolist()) == set(ours[0].tolist())
    return {
        "official_coarse_ms": statistics.median(times["official"][1:]) * 1e3,
        "ours_coarse_ms": statistics.median(times["ours"][1:]) * 1e3,
        "same_top_k": float(same),
    }


def worker(args: argparse.Namespace) -> dict:
    """One configuration, in this process."""
    torch.set_num_threads(args.threads)
    size, batch = args.worker_size, args.worker_batch
    matcher = EDMMatcher(args.weights, device=args.device, input_size=size)
    model = matcher.backend.model  # type: ignore[attr-defined]
    timer = StageTimer(model, torch.device(args.device))
    pairs = [bench_images(size, seed) for seed in range(batch)]  # distinct images
    matcher.match_batch(pairs)  # warm-up
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    totals, stages, matches = [], [], 0
    for _ in range(args.runs):
        start = time.perf_counter()
        results = matcher.match_batch(pairs)
        end = time.perf_counter()
        totals.append((end - start) * 1e3)
        stages.append(timer.stages_ms(timer.marks["fine_matching_end"]))
        matches = sum(len(r) for r in results)
    median_ms = statistics.median(totals)
    report = {
        "size": f"{size[0]}x{size[1]}",
        "batch": batch,
        "threads": args.threads,
        "device": args.device,
        "weights": matcher.weights_description,
        "median_ms": median_ms,
        "min_ms": min(totals),
        "per_pair_ms": median_ms / batch,
        "stages_ms": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_timed_runs_mb": rss_before_kb / 1024,
        "matches_per_pair": matches / batch,
        "matches_per_s": matches / (median_ms / 1e3),
        "pairs_per_s": batch / (median_ms / 1e3),
    }
    if batch == 1:
        report.update(compare_coarse(size, args.runs))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edm-bench", description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(640, 480), (1152, 1152)])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: random weights)")
    parser.add_argument("--out", type=Path, default=Path("bench_output/core.json"))
    parser.add_argument("--worker-size", type=parse_size, help=argparse.SUPPRESS)
    parser.add_argument("--worker-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_size:
        print(json.dumps(worker(args)))
        return 0
    reports = []
    for size in args.sizes:
        for batch in args.batches:
            command = [
                sys.executable, "-m", "edm_ros.cli.bench", "--worker-size", f"{size[0]}x{size[1]}",
                "--worker-batch", str(batch), "--runs", str(args.runs),
                "--threads", str(args.threads), "--device", args.device,
            ]  # fmt: skip
            if args.weights:
                command += ["--weights", str(args.weights)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            report = json.loads(out.stdout.strip().splitlines()[-1])
            reports.append(report)
            print_row(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=2))
    print(f"written: {args.out}")
    return 0


def print_row(r: dict) -> None:
    stages = " ".join(f"{k} {v:.0f}" for k, v in r["stages_ms"].items())
    line = (
        f"{r['size']:>9} batch {r['batch']}: median {r['median_ms']:.0f} ms "
        f"({r['per_pair_ms']:.0f} ms/pair, {r['matches_per_s']:.0f} matches/s)"
        f" | stages ms: {stages}"
        f" | peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    if "official_coarse_ms" in r:
        line += (
            f" | coarse: ours {r['ours_coarse_ms']:.0f} ms vs official form "
            f"{r['official_coarse_ms']:.0f} ms, same top-K: {bool(r['same_top_k'])}"
        )
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""GPU benchmark of every backend at one input size and several batch sizes, checked on the CPU.

    python -m edm_ros.cli.bench_gpu --size 640x480 --batches 1 2 4 8 [--fp16] --out bench_output

Variants: torch CUDA eager, torch CUDA graph, ONNX Runtime with the CUDA and the TensorRT
execution providers, native TensorRT fp32 (and fp16 with ``--fp16``: its candidate and match
differences are reported, never hidden). Each runs ``Backend.run`` on B distinct pairs, timed
with a synchronising host copy of the outputs (median of ``--runs`` after ``--warmup``), and its
candidates and final matches are compared with the torch CPU backend on the same pairs. A
variant whose package or device is missing is reported as skipped with the reason; without CUDA
only the CPU reference runs. Writes ``gpu_bench.json`` and ``gpu_bench.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from edm_ros.backends import BackendOptions, CandidateArrays, create_backend
from edm_ros.backends.graphs import compare_candidates
from edm_ros.cli.export import parse_size, textured_pair
from edm_ros.errors import EDMError
from edm_ros.matcher import build_model
from edm_ros.model.config import MatcherConfig
from edm_ros.model.selection import select_matches


class Variant(NamedTuple):
    """One way to run the network on the GPU."""

    name: str
    backend: str
    options: dict  # BackendOptions fields besides batch_size and cache_dir


VARIANTS = (
    Variant("torch CUDA eager", "torch", {}),
    Variant("torch CUDA graph", "torch", {"cuda_graph": True}),
    Variant("ONNX Runtime CUDA EP", "onnxruntime", {"onnx_provider": "cuda"}),
    Variant("ONNX Runtime TensorRT EP", "onnxruntime", {"onnx_provider": "tensorrt"}),
    Variant("TensorRT fp32", "tensorrt", {}),
)
FP16_VARIANT = Variant("TensorRT fp16", "tensorrt", {"precision": "fp16"})


def benchmark_pairs(size: tuple[int, int], count: int) -> np.ndarray:
    """[count, 2, H, W] float32: distinct textured pairs (no image shared between pairs)."""
    base = textured_pair((size[0] + 8 * count, size[1]))
    pairs = [base[:, :, 8 * i : 8 * i + size[0]] for i in range(count)]
    return np.ascontiguousarray(np.stack(pairs), dtype=np.float32)


def match_difference(reference: CandidateArrays, other: CandidateArrays, size) -> dict:
    """Final matches of every pair (threshold 0.2) against the reference: counts and changes."""
    config = MatcherConfig(input_size=size)
    same, changed, total = 0, 0, 0
    for index in range(len(reference.confidence)):
        ours, theirs = (
            select_matches(c.pair(index), (1.0, 1.0), (1.0, 1.0), size, size, config)
            for c in (reference, other)
        )
        key = {tuple(p) for p in np.round(theirs.keypoints0, 2).tolist()}
        hits = sum(tuple(p) in key for p in np.round(ours.keypoints0, 2).tolist())
        same += hits
        changed += len(ours.keypoints0) - hits + len(theirs.keypoints0) - hits
        total += len(ours.keypoints0)
    return {"reference_matches": total, "same_matches": same, "changed_matches": changed}


def time_variant(variant: Variant, args: argparse.Namespace, pairs: np.ndarray, reference) -> dict:
    """One variant at one batch size: median time and the comparison with the CPU reference."""
    batch = pairs.shape[0]
    row: dict = {"variant": variant.name, "batch": batch}
    options = BackendOptions(cache_dir=args.cache_dir, batch_size=batch, **variant.options)
    try:
        model = build_model(args.weights).model
        backend = create_backend(variant.backend, model, args.device, args.config, options)
        for _ in range(args.warmup):
            backend.run(pairs)
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            candidates = backend.run(pairs)  # host arrays: the copy synchronises
            seconds.append(time.perf_counter() - start)
    except (EDMError, RuntimeError) as err:
        return row | {"skipped": str(err).splitlines()[0][:200]}
    comparison = [compare_candidates(reference.pair(i), candidates.pair(i)) for i in range(batch)]
    return row | {
        "median_ms": statistics.median(seconds) * 1e3,
        "pairs_per_s": batch / statistics.median(seconds),
        "top_k_overlap_min": min(c.pair_overlap for c in comparison),
        "max_difference": {
            name: max(c.max_difference[name] for c in comparison)
            for name in comparison[0].max_difference
        },
        **match_difference(reference, candidates, args.size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="EDM checkpoint (default: seeded random)")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="network input WxH")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--fp16", action="store_true", help="also TensorRT fp16 (opt-in)")
    parser.add_argument("--cache-dir", type=Path, help="exported graphs and engines")
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    args = parser.parse_args(argv)
    args.config = MatcherConfig(input_size=args.size)
    pairs = benchmark_pairs(args.size, max(args.batches))
    start = time.perf_counter()
    reference = create_backend("torch", build_model(args.weights).model, "cpu", args.config)
    reference_candidates = reference.run(pairs)
    report: dict = {
        "size": f"{args.size[0]}x{args.size[1]}",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA",
        "torch": torch.__version__,
        "cpu_reference_ms": (time.perf_counter() - start) * 1e3,
        "rows": [],
    }
    print(f"[bench_gpu] CPU reference for {len(pairs)} pairs: {report['cpu_reference_ms']:.0f} ms")
    variants = VARIANTS + ((FP16_VARIANT,) if args.fp16 else ())
    for variant in variants:
        for batch in args.batches:
            subset = CandidateArrays(*(field[:batch] for field in reference_candidates))
            row = time_variant(variant, args, pairs[:batch], subset)
            report["rows"].append(row)
            print(f"[bench_gpu] {json.dumps(row)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=1))
    (args.out / "gpu_bench.md").write_text(markdown_table(report))
    print(markdown_table(report))
    return 0


def markdown_table(report: dict) -> str:
    """The report as a README table."""
    lines = [
        f"{report['device']}, {report['size']}, torch {report['torch']}; "
        "checked against the torch CPU backend on the same pairs",
        "",
        "| variant | batch | median | pairs/s | top-K overlap | largest difference | "
        "final matches changed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['variant']} | {row['batch']} | skipped: {row['skipped']} |||||")
            continue
        worst = max(row["max_difference"].values())
        lines.append(
            f"| {row['variant']} | {row['batch']} | {row['median_ms']:.1f} ms | "
            f"{row['pairs_per_s']:.1f} | {row['top_k_overlap_min']:.1%} | {worst:.1e} | "
            f"{row['changed_matches']} of {row['reference_matches']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

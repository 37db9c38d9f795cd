"""edm-bench: EDMMatcher against the official EDM implementation, in one run on one machine.

Absolute times move by tens of percent between runs on a shared machine; a ratio measured in one
run does not. So each round runs our matcher and the official code (``--reference``, skipped when
absent) in alternating processes on the same inputs; the report pools the timed runs of all
rounds into medians (total and per stage), checks that both give the same final matches, and
prints our time over the official one. At ``--stereo-size`` our worker also times a stereo frame
(two pairs sharing the left image) against one pair; every worker reports its process's peak RSS.
ONNX Runtime is skipped where its graph would hold the whole coarse similarity matrix (1152x1152).

    python -m edm_ros.cli.bench --sizes 640x480 1152x1152 --threads 2 --rounds 3 --runs 3

The official side runs in its own venv (``--official-venv``), created here on first use with the
recipe of ``../shared/reference/README.md``. Inputs: the parity pair of ``../shared/parity`` when
present (else a synthetic textured pair), resized to each size, with the parity weights (else
``--weights``, else seeded random weights for both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from edm_ros.backends import BackendOptions
from edm_ros.cli.arguments import parse_size
from edm_ros.matcher import EDMMatcher, build_model
from edm_ros.model.edm import coarse_matrix_fits_in_one_piece

STAGES = ("backbone", "neck", "fine_matching")
#: What the official side's venv installs (../shared/reference/README.md); torch as ours.
OFFICIAL_PACKAGES = (
    f"torch=={torch.__version__.split('+')[0]}",
    "numpy",
    "einops",
    "kornia",
    "loguru",
    "yacs",
    "joblib",
    "lightning",
    "opencv-python-headless",
)
#: Runs in the official venv from a checkout (outside the package, which never imports that code).
OFFICIAL_WORKER = Path(__file__).resolve().parents[2] / "scripts" / "bench_official.py"
#: Final matches agree within these (../shared/parity/README.md).
MATCH_TOLERANCE_PX, CONFIDENCE_TOLERANCE = 1e-3, 1e-5


def bench_images(size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured pair at (W, H): blocky noise and the same shifted by 13 px."""
    rng = np.random.default_rng(seed)
    width, height = size
    noise = rng.random((height // 4 + 8, width // 4 + 8)).astype(np.float32)
    big = np.kron(noise, np.ones((4, 4), np.float32))
    image = (255 * big[: height + 13, : width + 13] / big.max()).astype(np.uint8)
    return image[:height, :width].copy(), image[13 : height + 13, 13 : width + 13].copy()


def benchmark_pair(size: tuple[int, int], parity_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two network inputs [H, W] float32 in [0, 1] at ``size`` (W, H), both sides alike."""
    fixture_path = parity_dir / "edm_parity_640x480.pt"
    if fixture_path.is_file():
        fixture = torch.load(fixture_path, weights_only=True)
        images = [fixture[key][0, 0].numpy() for key in ("image0", "image1")]
    else:
        images = [image.astype(np.float32) / 255.0 for image in bench_images(size)]
    return tuple(  # type: ignore[return-value]
        np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
        if image.shape[::-1] != size
        else image
        for image in images
    )


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
        """Stage times of the last forward; ``end``: when the caller had its result."""
        m = self.marks
        return {
            "backbone": (m["backbone_end"] - m["backbone_start"]) * 1e3,
            "cim": (m["neck_end"] - m["neck_start"]) * 1e3,
            "coarse": (m["fine_matching_start"] - m["neck_end"]) * 1e3,
            "fine": (end - m["fine_matching_start"]) * 1e3,
        }


def our_worker(args: argparse.Namespace) -> dict:
    """EDMMatcher.match on the saved inputs, in this process; also a stereo frame if asked."""
    torch.set_num_threads(args.threads)
    inputs = np.load(args.worker_inputs)
    image0, image1 = inputs["image0"], inputs["image1"]
    size = (image0.shape[1], image0.shape[0])
    options = BackendOptions(num_threads=args.threads, cache_dir=args.cache_dir)
    matcher = EDMMatcher(
        args.weights,
        args.device,
        input_size=size,
        backend=args.worker_backend,
        backend_options=options,
    )
    model = getattr(matcher.backend, "model", None)
    timer = StageTimer(model, torch.device(args.device)) if model is not None else None
    previous_left = np.ascontiguousarray(image0[:, ::-1])  # any third image
    stereo_frame = [(image0, image1), (previous_left, image0)]
    matcher.match(image0, image1)  # warm-up
    if args.stereo:
        matcher.match_batch(stereo_frame)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the stream's
    stream = None
    if args.stereo and matcher.backend.name == "torch":
        stream = EDMMatcher(
            args.weights,
            args.device,
            input_size=size,
            backend="torch",
            backend_options=replace(options, reuse_features=True),
        )
        stream.match_batch(stream_frame(image0, image1, 0))  # warm-up
    times_ms, stereo_ms, stream_ms, stages = [], [], [], []
    for run in range(args.runs):
        start = time.perf_counter()
        result = matcher.match(image0, image1)
        end = time.perf_counter()
        times_ms.append((end - start) * 1e3)
        if timer is not None:
            stages.append(timer.stages_ms(end))
        if args.stereo:  # interleaved with the single pair: the ratio sees the same load
            start = time.perf_counter()
            matcher.match_batch(stereo_frame)
            stereo_ms.append((time.perf_counter() - start) * 1e3)
        if stream is not None:
            frame = stream_frame(image0, image1, run + 1)
            start = time.perf_counter()
            stream.match_batch(frame)
            stream_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "backend": matcher.backend.name,
        "weights": matcher.weights_description,
        "times_ms": times_ms,
        "stereo_ms": stereo_ms,
        "stream_ms": stream_ms,
        "stages_ms": {k: statistics.median(s[k] for s in stages) for k in stages[0]}
        if stages
        else {},
        "peak_rss_mb": peak_rss_mb,
        "keypoints0": result.keypoints0.tolist(),
        "keypoints1": result.keypoints1.tolist(),
        "confidence": result.confidence.tolist(),
    }


def stream_frame(
    left: np.ndarray, right: np.ndarray, index: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frame ``index`` of a stereo stream that moves 8 px per frame: (left, right) and
    (previous left, left), as the node matches them; the previous left repeats the last frame's."""

    def shifted(image: np.ndarray, frame: int) -> np.ndarray:
        return np.ascontiguousarray(np.roll(image, 8 * frame, axis=1))

    current = shifted(left, index)
    return [(current, shifted(right, index)), (shifted(left, index - 1), current)]


def official_python(venv: Path) -> Path:
    """The official side's interpreter; creates its venv on first use (pip cache shared)."""
    python = venv / "bin" / "python"
    stamp = venv / ".edm_bench_installed"
    if not stamp.is_file():
        print(f"[bench] creating {venv} for the official implementation ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + list(OFFICIAL_PACKAGES), check=True)
        stamp.write_text("\n".join(OFFICIAL_PACKAGES) + "\n")
    return python


def run_json(command: list[str]) -> dict:
    """Run a worker process and parse the JSON on its last stdout line."""
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def same_matches(ours: dict, theirs: dict) -> tuple[bool, str]:
    """Whether two workers' final matches are the same set (parity tolerances), and why not."""
    points = [np.asarray(r["keypoints0"], np.float64).reshape(-1, 2) for r in (ours, theirs)]
    if len(points[0]) != len(points[1]):
        return False, f"{len(points[0])} matches against {len(points[1])}"
    if len(points[0]) == 0:
        return True, "0 matches on both sides"
    order = [np.lexsort(p.T) for p in points]
    worst_px = 0.0
    for key in ("keypoints0", "keypoints1"):
        a, b = (np.asarray(r[key]).reshape(-1, 2)[o] for r, o in zip((ours, theirs), order))
        worst_px = max(worst_px, float(np.abs(a - b).max()))
    conf = [np.asarray(r["confidence"])[o] for r, o in zip((ours, theirs), order)]
    worst_conf = float(np.abs(conf[0] - conf[1]).max())
    same = worst_px <= MATCH_TOLERANCE_PX and worst_conf <= CONFIDENCE_TOLERANCE
    return same, (
        f"{len(points[0])} matches, largest difference {worst_px:.1e} px, "
        f"confidence {worst_conf:.1e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edm-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(640, 480), (1152, 1152)])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--rounds", type=int, default=3, help="alternating process rounds")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stereo-size", type=parse_size, default=(640, 480), help="also stereo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: parity or random)")
    parser.add_argument("--reference", type=Path, default=Path("../shared/reference"))
    parser.add_argument("--parity", type=Path, default=Path("../shared/parity"))
    parser.add_argument("--official-venv", type=Path, default=Path(".official-venv"))
    parser.add_argument("--cache-dir", type=Path, help="exported graphs (onnxruntime)")
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--worker-inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-backend", help=argparse.SUPPRESS)
    parser.add_argument("--stereo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_inputs:
        print(json.dumps(our_worker(args)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    official_code = args.reference / "edm_official"
    comparable = official_code.is_dir() and OFFICIAL_WORKER.is_file()  # a checkout beside shared/
    official = official_python(args.official_venv) if comparable else None
    if official is None:
        print(f"[bench] {official_code} absent: timing edm_ros only", flush=True)
    weights = args.weights or default_weights(args.parity, args.out)
    sides = [f"edm_ros/{name}" for name in args.backends] + (["official"] if official else [])
    samples: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for size in args.sizes:
                label = f"{size[0]}x{size[1]}"
                inputs = Path(scratch) / f"{label}.npz"
                if not inputs.is_file():
                    image0, image1 = benchmark_pair(size, args.parity)
                    np.savez(inputs, image0=image0, image1=image1)
                for side in sides:
                    if side == "edm_ros/onnxruntime" and not coarse_matrix_fits_in_one_piece(size):
                        if round_index == 0:  # what backend "auto" avoids, for the same reason
                            print(
                                f"[bench] {label} {side}: skipped, the exported graph would hold "
                                "the whole coarse similarity matrix",
                                flush=True,
                            )
                        continue
                    if side == "official":
                        assert official is not None
                        command = [
                            str(official),
                            str(OFFICIAL_WORKER),
                            "--reference",
                            str(official_code.resolve()),
                            "--inputs",
                            str(inputs),
                            "--weights",
                            str(weights.resolve()),
                            "--runs",
                            str(args.runs),
                            "--threads",
                            str(args.threads),
                        ]
                    else:
                        command = [
                            sys.executable,
                            "-m",
                            "edm_ros.cli.bench",
                            "--worker-inputs",
                            str(inputs),
                            "--worker-backend",
                            side.split("/")[1],
                            "--runs",
                            str(args.runs),
                            "--threads",
                            str(args.threads),
                            "--device",
                            args.device,
                            "--weights",
                            str(weights),
                        ] + (["--cache-dir", str(args.cache_dir)] if args.cache_dir else [])
                        command += ["--stereo"] if size == args.stereo_size else []
                    samples.setdefault((label, side), []).append(run_json(command))
                    print(
                        f"[bench] round {round_index + 1}/{args.rounds} {label} {side}: "
                        f"{', '.join(f'{t:.0f}' for t in samples[label, side][-1]['times_ms'])}"
                        " ms",
                        flush=True,
                    )
    report = summarise(samples, args)
    (args.out / "bench.json").write_text(json.dumps(report, indent=1))
    markdown = markdown_table(report)
    (args.out / "bench.md").write_text(markdown)
    print(markdown)
    print(f"written: {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 0


def default_weights(parity_dir: Path, out: Path) -> Path:
    """The parity checkpoint if present, else seeded random weights saved in the official layout."""
    parity = parity_dir / "edm_random_weights.ckpt"
    if parity.is_file():
        return parity
    path = out / "random_weights.ckpt"
    state = build_model(None).model.state_dict()
    torch.save({"state_dict": {f"matcher.{k}": v for k, v in state.items()}}, path)
    return path


def summarise(samples: dict[tuple[str, str], list[dict]], args: argparse.Namespace) -> dict:
    """Pooled medians per (size, side), ratios to the official side, match checks."""
    rows = []
    for (label, side), runs in samples.items():
        times = [t for run in runs for t in run["times_ms"]]
        row = {
            "size": label,
            "side": side,
            "median_ms": statistics.median(times),
            "runs_ms": times,
            "stages_ms": {
                stage: statistics.median(run["stages_ms"][stage] for run in runs)
                for stage in runs[0]["stages_ms"]
            },
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "matches": len(runs[-1]["keypoints0"]),
        }
        if runs[0].get("stereo_ms"):
            stereo = [t for run in runs for t in run["stereo_ms"]]
            row["stereo_ms"] = statistics.median(stereo)
            row["stereo_over_pair"] = row["stereo_ms"] / row["median_ms"]
        if runs[0].get("stream_ms"):
            stream = [t for run in runs for t in run["stream_ms"]]
            row["stream_ms"] = statistics.median(stream)
            row["stream_over_pair"] = row["stream_ms"] / row["median_ms"]
        official = samples.get((label, "official"))
        if official and side != "official":
            row["over_official"] = row["median_ms"] / statistics.median(
                t for run in official for t in run["times_ms"]
            )
            row["same_matches"], row["match_check"] = same_matches(runs[-1], official[-1])
        rows.append(row)
    return {
        "machine": machine_description(),
        "threads": args.threads,
        "device": args.device,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "torch": torch.__version__,
        "rows": rows,
    }


def machine_description() -> str:
    """CPU model, core count and load, as this process sees them."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"


def markdown_table(report: dict) -> str:
    """The report as the README's table."""
    lines = [
        f"{report['machine']}; torch {report['torch']}, {report['threads']} threads, "
        f"{report['rounds']} rounds x {report['runs_per_round']} runs, medians",
        "",
        "| input | code | median | vs official | backbone / CIM / coarse / fine | peak RSS | "
        "final matches |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        stages = " / ".join(f"{v:.0f}" for v in row["stages_ms"].values()) or "-"
        ratio = f"{row['over_official']:.2f}×" if "over_official" in row else "-"
        check = row.get("match_check", f"{row['matches']} matches")
        if "same_matches" in row:
            check = ("same as official: " if row["same_matches"] else "DIFFERENT: ") + check
        lines.append(
            f"| {row['size']} | {row['side']} | {row['median_ms']:.0f} ms | {ratio} | "
            f"{stages} ms | {row['peak_rss_mb']:.0f} MB | {check} |"
        )
    for row in report["rows"]:
        if "stereo_ms" in row:
            lines.append(
                f"\nStereo frame ({row['side']}, {row['size']}, two pairs sharing the left image, "
                f"one `match_batch`): {row['stereo_ms']:.0f} ms = {row['stereo_over_pair']:.2f}× "
                "one pair in the same processes."
            )
        if "stream_ms" in row:
            lines.append(
                f"\nStereo stream ({row['side']}, {row['size']}, frames moving 8 px, the previous "
                "left image's backbone features kept, `reuse_features` as the node runs): "
                f"{row['stream_ms']:.0f} ms = {row['stream_over_pair']:.2f}× one pair."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

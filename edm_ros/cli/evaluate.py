"""edm-eval: evaluate matchers on datasets with ground truth and write a Markdown report.

Examples::

    edm-eval ../shared/data --out eval_report                      # SIFT and ORB baselines
    edm-eval ../shared/data --weights edm_outdoor.ckpt --out eval_report
    edm-eval --scannet1500 data/scannet --weights edm_outdoor.ckpt --matchers edm --out scannet
    edm-eval ../shared/data --odometry --matchers sift,edm --out vo_report  # + stereo odometry

See docs/evaluation.md for the protocols and how to reproduce the paper's tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2

from edm_ros.backends import BACKENDS
from edm_ros.cli.arguments import parse_size
from edm_ros.data.benchmarks import MEGADEPTH_LONG_SIDE, read_megadepth1500, read_scannet1500
from edm_ros.data.datasets import find_datasets
from edm_ros.data.pairs import Dataset, HomographyDataset
from edm_ros.errors import ConfigError, EDMError
from edm_ros.evaluation.baselines import EDMOptions, NamedMatcher, build_matcher
from edm_ros.evaluation.latency import (
    LatencyPoint,
    LatencyResults,
    latency_vs_batch,
    latency_vs_resolution,
)
from edm_ros.evaluation.odometry import (
    OdometryResult,
    OdometrySequence,
    euroc_sequence,
    is_euroc_trajectory_folder,
    rendered_sequences,
    run_odometry,
)
from edm_ros.evaluation.report import ReportContext, write_report
from edm_ros.evaluation.runner import evaluate, load_grey
from edm_ros.model.config import MatcherConfig


def _sizes(text: str) -> list[tuple[int, int]]:
    """'384x288,640x480' -> [(384, 288), (640, 480)]."""
    return [parse_size(part) for part in text.split(",") if part]


def _size_text(size: tuple[int, int] | None) -> str:
    """(640, 480) -> '640x480'; None -> the image size."""
    return "the images' own size" if size is None else f"{size[0]}x{size[1]}"


def _integers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4, got {text!r}") from err


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of edm-eval."""
    parser = argparse.ArgumentParser(
        prog="edm-eval",
        description="Evaluate EDM and classical baselines (relative pose, homography, stereo) "
        "and write report.md with tables and plots.",
    )
    parser.add_argument(
        "data",
        nargs="*",
        type=Path,
        help="dataset folders, or folders of them "
        "(pairs_gt.json, pairs_with_gt.txt, HPatches, EuRoC/Kalibr stereo)",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder (created)")
    parser.add_argument("--scannet1500", type=Path, help="LoFTR-layout data/scannet folder")
    parser.add_argument("--megadepth1500", type=Path, help="LoFTR-layout data/megadepth folder")
    parser.add_argument(
        "--megadepth-long-side",
        type=int,
        default=MEGADEPTH_LONG_SIDE,
        help="MegaDepth images are resized to this long side (EDM: 1152; LO-RANSAC table: 832)",
    )
    parser.add_argument(
        "--matchers",
        help="comma list of edm, sift, orb (default: all three)",
    )
    parser.add_argument(
        "--weights",
        help="EDM checkpoint (official edm_outdoor.ckpt); default: the package's own weights; "
        "'random' for random weights",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (EDM)")
    parser.add_argument("--backend", default="torch", help=f"EDM backend: {', '.join(BACKENDS)}")
    parser.add_argument(
        "--input-size",
        type=functools.partial(parse_size, allow_auto=True),
        default=MatcherConfig.input_size,
        help="EDM network input WxH, multiples of 32, or 'auto' for the image size",
    )
    parser.add_argument(
        "--homography-input-size",
        type=functools.partial(parse_size, allow_auto=True),
        default=None,
        help="EDM network input on homography sets (HPatches); default 'auto': the images' own "
        "size, which SIFT and ORB see too",
    )
    parser.add_argument(
        "--match-threshold",
        type=float,
        default=MatcherConfig.match_threshold,
        help="EDM coarse confidence threshold (0.2 indoor, 0.05 outdoor)",
    )
    parser.add_argument("--max-pairs", type=int, help="evaluate at most this many pairs per set")
    parser.add_argument("--visualize", type=int, default=2, help="match drawings per dataset")
    _add_latency_options(parser)
    _add_odometry_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _add_latency_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--latency-resolutions",
        type=_sizes,
        default=None,
        help="WxH list for latency vs resolution (default by device)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_integers,
        default=None,
        help="EDM batch sizes for latency vs batch (default: 1,2 on CPU, 1,2,4,8,16,32 on CUDA)",
    )
    parser.add_argument("--latency-repeats", type=int, default=3, help="timed calls per point")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency sweeps")


def _add_odometry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--odometry",
        action="store_true",
        help="also run stereo visual odometry (RPE, ATE, plot) on every EuRoC folder with a "
        "trajectory and on rendered sequences (a straight drive, a turn in place)",
    )
    parser.add_argument(
        "--odometry-frames", type=int, default=200, help="rendered drive length; 0 = none"
    )
    parser.add_argument(
        "--odometry-size", type=parse_size, default=(640, 480), help="rendered image WxH"
    )


def _odometry_sequences(args: argparse.Namespace) -> list[OdometrySequence]:
    """EuRoC folders with a trajectory among the data (first ``--max-pairs`` frames), rendered."""
    folders = [folder for root in args.data for folder in (root, *sorted(root.glob("*")))]
    sequences = [
        euroc_sequence(folder, args.max_pairs)
        for folder in folders
        if is_euroc_trajectory_folder(folder)
    ]
    if args.odometry_frames > 1:
        sequences += rendered_sequences(args.odometry_frames, args.odometry_size or (640, 480))
    return sequences


def _odometry(args: argparse.Namespace, matchers: list[NamedMatcher]) -> list[OdometryResult]:
    if not args.odometry:
        return []
    results = []
    for sequence in _odometry_sequences(args):
        for matcher in matchers:
            result = run_odometry(matcher.matcher, matcher.name, sequence)
            results.append(result)
            print(f"{matcher.name} odometry on {sequence.name}: {result.metrics}", file=sys.stderr)
    return results


def _datasets(args: argparse.Namespace) -> list[Dataset]:
    datasets = [dataset for folder in args.data for dataset in find_datasets(folder)]
    if args.scannet1500:
        datasets.append(read_scannet1500(args.scannet1500))
    if args.megadepth1500:
        datasets.append(read_megadepth1500(args.megadepth1500, long_side=args.megadepth_long_side))
    if not datasets:
        raise ConfigError(
            "no dataset found: give dataset folders (e.g. ../shared/data), --scannet1500 or "
            "--megadepth1500; see docs/evaluation.md"
        )
    return datasets


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edm-eval``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        report = run(
            args, " ".join(["edm-eval", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        )
    except EDMError as err:
        print(f"edm-eval: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


def run(args: argparse.Namespace, command: str) -> Path:
    """Evaluate, time and write the report as ``args`` says; returns report.md's path."""
    names = (
        [name.strip() for name in args.matchers.split(",") if name.strip()]
        if args.matchers
        else ["edm", "sift", "orb"]
    )
    datasets = _datasets(args)
    settings = MatcherConfig(input_size=args.input_size, match_threshold=args.match_threshold)
    options = EDMOptions(args.weights, args.device, settings, args.backend)
    matchers = [build_matcher(name, options) for name in names]
    notes = []
    homography_matchers = matchers
    if "edm" in names and any(isinstance(d, HomographyDataset) for d in datasets):
        if args.homography_input_size != args.input_size:  # else the same matcher serves both
            homography_options = dataclasses.replace(
                options, config=settings.updated(input_size=args.homography_input_size)
            )
            homography_matchers = [
                build_matcher(name, homography_options) if name == "edm" else matcher
                for name, matcher in zip(names, matchers, strict=True)
            ]
        notes.append(
            f"EDM ran at {_size_text(args.homography_input_size)} on homography sets and at "
            f"{_size_text(args.input_size)} on the others."
        )
    if args.megadepth1500 and "edm" in names and args.input_size is not None:
        notes.append(
            f"EDM ran at {_size_text(args.input_size)} on MegaDepth, not at the "
            "resized image size of the protocol; use --input-size auto to reproduce the paper."
        )
    for note in notes:
        print(note, file=sys.stderr)
    evaluations = []
    for dataset in datasets:
        homography = isinstance(dataset, HomographyDataset)
        for matcher in homography_matchers if homography else matchers:
            evaluation = evaluate(
                matcher, dataset, max_pairs=args.max_pairs, show_progress=not args.no_progress
            )
            evaluations.append(evaluation)
            inference_s = sum(p.matches.inference_ms for p in evaluation.pairs) / 1e3
            print(
                f"{matcher.name} on {dataset.name}: {len(evaluation.pairs)} pairs in "
                f"{evaluation.seconds:.1f} s ({evaluation.seconds - inference_s:.1f} s beyond "
                "inference)",
                file=sys.stderr,
            )
    odometry = _odometry(args, matchers)
    latency = _latency(args, matchers, options, datasets[0])
    context = ReportContext(command, args.device, tuple(matchers), tuple(notes))
    return write_report(args.out, evaluations, context, latency, args.visualize, odometry)


def _latency(
    args: argparse.Namespace, matchers: list[NamedMatcher], options: EDMOptions, dataset: Dataset
) -> LatencyResults:
    """Latency vs resolution for every matcher and vs batch size for EDM (paper Tab. 11)."""
    if args.no_latency:
        return LatencyResults()
    on_gpu = args.device.startswith("cuda")
    resolutions = args.latency_resolutions or (
        [(384, 288), (640, 480), (832, 640), (1152, 864)] if on_gpu else [(384, 288), (640, 480)]
    )
    batch_sizes = args.batch_sizes or ([1, 2, 4, 8, 16, 32] if on_gpu else [1, 2])
    pair = dataset.pairs[0]
    image0, image1 = load_grey(pair.image0)[0], load_grey(pair.image1)[0]
    by_resolution: list[LatencyPoint] = []
    by_batch: list[LatencyPoint] = []
    for matcher in matchers:
        timed = matcher
        if matcher.name == "edm":  # run at each image size instead of the fixed input size
            timed = build_matcher(
                "edm", dataclasses.replace(options, config=options.config.updated(input_size=None))
            )
        by_resolution += latency_vs_resolution(
            timed, image0, image1, resolutions, repeats=args.latency_repeats
        )
        if matcher.name == "edm":
            size = args.input_size or (640, 480)
            resized = [
                cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in (image0, image1)
            ]
            by_batch += latency_vs_batch(
                matcher, resized[0], resized[1], batch_sizes, repeats=args.latency_repeats
            )
    return LatencyResults(tuple(by_resolution), tuple(by_batch))


if __name__ == "__main__":
    sys.exit(main())

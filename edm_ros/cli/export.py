"""edm-export: export EDM to ONNX with static shapes (and optionally build a TensorRT engine).

Example:
    edm-export --weights edm_outdoor.ckpt --size 640x480 --batch-size 2 --verify
writes edm_w640_h480_b2_k1680_op17.onnx and its metadata sidecar (.onnx.json).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from edm_ros.backends.export import (
    DEFAULT_OPSET,
    SUPPORTED_OPSETS,
    GraphSpec,
    export_onnx,
    topk_ratio_for,
)
from edm_ros.backends.graphs import compare_candidates
from edm_ros.backends.options import PRECISIONS, default_cache_dir
from edm_ros.cli.arguments import add_weights_arguments, parse_size, weights_choice
from edm_ros.errors import EDMError
from edm_ros.matcher import build_model
from edm_ros.model.config import MatcherConfig, num_candidates
from edm_ros.model.edm import EDM

#: --verify passes when every per-pair value differs by less than this (parity tolerance).
VERIFY_TOLERANCE = 1e-4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edm-export", description=__doc__.splitlines()[0])
    add_weights_arguments(parser)
    parser.add_argument(
        "--size", type=parse_size, default=MatcherConfig.input_size, help="network input WxH"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="pairs per run (static)")
    k_choice = parser.add_mutually_exclusive_group()
    k_choice.add_argument(
        "--topk-ratio", type=float, default=MatcherConfig.topk_ratio, help="K = ratio * cells"
    )
    k_choice.add_argument("--topk", type=int, help="K, the number of coarse candidates")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, choices=SUPPORTED_OPSETS)
    parser.add_argument("--output", type=Path, help="the .onnx file (default: name from shapes)")
    post = parser.add_argument_group("post-processing recorded in the sidecar (not in the graph)")
    post.add_argument(
        "--match-threshold",
        type=float,
        default=MatcherConfig.match_threshold,
        help="coarse confidence",
    )
    post.add_argument(
        "--fine-threshold",
        type=float,
        default=MatcherConfig.fine_threshold,
        help="fine confidence P_f",
    )
    post.add_argument(
        "--border", type=int, default=MatcherConfig.border, help="border to ignore, pixels"
    )
    parser.add_argument(
        "--verify", action="store_true", help="compare ONNX Runtime (CPU) with PyTorch"
    )
    trt = parser.add_argument_group("TensorRT engine (needs a GPU and the tensorrt package)")
    trt.add_argument("--tensorrt", action="store_true", help="also build the engine (cached)")
    trt.add_argument("--precision", default="fp32", choices=PRECISIONS)
    trt.add_argument("--device", default="cuda", help="cuda or cuda:N")
    trt.add_argument("--cache-dir", type=Path, help=f"engine cache (default {default_cache_dir()})")
    trt.add_argument("--rebuild", action="store_true", help="build even if a cached engine fits")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch"):  # exporter progress lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.tensorrt:  # fail before a long export
            from edm_ros.backends.tensorrt_engine import import_tensorrt

            import_tensorrt()
        ratio = args.topk_ratio if args.topk is None else topk_ratio_for(args.topk, args.size)
        config = MatcherConfig(
            input_size=args.size,
            topk_ratio=ratio,
            match_threshold=args.match_threshold,
            fine_threshold=args.fine_threshold,
            border=args.border,
        )
        weights = weights_choice(args)
        built = build_model(weights, topk_ratio=config.topk_ratio)
        model = built.model
        spec = GraphSpec(args.size, args.batch_size, num_candidates(args.size, ratio), args.opset)
        output = args.output or Path(
            f"edm_w{args.size[0]}_h{args.size[1]}_b{spec.batch_size}_k{spec.num_candidates}_"
            f"op{spec.opset}.onnx"
        )
        metadata = export_onnx(model, output, spec, config, built.description)
        print(
            f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB): input {spec.input_shape}, "
            f"K={spec.num_candidates}, opset {spec.opset}, sha256 {metadata.onnx_sha256[:16]}; "
            f"metadata {output}.json"
        )
        status = verify(model, output) if args.verify else 0
        if args.tensorrt:
            from edm_ros.backends.tensorrt_engine import engine_for_onnx

            cache = args.cache_dir or default_cache_dir()
            engine = engine_for_onnx(output, args.precision, args.device, cache, args.rebuild)
            print(f"TensorRT engine: {engine}")
    except EDMError as err:
        print(f"edm-export: {err}", file=sys.stderr)
        return 1
    return status


def verify(model: EDM, onnx_path: Path) -> int:
    """Run the graph on ONNX Runtime (CPU) and PyTorch on a textured pair; 0 if they agree."""
    from edm_ros.backends.onnx_runtime import OnnxRuntimeBackend
    from edm_ros.backends.pytorch import TorchBackend

    runtime = OnnxRuntimeBackend(onnx_path, "cpu")
    pairs = np.repeat(textured_pair(runtime.input_size)[None], runtime.batch_size, axis=0)
    reference = TorchBackend(model, "cpu").run(pairs).pair(0)
    comparison = compare_candidates(reference, runtime.run(pairs).pair(0))
    worst = max(comparison.max_difference.values())
    print(
        f"verify: ONNX Runtime vs PyTorch: {comparison.pair_overlap:.1%} of the top-K cell pairs "
        f"shared, largest difference {worst:.2e} ({comparison.max_difference})"
    )
    return 0 if comparison.pair_overlap >= 0.99 and worst < VERIFY_TOLERANCE else 2


def textured_pair(size: tuple[int, int]) -> np.ndarray:
    """[2, H, W] float32: smoothed noise and the same image shifted by (7, 5) pixels."""
    width, height = size
    noise = np.random.default_rng(0).random((height, width), dtype=np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 2.0)
    image = (image - image.min()) / (image.max() - image.min())
    return np.stack([image, np.roll(image, (5, 7), axis=(0, 1))]).astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())

"""edm-match: match two image files with EDM, draw the matches, optionally save them as JSON."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path

import cv2

from edm_ros.backends import BACKENDS
from edm_ros.cli.arguments import add_weights_arguments, parse_size, weights_choice
from edm_ros.data.images import read_grey
from edm_ros.errors import EDMError
from edm_ros.matcher import EDMMatcher
from edm_ros.model.config import MatcherConfig
from edm_ros.results import MatchResult
from edm_ros.visualization import draw_matches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edm-match", description=__doc__)
    parser.add_argument("image0", type=Path)
    parser.add_argument("image1", type=Path)
    add_weights_arguments(parser)
    parser.add_argument(
        "--size",
        type=functools.partial(parse_size, allow_auto=True),
        default=MatcherConfig.input_size,
        help="WxH or 'auto'",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--backend", default="torch", help=f"one of {', '.join(BACKENDS)}")
    parser.add_argument(
        "--threshold",
        type=float,
        default=MatcherConfig.match_threshold,
        help="coarse confidence (0-1)",
    )
    parser.add_argument(
        "--border", type=int, default=MatcherConfig.border, help="border to ignore, pixels"
    )
    parser.add_argument("--out", type=Path, default=Path("matches.png"), help="PNG to draw")
    parser.add_argument("--json", type=Path, help="write the matches as JSON here")
    return parser


def result_to_json(result: MatchResult, weights: str) -> dict:
    """Matches as plain JSON (keypoints in pixels of the input images)."""
    return {
        "weights": weights,
        "image0_size": list(result.image0_size),
        "image1_size": list(result.image1_size),
        "keypoints0": result.keypoints0.round(3).tolist(),
        "keypoints1": result.keypoints1.round(3).tolist(),
        "confidence": result.confidence.round(5).tolist(),
        "fine_confidence": result.fine_confidence.round(5).tolist(),
        "inference_ms": round(result.inference_ms, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        image0, image1 = read_grey(args.image0), read_grey(args.image1)
        matcher = EDMMatcher(
            weights_choice(args),
            device=args.device,
            config=MatcherConfig(
                input_size=args.size, match_threshold=args.threshold, border=args.border
            ),
            backend=args.backend,
        )
        result = matcher.match(image0, image1)
    except EDMError as err:
        print(f"edm-match: error: {err}", file=sys.stderr)
        return 1
    print(f"weights: {matcher.weights_description}")
    print(f"{len(result)} matches in {result.inference_ms:.0f} ms")
    cv2.imwrite(str(args.out), draw_matches(image0, image1, result, None))
    print(f"drawing: {args.out}")
    if args.json:
        args.json.write_text(json.dumps(result_to_json(result, matcher.weights_description)))
        print(f"matches: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

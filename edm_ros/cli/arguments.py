"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal, overload


@overload
def parse_size(text: str, *, allow_auto: Literal[False] = False) -> tuple[int, int]: ...
@overload
def parse_size(text: str, *, allow_auto: bool) -> tuple[int, int] | None: ...
def parse_size(text: str, *, allow_auto: bool = False) -> tuple[int, int] | None:
    """'640x480' -> (640, 480) (width, height); with ``allow_auto``, 'auto' -> None.

    None stands for "the image size rounded to /32" where a network input size is asked for.
    For argparse: ``type=parse_size`` or ``type=functools.partial(parse_size, allow_auto=True)``.

    Raises:
        argparse.ArgumentTypeError: text of another form (argparse prints it as a usage error).
    """
    if allow_auto and text == "auto":
        return None
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as err:
        expected = "640x480 or 'auto'" if allow_auto else "640x480"
        raise argparse.ArgumentTypeError(f"size must look like {expected}, got {text!r}") from err
    return width, height


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights PATH`` or ``--random-weights`` (at most one; neither = the package's weights).

    Pass ``weights_choice(args)`` on as the ``weights`` of :class:`edm_ros.matcher.EDMMatcher`.
    """
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights",
        type=Path,
        help="EDM checkpoint (official edm_outdoor.ckpt); default: the package's own weights",
    )
    weights.add_argument(
        "--random-weights",
        action="store_true",
        help="seeded random weights: tests the plumbing, the matches are meaningless",
    )


def weights_choice(args: argparse.Namespace) -> Path | str | None:
    """What :func:`add_weights_arguments` parsed: a file, "random", or None (the default)."""
    from edm_ros.model.checkpoint import RANDOM_WEIGHTS

    return RANDOM_WEIGHTS if args.random_weights else args.weights

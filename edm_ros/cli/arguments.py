"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse
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

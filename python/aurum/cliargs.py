"""argparse value types shared by the `aurum` subcommands."""

from __future__ import annotations

import argparse
import math


def speed(text: str) -> float | None:
    """``--speed``: ``max`` -> None, ``realtime`` -> 1.0, ``<N>x`` -> N (see ``parse_speed``)."""
    from aurum.replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, counts)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"was {text!r}, expected an integer >= 0") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"was {v}, expected an integer >= 0")
    return v


def finite_non_negative(text: str) -> float:
    """A finite number >= 0 (tolerances, durations in seconds)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"was {text!r}, expected a number >= 0") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"was {text!r}, expected a finite number >= 0")
    return v

"""argparse value types shared by the `aurum` subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def speed(text: str) -> float | None:
    """``--speed``: ``max`` -> None, ``realtime`` -> 1.0, ``<N>x`` -> N (see ``parse_speed``)."""
    from aurum.replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def bounded(kind: type[int] | type[float], lo: float, hi: float = math.inf, *, lo_open: bool = False,
            expect: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) in [lo, hi] (``lo_open``: (lo, hi]), finite.
    Anything else, NaN and non-numbers included, is one line: ``was '<text>', expected <expect>``."""

    top = min(hi, 2**63 - 1) if kind is int else hi  # ints: what native code and numpy take

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            v = math.nan
        # Compared as they are (a 400-digit int has no float: isfinite would raise).
        finite = kind is int or math.isfinite(v)
        if not (finite and v == v and (v > lo if lo_open else v >= lo) and v <= top):
            raise argparse.ArgumentTypeError(f"was {text!r}, expected {expect}")
        return v

    parse.__name__ = expect  # argparse names the type in some messages
    return parse


non_negative_int = bounded(int, 0, expect="an integer >= 0")  # seeds, counts
positive_int = bounded(int, 1, expect="an integer >= 1")
finite_non_negative = bounded(float, 0, expect="a finite number >= 0")  # tolerances, seconds
tcp_port = bounded(int, 0, 65_535, expect="a TCP port from 0 to 65535 (0 picks a free one)")

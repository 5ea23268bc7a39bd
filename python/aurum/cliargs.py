"""argparse value types shared by the `aurum` subcommands."""

from __future__ import annotations

import argparse


def speed(text: str) -> float | None:
    """``--speed``: ``max`` -> None, ``realtime`` -> 1.0, ``<N>x`` -> N (see ``parse_speed``)."""
    from aurum.replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None

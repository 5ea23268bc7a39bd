"""Deciding at the bar closes a chunk held at (``Pipeline(hold_at_bar_close=True)``).

A chunk can hold records from both sides of a bar's end. With the hold, ``feed`` stops where
the bar closed and defers the rest, so the decision layer reads the engines as of the bar's
last record, whatever the TCP reads or file reads cut (the live session and a replay of its
journal give the same signals). ``run_holds`` then alternates: decide, resume, until the
chunk is done. Every feed of a holding pipeline must be followed by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def run_holds(pipeline: Any, on_hold: Callable[[], object] | None,
              on_error: Callable[[str], None] | None = None) -> int:
    """While the pipeline is held: ``on_hold()`` (decide on the closed bars), then resume.
    Returns holds. The pipeline always resumes, even when ``on_hold`` raises (reported to
    ``on_error("on_hold")`` from within the ``except``, or re-raised after the chunk is done
    without it): records must never stay behind a failed decision."""
    holds = 0
    failure: BaseException | None = None
    while pipeline.held:
        holds += 1
        if on_hold is not None:
            try:
                on_hold()
            except Exception as e:
                if on_error is None:
                    failure = failure or e
                else:
                    on_error("on_hold")
        pipeline.resume()
    if failure is not None:
        raise failure
    return holds


__all__ = ["run_holds"]

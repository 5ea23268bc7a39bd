"""Which instruments the decision layer decides on.

A parent subscription (``GC.FUT``) carries GC's calendar spreads (``GCZ6-GCG7``) with the
outrights. A spread's price is the difference of two legs: a few dollars, zero or negative.
The engines handle that as any book, but Gann levels, ATR stops and the GC tick mean nothing
there, so by default spreads get no pillars and no signals (``signals.include_spreads``).

An instrument is a spread when its raw symbol has a ``-`` (CME's spread symbols join the legs
with one; outright symbols never have one). The symbol comes from the stream's
SymbolMappingMsg records, or from the file header's mappings in a replay of a file requested by
raw symbol (a historical file requested as ``GC.FUT`` maps every instrument to ``GC.FUT``, so
without in-band mappings its spreads cannot be told apart). An instrument with no known symbol
(such a file, a file without mappings, the Yahoo fallback) is decided on: refusing it would
silence a single-instrument feed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger("aurum.decision")


def is_spread(symbol: str | None) -> bool:
    return symbol is not None and "-" in symbol


def header_symbols(metadata: dict[str, Any] | None, raw_only: bool = False) -> dict[int, str]:
    """Instrument id -> symbol from a DBN header's mappings (historical files map symbols
    there instead of in-band). A header maps each instrument to the *requested* symbol, so
    with parent or continuous symbology every instrument (the spreads too) maps to GC.FUT or
    GC.c.0; ``raw_only`` returns nothing then, for callers that must know what an instrument is."""
    out: dict[int, str] = {}
    if raw_only and metadata and metadata.get("stype_in") not in ("raw_symbol", None):
        return out
    if metadata and metadata.get("stype_out") == "instrument_id":
        for raw_symbol, intervals in metadata.get("mappings", []):
            for _start, _end, iid in intervals:
                if iid.isdigit():
                    out[int(iid)] = raw_symbol
    return out


class InstrumentScope:
    """Filters closed bars down to the instruments in scope. Called once per bar batch (not
    per record); the pipeline's symbol table is read only when a batch has an id not seen
    before, and an id's verdict is kept for the session once its symbol is known."""

    def __init__(self, pipeline: Any, include_spreads: bool = False) -> None:
        self.pipeline = pipeline
        self.include_spreads = include_spreads
        self._verdict: dict[int, bool] = {}  # id -> decided on (symbol known)
        self.excluded: dict[int, str] = {}  # id -> symbol, the spreads left out (for reports)
        self.newly_excluded: list[int] = []  # left out since the last take_newly_excluded()

    def symbol(self, iid: int) -> str | None:
        got: str | None = self.pipeline.instruments().get(iid)
        return got if got is not None else header_symbols(self.pipeline.metadata, raw_only=True).get(iid)

    def allows(self, iid: int) -> bool:
        v = self._verdict.get(iid)
        if v is not None:
            return v
        sym = self.symbol(iid)
        if sym is None:
            return True  # unknown for now: decided on, and asked again at its next bar
        v = self.include_spreads or not is_spread(sym)
        self._verdict[iid] = v
        if not v:
            self.excluded[iid] = sym
            self.newly_excluded.append(iid)
            log.info("instrument %d (%s) is a calendar spread: no signals on it (signals.include_spreads)", iid, sym)
        return v

    def take_newly_excluded(self) -> list[int]:
        out, self.newly_excluded = self.newly_excluded, []
        return out

    def select(self, bars: np.ndarray) -> np.ndarray:
        """``bars`` without the rows of instruments out of scope (the same array when none is)."""
        if getattr(bars, "ndim", 1) != 1:
            return bars  # the core refuses it with a message naming the shape
        ids = bars["instrument_id"]
        if len(ids) == 1:  # the usual batch: one bar of one instrument
            return bars if self.allows(int(ids[0])) else bars[:0]
        keep = [self.allows(int(i)) for i in ids.tolist()]
        return bars if all(keep) else bars[np.asarray(keep, dtype=bool)]

"""The Yahoo fallback's price source: 15-second cache, failures keep the last good price,
and each poll is a well-formed trades record. The network is replaced by a function."""

from __future__ import annotations

import pytest

from aurum import _native
from aurum.feeds.yahoo import FALLBACK_INSTRUMENT_ID, FallbackError, YahooPriceSource, stream_header, trade_record


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_snapshot_is_cached_and_failures_keep_the_last_price() -> None:
    clock, prices = Clock(), iter([4100.0, 4101.0])
    calls = []

    def fetch(symbol: str) -> tuple[float, int, int]:
        calls.append(symbol)
        try:
            return next(prices), 5, 123
        except StopIteration:
            raise FallbackError("Yahoo GC=F: HTTP 429") from None

    src = YahooPriceSource(cache_s=15.0, fetch=fetch, clock=clock)
    assert src.snapshot().price == 4100.0
    clock.t = 14.9
    assert src.snapshot().price == 4100.0 and len(calls) == 1
    clock.t = 15.0
    assert src.snapshot().price == 4101.0 and len(calls) == 2
    clock.t = 30.0
    assert src.snapshot().price == 4101.0 and src.errors == 1  # kept after a failure


def test_no_price_ever_is_a_clear_error() -> None:
    def fetch(symbol: str) -> tuple[float, int, int]:
        raise FallbackError(f"Yahoo {symbol}: no data returned")

    with pytest.raises(FallbackError, match="GC=F: no data"):
        YahooPriceSource(fetch=fetch).snapshot()
    with pytest.raises(FallbackError, match="bad price"):
        YahooPriceSource(fetch=lambda s: (0.0, 0, 0)).snapshot()


def test_polls_become_trades_the_pipeline_reads() -> None:
    src = YahooPriceSource(fetch=lambda s: (4100.5, 7, 0))
    snap = src.snapshot()
    pl = _native.Pipeline(bar_interval_ns=60_000_000_000)
    pl.feed(stream_header() + b"".join(trade_record(snap, 1_800_000_000_000_000_000 + k * 10**10) for k in range(13)))
    pl.flush_bars()
    st = pl.stats()
    assert st["trades"] == 13 and st["bars_closed"] >= 2
    assert pl.instruments().get(FALLBACK_INSTRUMENT_ID, "GC=F") == "GC=F"

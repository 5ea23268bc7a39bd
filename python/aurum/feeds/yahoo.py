"""The Yahoo Finance fallback: GC=F last price, polled, as trades-schema records.

When Databento is unreachable the daemon keeps its price-based engines alive (bars, Gann,
Astro, Cycle) on a delayed, price-only source. Each poll becomes one DBN trade record
(aggressor side ``N``: Yahoo says nothing about who traded) on a dedicated instrument id,
fed to the same native pipeline as the live feed, so bars and the decision layer need no
second code path. The market snapshot is cached for ``cache_s`` so several readers in one
interval cost one request.

The network part is one function, ``fetch(symbol) -> (price, volume, ts_ns)``; tests inject
their own, so nothing here touches the network unless the daemon runs the default.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import databento_dbn as dbn

from aurum.feeds.holds import run_holds
from aurum.feeds.threads import in_daemon_thread

log = logging.getLogger("aurum.yahoo")

# Outside CME's instrument id range in practice: fallback prints never mix with a live book.
FALLBACK_INSTRUMENT_ID = 0xFFFF_0001
PUBLISHER_ID = 0  # not a Databento publisher

Fetch = Callable[[str], tuple[float, int, int]]


class FallbackError(RuntimeError):
    """The price source failed; the message names the symbol and the cause."""


def yfinance_fetch(symbol: str) -> tuple[float, int, int]:
    """The last 1-minute bar's close from yfinance: (price USD, volume, bar time ns)."""
    try:
        import yfinance as yf
    except ImportError as e:
        raise FallbackError(f"Yahoo fallback for {symbol} needs the yfinance package ({e})") from None
    try:
        hist = yf.Ticker(symbol).history(period="1d", interval="1m")
    except Exception as e:  # noqa: BLE001 - yfinance raises many kinds; all mean "no price now"
        raise FallbackError(f"Yahoo {symbol}: {type(e).__name__}: {e}") from None
    if hist is None or len(hist) == 0:
        raise FallbackError(f"Yahoo {symbol}: no data returned")
    return last_bar(symbol, hist)


def last_bar(symbol: str, hist: object) -> tuple[float, int, int]:
    """The newest bar with a price from a yfinance history frame. The minute in progress
    often has NaN fields; a missing volume counts as 0, a missing price skips the bar."""
    try:
        closes = hist["Close"]  # type: ignore[index]
        for i in range(len(closes) - 1, -1, -1):
            price = float(closes.iloc[i])
            if math.isfinite(price):
                vol = float(hist["Volume"].iloc[i]) if "Volume" in hist else 0.0  # type: ignore[index, operator]
                ts = int(hist.index[i].timestamp() * 1e9)  # type: ignore[attr-defined]
                return price, int(vol) if math.isfinite(vol) and vol > 0 else 0, ts
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FallbackError(f"Yahoo {symbol}: unexpected data ({type(e).__name__}: {e})") from None
    raise FallbackError(f"Yahoo {symbol}: no bar with a price")


@dataclass
class Snapshot:
    price: float
    volume: int
    ts_ns: int
    fetched_ns: int


class YahooPriceSource:
    def __init__(self, symbol: str = "GC=F", *, cache_s: float = 15.0, fetch: Fetch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.symbol = symbol
        self.cache_s = cache_s
        self._fetch = fetch or yfinance_fetch
        self._clock = clock
        self._snap: Snapshot | None = None
        self._at = float("-inf")
        self.errors = 0

    def snapshot(self) -> Snapshot:
        """The cached market snapshot, refreshed when older than ``cache_s``. On a failed
        refresh the last good snapshot is kept (its ``ts_ns`` tells its age) and the error
        is raised only if there is none."""
        now = self._clock()
        if self._snap is None or now - self._at >= self.cache_s:
            try:
                try:
                    price, volume, ts = self._fetch(self.symbol)
                    price, volume, ts = float(price), int(volume), int(ts)
                except FallbackError:
                    raise
                except Exception as e:  # noqa: BLE001 - an injected or future fetch: any failure is "no price"
                    raise FallbackError(f"Yahoo {self.symbol}: {type(e).__name__}: {e}") from None
                if not (math.isfinite(price) and price > 0):
                    raise FallbackError(f"Yahoo {self.symbol}: bad price {price!r}")
                self._snap = Snapshot(price, max(volume, 0), ts, time.time_ns())
                self._at = now
            except FallbackError as e:
                self.errors += 1
                log.warning("%s", e)
                if self._snap is None:
                    raise
        assert self._snap is not None
        return self._snap


def stream_header(symbol: str = "GC=F") -> bytes:
    """The DBN metadata that starts a fallback stream (trades schema, one symbol)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    mapping = SimpleNamespace(raw_symbol=symbol, intervals=[SimpleNamespace(
        start_date=today, end_date=today + dt.timedelta(days=1), symbol=str(FALLBACK_INSTRUMENT_ID))])
    meta = dbn.Metadata(dataset="YAHOO", start=time.time_ns(), stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.TRADES, symbols=[symbol], partial=[],
                        not_found=[], mappings=[mapping], end=None, version=3)
    return bytes(meta.encode())


def trade_record(snap: Snapshot, ts_ns: int) -> bytes:
    """One print at the snapshot's price, stamped ``ts_ns`` (the poll time, so bars close on
    the wall clock even when Yahoo's bar time lags)."""
    t = dbn.TradeMsg(publisher_id=PUBLISHER_ID, instrument_id=FALLBACK_INSTRUMENT_ID, ts_event=ts_ns,
                     price=round(snap.price * 1e9), size=max(1, min(snap.volume, 1 << 31)), action=dbn.Action.TRADE,
                     side=dbn.Side.NONE, depth=0, ts_recv=ts_ns, flags=0)
    return bytes(t)


class YahooFallback:
    """Polls the source and feeds the pipeline until stopped."""

    def __init__(self, pipeline: object, source: YahooPriceSource, *, poll_s: float = 60.0,
                 on_chunk: Callable[[int, int], object] | None = None,
                 on_hold: Callable[[], object] | None = None) -> None:
        self.pipeline = pipeline
        self.source = source
        self.poll_s = poll_s
        self.on_chunk = on_chunk
        self.on_hold = on_hold  # at a bar close the record held the pipeline at (aurum.feeds.holds)
        self.polls = 0
        self.errors = 0  # polls that failed past the source (decision layer, callbacks)
        self._task: asyncio.Task[None] | None = None

    def _snapshot(self) -> Snapshot | None:
        try:
            return self.source.snapshot()
        except FallbackError:
            return None

    def poll_once(self, now_ns: int | None = None, snap: Snapshot | None = None) -> bool:
        """One poll: feeds one trade record. False if the source had nothing to give."""
        snap = snap if snap is not None else self._snapshot()
        if snap is None:
            return False
        now = time.time_ns() if now_ns is None else now_ns
        data = trade_record(snap, now)
        if self.polls == 0:
            # A new stream for the decoder: the live feed's stream is gone.
            self.pipeline.reset_stream()  # type: ignore[attr-defined]
            data = stream_header(self.source.symbol) + data
        self.pipeline.feed(data)  # type: ignore[attr-defined]
        self.polls += 1
        if getattr(self.pipeline, "held", False):
            run_holds(self.pipeline, self.on_hold, self._callback_failed)
        if self.on_chunk is not None:
            try:
                self.on_chunk(len(data), 1)
            except Exception:  # noqa: BLE001 - logged; the next poll goes on
                self._callback_failed("on_chunk")
        return True

    def _callback_failed(self, what: str) -> None:
        self.errors += 1
        log.exception("fallback: %s failed; polling goes on", what)

    async def _run(self) -> None:
        while True:
            # The HTTP request runs on a worker thread: a slow or hanging Yahoo must never
            # stall the event loop (watchdog, heartbeats, the Databento retries).
            snap = await in_daemon_thread(self._snapshot, name="aurum-yahoo-fetch")
            if snap is not None:
                try:
                    self.poll_once(snap=snap)
                except Exception:  # noqa: BLE001 - one bad poll must not end the fallback
                    self._callback_failed("poll")
            await asyncio.sleep(self.poll_s)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self.polls = 0
            self._task = asyncio.get_running_loop().create_task(self._run())
            log.warning("fallback active: %s from Yahoo Finance every %.0f s (price only)", self.source.symbol,
                        self.poll_s)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            log.info("fallback stopped after %d polls", self.polls)

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()


__all__ = ["FALLBACK_INSTRUMENT_ID", "FallbackError", "Snapshot", "YahooFallback", "YahooPriceSource",
           "last_bar", "stream_header", "trade_record", "yfinance_fetch"]

"""The API's response schemas (pydantic). They document ``/openapi.json`` and FastAPI checks
every HTTP response against them; WebSocket messages carry the same shapes plus ``type``.
Building them from the shared-memory dicts is ``aurum.api.views``' job."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PILLARS = ("qmo", "imo", "gann", "astro", "cycle")
MAX_LIMIT = 1000
SEQ_MAX = (1 << 63) - 1


class SignalsQuery(BaseModel):
    # An unknown parameter is refused (422), so a typo such as ?sinse= cannot silently
    # return the wrong page.
    model_config = ConfigDict(extra="forbid")

    since: int | None = Field(None, ge=0, le=SEQ_MAX, description="only signals with seq >= since")
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="at most this many")


class Pillar(BaseModel):
    direction: float | None = Field(description="-1 (sell) .. +1 (buy); null if not finite")
    confidence: float | None = Field(description="0 .. 1; null if not finite")


class Pillars(BaseModel):
    qmo: Pillar
    imo: Pillar
    gann: Pillar
    astro: Pillar
    cycle: Pillar


class Freshness(BaseModel):
    segment: str = Field(description="the shared-memory segment read, /dev/shm/<segment>")
    ts_ns: int = Field(description="when the daemon wrote this (CLOCK_REALTIME ns)")
    timestamp: str = Field(description="ts_ns as ISO 8601 UTC")
    age_s: float = Field(description="seconds since the daemon wrote this")
    stale: bool = Field(description="age_s above api.stale_after_s, or the feed is not live")


class Market(Freshness):
    instrument_id: int
    price: float | None = Field(description="last trade if known, else the bid/ask midpoint")
    last: float | None
    bid: float | None
    ask: float | None
    volume: int
    source: str = Field(description="databento, yahoo or replay")
    feed_state: str = Field(description="down, live, stale or recovering")
    market_ts_ns: int | None = Field(description="the market data's own timestamp, if the daemon set it")
    pillars: Pillars = Field(description="the latest pillar scores")


class Zone(BaseModel):
    price: float | None
    side: Literal["bid", "ask", "unknown"]
    kind: str = Field(description="iceberg or absorption")
    state: str = Field(description="active, held or broken")
    strength: float | None
    volume: int


class Zones(Freshness):
    count: int
    zones: list[Zone]


class Signal(BaseModel):
    # Fields a newer daemon adds to its signal records are passed through as they are.
    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="the daemon's signal sequence number")
    ts_ns: int
    timestamp: str
    age_s: float
    instrument_id: int
    action: str = Field(description="BUY, SELL or FLAT")
    direction: float | None
    confidence: float | None
    entry: float | None
    stop: float | None
    targets: list[float]
    veto: int = Field(description="0 = none; otherwise the signal was vetoed (see reasons)")
    vetoed: bool
    flags: int
    pillars: Pillars
    reason: str = Field(description="the reasons as stored (at most 111 bytes)")
    reasons: list[str]
    reason_truncated: bool = Field(description="the reasons filled the slot (up to the 3 bytes a cut at a UTF-8 "
                                               "character boundary leaves), so the last one is probably cut")


class LatestSignal(BaseModel):
    segment: str
    written: int = Field(description="signals the daemon has published since it (re)started")
    signal: Signal | None = Field(description="null until the daemon publishes one")


class SignalPage(BaseModel):
    segment: str
    written: int
    oldest: int | None = Field(description="the oldest seq still held (the ring is lossy)")
    missed: int = Field(description="requested signals (seq >= since) already gone from the ring")
    next: int = Field(description="pass as since to get only newer signals")
    signals: list[Signal]


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded: the daemon is up but its feed is not live")
    segment: str
    daemon_alive: bool
    writer_pid: int
    heartbeat_age_s: float
    stale_after_s: float
    feed_state: str | None
    source: str | None
    signals_written: int
    reader_lost: int = Field(description="signals this API's reader lost to ring laps (or torn copies)")
    reader_resets: int = Field(description="daemon restarts this API's reader followed")
    ws_clients: int
    ws_dropped: int = Field(description="messages dropped for WebSocket clients too slow to keep up")


class Error(BaseModel):
    error: str = Field(description="segment_missing, segment_unusable, daemon_down, no_state or unauthorized")
    detail: str
    segment: str | None = None
    heartbeat_age_s: float | None = None

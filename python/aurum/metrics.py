"""Prometheus endpoint: every value is read from native counters at scrape time.

The hot path never calls prometheus_client: a ``Counter.inc()`` costs 0.4-0.8 us and a
``Histogram.observe()`` ~1 us (``/work/shared/reference/performance.md`` section 7), which at
1 M records/s would be a whole core. Instead :class:`AurumCollector` reads
``Pipeline.stats()``, ``engine_status()``, ``ring_written()`` and the engine tables once per
scrape, plus a small dict the daemon owns (:class:`DaemonState`), and yields metric families.

Usage::

    registry = make_registry(pipeline, lambda: dict(daemon.metrics_state))
    server, thread = start_metrics_server(registry)          # 127.0.0.1:9109
    # or, from the event loop (no extra thread contending for the GIL):
    body = scrape(registry)

Secrets: label values come only from fixed vocabularies (rtype names, feed states, sources,
signal actions, ring and engine names) or from the feed itself (instrument symbols). Strings
from the state dict are never echoed into labels or logs, so a key put there by mistake
(e.g. as ``source``) cannot leak.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypedDict
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from aurum import _native

log = logging.getLogger("aurum.metrics")

PREFIX = "aurum_"
DEFAULT_HOST = "127.0.0.1"  # prometheus_client defaults to 0.0.0.0; the daemon must not expose it
DEFAULT_PORT = 9109

# DBN rtypes (databento reference section 3.2). Unlisted values show as "0x.." (still bounded: u8).
RTYPE_NAMES: dict[int, str] = {
    0x00: "trades", 0x01: "mbp-1", 0x0A: "mbp-10", 0x11: "ohlcv-deprecated", 0x12: "status",
    0x13: "definition", 0x14: "imbalance", 0x15: "error", 0x16: "symbol_mapping", 0x17: "system",
    0x18: "statistics", 0x20: "ohlcv-1s", 0x21: "ohlcv-1m", 0x22: "ohlcv-1h", 0x23: "ohlcv-1d",
    0x24: "ohlcv-eod", 0xA0: "mbo", 0xB1: "cmbp-1", 0xC0: "cbbo-1s", 0xC1: "cbbo-1m", 0xC2: "tcbbo",
    0xC3: "bbo-1s", 0xC4: "bbo-1m",
}
# Always exported (0 until seen): rate() over the subscribed schemas then has a series from the start.
BASELINE_RTYPES = (0xA0, 0x0A, 0x00)

# Same vocabularies and order as the shm state block (native/include/README.md on the shm branch).
FEED_STATES = ("down", "live", "stale", "recovering")
SOURCES = ("databento", "yahoo", "replay")
ACTIONS = ("flat", "buy", "sell")
PILLARS = ("qmo", "imo", "gann", "astro", "cycle")
ZONE_KINDS = {1: "iceberg", 2: "absorption"}
ZONE_BROKEN = 3

PIPELINE_RINGS = ("trades", "tops", "bars", "sweeps", "flow", "footprint")
# engine label -> (kind, native name): tables are append-only until full, so rows in use = rows ever created.
ENGINE_EVENTS: dict[str, tuple[str, str]] = {
    "icebergs": ("table", "icebergs"), "zones": ("table", "zones"),
    "sweeps": ("ring", "sweeps"), "flow_bars": ("ring", "flow"),
}
LATENCIES: dict[str, str] = {
    "gateway_to_signal": "Gateway send time (ts_out) to signal published, seconds.",
    "socket_to_processed": "Socket read to chunk processed by the pipeline, seconds.",
}

HistogramData = tuple[Sequence[float], Sequence[float], float]


class DaemonState(TypedDict, total=False):
    """What ``state_provider()`` returns: a snapshot of daemon-owned values. Every key is
    optional; a missing key takes the default named here. A malformed one counts in
    ``aurum_metrics_errors_total{part}`` and takes the default too, except the monotonic
    counts (``reconnects`` ... ``gap_seconds``, ``signals``), whose sample is left out of that
    scrape instead: a 0 would read as a counter reset, and ``increase()`` would count the whole
    total again. When ``state_provider()`` itself fails, every daemon-state sample is left out
    of the scrape (counted as ``part="state_provider"``); the pipeline's own are still there.

    - ``feed_state``: one of FEED_STATES (default ``"down"``).
    - ``source``: one of SOURCES, or None (default: no source, every ``feed_source`` is 0).
    - ``reconnects``, ``gaps``, ``decode_errors``, ``readers_lapped``: monotonic counts (0).
      ``decode_errors`` counts every ``DecodeError`` the daemon caught: a pipeline forgets its
      failure at ``reset_stream()``, so only the daemon can count them.
    - ``signals``: ``{action: n}`` published so far, action any case of FLAT/BUY/SELL ({}).
    - ``last_heartbeat_ns``: wall-clock ns of the last bytes from the gateway; the gateway only
      sends heartbeats when idle, so any data counts (default: no ``heartbeat_age_seconds`` sample).
    - ``latency``: ``{"gateway_to_signal"|"socket_to_processed": (bounds, counts, sum)}``; bounds
      in seconds, increasing; counts cumulative, one per bound plus a final +Inf total (or
      bounds ending in +inf and one count each); sum in seconds (default: no samples).
    - ``rings``: extra rings for ``ring_occupancy`` as ``{name: (written, capacity)}`` (the shm
      signal ring). Names must be identifiers the daemon chose, not data.
    - ``gap_seconds``: total seconds the feed was disconnected before streaming again (0).
    - ``last_signal``: ``{"confidence": c, "direction": d}`` of the last signal published
      (default: no ``signal_confidence`` / ``signal_direction`` sample).
    - ``pillars``: ``{pillar: (direction, confidence)}`` of the latest score, pillar one of
      PILLARS (default: no samples).
    """

    feed_state: str
    source: str | None
    reconnects: int
    gaps: int
    decode_errors: int
    readers_lapped: int
    signals: Mapping[str, int]
    last_heartbeat_ns: int
    latency: Mapping[str, HistogramData]
    rings: Mapping[str, tuple[int, int]]
    gap_seconds: float
    last_signal: Mapping[str, float]
    pillars: Mapping[str, tuple[float, float]]


def rtype_name(rtype: int) -> str:
    return RTYPE_NAMES.get(rtype, f"0x{rtype:02x}")


class HistogramError(ValueError):
    """A histogram Prometheus would misread. Messages never quote the offending values."""


def histogram_buckets(
    bounds: Sequence[float], counts: Sequence[float], total: float
) -> list[tuple[str, float]]:
    """Prometheus buckets ``[(le, cumulative), ..., ("+Inf", count)]`` from a native aggregation.
    Raises HistogramError on wrong lengths, unsorted bounds or decreasing counts (a torn read
    while a writer updates the arrays would show as one)."""
    try:
        b = [float(x) for x in bounds]
        c = [float(x) for x in counts]
        total = float(total)
    except (TypeError, ValueError):
        # float()'s own message quotes the value, which could be anything: do not pass it on.
        raise HistogramError("bounds, counts and sum must be numbers") from None
    if b and b[-1] == math.inf:
        b.pop()
    if len(c) != len(b) + 1:
        raise HistogramError(f"{len(b)} finite bounds need {len(b) + 1} counts (last = +Inf), got {len(c)}")
    if not all(math.isfinite(x) for x in b) or any(x >= y for x, y in zip(b, b[1:])):
        raise HistogramError("bounds must be finite and strictly increasing")
    if not all(math.isfinite(x) for x in c) or c[0] < 0 or any(x > y for x, y in zip(c, c[1:])):
        raise HistogramError("counts must be finite, non-negative and cumulative (non-decreasing)")
    if not math.isfinite(total) or total < 0:
        raise HistogramError("sum must be finite and non-negative")
    return [(floatToGoString(le), n) for le, n in zip([*b, math.inf], c)]


class AurumCollector(Collector):
    """Reads the pipeline and the daemon state at scrape time; holds no per-record state.

    ``pipeline`` is a public attribute: the daemon may swap in a new Pipeline (counters then
    restart from 0, which Prometheus treats as a counter reset). ``collect()`` runs on the
    HTTP server's thread; Pipeline methods hold the GIL for their whole call, so reads never
    interleave with a ``feed``.
    """

    def __init__(
        self,
        pipeline: _native.Pipeline,
        state_provider: Callable[[], Mapping[str, Any]] | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        max_instruments: int = 32,
    ) -> None:
        self.pipeline = pipeline
        self._state_provider = state_provider or dict
        self._clock_ns = clock_ns
        # engine_active has one series per instrument and engine; cap it so a feed with many
        # instruments cannot blow up Prometheus' cardinality.
        self._max_instruments = max_instruments
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()  # the server is threaded: two scrapes may overlap

    # -- helpers -----------------------------------------------------------------------------

    def _error(self, part: str, why: str, action: str = "using the default") -> None:
        with self._lock:
            self._errors[part] = self._errors.get(part, 0) + 1
        log.warning("metrics: bad %s in daemon state (%s); %s", part, why, action)

    def _count(self, state: Mapping[str, Any], key: str) -> float | None:
        """A monotonic count, or None (no sample) when malformed: a 0 would be a reset."""
        v = state.get(key, 0)
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if not math.isfinite(f) or f < 0:
            self._error(key, f"expected a non-negative number, got {type(v).__name__}", "leaving its sample out")
            return None
        return f

    def _state(self) -> Mapping[str, Any] | None:
        """The provider's snapshot, or None when it failed (no daemon-state samples then)."""
        try:
            state = self._state_provider()
        except Exception as e:  # the pipeline's metrics matter more than a broken provider
            self._error("state_provider", type(e).__name__, "leaving every daemon-state sample out of this scrape")
            return None
        if not isinstance(state, Mapping):
            self._error("state_provider", f"returned {type(state).__name__}",
                        "leaving every daemon-state sample out of this scrape")
            return None
        return state

    # -- collection --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        p = self.pipeline
        stats = p.stats()
        got = self._state()
        state: Mapping[str, Any] = {} if got is None else got

        by_rtype: dict[int, int] = {rt: 0 for rt in BASELINE_RTYPES}
        by_rtype.update(stats["records_by_rtype"])
        m = CounterMetricFamily(PREFIX + "records_total", "DBN records decoded, by record type.",
                                labels=["rtype"])
        for rt, n in sorted(by_rtype.items()):
            m.add_metric([rtype_name(rt)], n)
        yield m

        for name, key, doc in (
            ("unknown_rtypes_total", "unknown_rtypes", "Records of an unknown rtype, skipped."),
            ("bytes_fed_total", "bytes_fed", "Decompressed DBN bytes fed to the current stream."),
            ("gateway_errors_total", "error_count", "ErrorMsg records received from the gateway."),
            ("heartbeats_total", "heartbeats", "Gateway heartbeats (SystemMsg code 0)."),
            ("bars_closed_total", "bars_closed", "Bars closed."),
            ("top_changes_total", "top_changes", "Top-of-book changes published."),
            ("instruments_refused_total", "instruments_refused", "Records skipped: too many instruments."),
            ("trades_refused_total", "trades_refused", "Trades skipped: null price or a time past 2^63 ns."),
        ):
            yield CounterMetricFamily(PREFIX + name, doc, value=stats[key])

        m = CounterMetricFamily(PREFIX + "mbo_anomalies_total", "MBO records inconsistent with the book.",
                                labels=["kind"])
        for kind, n in sorted(stats["mbo_anomalies"].items()):
            m.add_metric([kind], n)
        yield m

        # Iceberg Memory's tables are fixed: once full, new icebergs and zones are refused.
        rows = GaugeMetricFamily(PREFIX + "memory_rows", "Rows in Iceberg Memory's tables.", labels=["table"])
        cap = GaugeMetricFamily(PREFIX + "memory_capacity", "Capacity of Iceberg Memory's tables.", labels=["table"])
        dropped = CounterMetricFamily(PREFIX + "memory_rows_dropped_total",
                                      "Icebergs or zones refused because their table was full.", labels=["table"])
        for table, (n, c, d) in sorted(stats["memory"].items()):
            rows.add_metric([table], n)
            cap.add_metric([table], c)
            dropped.add_metric([table], d)
        yield rows
        yield cap
        yield dropped

        for name, key, doc in (
            ("decode_errors_total", "decode_errors", "DecodeErrors caught by the daemon."),
            ("gaps_total", "gaps", "Gaps detected in the feed."),
            ("reconnects_total", "reconnects", "Reconnects to the gateway."),
            ("readers_lapped_total", "readers_lapped", "Records lost by ring readers that were lapped."),
            ("feed_gap_seconds_total", "gap_seconds", "Seconds the feed was disconnected before streaming again."),
        ):
            yield CounterMetricFamily(PREFIX + name, doc, value=None if got is None else self._count(state, key))
        yield GaugeMetricFamily(PREFIX + "pipeline_failed", "1 while the pipeline refuses input after a "
                                "decode error (until reset_stream).", value=0 if p.failed is None else 1)

        yield self._engine_events(p)
        yield self._signals(got)
        yield from self._decision(state)
        yield self._zones_active(p)
        yield from self._feed(got)
        yield self._rings(p, state)
        yield self._engine_active(p)
        for key, doc in LATENCIES.items():
            yield self._histogram(key, doc, state)

        with self._lock:
            errors = dict(self._errors)
        m = CounterMetricFamily(PREFIX + "metrics_errors_total", "Malformed daemon-state values replaced by "
                                "defaults, by key.", labels=["part"])
        for part, n in sorted(errors.items()):
            m.add_metric([part], n)
        yield m

    def _engine_events(self, p: _native.Pipeline) -> Metric:
        m = CounterMetricFamily(PREFIX + "engine_events_total", "Engine outputs created: table rows "
                                "(icebergs, zones) or ring records (sweeps, flow bars).", labels=["engine"])
        for label, (kind, name) in ENGINE_EVENTS.items():
            # A table view covers only the rows in use, so its "capacity" is the row count.
            m.add_metric([label], p.table(name).capacity if kind == "table" else p.ring_written(name))
        return m

    def _signals(self, state: Mapping[str, Any] | None) -> Metric:
        m = CounterMetricFamily(PREFIX + "signals_total", "Signals published, by action.", labels=["action"])
        if state is None:
            return m
        counts: dict[str, float | None] = {a: 0.0 for a in ACTIONS}
        raw = state.get("signals", {})
        if not isinstance(raw, Mapping):
            self._error("signals", f"expected a mapping, got {type(raw).__name__}", "leaving its samples out")
            return m
        for action, n in raw.items():
            a = str(action).lower()
            if a not in counts:
                self._error("signals", "unknown action")  # not echoed: it could be anything
                continue
            c, have = self._count({"signals": n}, "signals"), counts[a]
            counts[a] = None if c is None or have is None else have + c
        for a, total in counts.items():
            if total is not None:
                m.add_metric([a], total)
        return m

    def _decision(self, state: Mapping[str, Any]) -> Iterator[Metric]:
        conf = GaugeMetricFamily(PREFIX + "signal_confidence", "Confidence [0, 1] of the last signal published.")
        direc = GaugeMetricFamily(PREFIX + "signal_direction", "Direction [-1, 1] of the last signal published.")
        last = state.get("last_signal")
        if last is not None:
            try:
                c, d = float(last["confidence"]), float(last["direction"])
                if not (0 <= c <= 1 and -1 <= d <= 1):
                    raise ValueError
                conf.add_metric([], c)
                direc.add_metric([], d)
            except (TypeError, ValueError, KeyError):
                self._error("last_signal", "expected {confidence: [0, 1], direction: [-1, 1]}")
        yield conf
        yield direc
        m = GaugeMetricFamily(PREFIX + "pillar_score", "Latest pillar score: direction [-1, 1] and confidence "
                              "[0, 1], by pillar.", labels=["pillar", "part"])
        pillars = state.get("pillars", {})
        if not isinstance(pillars, Mapping):
            self._error("pillars", f"expected a mapping, got {type(pillars).__name__}")
            pillars = {}
        for name, v in pillars.items():
            try:
                if name not in PILLARS:
                    raise ValueError
                d, c = (float(x) for x in v)
                if not (math.isfinite(d) and math.isfinite(c)):
                    raise ValueError
            except (TypeError, ValueError):
                self._error("pillars", "expected {pillar: (direction, confidence)}")  # name not echoed
                continue
            m.add_metric([name, "direction"], d)
            m.add_metric([name, "confidence"], c)
        yield m

    def _zones_active(self, p: _native.Pipeline) -> Metric:
        from aurum.engines import table_array

        m = GaugeMetricFamily(PREFIX + "zones_active", "Iceberg Memory and absorption zones not broken, by kind.",
                              labels=["kind"])
        z = table_array(p, "zones")
        live = z["kind"][z["state"] != ZONE_BROKEN]
        for code, kind in ZONE_KINDS.items():
            m.add_metric([kind], int((live == code).sum()))
        return m

    def _feed(self, got: Mapping[str, Any] | None) -> Iterator[Metric]:
        states = GaugeMetricFamily(PREFIX + "feed_state", "1 for the current feed state.", labels=["state"])
        sources = GaugeMetricFamily(PREFIX + "feed_source", "1 for the source the feed comes from.",
                                    labels=["source"])
        age = GaugeMetricFamily(PREFIX + "heartbeat_age_seconds", "Seconds since the gateway last sent anything.")
        if got is None:  # unknown this scrape, which is not "down": no samples
            yield from (states, sources, age)
            return
        current = got.get("feed_state", "down")
        if current not in FEED_STATES:
            self._error("feed_state", f"not one of {FEED_STATES}")
            current = "down"
        for s in FEED_STATES:
            states.add_metric([s], 1 if s == current else 0)
        yield states

        source = got.get("source")
        if source is not None and source not in SOURCES:
            self._error("source", f"not one of {SOURCES}")
            source = None
        for s in SOURCES:
            sources.add_metric([s], 1 if s == source else 0)
        yield sources

        last = got.get("last_heartbeat_ns")
        if last is not None:
            if isinstance(last, (int, float)) and math.isfinite(last) and last > 0:
                age.add_metric([], max(0.0, (self._clock_ns() - last) / 1e9))
            else:
                self._error("last_heartbeat_ns", "expected wall-clock ns")
        yield age

    def _rings(self, p: _native.Pipeline, state: Mapping[str, Any]) -> Metric:
        m = GaugeMetricFamily(PREFIX + "ring_occupancy", "Fraction of ring slots ever filled: "
                              "min(written, capacity) / capacity.", labels=["ring"])
        for name in PIPELINE_RINGS:
            m.add_metric([name], min(p.ring_written(name), cap := p.ring(name).capacity) / cap)
        extra = state.get("rings", {})
        if not isinstance(extra, Mapping):
            self._error("rings", f"expected a mapping, got {type(extra).__name__}")
            extra = {}
        for name, wc in extra.items():
            try:
                written, cap = (int(x) for x in wc)
                if name in PIPELINE_RINGS or not str(name).isidentifier() or cap <= 0 or written < 0:
                    raise ValueError
            except (TypeError, ValueError):
                self._error("rings", "expected {identifier: (written, capacity > 0)}")
                continue
            m.add_metric([str(name)], min(written, cap) / cap)
        return m

    def _engine_active(self, p: _native.Pipeline) -> Metric:
        m = GaugeMetricFamily(PREFIX + "engine_active", "1 if the engine runs for the instrument (its schema "
                              "is available), else 0.", labels=["instrument", "engine"])
        status = p.engine_status()
        if not status:
            return m
        symbols = p.instruments()
        for iid in sorted(status)[: self._max_instruments]:
            inst = symbols.get(iid) or str(iid)
            for engine, active, _why in status[iid]:  # the reason is free text: not a label
                m.add_metric([inst, engine], 1 if active else 0)
        return m

    def _histogram(self, key: str, doc: str, state: Mapping[str, Any]) -> Metric:
        m = HistogramMetricFamily(PREFIX + key + "_seconds", doc, labels=[])
        lat = state.get("latency", {})
        data = lat.get(key) if isinstance(lat, Mapping) else None
        if data is None:
            return m
        try:
            bounds, counts, total = data
            m.add_metric([], histogram_buckets(bounds, counts, total), float(total))
        except HistogramError as e:  # skip this scrape's sample rather than fail the whole scrape
            self._error("latency." + key, str(e))
        except (TypeError, ValueError):
            self._error("latency." + key, "expected (bounds, counts, sum)")
        return m


def make_registry(
    pipeline: _native.Pipeline,
    state_provider: Callable[[], Mapping[str, Any]] | None = None,
    **collector_kw: Any,
) -> CollectorRegistry:
    """A fresh registry holding only an :class:`AurumCollector` (not the global REGISTRY, so
    tests and a second pipeline never collide with module-level metrics)."""
    registry = CollectorRegistry()
    registry.register(AurumCollector(pipeline, state_provider, **collector_kw))
    return registry


def start_metrics_server(
    registry: CollectorRegistry, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` from a daemon thread. Port 0 picks a free port: read it back from
    ``server.server_port``. Stop with ``server.shutdown(); server.server_close()``."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise OSError(e.errno, f"metrics endpoint {host}:{port} (metrics.host/metrics.port): {e.strerror or e}") from None
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server, thread


def scrape(registry: CollectorRegistry) -> bytes:
    """The text exposition, for serving from the event loop instead of a thread."""
    return generate_latest(registry)


__all__ = [
    "ACTIONS", "FEED_STATES", "RTYPE_NAMES", "SOURCES", "AurumCollector", "DaemonState", "HistogramError",
    "histogram_buckets",
    "make_registry", "rtype_name", "scrape", "start_metrics_server",
]

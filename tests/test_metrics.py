"""The metrics endpoint: a real HTTP server on 127.0.0.1, a real Pipeline fed a simulated
session, scraped with urllib and parsed with prometheus_client's own parser."""

from __future__ import annotations

import math
import socket
from decimal import Decimal
import timeit
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
_native = pytest.importorskip("aurum._native")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from aurum import metrics, sim  # noqa: E402
from aurum.engines import table_array  # noqa: E402
from aurum.metrics import AurumCollector, make_registry, scrape, start_metrics_server  # noqa: E402

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Serve = Callable[..., tuple[Any, str]]
FAKE_KEY = "db-" + "Xk3Q9pL2mN7vR4tY8wZ1aB5cD6eF0"  # 32 characters, shaped like a Databento key

BOUNDS = [0.0001, 0.001, 0.01, 0.1]
LATENCY = {"gateway_to_signal": (BOUNDS, [3, 10, 12, 12, 13], 0.25),
           "socket_to_processed": (BOUNDS + [math.inf], [50, 90, 99, 100, 100], 0.02)}
FULL_STATE: dict[str, Any] = {
    "feed_state": "live", "source": "databento", "reconnects": 2, "gaps": 1, "decode_errors": 1,
    "readers_lapped": 7, "signals": {"BUY": 3, "SELL": 2, "FLAT": 4}, "last_heartbeat_ns": 1_000_000_000,
    "latency": LATENCY, "rings": {"signals": (1500, 1024)},
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "s.dbn.zst"
    sim.run_to_files("mixed", path, seed=1, records=50_000)
    return path


def feed(pipeline: Any, file: Any, max_bytes: int | None = None) -> None:
    """Feed ``max_bytes`` decompressed bytes (all if None)."""
    fed = 0
    while max_bytes is None or fed < max_bytes:
        n = pipeline.feed_file(file, 1 << 16 if max_bytes is None else min(1 << 16, max_bytes - fed))
        if n == 0:
            break
        fed += n


@pytest.fixture(scope="module")
def fed(session: Path) -> Any:
    p = _native.Pipeline()
    feed(p, _native.DbnFile(str(session)))
    return p


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start servers on port 0 (default host); returns (server, url); shuts them all down."""
    servers: list[Any] = []

    def start(
        pipeline: Any, provider: Callable[[], Mapping[str, Any]] | None = None, **kw: Any
    ) -> tuple[Any, str]:
        server, _thread = start_metrics_server(make_registry(pipeline, provider, **kw), port=0)
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_port}/metrics"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        return r.read().decode()


def parse(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_series_equal_pipeline_stats(fed: Any, serve: Serve) -> None:
    _, url = serve(fed, lambda: FULL_STATE)
    s = parse(get(url))
    st = fed.stats()
    assert st["records_by_rtype"], "the session decoded nothing"
    for rt, n in st["records_by_rtype"].items():
        assert val(s, "aurum_records_total", rtype=metrics.rtype_name(rt)) == n
    assert val(s, "aurum_records_total", rtype="mbo") == st["records_by_rtype"][0xA0] == 50_000
    assert val(s, "aurum_records_total", rtype="symbol_mapping") == st["records_by_rtype"][0x16]
    assert val(s, "aurum_records_total", rtype="mbp-10") == 0  # baseline series exist before any record
    assert sum(v for (n, _), v in s.items() if n == "aurum_records_total") == st["records_total"]
    for name, key in [("gateway_errors", "error_count"), ("instruments_refused", "instruments_refused"),
                      ("unknown_rtypes", "unknown_rtypes"), ("bytes_fed", "bytes_fed"),
                      ("heartbeats", "heartbeats"), ("bars_closed", "bars_closed"),
                      ("top_changes", "top_changes")]:
        assert val(s, f"aurum_{name}_total") == st[key], name
    for kind, n in st["mbo_anomalies"].items():
        assert val(s, "aurum_mbo_anomalies_total", kind=kind) == n
    assert val(s, "aurum_pipeline_failed") == 0

    assert val(s, "aurum_engine_events_total", engine="icebergs") == len(table_array(fed, "icebergs"))
    assert val(s, "aurum_engine_events_total", engine="zones") == len(table_array(fed, "zones"))
    assert val(s, "aurum_engine_events_total", engine="sweeps") == fed.ring_written("sweeps")
    assert val(s, "aurum_engine_events_total", engine="flow_bars") == fed.ring_written("flow")
    for ring in metrics.PIPELINE_RINGS:
        cap = fed.ring(ring).capacity
        want = min(fed.ring_written(ring), cap) / cap
        assert val(s, "aurum_ring_occupancy", ring=ring) == pytest.approx(want)
    assert val(s, "aurum_ring_occupancy", ring="signals") == 1.0  # lapped: written > capacity

    symbols = fed.instruments()
    status = fed.engine_status()
    assert status
    for iid, rows in status.items():
        for engine, active, _ in rows:
            got = val(s, "aurum_engine_active", instrument=symbols[iid], engine=engine)
            assert got == (1 if active else 0)

    # The daemon-owned part.
    assert val(s, "aurum_feed_state", state="live") == 1
    assert sum(val(s, "aurum_feed_state", state=x) for x in metrics.FEED_STATES) == 1
    assert val(s, "aurum_feed_source", source="databento") == 1
    assert val(s, "aurum_feed_source", source="yahoo") == val(s, "aurum_feed_source", source="replay") == 0
    assert val(s, "aurum_reconnects_total") == 2 and val(s, "aurum_gaps_total") == 1
    assert val(s, "aurum_decode_errors_total") == 1 and val(s, "aurum_readers_lapped_total") == 7
    signals = {a: val(s, "aurum_signals_total", action=a) for a in metrics.ACTIONS}
    assert signals == {"buy": 3, "sell": 2, "flat": 4}
    assert val(s, "aurum_heartbeat_age_seconds") > 0


def test_more_data_raises_counters_on_next_scrape(session: Path, serve: Serve) -> None:
    p = _native.Pipeline()
    f = _native.DbnFile(str(session))
    feed(p, f, 1 << 20)  # about a third of the ~2.8 MB session
    _, url = serve(p)
    first = parse(get(url))
    assert 0 < val(first, "aurum_records_total", rtype="mbo") == p.stats()["records_by_rtype"][0xA0] < 50_000
    feed(p, f)
    second = parse(get(url))
    assert val(second, "aurum_records_total", rtype="mbo") == 50_000
    assert val(second, "aurum_bytes_fed_total") > val(first, "aurum_bytes_fed_total")
    assert val(second, "aurum_top_changes_total") > val(first, "aurum_top_changes_total")
    occupancy = [val(x, "aurum_ring_occupancy", ring="trades") for x in (first, second)]
    assert occupancy[1] > occupancy[0]
    # Counters never go down between scrapes of one pipeline.
    for key, v in first.items():
        if key[0].endswith("_total"):
            assert second[key] >= v, key


def test_listens_on_loopback_only_by_default(fed: Any, serve: Serve) -> None:
    server, url = serve(fed)
    host, port = server.socket.getsockname()[:2]
    assert server.socket.family == socket.AF_INET
    assert host == "127.0.0.1" and port == server.server_port != 0
    assert metrics.start_metrics_server.__defaults__ == ("127.0.0.1", 9109)
    assert "aurum_records_total" in get(url)


@pytest.mark.parametrize("state", [{}, {"feed_state": "recovering"}, None])
def test_missing_keys_still_scrape(fed: Any, serve: Serve, state: Any) -> None:
    _, url = serve(fed, (lambda: state) if state is not None else None)
    s = parse(get(url))
    expected = (state or {}).get("feed_state", "down")
    assert val(s, "aurum_feed_state", state=expected) == 1
    assert all(val(s, "aurum_feed_source", source=x) == 0 for x in metrics.SOURCES)
    for name in ("reconnects", "gaps", "decode_errors", "readers_lapped"):
        assert val(s, f"aurum_{name}_total") == 0
    assert all(val(s, "aurum_signals_total", action=a) == 0 for a in metrics.ACTIONS)
    # Unknown values have no sample at all (not a misleading 0); pipeline metrics are intact.
    assert not any(n.startswith(("aurum_heartbeat_age", "aurum_gateway_to_signal")) for n, _ in s)
    assert val(s, "aurum_records_total", rtype="mbo") == 50_000
    assert not any(n == "aurum_metrics_errors_total" for n, _ in s)


def test_bad_state_values_default_and_are_counted(fed: Any, serve: Serve) -> None:
    calls = {"n": 0}

    def provider() -> Mapping[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("daemon state unavailable")
        return {"feed_state": "sideways", "reconnects": "many", "gaps": -1, "signals": {"HOLD": 1, "BUY": 2},
                "latency": {"gateway_to_signal": (BOUNDS, [5, 4, 6, 7, 8], 1.0),
                            "socket_to_processed": (1, 2)}}

    _, url = serve(fed, provider)
    s = parse(get(url))
    assert val(s, "aurum_metrics_errors_total", part="state_provider") == 1
    assert val(s, "aurum_records_total", rtype="mbo") == 50_000
    s = parse(get(url))
    assert val(s, "aurum_feed_state", state="down") == 1
    # A malformed count has no sample at all: a 0 would read as a counter reset.
    assert not any(n in ("aurum_reconnects_total", "aurum_gaps_total") for n, _ in s)
    assert val(s, "aurum_signals_total", action="buy") == 2
    assert not any(n.startswith(("aurum_gateway_to_signal", "aurum_socket_to_processed")) for n, _ in s)
    for part in ("feed_state", "reconnects", "gaps", "signals", "latency.gateway_to_signal",
                 "latency.socket_to_processed"):
        assert val(s, "aurum_metrics_errors_total", part=part) == 1, part


def test_a_failing_provider_leaves_daemon_samples_out_instead_of_resetting_counters(fed: Any, serve: Serve) -> None:
    calls = {"n": 0}

    def provider() -> Mapping[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("transient")
        return FULL_STATE

    _, url = serve(fed, provider)
    daemon_series = ("aurum_decode_errors_total", "aurum_reconnects_total", "aurum_gaps_total",
                     "aurum_readers_lapped_total", "aurum_feed_gap_seconds_total", "aurum_signals_total",
                     "aurum_feed_state", "aurum_feed_source", "aurum_heartbeat_age_seconds",
                     "aurum_gateway_to_signal_seconds_bucket")
    first, failed, after = (parse(get(url)) for _ in range(3))
    assert val(first, "aurum_reconnects_total") == val(after, "aurum_reconnects_total") == 2
    assert val(first, "aurum_signals_total", action="buy") == val(after, "aurum_signals_total", action="buy") == 3
    assert not [n for n, _ in failed if n in daemon_series], "a failed scrape must not export daemon values"
    assert val(failed, "aurum_records_total", rtype="mbo") == 50_000  # the pipeline's own are intact
    assert val(failed, "aurum_metrics_errors_total", part="state_provider") == 1
    assert val(after, "aurum_decode_errors_total") == val(first, "aurum_decode_errors_total") == 1


def test_latency_bucket_bounds_are_exact_decimals() -> None:
    p = _native.Pipeline()
    p.observe_signal_latency(1_000_000, 1_250_000)
    text = scrape(make_registry(p, lambda: {"latency": p.latency()})).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    les = [s.labels["le"] for s in fams["aurum_gateway_to_signal_seconds"].samples if s.name.endswith("_bucket")]
    assert les[-1] == "+Inf" and len(les) > 5
    for le in les[:-1]:
        # The label is the shortest repr of the bound: a whole number of nanoseconds in
        # plain decimal (le="1e-06"), not float noise (le="1.0000000000000002e-06").
        ns = Decimal(le) * 10**9
        assert ns == ns.to_integral_value() and len(le) <= 6, le
    assert les[:3] == ["1e-06", "2e-06", "5e-06"]


def test_histograms_cumulative_and_end_with_inf(fed: Any, serve: Serve) -> None:
    _, url = serve(fed, lambda: FULL_STATE)
    fams = {f.name: f for f in text_string_to_metric_families(get(url))}
    for key, (bounds, counts, total) in LATENCY.items():
        fam = fams[f"aurum_{key}_seconds"]
        assert fam.type == "histogram"
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        les = [float(b.labels["le"]) for b in buckets]
        values = [b.value for b in buckets]
        assert les == [b for b in bounds if b != math.inf] + [math.inf]
        assert values == sorted(values) == [float(c) for c in counts]
        count = next(s.value for s in fam.samples if s.name.endswith("_count"))
        assert buckets[-1].labels["le"] == "+Inf" and values[-1] == count
        assert next(s.value for s in fam.samples if s.name.endswith("_sum")) == pytest.approx(total)


@pytest.mark.parametrize("bounds,counts,total", [
    ([1.0, 2.0], [1, 2], 0.0),            # missing the +Inf count
    ([2.0, 1.0], [1, 2, 3], 0.0),         # bounds not increasing
    ([1.0, 2.0], [3, 2, 3], 0.0),         # counts not cumulative
    ([1.0, 2.0], [-1, 2, 3], 0.0),
    ([1.0, 2.0], [1, 2, 3], math.nan),
    ([1.0], ["x", FAKE_KEY], 0.0),
])
def test_histogram_validation(bounds: list[float], counts: list[Any], total: float) -> None:
    with pytest.raises(metrics.HistogramError) as e:
        metrics.histogram_buckets(bounds, counts, total)
    assert FAKE_KEY not in str(e.value)


def test_no_secret_reaches_the_page(fed: Any, serve: Serve,
                                    caplog: pytest.LogCaptureFixture) -> None:
    state = {"feed_state": FAKE_KEY, "source": FAKE_KEY, "signals": {FAKE_KEY: 1}, "api_key": FAKE_KEY,
             "rings": {FAKE_KEY: (1, 2), "db_" + FAKE_KEY[3:]: FAKE_KEY},
             "latency": {"gateway_to_signal": ([1.0], [FAKE_KEY, 1], 0.0)}, "reconnects": FAKE_KEY}
    _, url = serve(fed, lambda: state)
    text = get(url)
    assert FAKE_KEY not in text and FAKE_KEY[3:] not in text
    assert "bad feed_state" in caplog.text and FAKE_KEY[3:] not in caplog.text
    s = parse(text)
    assert val(s, "aurum_feed_state", state="down") == 1


def test_heartbeat_age_uses_clock() -> None:
    p = _native.Pipeline()
    c = AurumCollector(p, lambda: {"last_heartbeat_ns": 10_000_000_000}, clock_ns=lambda: 12_500_000_000)
    fam = next(f for f in c.collect() if f.name == "aurum_heartbeat_age_seconds")
    assert [s.value for s in fam.samples] == [2.5]


def test_rtype_names_match_databento_reference() -> None:
    assert [metrics.rtype_name(r) for r in (0xA0, 0x0A, 0x00, 0x01, 0x16, 0x17, 0x15)] == [
        "mbo", "mbp-10", "trades", "mbp-1", "symbol_mapping", "system", "error"]
    assert metrics.rtype_name(0x7F) == "0x7f"


def test_scrape_cost(fed: Any, serve: Serve) -> None:
    """Reported, not asserted: timings on shared CI machines are noise."""
    registry = make_registry(fed, lambda: FULL_STATE)
    n = 200
    render = timeit.timeit(lambda: scrape(registry), number=n) / n
    _, url = serve(fed, lambda: FULL_STATE)
    http = timeit.timeit(lambda: get(url), number=n) / n
    size = len(scrape(registry))
    print(f"\nscrape cost: generate_latest {render * 1e6:.0f} us, HTTP round trip {http * 1e6:.0f} us, "
          f"{size} bytes")


def test_decision_and_zone_gauges(fed: Any, serve: Serve) -> None:
    from aurum.engines import table_array

    state = {"last_signal": {"confidence": 0.75, "direction": -0.5}, "gap_seconds": 2.5,
             "pillars": {"qmo": (0.25, 0.5), "gann": (-1.0, 0.125)}}
    _, url = serve(fed, lambda: state)
    s = parse(get(url))
    assert val(s, "aurum_signal_confidence") == 0.75 and val(s, "aurum_signal_direction") == -0.5
    assert val(s, "aurum_pillar_score", pillar="qmo", part="direction") == 0.25
    assert val(s, "aurum_pillar_score", pillar="gann", part="confidence") == 0.125
    assert ("aurum_pillar_score", frozenset({("pillar", "imo"), ("part", "direction")})) not in s  # no data: absent
    assert val(s, "aurum_feed_gap_seconds_total") == 2.5
    z = table_array(fed, "zones")
    for code, kind in ((1, "iceberg"), (2, "absorption")):
        assert val(s, "aurum_zones_active", kind=kind) == int(((z["kind"] == code) & (z["state"] != 3)).sum())
    assert sum(val(s, "aurum_zones_active", kind=k) for k in ("iceberg", "absorption")) > 0


def test_bad_decision_values_are_counted_not_echoed(fed: Any, serve: Serve) -> None:
    state = {"last_signal": {"confidence": 7.0, "direction": 0.0},
             "pillars": {"db-secretpillarname": (0.1, 0.2), "qmo": ("x", 1)}}
    _, url = serve(fed, lambda: state)
    body = get(url)
    s = parse(body)
    assert "secretpillarname" not in body
    assert not any(n == "aurum_signal_confidence" for n, _ in s)
    assert val(s, "aurum_metrics_errors_total", part="last_signal") == 1
    assert val(s, "aurum_metrics_errors_total", part="pillars") == 2

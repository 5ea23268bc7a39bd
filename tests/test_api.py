"""``aurum api`` in process (FastAPI's TestClient) against real shared-memory segments written
by the native ``ShmSignalWriter``: the endpoints, 503s, daemon restarts, the token, the
WebSocket stream and its fan-out. The served process is in test_api_server.py; the page in
Chromium on a live daemon is in test_api_live.py."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from aurum.api import auth, models, views
from aurum.api.app import create_app
from aurum.api.hub import ShmHub
from aurum.api.stream import Fanout
from aurum.config import ConfigError, load_config
from api_helpers import LOCAL_URL, fake_token, local_client, shm_name, unlink_shm, wait_for

_native = pytest.importorskip("aurum._native")
Writer = _native.ShmSignalWriter
pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")

DATA = ("/api/v1/market", "/api/v1/zones", "/api/v1/signal", "/api/v1/signals", "/api/v1/health")
ZONES = [{"price": 4099.5, "side": "B", "kind": 1, "state": 1, "strength": 0.75, "volume": 90},
         {"price": 4104.0, "side": "A", "kind": 2, "state": 2, "strength": 0.5, "volume": 300}]


@pytest.fixture
def name():
    n = shm_name()
    yield n
    unlink_shm(n)


def publish(w, n: int = 1, **kw) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        w.publish({"action": "BUY", "entry": 4100.5, "stop": 4095.0, "targets": [4110.0, 4120.0], "direction": 0.6,
                   "confidence": 0.7, "pillar_dir": [0.5, 0.25, 0.0, -0.5, 1.0], "pillar_conf": [0.9, 0.5, 0.0, 0.5, 1.0],
                   "reason": "veto: stale data; qmo: bar delta +39", **kw})


def live_state(w, **kw) -> None:  # type: ignore[no-untyped-def]
    w.update_state({"last": 4101.2, "bid": 4101.1, "ask": 4101.3, "volume": 1200, "instrument_id": 42,
                    "source": "databento", "feed_state": "live", "pillar_dir": [0.5, -0.25, 0.0, 0.125, 1.0],
                    "pillar_conf": [0.5, 0.25, 0.0, 0.125, 1.0], "zones": ZONES, **kw})


def test_endpoints_serve_the_segment(name):
    with Writer(name, capacity=16) as w, local_client(create_app(name)) as c:
        publish(w, 2)
        live_state(w)
        m = c.get("/api/v1/market").json()
        models.Market.model_validate(m)
        assert (m["price"], m["bid"], m["ask"], m["volume"]) == (4101.2, 4101.1, 4101.3, 1200)
        assert (m["source"], m["feed_state"], m["instrument_id"], m["segment"]) == ("databento", "live", 42, name)
        assert m["stale"] is False and 0 <= m["age_s"] < 60 and m["timestamp"].endswith("Z")
        assert m["pillars"]["gann"] == {"direction": 0.0, "confidence": 0.0}
        assert m["pillars"]["imo"] == {"direction": -0.25, "confidence": 0.25}
        z = c.get("/api/v1/zones").json()
        assert z["count"] == 2 and z["zones"][0] == {"price": 4099.5, "side": "bid", "kind": "iceberg",
                                                      "state": "active", "strength": 0.75, "volume": 90}
        assert z["zones"][1]["kind"] == "absorption" and z["zones"][1]["state"] == "held"
        s = c.get("/api/v1/signal").json()
        assert s["written"] == 2 and s["signal"]["seq"] == 1
        sig = s["signal"]
        assert (sig["action"], sig["entry"], sig["stop"], sig["targets"]) == ("BUY", 4100.5, 4095.0, [4110.0, 4120.0])
        assert sig["reasons"] == ["veto: stale data", "qmo: bar delta +39"] and sig["vetoed"] is False
        assert sig["pillars"]["qmo"] == {"direction": 0.5, "confidence": 0.9}
        h = c.get("/api/v1/health").json()
        assert h["status"] == "ok" and h["daemon_alive"] and h["writer_pid"] == os.getpid()
        assert (h["signals_written"], h["reader_lost"], h["reader_resets"]) == (2, 0, 0)


def test_no_market_price_means_the_midpoint_and_a_degraded_feed_is_stale(name):
    with Writer(name, capacity=16) as w, local_client(create_app(name)) as c:
        w.update_state(bid=4100.0, ask=4100.2, source="yahoo", feed_state="recovering")
        m = c.get("/api/v1/market").json()
        assert m["last"] is None and m["price"] == pytest.approx(4100.1)
        assert m["stale"] is True and m["source"] == "yahoo"
        assert c.get("/api/v1/health").json()["status"] == "degraded"
        assert c.get("/api/v1/signal").json()["signal"] is None  # none published yet: not an error


def test_signals_since_and_limit(name):
    with Writer(name, capacity=16) as w, local_client(create_app(name)) as c:
        for i in range(10):
            w.publish(action="SELL", reason=f"r{i}")
        page = c.get("/api/v1/signals", params={"since": 3, "limit": 4}).json()
        assert [s["seq"] for s in page["signals"]] == [3, 4, 5, 6] and page["next"] == 7 and page["missed"] == 0
        assert [s["reason"] for s in c.get("/api/v1/signals", params={"limit": 2}).json()["signals"]] == ["r8", "r9"]
        empty = c.get("/api/v1/signals", params={"since": 10}).json()
        assert empty["signals"] == [] and empty["next"] == 10 and empty["written"] == 10
        for bad in ({"since": -1}, {"since": "x"}, {"limit": 0}, {"limit": 1001}, {"since": 1 << 63}, {"sinse": 3}):
            r = c.get("/api/v1/signals", params=bad)
            assert r.status_code == 422, (bad, r.text)


def test_a_lapped_reader_reports_what_it_missed(name):
    # An hour between poller ticks and no wake-ups: only requests read the ring, so the laps are exact.
    with Writer(name, capacity=16) as w, local_client(create_app(name, poll_interval_s=3600, wake_on_publish=False)) as c:
        for _ in range(40):
            w.publish()
        page = c.get("/api/v1/signals", params={"since": 0, "limit": 1000}).json()
        assert page["oldest"] == 24 and page["missed"] == 24 and len(page["signals"]) == 16  # the ring's 16
        assert c.get("/api/v1/health").json()["reader_lost"] == 24  # its reader was there from signal 0
        for _ in range(40):
            w.publish()
        h = c.get("/api/v1/health").json()
        assert h["reader_lost"] == 48 and h["signals_written"] == 80


def test_missing_segment_is_a_503_naming_it_until_the_daemon_starts(name):
    with local_client(create_app(name)) as c:
        for path in DATA:
            r = c.get(path)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            body = r.json()
            assert body["error"] == "segment_missing" and body["segment"] == name and name in body["detail"]
        with Writer(name, capacity=16) as w:
            live_state(w)
            assert c.get("/api/v1/market").json()["price"] == 4101.2
            os.unlink(f"/dev/shm/{name}")  # removed under a live writer: never serve its leftovers
            assert c.get("/api/v1/market").json()["error"] == "segment_missing"


def test_a_dead_daemon_is_a_503_with_its_heartbeat_age(name):
    with Writer(name, capacity=16) as w, local_client(create_app(name, stale_after_s=5)) as c:
        live_state(w)
        w.heartbeat(time.time_ns() - 60 * 10**9)
        for path in DATA:
            body = c.get(path).json()
            assert body["error"] == "daemon_down" and 55 < body["heartbeat_age_s"] < 600, body
            assert "not running" in body["detail"] and name in body["detail"]
        w.heartbeat()
        assert c.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("new_capacity", [16, 32], ids=["same-size", "resized"])
def test_the_reader_follows_a_daemon_restart(name, new_capacity):
    """Same size: the segment is re-initialised in place (new epoch). Another size: a new
    file (new inode), which the reader notices within about a second."""
    with local_client(create_app(name)) as c:
        w = Writer(name, capacity=16)
        publish(w, 5)
        live_state(w)
        assert c.get("/api/v1/signal").json()["signal"]["seq"] == 4
        w.close()
        w2 = Writer(name, capacity=new_capacity)
        try:
            w2.publish(action="SELL", reason="after restart")
            live_state(w2, bid=4200.0)

            def restarted():
                r = c.get("/api/v1/signals", params={"since": 0})
                return r.status_code == 200 and [s["reason"] for s in r.json()["signals"]] == ["after restart"]

            wait_for(restarted, 30, "the API to follow the new daemon")
            assert c.get("/api/v1/market").json()["bid"] == 4200.0
            assert c.get("/api/v1/health").json()["reader_resets"] == 1
        finally:
            w2.close()


def test_the_token_guards_every_endpoint_and_the_stream(name):
    tok = fake_token()
    with Writer(name, capacity=16) as w, local_client(create_app(name, token=tok)) as c:
        live_state(w)
        for path in DATA:
            for headers in ({}, {"Authorization": f"Bearer {tok}x"}, {"Authorization": f"Basic {tok}"}):
                r = c.get(path, headers=headers)
                assert r.status_code == 401 and r.json()["error"] == "unauthorized", (path, headers)
                assert r.headers["www-authenticate"] == "Bearer" and tok not in r.text
            assert c.get(path, headers={"Authorization": f"Bearer {tok}"}).status_code == 200
        assert c.get("/").status_code == 200  # the page has no data of its own
        for how in ({"subprotocols": ["aurum.v1", f"bearer.{tok}"]}, {"headers": {"Authorization": f"Bearer {tok}"}}):
            with c.websocket_connect("/api/v1/stream", **how) as ws:
                assert ws.receive_json()["type"] == "status"
        with c.websocket_connect(f"/api/v1/stream?token={tok}") as ws:
            assert ws.receive_json()["available"] is True
        for bad in ("/api/v1/stream", f"/api/v1/stream?token={tok[:-1]}"):
            with c.websocket_connect(bad, subprotocols=["aurum.v1", "bearer.nope"]) as ws:
                with pytest.raises(WebSocketDisconnect) as e:
                    ws.receive_json()
                assert e.value.code == 4401


def test_a_page_of_another_origin_cannot_open_the_stream(name):
    with Writer(name, capacity=16), local_client(create_app(name)) as c:
        with pytest.raises(WebSocketDisconnect) as e:
            with c.websocket_connect("/api/v1/stream", headers={"Origin": "http://evil.example"}) as ws:
                ws.receive_json()
        assert e.value.code == 4403
        with c.websocket_connect("/api/v1/stream", headers={"Origin": LOCAL_URL},
                                 subprotocols=["aurum.v1"]) as ws:
            assert ws.accepted_subprotocol == "aurum.v1" and ws.receive_json()["type"] == "status"


def _next_of(ws, kind: str) -> dict:  # type: ignore[no-untyped-def]
    while True:
        m = ws.receive_json()
        if m["type"] == kind:
            return m


def test_the_stream_pushes_signals_market_and_zone_changes(name):
    with Writer(name, capacity=16) as w, local_client(create_app(name, poll_interval_s=0.01)) as c:
        live_state(w, zones=[])
        publish(w, 3)
        with c.websocket_connect("/api/v1/stream") as ws:
            first = [ws.receive_json() for _ in range(4)]
            assert [m["type"] for m in first] == ["status", "market", "zones", "signal"]
            assert first[3]["seq"] == 2 and first[2]["zones"] == []  # the snapshot: the latest signal only
            w.publish(action="SELL", confidence=0.9, reason="fresh")
            s = _next_of(ws, "signal")
            models.Signal.model_validate(s)
            assert (s["seq"], s["action"], s["reasons"]) == (3, "SELL", ["fresh"])
            w.update_state(bid=4101.0)
            m = _next_of(ws, "market")
            models.Market.model_validate(m)
            assert m["bid"] == 4101.0
            w.update_state(zones=ZONES[:1])
            z = _next_of(ws, "zones")
            models.Zones.model_validate(z)
            assert z["count"] == 1 and z["zones"][0]["price"] == 4099.5
            w.heartbeat(time.time_ns() - 60 * 10**9)
            down = _next_of(ws, "status")
            assert down["available"] is False and down["error"] == "daemon_down"
            w.heartbeat()
            assert _next_of(ws, "status")["available"] is True


def test_the_stream_is_woken_by_each_publication_not_the_timer(name):
    # An hour between timer ticks, and no requests: what reaches the stream came through the
    # segment's notify futex, which the writer bumps at each publication.
    app = create_app(name, poll_interval_s=3600)
    fanout = app.state.fanout
    with Writer(name, capacity=16) as w, local_client(app) as c:
        live_state(w)
        waiter = fanout.waiter
        assert waiter is not None and waiter.ready.wait(10)
        with c.websocket_connect("/api/v1/stream") as ws:
            assert [ws.receive_json()["type"] for _ in range(3)] == ["status", "market", "zones"]
            for i in range(3):
                before = fanout.messages
                w.publish({"action": "SELL", "confidence": 0.9, "reason": f"woken {i}"})
                wait_for(lambda: fanout.messages > before, 10, "the poller to be woken by a signal")
                assert _next_of(ws, "signal")["reasons"] == [f"woken {i}"]
            w.update_state({"bid": 4100.9})
            wait_for(lambda: fanout.messages > before + 1, 10, "the poller to be woken by a state update")
            assert _next_of(ws, "market")["bid"] == 4100.9
        assert waiter.wakeups >= 4
    assert not waiter.alive and fanout.waiter is None and waiter.errors == 0  # stopped with the server


def test_one_poller_serialises_each_event_once_for_every_client(name):
    app = create_app(name, poll_interval_s=0.01)
    fanout = app.state.fanout
    with Writer(name, capacity=16) as w, local_client(app) as c:
        live_state(w)
        clients = [c.websocket_connect("/api/v1/stream").__enter__() for _ in range(3)]
        try:
            for ws in clients:
                assert [ws.receive_json()["type"] for _ in range(3)] == ["status", "market", "zones"]
            task = fanout._task
            before = fanout.messages
            w.publish(action="BUY", reason="to all")
            for ws in clients:
                assert _next_of(ws, "signal")["reason"] == "to all"
            assert fanout.messages == before + 1  # one serialisation for three clients
            assert fanout._task is task and fanout.running  # still the one poller
            assert c.get("/api/v1/health").json()["ws_clients"] == 3
        finally:
            for ws in clients:
                ws.__exit__(None, None, None)


def test_a_slow_client_loses_its_oldest_messages_not_the_others(name):
    """The fan-out never waits: a client whose queue is full drops its oldest message and
    counts it; a client that keeps up gets everything."""
    async def scenario() -> tuple[list[str], int, int]:
        hub = ShmHub(name)
        fanout = Fanout(hub, queue_size=4)
        with Writer(name, capacity=64) as w:
            live_state(w)
            hub.refresh()
            slow, fast = fanout.subscribe(), fanout.subscribe()
            got: list[str] = []
            for i in range(20):
                w.publish(reason=f"s{i}")
                hub.refresh()
                while not fast.queue.empty():
                    got.append(fast.queue.get_nowait())
            # The health endpoint sums drops over clients, gone or connected.
            dropped = fanout.dropped
            fanout.unsubscribe(slow)
            hub.close()
            return got, slow.dropped, dropped

    got, slow_dropped, total = asyncio.run(scenario())
    signals = [m for m in got if '"type":"signal"' in m]
    assert [f'"reason":"s{i}"' in m for i, m in enumerate(signals)] == [True] * 20
    # The slow queue held the 3-message snapshot, then 20 signals: all but the last 4 dropped.
    assert slow_dropped == 3 + 20 - 4 and total == slow_dropped


def test_views_pass_new_signal_fields_through_and_never_emit_nan():
    s = {"seq": 1, "ts_ns": 10**18, "instrument_id": 7, "action": 2, "flags": 0, "veto": 3, "entry": None,
         "stop": None, "targets": [None, 4100.0, None], "direction": float("nan"), "confidence": 0.5,
         "pillar_dir": [float("inf")] * 5, "pillar_conf": [0.1] * 5, "reason": "", "crc32": 1, "ts_out": 12345}
    v = views.signal(s, 10**18 + 5 * 10**9)
    assert v["ts_out"] == 12345 and "crc32" not in v and v["age_s"] == 5.0
    assert v["direction"] is None and v["pillars"]["qmo"]["direction"] is None and v["targets"] == [4100.0]
    assert v["action"] == "unknown:2" and v["vetoed"] is True and v["reasons"] == [] and not v["reason_truncated"]
    assert views.signal({**s, "reason": "a; " + "b" * 116}, 0)["reason_truncated"]
    assert models.Signal.model_validate(v).model_dump()["ts_out"] == 12345


@pytest.mark.parametrize("reason,cut", [
    ("a" * 108 + "; σ-cut-here", True),     # 'σ' (2 bytes) straddles byte 111: 110 bytes kept
    ("a" * 107 + "; 𝄞 cut", True),          # a 4-byte character at byte 109: 108 bytes kept
    ("b" * 120, True),                      # ASCII: cut at exactly 111 bytes
    ("c" * 107, False),                     # fits, with room for any character after it
    ("veto: stale data; qmo: bar delta +39", False),
])
def test_reason_truncated_sees_a_cut_at_a_character_boundary(name, reason, cut):
    with Writer(name, capacity=16) as w, local_client(create_app(name)) as c:
        live_state(w)
        w.publish(action="BUY", reason=reason)
        got = c.get("/api/v1/signal").json()["signal"]
    assert reason.startswith(got["reason"]) and (got["reason"] != reason) == cut
    assert got["reason_truncated"] is cut


def test_zone_codes_agree_with_the_engines():
    from aurum import engines

    assert views.ZONE_KINDS == engines.ZONE_KINDS and views.ZONE_STATES == engines.ZONE_STATES


def test_the_log_filter_redacts_the_token():
    tok = fake_token()
    f = auth.RedactToken(tok)
    rec = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:1", "GET", f"/api/v1/stream?x=1&token={tok}", "1.1", 101), None)
    assert f.filter(rec) and tok not in rec.getMessage() and "token=***" in rec.getMessage()
    rec2 = logging.LogRecord("aurum.api", logging.INFO, "", 0, f"oops {tok}", None, None)
    f.filter(rec2)
    assert rec2.getMessage() == "oops ***"


def test_the_status_page_is_self_contained(name):
    with local_client(create_app(name)) as c:
        r = c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    # No CDN, no build: nothing is loaded from anywhere (the favicon is an empty data: URL).
    assert "<script src" not in html and "http://" not in html and "https://" not in html
    assert [line.strip() for line in html.splitlines() if "<link" in line] == ['<link rel="icon" href="data:,">']
    for element in ("price", "bid", "ask", "source", "signal-action", "signal-confidence", "zones", "pillar-rows"):
        assert f'id="{element}"' in html
    assert "innerHTML" not in html  # data only ever goes in through textContent


def test_api_config_section_and_environment(tmp_path):
    from pathlib import Path

    example = load_config(Path(__file__).resolve().parents[1] / "daemon" / "aurum.toml", environ={})
    assert example.api == load_config(None, environ={}).api
    assert example.api.host == "127.0.0.1" and example.api.port == 8000 and example.api.token is None
    tok = fake_token()
    p = tmp_path / "a.toml"
    p.write_text("[api]\nport = 9001\nstale_after_s = 2.5\n")
    cfg = load_config(p, environ={"AURUM_API_TOKEN": tok, "AURUM_API_PORT": "9002"})
    assert (cfg.api.port, cfg.api.stale_after_s, cfg.api.token) == (9002, 2.5, tok)
    for bad in ("short", "", tok + " space", "x" * 300):
        with pytest.raises(ConfigError) as e:
            load_config(None, environ={"AURUM_API_TOKEN": bad})
        assert "api.token" in str(e.value) and (not bad or bad not in str(e.value))

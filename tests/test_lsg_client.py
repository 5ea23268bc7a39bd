"""``aurum.feeds.lsg.LsgClient`` against a real ``aurum gateway`` subprocess on 127.0.0.1.

One gateway (``--at-end idle``: sessions stay open after the data, with heartbeats) serves a
simulated GC session (MBO, MBP-10, trades). Faults are armed per session with the admin
``fault`` command, so each test's first session misbehaves and the reconnect gets a clean one.
API keys are made up at run time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_proc import GatewayProc
from lsg_helpers import client_for, fake_key, run_async, running, wait_for

from aurum import _native
from aurum.apikey import ApiKey, mask_key
from aurum.feeds import Backoff, LsgAuthError, LsgClient, LsgFatalError, lsg_host
from aurum.gateway.control import SubscriptionRequest

DATA_RTYPES = {"mbo": 0xA0, "mbp-10": 0x0A, "trades": 0x00}
SCHEMAS = ("mbo", "mbp-10", "trades")


# --- the gateway subprocess --------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> str:
    return fake_key()


@pytest.fixture(scope="module")
def session_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from aurum.sim import run_to_files

    _, info = run_to_files("mixed", tmp_path_factory.mktemp("sim") / "s.dbn.zst", seed=11, records=50_000)
    return {k: Path(info["paths"][k]) for k in SCHEMAS}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, session_files: dict[str, Path], key: str) -> Iterator[GatewayProc]:
    g = GatewayProc(list(session_files.values()), "--at-end", "idle", log_path=tmp_path_factory.mktemp("gw") / "gateway.log",
                    env_keys=key)
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def reference(session_files: dict[str, Path]) -> Any:
    """The same files replayed through a fresh pipeline (one file after another)."""
    p = _native.Pipeline()
    for i, path in enumerate(session_files.values()):
        if i:
            p.reset_stream()
        f = _native.DbnFile(str(path))
        while p.feed_file(f):
            pass
    p.finish()
    return p


class SpyPipeline:
    """A real pipeline that counts ``reset_stream`` calls (the native class cannot be subclassed)."""

    def __init__(self, **kw: Any) -> None:
        self.inner = _native.Pipeline(**kw)
        self.resets = 0

    def reset_stream(self) -> None:
        self.resets += 1
        self.inner.reset_stream()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def data_records(pipeline: Any, schemas: tuple[str, ...] = ("mbo",)) -> int:
    by = pipeline.stats()["records_by_rtype"]
    return sum(by.get(DATA_RTYPES[s], 0) for s in schemas)


# --- unit tests ----------------------------------------------------------------------------------


def test_backoff_exponential_with_full_jitter() -> None:
    b = Backoff(0.5, 30.0, 2.0, random.Random(42))
    ceilings = [b.ceiling(n) for n in range(9)]
    assert ceilings == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    delays = [b.next_delay() for _ in range(9)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule
    again = Backoff(0.5, 30.0, 2.0, random.Random(42))
    assert [again.next_delay() for _ in range(9)] == delays  # seeded: deterministic
    b.reset()
    assert b.attempt == 0 and b.next_delay() <= 0.5
    # Full jitter spreads over the whole range: over many draws at one ceiling, both halves occur.
    wide = Backoff(8.0, 8.0, 2.0, random.Random(7))
    draws = [wide.next_delay() for _ in range(200)]
    assert min(draws) < 2 and max(draws) > 6 and all(0 <= d <= 8 for d in draws)
    assert Backoff(1.0, 10.0, rng=random.Random(0)).ceiling(5000) == 10.0  # no float overflow
    with pytest.raises(ValueError):
        Backoff(1.0, 0.5)


def test_host_rule_and_subscription_lines() -> None:
    assert lsg_host("GLBX.MDP3") == "glbx-mdp3.lsg.databento.com"
    symbols = [f"S{i}" for i in range(1200)]
    c = LsgClient(_native.Pipeline(), ApiKey(fake_key(), "test"), symbols=symbols, stype_in="raw_symbol",
                  schemas=["mbo", "trades"])
    assert (c.host, c.port) == ("glbx-mdp3.lsg.databento.com", 13000)
    lines = c._subscription_lines()
    assert [len(r.symbols) for r in lines] == [500, 500, 200, 500, 500, 200]
    assert [(r.schema, r.id, r.is_last, r.snapshot) for r in lines] == [
        ("mbo", 0, False, True), ("mbo", 0, False, True), ("mbo", 0, True, True),
        ("trades", 1, False, False), ("trades", 1, False, False), ("trades", 1, True, False),
    ]
    assert all(SubscriptionRequest.parse(bytes(r)) == r for r in lines)
    auth = c._auth_request("abc")
    assert auth.ts_out and auth.heartbeat_interval_s == 30 and auth.compression == "none" and auth.encoding == "dbn"
    with pytest.raises(ValueError, match="schemas"):
        LsgClient(_native.Pipeline(), ApiKey(fake_key(), "t"), schemas=["ohlcv-1m"])


# --- against the gateway -------------------------------------------------------------------------


def test_streams_a_session_end_to_end(gw: GatewayProc, key: str, reference: Any, session_files: dict[str, Path]) -> None:
    want = {s: reference.stats()["records_by_rtype"][DATA_RTYPES[s]] for s in SCHEMAS}
    pipe = _native.Pipeline()
    chunks: list[tuple[int, int]] = []

    async def main() -> None:
        c = client_for(pipe, key, gw.port, schemas=list(SCHEMAS), snapshot=False,
                       on_chunk=lambda nb, nr: chunks.append((nb, nr)))
        async with running(c) as task:
            await wait_for(lambda: data_records(pipe, SCHEMAS) >= sum(want.values()), 20, "all records", task)
            sent = gw.sessions()
            assert c.state == "streaming" and c.stats.connects == 1 and c.stats.reconnects == 0
            (records_out, bytes_out), = [sent[int(c.stats.session_id)]]
            # Everything the gateway sent, and nothing else, reached the pipeline.
            assert records_out == data_records(pipe, SCHEMAS)
            assert bytes_out == c.stats.bytes == pipe.stats()["bytes_fed"]
        assert sum(nb for nb, _ in chunks) == c.stats.bytes
        assert sum(nr for _, nr in chunks) == c.stats.records == pipe.stats()["records_total"]
        assert len(chunks) == c.stats.chunks  # once per chunk, not per record
        assert c.stats.records > 10 * len(chunks)

    run_async(main())
    st = pipe.stats()
    assert {s: st["records_by_rtype"][DATA_RTYPES[s]] for s in SCHEMAS} == want
    # The rest: one mapping per subscribed symbol, one ack per subscription, no errors.
    assert st["records_total"] == sum(want.values()) + st["records_by_rtype"][0x16] + st["records_by_rtype"][0x17]
    assert st["errors"] == [] and pipe.failed is None
    assert pipe.metadata["ts_out"] is True
    ids = sorted(reference.instruments())
    assert sorted(pipe.instruments()) == ids
    for iid in ids:
        assert pipe.last_top(iid) == reference.last_top(iid)
        assert pipe.book_top(iid) == reference.book_top(iid)


def test_wrong_key_is_a_fatal_auth_error(gw: GatewayProc, key: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = fake_key()
    c = client_for(_native.Pipeline(), wrong, gw.port)
    caplog.set_level(logging.DEBUG, logger="aurum.lsg")
    with pytest.raises(LsgAuthError) as err:
        run_async(c.run(), 10)
    msg = str(err.value)
    assert mask_key(wrong) in msg and wrong not in msg
    assert "Authentication failed" in msg  # the gateway's own text
    assert c.state == "failed" and c.stats.connects == 0 and c.stats.attempts == 1
    assert wrong not in caplog.text and key not in caplog.text and mask_key(wrong) in caplog.text


def test_dropped_connection_reconnects_with_reset(gw: GatewayProc, key: str, reference: Any) -> None:
    mbo_total = reference.stats()["records_by_rtype"][0xA0]
    gw.admin("fault close_after_bytes=300000")  # the next session only: cut mid-record
    pipe = SpyPipeline()

    async def main() -> LsgClient:
        c = client_for(pipe, key, gw.port)
        async with running(c) as task:
            await wait_for(lambda: c.stats.reconnects == 1 and c.state == "streaming", 10, "reconnect", task)
            first = c.stats.bytes
            assert 0 < first and c.stats.disconnects.get("eof", 0) + c.stats.disconnects.get("lost", 0) == 1
            # The second stream is whole: everything again from a fresh metadata header.
            await wait_for(lambda: data_records(pipe) >= mbo_total + 1, 10, "second stream", task)
            await asyncio.sleep(0.05)
            assert c.state == "streaming"
        return c

    c = run_async(main())
    assert pipe.resets == 1  # before the new stream (not before the first)
    assert c.stats.connects == 2 and c.stats.gaps == 1
    assert c.stats.last_gap_s is not None and 0 < c.stats.last_gap_s < 1.0
    assert c.stats.decode_errors == 0 and pipe.failed is None
    assert c.stats.consecutive_failures == 0
    # Partial first stream (cut at 300 kB) plus one whole stream; the snapshot clears the book.
    mbo = data_records(pipe)
    assert mbo_total < mbo < 2 * mbo_total + 2
    iid = sorted(reference.instruments())[0]
    assert pipe.last_top(iid) == reference.last_top(iid)


def test_gateway_down_gives_up_then_recovers(tmp_path: Path, session_files: dict[str, Path], key: str) -> None:
    with socket.socket() as s:  # a port nobody listens on (for now)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    events: list[str] = []
    procs: list[GatewayProc] = []

    async def main() -> LsgClient:
        loop = asyncio.get_running_loop()
        gave_up, recovered = asyncio.Event(), asyncio.Event()

        def on_give_up() -> None:
            events.append("give_up")
            gave_up.set()

        def on_recovered() -> None:
            events.append("recovered")
            recovered.set()

        c = client_for(_native.Pipeline(), key, port, connect_attempts=3, retry_interval_s=0.2,
                       on_give_up=on_give_up, on_recovered=on_recovered)
        async with running(c):
            await asyncio.wait_for(gave_up.wait(), 5)
            assert c.stats.consecutive_failures == 3 and c.stats.connects == 0
            assert c.stats.disconnects["connect_failed"] == 3
            await asyncio.sleep(0.5)  # still retrying at retry_interval_s; no second give-up
            assert events == ["give_up"] and c.stats.consecutive_failures >= 4
            procs.append(await loop.run_in_executor(None, lambda: GatewayProc(
                [session_files["mbo"]], "--at-end", "idle", log_path=tmp_path / "gw.log", env_keys=key, port=port)))
            await asyncio.wait_for(recovered.wait(), 10)
            assert c.state == "streaming" and c.stats.consecutive_failures == 0
        return c

    try:
        c = run_async(main())
    finally:
        for p in procs:
            p.stop()
    assert events == ["give_up", "recovered"]
    assert c.stats.gave_up == 1 and c.stats.recovered == 1 and c.stats.connects == 1


def test_heartbeat_watchdog_fires_on_a_stall(gw: GatewayProc, key: str) -> None:
    gw.admin("fault stall=6@2000")  # no bytes (not even heartbeats) for 6 s after 2000 records
    pipe = SpyPipeline()

    async def main() -> tuple[LsgClient, float]:
        c = client_for(pipe, key, gw.port, heartbeat_interval_s=1, watchdog_grace_s=1.0)
        async with running(c) as task:
            t0 = time.monotonic()
            await wait_for(lambda: c.stats.disconnects.get("watchdog", 0) == 1, 8, "watchdog", task)
            fired = time.monotonic() - t0
            await wait_for(lambda: c.state == "streaming" and c.stats.reconnects == 1, 5, "reconnect", task)
            # Afterwards heartbeats (1 s) keep the idle session alive under the 2 s watchdog.
            await asyncio.sleep(2.5)
            assert c.stats.disconnects.get("watchdog", 0) == 1 and c.state == "streaming"
        return c, fired

    c, fired = run_async(main())
    assert 1.5 < fired < 5
    assert pipe.resets == 1 and pipe.stats()["heartbeats"] >= 1


@pytest.mark.parametrize("code", [5, 2])
def test_fatal_gateway_error_stops(gw: GatewayProc, key: str, code: int) -> None:
    gw.admin(f"fault error={code}@100")
    c = client_for(_native.Pipeline(), key, gw.port)
    with pytest.raises(LsgFatalError) as err:
        run_async(c.run(), 10)
    assert err.value.code == code and str(code) in str(err.value)
    assert c.state == "failed" and c.stats.reconnects == 0 and c.stats.disconnects == {"fatal": 1}


def test_nonfatal_error_and_decode_error_reconnect(gw: GatewayProc, key: str) -> None:
    pipe = SpyPipeline()

    async def main() -> LsgClient:
        gw.admin("fault error=4@100")  # logged; the gateway then closes -> reconnect
        c = client_for(pipe, key, gw.port)
        async with running(c) as task:
            await wait_for(lambda: c.stats.reconnects == 1 and c.state == "streaming", 10, "reconnect 1", task)
            assert c.stats.gateway_errors == 1
            gw.admin("fault garbage=64@100")  # an impossible record: DecodeError -> reset, reconnect
            gw.admin("disconnect all")
            await wait_for(lambda: c.stats.decode_errors == 1 and c.stats.reconnects == 3 and c.state == "streaming",
                           10, "decode error + reconnect", task)
        return c

    c = run_async(main())
    assert pipe.resets >= 4  # one before each new stream, one at the decode error
    assert pipe.failed is None


def test_stop_before_run_and_during_backoff() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client_for(_native.Pipeline(), fake_key(), port)
    c.stop()
    run_async(c.run(), 2)
    assert c.state == "stopped" and c.stats.attempts == 0

    async def main() -> LsgClient:
        c = client_for(_native.Pipeline(), fake_key(), port, backoff_initial_s=5.0, backoff_max_s=5.0,
                       rng=random.Random(3))
        task = asyncio.get_running_loop().create_task(c.run())
        await wait_for(lambda: c.state == "backoff", 2, "backoff", task)
        t0 = time.monotonic()
        c.stop()
        await asyncio.wait_for(task, 1)
        assert time.monotonic() - t0 < 0.5
        return c

    c = run_async(main())
    assert c.state == "stopped" and c.stats.consecutive_failures == 1


def test_journal_files_replay_to_the_same_records(gw: GatewayProc, key: str, reference: Any, tmp_path: Path) -> None:
    """The raw feed journal rotates at record boundaries; every part is a whole DBN stream,
    and replaying the parts gives exactly the records the live pipeline processed."""
    from aurum.journal import FeedJournal

    want = {s: reference.stats()["records_by_rtype"][DATA_RTYPES[s]] for s in SCHEMAS}
    pipe = _native.Pipeline()
    journal = FeedJournal(tmp_path / "journal", rotate_bytes=256 << 10)

    async def main() -> None:
        c = client_for(pipe, key, gw.port, schemas=list(SCHEMAS), snapshot=False, journal=journal)
        async with running(c) as task:
            await wait_for(lambda: data_records(pipe, SCHEMAS) >= sum(want.values()), 20, "all records", task)

    run_async(main())
    journal.close()
    assert len(journal.files) >= 3, journal.files
    replayed = _native.Pipeline()
    for path in journal.files:
        one = _native.Pipeline()
        f = _native.DbnFile(str(path))
        while one.feed_file(f):
            pass
        one.finish()  # each part ends on a record boundary
        f = _native.DbnFile(str(path))
        replayed.reset_stream()
        while replayed.feed_file(f):
            pass
        replayed.finish()
    assert replayed.stats()["records_by_rtype"] == pipe.stats()["records_by_rtype"]
    for iid in reference.instruments():
        assert replayed.last_top(iid) == pipe.last_top(iid)

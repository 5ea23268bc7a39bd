"""What the live client does when things go wrong around the stream rather than in it: a
gateway that accepts sessions but never delivers data, a full journal disk, a crash with
the journal open, a decode error mid-chunk, and the Yahoo fallback's bad minutes.

Everything runs for real: ``aurum gateway`` subprocesses on 127.0.0.1, real files (a full
disk is ``/dev/full``), a real crash (``os._exit`` in a child process). Only Yahoo's HTTP
request is injected.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gateway_proc import GatewayProc
from lsg_helpers import client_for, fake_key, run_async, running, wait_for

from aurum import _native
from aurum.feeds.yahoo import FallbackError, YahooFallback, YahooPriceSource, last_bar
from aurum.journal import FeedJournal

MBO = 0xA0


@pytest.fixture(scope="module")
def key() -> str:
    return fake_key()


@pytest.fixture(scope="module")
def mbo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aurum.sim import run_to_files

    _, info = run_to_files("mixed", tmp_path_factory.mktemp("sim") / "s.dbn.zst", seed=11, records=20_000)
    return Path(info["paths"]["mbo"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def replay_records(paths: list[Path]) -> tuple[int, list[str]]:
    """MBO records ``aurum replay`` would process from ``paths``, and the read errors."""
    p, errors = _native.Pipeline(), []
    for path in paths:
        p.reset_stream()
        f = _native.DbnFile(str(path))
        try:
            while p.feed_file(f):
                pass
        except Exception as e:  # noqa: BLE001 - a cut file ends in an error after its records
            errors.append(str(e))
    return p.stats()["records_by_rtype"].get(MBO, 0), errors


# --- recovery means data, not a handshake -------------------------------------------------------


def test_sessions_that_end_before_data_are_failed_attempts_not_a_recovery(mbo_file: Path, key: str, tmp_path: Path) -> None:
    """A gateway that completes every handshake and then ends the session with an ErrorMsg
    before any data: the client gives up after connect_attempts such sessions and never
    declares a recovery (before, each handshake reset the count and stopped the fallback)."""
    port = free_port()
    events: list[str] = []
    gw = GatewayProc([mbo_file], "--at-end", "idle", "--fault", "error=6@0", log_path=tmp_path / "gw.log",
                     env_keys=key, port=port)

    async def main() -> Any:
        c = client_for(_native.Pipeline(), key, port, connect_attempts=3, retry_interval_s=0.1,
                       on_give_up=lambda: events.append("give_up"), on_recovered=lambda: events.append("recovered"),
                       on_stream_start=lambda: events.append("stream_start"))
        async with running(c) as task:
            # Six sessions over: each one's end is counted once its connection has closed.
            await wait_for(lambda: c.stats.consecutive_failures >= 6, 15, "six failed sessions", task)
            assert c.gave_up and c.stats.connects >= 6
        return c

    try:
        c = run_async(main())
    finally:
        gw.stop()
    assert c.stats.gave_up == 1 and c.stats.recovered == 0
    assert c.stats.consecutive_failures >= 6 and c.stats.disconnects["connect_failed"] >= 6
    assert events[0] == "give_up" and "recovered" not in events
    # Each retry after giving up told the fallback to stop feeding the pipeline first.
    assert events.count("stream_start") >= 3


def test_recovery_is_declared_when_market_data_flows(mbo_file: Path, key: str, tmp_path: Path) -> None:
    port = free_port()
    events: list[tuple[str, int]] = []
    procs: list[GatewayProc] = []
    pipe = _native.Pipeline()

    def mark(what: str) -> None:
        events.append((what, pipe.stats()["records_by_rtype"].get(MBO, 0)))

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        c = client_for(pipe, key, port, connect_attempts=2, retry_interval_s=0.2, on_give_up=lambda: mark("give_up"),
                       on_recovered=lambda: mark("recovered"), on_stream_start=lambda: mark("stream_start"))
        async with running(c) as task:
            await wait_for(lambda: c.gave_up, 5, "give up", task)
            procs.append(await loop.run_in_executor(None, lambda: GatewayProc(
                [mbo_file], "--at-end", "idle", log_path=tmp_path / "gw.log", env_keys=key, port=port)))
            await wait_for(lambda: c.stats.recovered == 1, 15, "recovery", task)
            assert not c.gave_up and c.stream_open and c.stats.consecutive_failures == 0
        return c

    try:
        run_async(main())
    finally:
        for p in procs:
            p.stop()
    assert [e for e, _ in events] == ["give_up", "stream_start", "recovered"]
    assert events[1][1] == 0 and events[2][1] > 0  # the stream started empty; recovered on data


# --- the journal --------------------------------------------------------------------------------


class FullDiskJournal(FeedJournal):
    """A journal whose files live on a full disk (writes fail with ENOSPC)."""

    def _open(self) -> None:
        self._raw = open("/dev/full", "wb")  # noqa: SIM115 - closed by _close
        self._zw = self._cctx.stream_writer(self._raw, closefd=False)
        self._written = 0
        self.files.append(Path("/dev/full"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_journal_disk_never_stops_the_feed(mbo_file: Path, key: str, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Sessions cut every 20 kB: the first one's journal writes fail, later handshakes must
    not trip on the broken journal (before, every reconnect failed and the client gave up)."""
    gw = GatewayProc([mbo_file], "--at-end", "idle", "--fault", "close_after_bytes=20000",
                     log_path=tmp_path / "gw.log", env_keys=key)
    journal = FullDiskJournal(tmp_path / "j", rotate_bytes=4096)

    async def main() -> Any:
        c = client_for(_native.Pipeline(), key, gw.port, journal=journal, connect_attempts=3, retry_interval_s=0.2)
        async with running(c) as task:
            await wait_for(lambda: c.stats.connects >= 5, 15, "five sessions", task)
            c.flush_journal()  # no journal any more: a no-op, not an error
        return c

    with caplog.at_level(logging.ERROR, logger="aurum.lsg"):
        try:
            c = run_async(main())
        finally:
            gw.stop()
    assert c.journal is None and c.stats.gave_up == 0
    assert c.stats.disconnects.get("connect_failed", 0) == 0
    disabled = [r for r in caplog.records if "journal disabled" in r.getMessage()]
    assert len(disabled) == 1 and "No space left on device" in disabled[0].getMessage()


def test_a_decode_error_keeps_the_chunks_good_records_in_the_journal(mbo_file: Path, key: str, tmp_path: Path) -> None:
    """Garbage after 3,000 records: the records processed live before it are journaled too,
    so the journal replays to exactly what the live pipeline processed."""
    gw = GatewayProc([mbo_file], "--at-end", "idle", log_path=tmp_path / "gw.log", env_keys=key)
    journal = FeedJournal(tmp_path / "j")
    pipe = _native.Pipeline()

    async def main() -> None:
        gw.admin("fault garbage=64@3000")
        c = client_for(pipe, key, gw.port, journal=journal, backoff_initial_s=30, backoff_max_s=30)
        async with running(c) as task:
            await wait_for(lambda: c.stats.decode_errors == 1, 10, "the decode error", task)

    try:
        run_async(main())
    finally:
        gw.stop()
    journal.close()
    live = pipe.stats()["records_by_rtype"][MBO]
    assert live >= 3000
    replayed, errors = replay_records(journal.files)
    assert replayed == live and errors == []


def test_a_crash_loses_nothing_flushed_from_the_journal(mbo_file: Path, tmp_path: Path) -> None:
    """A process killed after ``flush()`` (the daemon's tick): its file ends in an unfinished
    zstd frame, and a replay still reads every record journaled before the flush."""
    import zstandard

    raw = tmp_path / "stream.dbn"
    raw.write_bytes(zstandard.ZstdDecompressor().stream_reader(mbo_file.open("rb")).read(400_000))
    jdir = tmp_path / "j"
    child = f"""
import os
from aurum import _native
from aurum.journal import FeedJournal
raw = open({str(raw)!r}, "rb").read()
p, j = _native.Pipeline(), FeedJournal({str(jdir)!r})
j.begin_stream()
for i in range(0, len(raw), 4096):
    c = raw[i:i + 4096]
    p.feed(c)
    j.write(c, p.pending_bytes)
j.flush()
print(p.stats()["records_by_rtype"][0xA0], flush=True)
os._exit(137)  # killed: no close, no atexit
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 137, out.stderr
    live = int(out.stdout)
    files = sorted(jdir.iterdir())
    assert len(files) == 1 and files[0].stat().st_size > 0
    replayed, errors = replay_records(files)
    assert replayed == live > 1000
    assert len(errors) == 1 and "incomplete frame" in errors[0]  # it says where the file was cut


def test_a_restart_in_the_same_second_never_overwrites_a_journal_file(tmp_path: Path, mbo_file: Path) -> None:
    """File names carry the UTC second: a daemon restarted within it must not truncate the
    file its previous run wrote (files for this second and the next two already exist)."""
    import datetime as dt

    import zstandard

    now = dt.datetime.now(dt.timezone.utc)
    earlier = [tmp_path / f"aurum-{(now + dt.timedelta(seconds=k)).strftime('%Y%m%dT%H%M%SZ')}-s001-p000.dbn.zst"
               for k in range(3)]
    for p in earlier:
        p.write_bytes(b"an earlier run's journal")
    data = zstandard.ZstdDecompressor().stream_reader(mbo_file.open("rb")).read(50_000)
    j = FeedJournal(tmp_path)
    j.begin_stream()
    j.write(data, 0)
    j.close()
    assert all(p.read_bytes() == b"an earlier run's journal" for p in earlier)
    assert len(j.files) == 1 and j.files[0] not in earlier and j.files[0].name.endswith(".1-s001-p000.dbn.zst")
    assert zstandard.ZstdDecompressor().stream_reader(j.files[0].open("rb")).read() == data


# --- the Yahoo fallback --------------------------------------------------------------------------


def frame(rows: list[tuple[float, float]]) -> pd.DataFrame:
    idx = pd.date_range("2026-12-07 19:00", periods=len(rows), freq="1min", tz="UTC")
    return pd.DataFrame({"Close": [r[0] for r in rows], "Volume": [r[1] for r in rows]}, index=idx)


def test_yahoo_minute_in_progress_with_nan_fields() -> None:
    nan = math.nan
    price, vol, ts = last_bar("GC=F", frame([(4100.0, 12), (4100.5, nan)]))
    assert (price, vol) == (4100.5, 0) and ts == pd.Timestamp("2026-12-07 19:01", tz="UTC").value
    assert last_bar("GC=F", frame([(4100.0, 12), (nan, nan)]))[:2] == (4100.0, 12)
    with pytest.raises(FallbackError, match="GC=F: no bar with a price"):
        last_bar("GC=F", frame([(nan, 3)]))


def test_yahoo_fallback_survives_a_failing_source_and_failing_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    """A fetch that raises anything, a decision layer that raises: each poll is logged and
    the fallback keeps polling (before, the first such error ended its task silently)."""
    calls = {"fetch": 0, "chunk": 0}

    def fetch(symbol: str) -> tuple[float, int, int]:
        calls["fetch"] += 1
        if calls["fetch"] % 3 == 2:
            raise ValueError("cannot convert float NaN to integer")
        return 4100.0 + calls["fetch"], 5, time.time_ns()

    def on_chunk(nbytes: int, nrecords: int) -> None:
        calls["chunk"] += 1
        if calls["chunk"] % 2:
            raise RuntimeError("decision layer hiccup")

    pipe = _native.Pipeline()
    fb = YahooFallback(pipe, YahooPriceSource("GC=F", cache_s=0.0, fetch=fetch), poll_s=0.01, on_chunk=on_chunk)

    async def main() -> None:
        fb.start()
        deadline = time.monotonic() + 10
        while fb.polls < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert fb.active
        fb.stop()

    with caplog.at_level(logging.WARNING):
        run_async(main())
    assert fb.polls >= 12 and fb.errors >= 6 and fb.source.errors >= 1
    assert pipe.stats()["trades"] == fb.polls  # every poll's print reached the pipeline
    assert any("ValueError" in r.getMessage() for r in caplog.records)


def test_daemon_pauses_the_fallback_for_a_retry_and_resumes_it_when_the_retry_brings_no_data(
        mbo_file: Path, key: str, tmp_path: Path) -> None:
    """The daemon's side of the above: after giving up it runs on Yahoo (injected); a retry's
    stream stops the fallback before its first byte reaches the pipeline; that stream ends
    without data, and the next tick puts the fallback back. The source never flips to
    Databento."""
    import uuid

    from aurum.config import load_config
    from aurum.daemon import Daemon
    from aurum.feeds import LsgClient
    from aurum.apikey import ApiKey

    name = f"aurum-test-{uuid.uuid4().hex[:10]}"
    cfg_file = tmp_path / "aurum.toml"
    cfg_file.write_text(f'[shm]\nname = "{name}"\ncapacity = 256\n[persistence]\ncheckpoint = "{tmp_path / "m.json"}"\n')
    d = Daemon(load_config(cfg_file, environ={}), None, config_path=str(cfg_file),
               price_fetch=lambda symbol: (4100.0, 1, time.time_ns()))
    port = free_port()
    seen: list[tuple[str, bool, str]] = []

    def start() -> None:
        d._on_stream_start()
        seen.append(("stream_start", d.fallback.active, d.source))

    d.client = LsgClient(d.pipeline, ApiKey(key, "test"), host="127.0.0.1", port=port, symbols=["GCZ6"],
                         stype_in="raw_symbol", schemas=["mbo"], connect_attempts=2, retry_interval_s=1.0,
                         backoff_initial_s=0.05, backoff_max_s=0.1, on_give_up=d._on_give_up,
                         on_recovered=d._on_recovered, on_stream_start=start, auth_retry=True)
    procs: list[GatewayProc] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(d.client.run())
        try:
            await wait_for(lambda: d.client.gave_up and d.fallback.active, 5, "give up", task)
            assert d.source == "yahoo"
            procs.append(await loop.run_in_executor(None, lambda: GatewayProc(
                [mbo_file], "--at-end", "idle", "--fault", "error=6@0", log_path=tmp_path / "gw.log",
                env_keys=key, port=port)))
            await wait_for(lambda: bool(seen), 10, "a retry's stream", task)
            await wait_for(lambda: not d.client.stream_open, 5, "the retry's end", task)
            assert not d.fallback.active
            d.tick()
            assert d.fallback.active and d.source == "yahoo"
        finally:
            d.client.stop()
            d.fallback.stop()
            await asyncio.wait_for(task, 5)

    try:
        run_async(main())
    finally:
        for p in procs:
            p.stop()
        d.shm.close()
        Path("/dev/shm", name).unlink(missing_ok=True)
    assert seen[0] == ("stream_start", False, "yahoo")  # stopped inside the handshake, source unchanged
    assert d.client.stats.recovered == 0


def test_a_key_refused_inside_the_stream_is_retried_when_the_client_retries_refused_keys(
        mbo_file: Path, key: str, tmp_path: Path) -> None:
    """ErrorMsg 2 (API_KEY_DEACTIVATED) after the handshake: a daemon (auth_retry) treats it as
    a refused key, failed attempts then the fallback, as it treats a refusal at the handshake;
    before, it raised LsgFatalError and the daemon exited (systemd restarted it every 2 s)."""
    gw = GatewayProc([mbo_file], "--at-end", "idle", "--fault", "error=2@0", log_path=tmp_path / "gw.log",
                     env_keys=key)
    events: list[str] = []

    async def main() -> Any:
        c = client_for(_native.Pipeline(), key, gw.port, connect_attempts=2, retry_interval_s=0.1, auth_retry=True,
                       on_give_up=lambda: events.append("give_up"))
        async with running(c) as task:
            await wait_for(lambda: c.stats.disconnects.get("auth", 0) >= 3, 10, "three refused sessions", task)
            assert c.state != "failed"
        return c

    try:
        c = run_async(main())
    finally:
        gw.stop()
    assert events == ["give_up"] and c.stats.disconnects.get("auth", 0) >= 3


def _live_with_journal(gw: GatewayProc, key: str, journal: FeedJournal, until: Any) -> Any:
    pipe = _native.Pipeline()

    async def main() -> None:
        c = client_for(pipe, key, gw.port, journal=journal, backoff_initial_s=0.05)
        async with running(c) as task:
            await wait_for(lambda: until(c, pipe), 20, "the session's records", task)

    run_async(main())
    journal.close()
    return pipe


def test_a_reconnect_mid_record_leaves_a_journal_that_replays_cleanly(mbo_file: Path, key: str, tmp_path: Path) -> None:
    """The gateway cuts a record in half and closes: the half record (dropped by the
    pipeline at the reconnect) never reaches the journal, so `aurum replay` reads every file
    to its end (before, the first file ended inside a record: exit 1)."""
    gw = GatewayProc([mbo_file], "--at-end", "idle", log_path=tmp_path / "gw.log", env_keys=key)
    try:
        gw.admin("fault cut@3000")
        journal = FeedJournal(tmp_path / "j")
        total = sum(1 for _ in __import__("databento").DBNStore.from_file(mbo_file))
        live = _live_with_journal(gw, key, journal, lambda c, p: c.stats.reconnects == 1 and
                                  p.stats()["records_by_rtype"].get(MBO, 0) >= 3000 + total)
    finally:
        gw.stop()
    assert len(journal.files) == 2
    replayed, errors = replay_records(journal.files)
    assert errors == [] and replayed == live.stats()["records_by_rtype"][MBO]
    from aurum.cli import main as aurum_main

    assert aurum_main(["replay", "--quiet", "--no-progress", *map(str, journal.files)]) == 0


def test_journal_parts_replay_as_one_stream(tmp_path: Path) -> None:
    """A live stream journaled in 4 KiB parts, read in chunks cut anywhere (as TCP does), so
    parts split events (an iceberg's fill and its refill). The replay reads each next part
    as the same stream: its books, icebergs and zones are the live pipeline's (before, a
    reset at every file dropped the open events and changed icebergs and signals)."""
    import random

    import zstandard

    from aurum.engines import table_array
    from aurum.replay import Replayer, ReplayOptions

    from aurum.sim import run_to_files

    _, info = run_to_files("icebergs", tmp_path / "ice.dbn.zst", seed=3, records=60_000)
    data = zstandard.ZstdDecompressor().stream_reader(open(info["paths"]["mbo"], "rb")).read()
    live, journal = _native.Pipeline(), FeedJournal(tmp_path / "j", rotate_bytes=4096)
    journal.begin_stream()
    rng, at = random.Random(5), 0
    while at < len(data):
        chunk = data[at:at + rng.randint(1, 3000)]
        at += len(chunk)
        live.feed(chunk)
        journal.write(chunk, live.pending_bytes)
    journal.close()
    assert len(journal.files) > 100
    rep = Replayer(ReplayOptions(signals=False))
    assert rep.run(journal.files).ok
    assert len(table_array(live, "icebergs")) > 0
    for name in ("icebergs", "zones"):
        assert np.array_equal(table_array(rep.pipeline, name), table_array(live, name)), name
    assert rep.pipeline.stats()["mbo_anomalies"] == live.stats()["mbo_anomalies"]
    for iid in live.book_ids():
        assert rep.pipeline.last_top(iid) == live.last_top(iid)

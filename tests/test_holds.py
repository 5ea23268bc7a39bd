"""``hold_at_bar_close`` from Python: the pipeline stops where a bar closes, the decision runs
there, and everything else follows. Signals then do not depend on how the bytes were read
(the end-to-end version, live daemon vs a replay of its journal, is in test_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from conftest import read_dbn_bytes, simulated_mbo

from aurum import _native
from aurum.feeds.holds import run_holds
from aurum.feeds.yahoo import YahooFallback, YahooPriceSource

BAR_NS = 5_000_000_000


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_mbo(tmp_path_factory.mktemp("holds"), seed=21, records=300_000)


def _replay(path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    import aurum.replay as replay

    monkeypatch.setattr(replay, "MAX_CHUNK", chunk)
    rep = replay.Replayer(replay.ReplayOptions(bar_interval_ns=BAR_NS)).run([path]).report
    return orjson.dumps({"signals": rep["signals"], "pillars": rep["pillars"]}, option=orjson.OPT_SORT_KEYS)


def test_replay_signals_do_not_depend_on_the_read_size(session: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _replay(session, 1 << 20, monkeypatch)
    assert len(orjson.loads(whole)["signals"]) >= 2
    for chunk in (4099, 65536):
        assert _replay(session, chunk, monkeypatch) == whole, f"read size {chunk}"


def test_holds_resume_even_when_the_decision_raises(session: Path) -> None:
    data = read_dbn_bytes(session)
    plain = _native.Pipeline(bar_interval_ns=BAR_NS)
    plain.feed(data)
    pl = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True)
    pl.feed(data)
    assert pl.held and pl.deferred_bytes > 0
    assert pl.stats()["records_total"] < plain.stats()["records_total"]
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("decision failed")

    holds = run_holds(pl, boom, seen.append)
    assert holds == len(seen) >= 10 and set(seen) == {"on_hold"}
    assert not pl.held and pl.deferred_bytes == 0 and pl.resume() == 0
    for k in ("records_total", "trades", "bars_closed", "top_changes"):
        assert pl.stats()[k] == plain.stats()[k], k
    # Without an error callback the first failure is raised, after the chunk is done.
    pl2 = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True)
    pl2.feed(data)
    with pytest.raises(RuntimeError, match="decision failed"):
        run_holds(pl2, boom)
    assert not pl2.held and pl2.stats()["records_total"] == plain.stats()["records_total"]


def test_yahoo_fallback_decides_at_the_bar_its_poll_closes() -> None:
    src = YahooPriceSource(fetch=lambda s: (4100.5, 7, 0))
    pl = _native.Pipeline(bar_interval_ns=60_000_000_000, hold_at_bar_close=True)
    holds: list[int] = []
    fb = YahooFallback(pl, src, on_hold=lambda: holds.append(pl.stats()["bars_closed"]))
    t0 = 1_800_000_000_000_000_000
    for k in range(4):
        assert fb.poll_once(now_ns=t0 + k * 60_000_000_000)
    # Each poll after the first opens a new minute: the previous bar closes, held before it.
    assert holds == [1, 2, 3]
    assert not pl.held and pl.stats()["trades"] == 4


def test_replay_decides_and_keeps_the_records_before_a_decode_error(session: Path, tmp_path: Path) -> None:
    """A read that holds at a bar close and then hits corrupt bytes: the good records before
    the error are still processed (and their bar decided), not left deferred."""
    from aurum.replay import ReplayOptions, Replayer

    data = read_dbn_bytes(session)
    probe = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True)
    probe.feed(data)
    k = probe.stats()["records_total"]  # records before the first bar's closing record
    cut = 8 + int.from_bytes(data[4:8], "little")  # after the metadata: the first record
    for _ in range(k + 5):
        cut += data[cut] * 4  # a record's length, in 4-byte units, is its first byte
    assert cut < 1 << 20, "the hold and the corrupt bytes must share the replay's first read"
    bad = tmp_path / "corrupt.dbn"
    bad.write_bytes(data[:cut] + bytes([1, 0xA0]) + bytes(62))  # a record header claiming 4 bytes
    rep = Replayer(ReplayOptions(bar_interval_ns=BAR_NS))
    result = rep.run([bad])
    assert result.files[0].error and "record length" in result.files[0].error
    assert not rep.pipeline.held
    assert rep.pipeline.stats()["records_total"] == k + 5


def test_live_client_decides_the_held_bar_before_resetting_on_a_decode_error(session: Path) -> None:
    """The LSG client's read holds at a bar close, then hits garbage: the bar is decided and
    the good records are processed before the stream is reset for the reconnect."""
    import secrets
    import string
    from types import SimpleNamespace

    from aurum.apikey import ApiKey
    from aurum.feeds.lsg import LsgClient

    data = read_dbn_bytes(session)
    probe = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True)
    probe.feed(data)
    k = probe.stats()["records_total"]
    cut = 8 + int.from_bytes(data[4:8], "little")
    for _ in range(k + 5):
        cut += data[cut] * 4
    pl = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True)
    decided: list[int] = []
    key = ApiKey("db-" + "".join(secrets.choice(string.ascii_letters) for _ in range(29)), "test")
    client = LsgClient(pl, key, symbols=["GCZ6"], on_hold=lambda: decided.append(pl.stats()["records_total"]))
    aborted: list[str] = []
    fake = SimpleNamespace(close_kind=None, session_id="1", errors_seen=0, stream_bytes=0, established=True, abort=lambda kind, why: aborted.append(kind))
    client._on_stream(fake, memoryview(data[:cut] + bytes(64)))  # 64 zero bytes: a record of length 0
    assert aborted == ["decode_error"] and client.stats.decode_errors == 1
    assert decided == [k]  # decided at the hold, on the bar's records only
    assert not pl.held and pl.stats()["records_total"] == k + 5


def test_a_pipeline_never_resumed_refuses_input_instead_of_growing(session: Path) -> None:
    data = read_dbn_bytes(session)
    pl = _native.Pipeline(bar_interval_ns=BAR_NS, hold_at_bar_close=True, max_deferred_bytes=1 << 16)
    with pytest.raises(RuntimeError, match=r"held at a bar close with \d+ bytes deferred .*not read: call resume\(\)"):
        for i in range(0, len(data), 1 << 15):
            pl.feed(data[i:i + (1 << 15)])
    assert pl.held and pl.deferred_bytes > 1 << 16
    run_holds(pl, None)  # resuming makes it usable again
    pl.feed(b"")
    assert not pl.held

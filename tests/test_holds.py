"""``hold_at_bar_close`` from Python: the pipeline stops where a bar closes, the decision runs
there, and everything else follows. Signals then do not depend on how the bytes were read
(the end-to-end version, live daemon vs a replay of its journal, is in test_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aurum import _native
from aurum.feeds.holds import run_holds
from aurum.feeds.yahoo import YahooFallback, YahooPriceSource

BAR_NS = 5_000_000_000


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aurum.sim import run_to_files

    out = tmp_path_factory.mktemp("holds") / "s.dbn.zst"
    _, summary = run_to_files("mixed", out, seed=21, records=300_000)
    return Path(summary["paths"]["mbo"])


def _file_bytes(path: Path) -> bytes:
    import zstandard

    with path.open("rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


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
    data = _file_bytes(session)
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

"""`aurum replay`: DBN files through the same native pipeline the daemon uses.

Files are read and decompressed natively (``DbnFile`` + ``Pipeline.feed_file``); Python
only loops once per chunk to drain the bar ring, pace the replay and update progress.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import databento_dbn
import numpy as np

from aurum import _native
from aurum.decision.scope import header_symbols
from aurum.feeds.holds import run_holds
from aurum.journal import continues
from aurum.kernels.bar_stats import wilder_atr
from aurum.engines import (
    FLOW_DTYPE, SWEEP_DTYPE, engine_status, flow_dict, iceberg_dict, sweep_dict, table_array, zone_dict,
)
from aurum.rings import BAR_DTYPE, RingReader

PRICE_SCALE = 1e-9
MAX_CHUNK = 1 << 20
# Paced replays read small chunks: pacing is per chunk (~70 MBO records), not per record.
PACED_CHUNK = 4 << 10


def parse_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible), ``realtime`` -> 1.0, ``<N>x`` -> N."""
    t = text.strip().lower()
    if t == "max":
        return None
    if t == "realtime":
        return 1.0
    if t.endswith("x"):
        try:
            v = float(t[:-1])
        except ValueError:
            v = math.nan
        if v > 0 and math.isfinite(v):
            return v
    raise ValueError(f"--speed was {text!r}, expected 'max', 'realtime' or a positive multiple like '10x'")


def rtype_name(rtype: int) -> str:
    try:
        return str(databento_dbn.RType(rtype))
    except ValueError:
        return f"rtype_0x{rtype:02x}"


def price(px: int) -> float | None:
    return None if px == _native.UNDEF_PRICE else px * PRICE_SCALE


@dataclass
class ReplayOptions:
    speed: float | None = None
    """None replays as fast as possible; otherwise a multiple of real time."""
    max_gap_s: float = 60.0
    """Paced replay does not wait out gaps in the data longer than this (the snapshot's old
    timestamps, the daily break); it re-anchors the clock after them instead."""
    bar_interval_ns: int = 60_000_000_000
    tick_bar_trades: int = 0
    volume_bar_contracts: int = 0
    atr_period: int = 14
    engines: bool = True
    """False runs decode + books + bars only."""
    engine_config: dict[str, Any] | None = None
    """Engine thresholds by section (see ``aurum._native.Pipeline``); None keeps the defaults."""
    signals: bool = True
    """Score the pillars and build signals at every time-bar close (needs ``engines``)."""
    decision: Any = None
    """``aurum.decision.engine.DecisionConfig`` (weights, signal thresholds); None: defaults.
    ``options_from_config`` takes it, the bar length and the engine thresholds from a daemon
    config, so a replay of the daemon's journal decides as the daemon did."""


@dataclass
class FileResult:
    path: str
    records: int = 0
    bytes: int = 0
    error: str | None = None


@dataclass
class ReplayResult:
    report: dict[str, Any]
    files: list[FileResult] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C: the report covers what was replayed

    @property
    def ok(self) -> bool:
        return all(f.error is None for f in self.files)


class ReplayInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``Replayer.run``: still a KeyboardInterrupt to any caller, carrying the
    report of what was replayed up to it (``result``, with ``"interrupted": true``)."""

    def __init__(self, result: ReplayResult) -> None:
        super().__init__("replay interrupted")
        self.result = result


ProgressHook = Callable[[int, int, int], None]
"""(file bytes done, file bytes total, records so far)."""


def options_from_config(cfg: Any, **overrides: Any) -> ReplayOptions:
    """Replay options that decide as a daemon with config ``cfg`` (``aurum.config.Config``):
    its bar length, engine thresholds, pillar weights and signal thresholds."""
    from aurum.daemon import signal_config
    from aurum.decision.engine import DecisionConfig

    base = {"bar_interval_ns": int(cfg.signals.bar_interval_s * 1e9), "engine_config": cfg.engines or None,
            "decision": DecisionConfig(weights=cfg.signals.weights, signal=signal_config(cfg),
                                       include_spreads=cfg.signals.include_spreads)}
    return ReplayOptions(**{**base, **overrides})


class Replayer:
    """Replays files in order through one pipeline; books and bars carry across files."""

    def __init__(self, options: ReplayOptions | None = None) -> None:
        self.options = options or ReplayOptions()
        o = self.options
        self.pipeline = _native.Pipeline(
            bar_interval_ns=o.bar_interval_ns,
            tick_bar_trades=o.tick_bar_trades,
            volume_bar_contracts=o.volume_bar_contracts,
            engines=o.engines,
            engine_config=o.engine_config,
            # Signals are decided at each bar close with the engines as of the bar's end,
            # however the file is read (as the daemon does live): see aurum.feeds.holds.
            hold_at_bar_close=bool(o.engines and o.signals),
        )
        self._bars = RingReader(self.pipeline, "bars")
        self._bar_chunks: list[np.ndarray] = []
        self._sweeps = RingReader(self.pipeline, "sweeps")
        self._sweep_chunks: list[np.ndarray] = []
        self._flow = RingReader(self.pipeline, "flow")
        self._flow_chunks: list[np.ndarray] = []
        self.decision = None
        if o.engines and o.signals:
            from aurum.decision.engine import DecisionEngine
            from aurum.decision.providers import default_providers

            self.decision = DecisionEngine(self.pipeline, o.decision, providers=default_providers())
        self._symbols: dict[int, str] = {}
        self._current: FileResult | None = None  # the file being replayed (for a Ctrl-C report)

    def run(self, paths: Sequence[str | Path], progress: ProgressHook | None = None) -> ReplayResult:
        started = time.perf_counter()
        results: list[FileResult] = []
        prev: Path | None = None
        interrupted = False
        try:
            for p in map(Path, paths):
                results.append(self._replay_file(p, progress, same_stream=prev is not None and continues(prev, p)
                                                 and not results[-1].error))
                prev = p
        except KeyboardInterrupt:
            # Ctrl-C: what was replayed so far is still reported (the report says so), the
            # file it stopped in included.
            interrupted = True
            cur = self._current
            if cur is not None and (not results or results[-1] is not cur):
                cur.error = cur.error or "interrupted"
                results.append(cur)
        # The last bar is closed for the report, not decided on: a live daemon never decides
        # on part of a bar, so neither does its replay.
        self.pipeline.flush_bars()
        self._drain_bars(decide=False)
        elapsed = time.perf_counter() - started
        report = self._report(results, elapsed)
        if interrupted:
            report["interrupted"] = True
            raise ReplayInterrupted(ReplayResult(report, results, True))
        return ReplayResult(report, results)

    def _replay_file(self, path: Path, progress: ProgressHook | None, same_stream: bool = False) -> FileResult:
        res = self._current = FileResult(str(path))
        pl = self.pipeline
        before = pl.stats()["records_total"]
        try:
            f = _native.DbnFile(str(path))
        except OSError as e:
            res.error = str(e)
            return res
        if same_stream:
            pl.continue_stream()  # a journal's next part: what was open live carries on
        else:
            pl.reset_stream()
        speed = self.options.speed
        chunk = MAX_CHUNK if speed is None else PACED_CHUNK
        anchor: tuple[int, float] | None = None
        try:
            while True:
                n = pl.feed_file(f, chunk)
                if n == 0:
                    break
                res.bytes += n
                run_holds(pl, self._drain_bars)
                self._drain_bars()
                if speed is not None:
                    anchor = self._pace(anchor, speed)
                if progress is not None:
                    progress(f.position, f.size, pl.stats()["records_total"])
            pl.finish()
        except _native.DecodeError as e:
            res.error = f"{path}: {e}"
            run_holds(pl, self._drain_bars)  # the records before the error, decided as usual
        finally:
            res.records = pl.stats()["records_total"] - before
            self._collect_symbols(pl.metadata)
        return res

    def _pace(self, anchor: tuple[int, float] | None, speed: float) -> tuple[int, float]:
        clock = self.pipeline.clock
        now = time.perf_counter()
        if anchor is None:
            return (clock, now)
        due = anchor[1] + (clock - anchor[0]) * 1e-9 / speed
        wait = due - now
        if wait > self.options.max_gap_s:
            return (clock, now)
        if wait > 0:
            time.sleep(wait)
        return anchor

    def _drain_bars(self, decide: bool = True) -> None:
        # Rings overwrite their oldest records: copy out after every chunk, so a long
        # replay loses nothing (the readers count anything lost anyway).
        for reader, chunks in ((self._bars, self._bar_chunks), (self._sweeps, self._sweep_chunks),
                               (self._flow, self._flow_chunks)):
            batch = reader.poll()
            if len(batch.records):
                chunks.append(batch.records.copy())
                if reader is self._bars and self.decision is not None and decide:
                    self.decision.on_bars(chunks[-1])

    def _collect_symbols(self, metadata: dict[str, Any] | None) -> None:
        # Historical files map symbols in the header; live sessions send SymbolMappingMsg.
        self._symbols.update(header_symbols(metadata))
        self._symbols.update(self.pipeline.instruments())

    def _report(self, files: list[FileResult], elapsed: float) -> dict[str, Any]:
        pl = self.pipeline
        st = pl.stats()
        bars = np.concatenate(self._bar_chunks) if self._bar_chunks else np.empty(0, BAR_DTYPE)
        ids = sorted(set(pl.book_ids()) | set(self._symbols) | {int(i) for i in np.unique(bars["instrument_id"])})
        book_top: dict[str, Any] = {}
        for iid in ids:
            top = pl.last_top(iid)
            if top is None:
                continue
            bid_px, bid_sz, bid_ct, ask_px, ask_sz, ask_ct = top
            book_top[str(iid)] = {
                "bid_px": price(bid_px), "bid_sz": bid_sz, "bid_ct": bid_ct,
                "ask_px": price(ask_px), "ask_sz": ask_sz, "ask_ct": ask_ct,
            }
        time_bars = bars[bars["kind"] == _native.BAR_KIND_TIME]
        bar_stats = {}
        for iid in np.unique(time_bars["instrument_id"]):
            b = time_bars[time_bars["instrument_id"] == iid]
            atr = wilder_atr(b["high"], b["low"], b["close"], self.options.atr_period)
            last = float(atr[-1]) if len(atr) else math.nan
            bar_stats[str(int(iid))] = {
                "time_bars": int(len(b)),
                f"atr{self.options.atr_period}": None if math.isnan(last) else round(last, 6),
            }
        total = st["records_total"]
        return {
            "files": [{"path": f.path, "records": f.records, "bytes": f.bytes, "error": f.error} for f in files],
            "records_total": total,
            "records_by_type": {rtype_name(rt): n for rt, n in sorted(st["records_by_rtype"].items())},
            "unknown_rtypes": st["unknown_rtypes"],
            "instruments": {str(k): v for k, v in sorted(self._symbols.items())},
            "book_top": book_top,
            "trades": st["trades"],
            "trades_refused": st["trades_refused"],
            "top_changes": st["top_changes"],
            "bars": [bar_dict(b) for b in bars],
            "bars_lost": self._bars.lost_total,
            "bar_stats": bar_stats,
            "mbo_anomalies": st["mbo_anomalies"],
            **self._engine_report(),
            "gateway_errors": [{"code": c, "text": t} for c, t in st["errors"]],
            "decode_errors": [f.error for f in files if f.error],
            "speed": "max" if self.options.speed is None else f"{self.options.speed:g}x",
            "elapsed_s": round(elapsed, 6),
            "records_per_s": round(total / elapsed, 1) if elapsed > 0 else None,
        }


    def _engine_report(self) -> dict[str, Any]:
        pl = self.pipeline
        sweeps = np.concatenate(self._sweep_chunks) if self._sweep_chunks else np.empty(0, SWEEP_DTYPE)
        flow = np.concatenate(self._flow_chunks) if self._flow_chunks else np.empty(0, FLOW_DTYPE)
        return {
            "engines": engine_status(pl),
            "icebergs": [iceberg_dict(r) for r in table_array(pl, "icebergs")],
            "zones": [zone_dict(r) for r in table_array(pl, "zones")],
            "sweeps": [sweep_dict(r) for r in sweeps],
            "sweeps_lost": self._sweeps.lost_total,
            "flow": [flow_dict(r) for r in flow],
            "flow_lost": self._flow.lost_total,
            "signals": [sg.as_dict() for sg in self.decision.signals] if self.decision else [],
            "pillars": self.decision.pillars_report() if self.decision else {},
            # Instruments whose bars got no decision (spreads, unless signals.include_spreads).
            "not_decided": {str(k): v for k, v in sorted(self.decision.scope.excluded.items())} if self.decision else {},
        }


BAR_KIND_NAMES = {0: "time", 1: "tick", 2: "volume"}


def bar_dict(b: np.void) -> dict[str, Any]:
    return {
        "instrument_id": int(b["instrument_id"]),
        "kind": BAR_KIND_NAMES.get(int(b["kind"]), str(int(b["kind"]))),
        "ts_open": int(b["ts_open"]),
        "ts_close": int(b["ts_close"]),
        "open": b["open"] * PRICE_SCALE,
        "high": b["high"] * PRICE_SCALE,
        "low": b["low"] * PRICE_SCALE,
        "close": b["close"] * PRICE_SCALE,
        "volume": int(b["volume"]),
        "buy_volume": int(b["buy_volume"]),
        "sell_volume": int(b["sell_volume"]),
        "vwap": round(float(b["vwap"]), 9),
        "trade_count": int(b["trade_count"]),
    }


def print_summary(report: dict[str, Any], out: Any = sys.stdout) -> None:
    w = out.write
    w(f"records      {report['records_total']:,} in {report['elapsed_s']:.3f} s"
      f" ({(report['records_per_s'] or 0):,.0f} records/s, speed {report['speed']})\n")
    w("by type      " + ", ".join(f"{k} {v:,}" for k, v in report["records_by_type"].items()) + "\n")
    if report["instruments"]:
        w("instruments  " + ", ".join(f"{k}={v}" for k, v in report["instruments"].items()) + "\n")
    w(f"trades       {report['trades']:,}; time bars {sum(1 for b in report['bars'] if b['kind'] == 'time'):,}\n")
    for iid, t in report["book_top"].items():
        sym = report["instruments"].get(iid, iid)
        w(f"book top     {sym}: bid {fmt_px(t['bid_px'])} x {t['bid_sz']}  ask {fmt_px(t['ask_px'])} x {t['ask_sz']}\n")
    for iid, s in report["bar_stats"].items():
        sym = report["instruments"].get(iid, iid)
        atr = next((v for k, v in s.items() if k.startswith("atr")), None)
        w(f"bars         {sym}: {s['time_bars']} time bars, ATR {atr if atr is not None else 'n/a'}\n")
    if "icebergs" in report:
        ice = report["icebergs"]
        nat = sum(1 for i in ice if i["kind"] == "native")
        zones = report["zones"]
        w(f"engines      icebergs {nat} native + {len(ice) - nat} synthetic (experimental); "
          f"zones {sum(1 for z in zones if z['kind'] == 'iceberg')} iceberg + "
          f"{sum(1 for z in zones if z['kind'] == 'absorption')} absorption; "
          f"sweeps {sum(1 for s in report['sweeps'] if s['kind'] == 'sweep')}, "
          f"stop runs {sum(1 for s in report['sweeps'] if s['kind'] == 'stop_run')}\n")
        for iid, eng in report["engines"].items():
            off = [f"{k} ({v['reason']})" for k, v in eng.items() if not v["active"]]
            if off:
                w(f"inactive     {report['instruments'].get(iid, iid)}: {'; '.join(off)}\n")
    anomalies = {k: v for k, v in report["mbo_anomalies"].items() if v}
    if anomalies:
        w(f"book notes   {anomalies}\n")
    if report["trades_refused"]:
        w(f"refused      {report['trades_refused']} trades at the null price or past 2^63 ns (not prints)\n")
    for e in report["decode_errors"]:
        w(f"error        {e}\n")


def fmt_px(px: float | None) -> str:
    return "-" if px is None else f"{px:,.2f}"

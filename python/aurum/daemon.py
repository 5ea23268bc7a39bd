"""``aurumd`` (= ``aurum run --config FILE``): one process on uvloop wiring the live feed, the
native pipeline, the decision layer and the outputs.

Data flows one way: LSG client -> native pipeline (decode, books, engines, bars) -> decision
layer at bar closes -> shared-memory signals and state -> consumers. Python runs per chunk
and per bar, never per record. Around it: the Iceberg Memory checkpoint (atomic, periodic and
at shutdown), systemd notifications (READY, WATCHDOG, STATUS, STOPPING), SIGTERM (graceful
stop within 2 s) and SIGHUP (reload weights and thresholds without dropping the feed).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aurum import _native
from aurum.apikey import ApiKey
from aurum.config import Config, ConfigError, load_config
from aurum.decision.engine import DecisionConfig, DecisionEngine
from aurum.decision.providers import default_providers
from aurum.decision.signal import SignalConfig
from aurum.feeds.holds import run_holds
from aurum.memory import SnapshotError, load_memory, save_memory
from aurum.rings import RingReader, ring_array
from aurum.sdnotify import Notifier

log = logging.getLogger("aurum.daemon")

STATE_EVERY_S = 0.1  # the shared-memory state block is refreshed at most this often
# Its zone list at most this often (and at every signal): zones live for minutes, and listing
# them from a session's zone table is most of a state refresh's cost (~150 us of ~350).
ZONES_EVERY_S = 1.0
MAX_SHM_ZONES = 32  # what the state block holds (aurum_shm.h AURUM_SHM_MAX_ZONES)
SOURCES = {"databento": 0, "yahoo": 1, "replay": 2}


@dataclass
class DaemonStats:
    signals: dict[str, int] = field(default_factory=lambda: {"BUY": 0, "SELL": 0, "FLAT": 0})
    chunks: int = 0
    checkpoints: int = 0
    checkpoint_errors: int = 0
    reloads: int = 0
    started_ns: int = field(default_factory=time.time_ns)


INVALID_SUBSCRIPTION = 5  # gateway ErrorMsg code (databento.md §1.10)


def signal_config(cfg: Config) -> SignalConfig:
    s = cfg.signals
    return SignalConfig(enter=s.enter, exit=s.exit, min_confidence=s.min_confidence, cooldown_bars=s.cooldown_bars,
                        min_stop_ticks=s.min_stop_ticks)


def _veto_first(veto: str | None, reasons: list[str]) -> list[str]:
    """``reasons`` with ``veto: <veto>`` first, once."""
    if not veto:
        return reasons
    head = f"veto: {veto}"
    return [head, *(r for r in reasons if r != head)]


class Daemon:
    """Everything but the event loop: tests drive ``on_chunk``/``tick`` directly or run ``run()``."""

    def __init__(self, cfg: Config, key: ApiKey | None, *, config_path: str | None = None,
                 shm_writer: Any | None = None, notifier: Notifier | None = None,
                 price_fetch: Any | None = None) -> None:
        self.cfg = cfg
        self.key = key
        self.config_path = config_path
        # Held at each bar close inside a chunk (aurum.feeds.holds): signals see the engines as
        # of the bar's end, not of wherever the TCP read ended, so a journal replays them.
        self.pipeline = _native.Pipeline(bar_interval_ns=int(cfg.signals.bar_interval_s * 1e9),
                                         engine_config=cfg.engines, hold_at_bar_close=True)
        self.decision = DecisionEngine(self.pipeline, DecisionConfig(weights=cfg.signals.weights,
                                                                     signal=signal_config(cfg),
                                                                     include_spreads=cfg.signals.include_spreads),
                                       providers=default_providers())
        self.bars = RingReader(self.pipeline, "bars", from_start=True)
        self._trades = ring_array(self.pipeline, "trades")
        self._session_volume: dict[int, int] = {}  # contracts traded in closed bars, per instrument
        self._last_data_ns: int | None = None
        self._last_signal: dict[str, float] | None = None
        self.notifier = notifier or Notifier()
        self.shm = shm_writer if shm_writer is not None else self._open_shm()
        self.stats = DaemonStats()
        self.source = "databento"
        self.feed_state = "down"
        self._last_state = 0.0
        self._zones_at = -1e9  # monotonic time of the zone list the state block carries
        self._zones_iid: int | None = None  # and its instrument
        self._stop = asyncio.Event() if _has_loop() else None
        self.client: Any = None
        self.journal: Any = None
        from aurum.feeds.yahoo import YahooFallback, YahooPriceSource

        fb = cfg.fallback
        # ``price_fetch`` replaces the network call (tests); None uses yfinance.
        self.fallback = YahooFallback(self.pipeline, YahooPriceSource(fb.symbol, cache_s=fb.cache_s, fetch=price_fetch),
                                      poll_s=fb.poll_s, on_chunk=self.on_chunk, on_hold=self.on_hold)
        self.restore_checkpoint()

    # --- outputs ---------------------------------------------------------------------------

    def _open_shm(self) -> Any:
        c = self.cfg.shm
        # Readers are woken once per chunk, after its signals and the state are all out (see
        # _drain_bars), not at each publication: a woken reader must not preempt the rest.
        return _native.ShmSignalWriter(c.name, capacity=c.capacity, mode=c.mode, wake_on_publish=False)

    def restore_checkpoint(self) -> None:
        path = Path(self.cfg.persistence.checkpoint)
        if not path.exists():
            return
        days = self.cfg.persistence.memory_retention_days
        try:
            n_ice, n_zones = load_memory(self.pipeline, path, keep_days=days)
            log.info("restored Iceberg Memory from %s: %d icebergs, %d zones%s", path, n_ice, n_zones,
                     f" (those seen within {days:g} days of the newest)" if days > 0 else "")
        except SnapshotError as e:
            # Keep the unreadable file for inspection rather than overwrite it at the next checkpoint.
            bad = path.with_suffix(path.suffix + ".bad")
            path.replace(bad)
            log.error("checkpoint not restored: %s (moved to %s); starting with empty memory", e, bad)

    def checkpoint(self) -> None:
        path = Path(self.cfg.persistence.checkpoint)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_memory(self.pipeline, path)
            self.stats.checkpoints += 1
        except OSError as e:
            self.stats.checkpoint_errors += 1
            log.error("checkpoint to %s failed: %s", path, e.strerror or e)

    # --- the record path's per-chunk hook ----------------------------------------------------

    def on_chunk(self, nbytes: int = 0, nrecords: int = 0, now_ns: int | None = None) -> int:
        """After each chunk the client fed: run the decision layer on newly closed bars and
        publish. Returns signals published."""
        self.stats.chunks += 1
        self._last_data_ns = time.time_ns()  # heartbeats arrive as records too: any chunk counts
        published = 0
        if self.pipeline.held:  # fed by a caller that did not run the holds (the feeds do)
            def hold() -> None:
                nonlocal published
                published += self.on_hold(now_ns)

            run_holds(self.pipeline, hold)
        return published + self._drain_bars(time.time_ns() if now_ns is None else now_ns)

    def on_hold(self, now_ns: int | None = None) -> int:
        """A bar closed inside a chunk and the pipeline holds there: decide and publish now,
        with the engines as of the bar's end; the rest of the chunk follows. Returns signals."""
        return self._drain_bars(time.time_ns() if now_ns is None else now_ns)

    def tick(self, now_ns: int | None = None) -> int:
        """Once a second: close due time bars on the wall clock, heartbeat, watchdog."""
        now = time.time_ns() if now_ns is None else now_ns
        if self.cfg.feed.clock == "wall":
            self.pipeline.advance_clock(now)
        n = self._drain_bars(now)
        if self.cfg.feed.clock == "wall":
            # A silent instrument closes no bar, so its stale veto is judged here too.
            done = [self._publish(sig) for sig in self.decision.close_stale(now)]
            if done:
                self.shm.wake()
                for d in done:
                    self._after_publish(d)
                self.decision.signals.clear()
                self._publish_state(now, force_zones=True)
                n += len(done)
        self.shm.heartbeat(now)
        self.notifier.watchdog()
        if self.client is not None:
            # At most a second of journal lost if the process dies (see aurum.journal).
            self.client.flush_journal()
            # Given up, and a retry's stream ended before any data: the fallback comes back.
            if self.client.gave_up and not self.client.stream_open and self.cfg.fallback.enabled \
                    and not self.fallback.active:
                log.warning("Databento retry brought no data; back on the fallback")
                self.fallback.start()
        # Off the bar-close path: tomorrow's astro windows (once a day; ms of ephemeris work).
        if self.pipeline.clock:
            self.decision.prefetch(self.pipeline.clock)
        return n

    def _drain_bars(self, now_ns: int) -> int:
        batch = self.bars.poll()
        if batch.lost:
            log.warning("bar ring lapped: %d bars lost before the decision layer saw them", batch.lost)
        published = 0
        if len(batch.records):
            for iid, vol in zip(batch.records["instrument_id"].tolist(), batch.records["volume"].tolist()):
                self._session_volume[iid] = self._session_volume.get(iid, 0) + vol
            # Gateway send time of the record that closed these bars: carried in each signal
            # so consumers (and the latency histogram) see the end-to-end delay.
            ts_out = self.pipeline.take_close_ts_out()
            degraded = None if self.source == "databento" else f"{self.source} fallback"
            # Staleness is a wall-clock question; on a data-clock feed the watchdog covers it.
            judge = now_ns if self.cfg.feed.clock == "wall" else 0
            # A snapshot of the bars before the next feed overwrites the ring: one bytes copy
            # (0.7 us) rather than numpy's field-by-field structured copy (7 us).
            bars = np.frombuffer(batch.records.tobytes(), dtype=batch.records.dtype)
            sigs = self.decision.on_bars(bars, now_ns=judge, feed_degraded=degraded)
            # All of the chunk's signals into shared memory and readers woken before the
            # bookkeeping and logging: those are off the consumer's latency path.
            done = [self._publish(sig, ts_out) for sig in sigs]
            if done:
                self.shm.wake()
            for d in done:
                self._after_publish(d)
            published += len(done)
            # The engine keeps every signal for replay reports; a daemon running for weeks
            # must not (shared memory and the log have them).
            self.decision.signals.clear()
        if published or time.monotonic() - self._last_state >= STATE_EVERY_S:
            self._publish_state(now_ns, force_zones=bool(published))
        self.shm.wake()  # a no-op unless something was published above
        return published

    def _publish(self, sig: Any, ts_out: int = 0) -> dict[str, Any]:
        """Writes a signal into shared memory (readers are woken by the caller); returns its dict."""
        d = sig.as_dict()
        pillars = d["pillars"]
        names = ("qmo", "imo", "gann", "astro", "cycle")
        rec: dict[str, Any] = {
            "ts_ns": d["ts"], "instrument_id": d["instrument_id"], "action": d["action"], "targets": d["targets"][:3], "direction": d["direction"],
            "confidence": d["confidence"], "veto": 1 if d["veto"] else 0,
            "pillar_dir": [pillars.get(n, {}).get("direction", 0.0) for n in names],
            "pillar_conf": [pillars.get(n, {}).get("confidence", 0.0) for n in names],
            # The veto reason first: it is what a consumer must see if the text is cut (the
            # builder already puts it first; a signal built elsewhere may not).
            "reason": "; ".join(_veto_first(d["veto"], d["reasons"])),
        }
        for k in ("entry", "stop"):
            if d[k] is not None:  # absent = "no price" in the segment (FLAT has none)
                rec[k] = d[k]
        if ts_out:
            rec["ts_out"] = ts_out
        seq = self.shm.publish(rec)
        # The segment's sequence number, as `aurum tail` and the API show it (`#N`), so a log
        # line and a consumer's record can be matched; the builder's own count is per instrument.
        d["shm_seq"] = seq if isinstance(seq, int) else None
        if ts_out:
            self.pipeline.observe_signal_latency(ts_out)
        return d

    def _after_publish(self, d: dict[str, Any]) -> None:
        """A published signal's metrics and log line."""
        self._last_signal = {"confidence": float(d["confidence"]), "direction": float(d["direction"])}
        self.stats.signals[d["action"]] = self.stats.signals.get(d["action"], 0) + 1
        log.info("signal #%s %s instrument %s entry=%s stop=%s conf=%.2f%s", d.get("shm_seq"), d["action"],
                 d["instrument_id"], d["entry"], d["stop"], d["confidence"], f" veto={d['veto']}" if d["veto"] else "")

    def _publish_state(self, now_ns: int, force_zones: bool = True) -> None:
        self._last_state = time.monotonic()
        fields: dict[str, Any] = {"ts_ns": now_ns, "source": self.source, "ts_out": self.pipeline.last_ts_out,
                                  "feed_state": self.feed_state_now()}
        iid = self._state_instrument()
        if iid is not None:
            top = self.pipeline.last_top(iid)
            fields["instrument_id"] = iid
            if top is not None and top[0] != _native.UNDEF_PRICE and top[3] != _native.UNDEF_PRICE:
                fields.update(bid=top[0] * 1e-9, ask=top[3] * 1e-9)
            fields.update(self._last_trade(iid))
            fields["volume"] = self._session_volume.get(iid, 0)
            if force_zones or iid != self._zones_iid or time.monotonic() - self._zones_at >= ZONES_EVERY_S:
                self._zones_at, self._zones_iid = time.monotonic(), iid
                fields["zones"] = self._active_zones(iid)  # absent: the writer keeps the last list
            score = self.decision.last_score.get(iid)
            if score is not None:
                names = ("qmo", "imo", "gann", "astro", "cycle")
                fields["pillar_dir"] = [score.pillars[n].direction if n in score.pillars else 0.0 for n in names]
                fields["pillar_conf"] = [score.pillars[n].confidence if n in score.pillars else 0.0 for n in names]
        self.shm.update_state(fields)
        self.shm.wake()

    def _state_instrument(self) -> int | None:
        """The instrument the state block shows: of those in the decision's scope, the most
        traded this session (a parent subscription carries every month and the spreads; the
        front month is the one trading), else the first with a book."""
        ids = self.pipeline.book_ids() or list(self.decision.last_score)
        if not ids:
            return None
        scope = self.decision.scope
        in_scope = [i for i in ids if scope.allows(i)] or ids
        if len(in_scope) == 1:
            return in_scope[0]
        # max() keeps the first of equals: with no volume yet, the first book.
        return max(in_scope, key=lambda i: self._session_volume.get(i, 0))

    def _last_trade(self, iid: int) -> dict[str, Any]:
        """The newest trade of ``iid`` still in the trade ring (a few rows back at most)."""
        written = self.pipeline.ring_written("trades")
        cap = len(self._trades)
        for back in range(1, min(written, 64) + 1):
            r = self._trades[(written - back) % cap]
            if int(r["instrument_id"]) == iid:
                return {"last": int(r["price"]) * 1e-9, "market_ts": int(r["ts_event"])}
        return {}

    def _active_zones(self, iid: int) -> list[dict[str, Any]]:
        """The instrument's unbroken iceberg and absorption zones, as many as the state block
        holds (the strongest when there are more)."""
        return self.decision._core.active_zones(iid, MAX_SHM_ZONES)  # type: ignore[no-any-return]

    # --- reload and stop ---------------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: re-read the config; apply weights and signal thresholds. A bad file keeps
        the running settings (and says why). The feed is not touched."""
        if self.config_path is None:
            return False
        try:
            new = load_config(self.config_path)
            self.decision.scorer.set_weights(new.signals.weights)
            cfg = signal_config(new)
        except (ConfigError, ValueError) as e:
            log.error("reload refused, keeping the running settings: %s", e)
            return False
        for b in self.decision._builders.values():
            b.config = cfg
        self.decision.config.signal = cfg
        if new.engines != self.cfg.engines:
            log.warning("engine thresholds changed in %s: they take effect at the next start", self.config_path)
        if new.signals.bar_interval_s != self.cfg.signals.bar_interval_s:
            log.warning("signals.bar_interval_s changed in %s (%g -> %g s): bars keep their length until the next "
                        "start", self.config_path, self.cfg.signals.bar_interval_s, new.signals.bar_interval_s)
            new.signals.bar_interval_s = self.cfg.signals.bar_interval_s
        if new.signals.include_spreads != self.cfg.signals.include_spreads:
            log.warning("signals.include_spreads changed in %s: it takes effect at the next start", self.config_path)
            new.signals.include_spreads = self.cfg.signals.include_spreads
        self.cfg.signals = new.signals
        self.stats.reloads += 1
        log.info("reloaded weights and signal thresholds from %s", self.config_path)
        return True

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self.client is not None:
            self.client.stop()

    def shutdown(self) -> None:
        """Final decisions, state and checkpoint; called once, on the way out. The bar in
        progress is not closed: a decision on part of a bar would publish a signal that the
        whole bar might not give (and that no replay of the journal reproduces)."""
        self.notifier.stopping("checkpointing")
        self._drain_bars(time.time_ns())
        self._publish_state(time.time_ns())  # the final state, not one up to 100 ms old
        self.checkpoint()
        if self.journal is not None:
            try:
                self.journal.close()
            except OSError as e:
                log.error("journal: final close failed, its last file may be cut short: %s", e)
        # A heartbeat of 0: the writer stopped cleanly (readers see it gone at once, rather
        # than alive until the heartbeat ages past their limit).
        self.shm.heartbeat(0)
        log.info("stopped: %s", self.stats)

    # --- the event loop ----------------------------------------------------------------------

    async def run(self) -> int:
        from aurum.feeds.lsg import LsgClient

        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        f = self.cfg.feed
        if self.key is None:
            raise ConfigError("no Databento API key (see aurum doctor)")
        self.client = LsgClient(self.pipeline, self.key, host=f.gateway, port=f.port, dataset=f.dataset,
                                symbols=f.symbols, stype_in=f.stype_in, schemas=f.schemas, snapshot=f.snapshot,
                                heartbeat_interval_s=f.heartbeat_interval_s, connect_attempts=f.connect_attempts,
                                retry_interval_s=f.retry_interval_s, auth_retry=True,
                                backoff_initial_s=f.backoff_initial_s, backoff_max_s=f.backoff_max_s,
                                on_chunk=self.on_chunk, on_hold=self.on_hold, on_give_up=self._on_give_up, on_recovered=self._on_recovered,
                                on_stream_start=self._on_stream_start, journal=self._journal())
        metrics_server = None
        if self.cfg.metrics.enabled:
            from aurum.metrics import make_registry, start_metrics_server

            metrics_server, _ = start_metrics_server(make_registry(self.pipeline, self.metrics_state),
                                                     self.cfg.metrics.host, self.cfg.metrics.port)
        # Today's astro windows before READY (tomorrow's come from the tick): the first bar
        # close would otherwise compute them, 10-60 ms on its signal's path.
        self.decision.prefetch(time.time_ns() - 86_400_000_000_000)
        feed = asyncio.create_task(self.client.run())
        self.notifier.ready(f"streaming {','.join(f.symbols)} from {f.gateway}:{f.port}")
        last_ckpt = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
                self.feed_state = getattr(self.client, "state", "down")
                self.tick()
                if time.monotonic() - last_ckpt >= self.cfg.persistence.checkpoint_every_s:
                    self.checkpoint()
                    last_ckpt = time.monotonic()
                if feed.done():
                    exc = feed.exception()
                    if exc is not None:
                        log.error("feed stopped: %s", exc)
                        # INVALID_SUBSCRIPTION is the config's (feed.symbols, schemas): exit 2,
                        # which the unit does not restart every 2 s; anything else may pass.
                        return 2 if getattr(exc, "code", None) == INVALID_SUBSCRIPTION else 1
                    break
        finally:
            self.fallback.stop()
            self.client.stop()
            try:
                await asyncio.wait_for(feed, timeout=1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                feed.cancel()
            self.shutdown()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
        return 0

    def metrics_state(self) -> dict[str, Any]:
        """What the Prometheus collector reads at scrape time (see ``aurum.metrics.DaemonState``)."""
        st = getattr(self.client, "stats", None)
        feed_state = self.feed_state_now()
        last = self._last_data_ns
        readers = [self.bars, getattr(self.decision, "_flow", None), getattr(self.decision, "_sweeps", None)]
        out: dict[str, Any] = {
            "feed_state": feed_state,
            "source": self.source,
            "reconnects": getattr(st, "reconnects", 0),
            "gaps": getattr(st, "gaps", 0),
            "gap_seconds": getattr(st, "total_gap_s", 0.0),
            "signals": dict(self.stats.signals),
            "decode_errors": getattr(st, "decode_errors", 0),
            "readers_lapped": sum(getattr(r, "lost_total", 0) for r in readers if r is not None),
            "latency": self.pipeline.latency(),
            "rings": {"shm_signals": (int(self.shm.written), int(self.shm.capacity))},
        }
        if last is not None:
            out["last_heartbeat_ns"] = last
        if self._last_signal is not None:
            out["last_signal"] = dict(self._last_signal)
        iid = self._state_instrument()  # the instrument the state block shows
        score = self.decision.last_score.get(iid) if iid is not None else None
        if score is not None:
            out["pillars"] = {n: (p.direction, p.confidence) for n, p in score.pillars.items()}
        return out

    def feed_state_now(self) -> str:
        """The feed in the consumers' vocabulary: one answer for the shared-memory state block
        and the metrics, from the client's own state (never a second old)."""
        state = getattr(self.client, "state", self.feed_state)
        feed_state = {"streaming": "live", "backoff": "recovering", "connecting": "recovering"}.get(state, "down")
        last = self._last_data_ns
        # Live but silent past a heartbeat interval: the gateway would have sent a heartbeat,
        # so the feed is stale (the client's watchdog reconnects 10 s later).
        if feed_state == "live" and last is not None and \
                time.time_ns() - last > (self.cfg.feed.heartbeat_interval_s + 2) * 1_000_000_000:
            feed_state = "stale"
        return feed_state

    def _journal(self) -> Any:
        p = self.cfg.persistence
        if not p.journal_dir:
            return None
        from aurum.journal import FeedJournal

        self.journal = FeedJournal(p.journal_dir, rotate_bytes=p.journal_rotate_mb << 20)
        return self.journal

    def _on_give_up(self) -> None:
        log.error("Databento unreachable after %d attempts; degraded until it recovers", self.cfg.feed.connect_attempts)
        # Whatever was open on the live feed is closed now: its data has stopped.
        for sig in self.decision.force_flat("Databento feed lost", time.time_ns()):
            self._after_publish(self._publish(sig))
        self.decision.signals.clear()
        if self.cfg.fallback.enabled:
            self.source = "yahoo"
            self.fallback.start()
        self._publish_state(time.time_ns())

    def _on_stream_start(self) -> None:
        """A Databento retry's stream is about to reach the pipeline: the fallback stops
        feeding it now. The source stays the fallback's until market data flows."""
        if self.fallback.active:
            log.info("Databento stream starting; fallback paused until market data flows")
            self.fallback.stop()

    def _on_recovered(self) -> None:
        log.info("Databento recovered; leaving the fallback")
        self.fallback.stop()
        self.source = "databento"
        self._publish_state(time.time_ns())


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def main(config_path: str | None) -> int:
    from aurum.apikey import ApiKeyError, load_key

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        cfg = load_config(config_path)
        key = load_key(cfg.feed.key_file)
    except (ConfigError, ApiKeyError) as e:
        log.error("%s", e)
        return 2
    logging.getLogger().setLevel(cfg.log.level)
    for w in cfg.warnings:
        log.warning("config: %s", w)
    log.info("starting: feed %s:%d %s, key %s", cfg.feed.gateway, cfg.feed.port, cfg.feed.symbols, key.masked)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        daemon = Daemon(cfg, key, config_path=config_path)
    except ValueError as e:
        # A setting the native side refused that the config checks did not catch: still a
        # config problem (exit 2, no restart loop), in one line.
        log.error("%s: cannot start: %s", config_path or "default config", e)
        log.debug("details", exc_info=True)
        return 2
    except FileExistsError as e:
        # shm.name names a file that is not ours: a config problem; restarting cannot help.
        log.error("cannot run: %s", e)
        return 2
    except OSError as e:
        log.error("cannot run: %s", e)
        log.debug("details", exc_info=True)
        return 1
    try:
        return int(runner(daemon.run()))
    except OSError as e:
        # The segment (a full /dev/shm, a permission), the metrics port in use, a checkpoint
        # directory: one line that names it; the traceback only at debug level.
        log.error("cannot run: %s", e)
        log.debug("details", exc_info=True)
        return 1


def cli_main() -> int:
    """``aurumd [--config FILE]``: the same as ``aurum run``."""
    import argparse

    ap = argparse.ArgumentParser(prog="aurumd", description="Aurum daemon (same as `aurum run`).")
    ap.add_argument("--config", default=None, help="TOML config (daemon/aurum.toml shows every key)")
    return main(ap.parse_args().config)


__all__ = ["Daemon", "DaemonStats", "cli_main", "main"]

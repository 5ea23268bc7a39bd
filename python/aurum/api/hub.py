"""The API process's one view of the daemon: a single ``ShmReader`` on the segment, the
latest state, a buffer mirroring the signal ring, and change events for the stream.

Everything here runs on the event loop's thread (``ShmReader`` is not thread-safe, and the
reads are a few microseconds of mmap access, so nothing is handed to a thread pool).

Availability, decided on every ``refresh``:
- no segment file -> ``segment_missing``; an unusable one (layout, permissions) ->
  ``segment_unusable``. The reader is reopened at most every ``reopen_every_s``.
- a writer heartbeat further than ``stale_after_s`` from now (the daemon refreshes it about
  every second; a heartbeat in the future means the clock stepped back), a segment a new
  daemon is still initialising, or a state block left locked by a writer that died
  mid-update -> ``daemon_down``. Data endpoints then answer 503 rather than serve old data.
- a daemon restart is followed: the same-size segment re-initialised in place (a new epoch,
  the reader resynchronises) or a new file (a new inode, the reader reopens); the signal
  buffer then starts again from the new daemon's signal 0.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

from aurum.api import views
from aurum.consumer import SegmentNotReady, ShmError, ShmReader, StateBusy, segment_path

# The buffer mirrors the ring, up to this many signals (a ring may hold 2**20).
MAX_BUFFER = 8192
# Longest a refresh waits for the state block's seqlock: an update takes about a microsecond,
# so this only runs out on a writer stopped mid-update, which must not stall the event loop.
STATE_TIMEOUT_S = 0.002


class Unavailable(Exception):
    """The daemon's data cannot be served; ``body()`` is the 503 answer (models.Error)."""

    def __init__(self, error: str, detail: str, segment: str, heartbeat_age_s: float | None = None) -> None:
        super().__init__(detail)
        self.error, self.detail, self.segment, self.heartbeat_age_s = error, detail, segment, heartbeat_age_s

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, "segment": self.segment,
                "heartbeat_age_s": self.heartbeat_age_s}


class ShmHub:
    def __init__(self, name: str, *, stale_after_s: float = 5.0, reopen_every_s: float = 0.25,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.path = segment_path(name)  # a bad name fails here, at start-up
        self.name, self.stale_after_s, self.reopen_every_s, self.clock = name, stale_after_s, reopen_every_s, clock
        self.reader: ShmReader | None = None
        self.state: dict[str, Any] | None = None
        self.signals: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_BUFFER)
        self.head = 0  # the seq of the next signal expected
        self.refreshes = 0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._down: Unavailable | None = Unavailable("segment_missing", self._missing_text(), name)
        self._next_open = 0.0
        self._lost_base = self._resets_base = 0  # from readers already closed
        self._seen_resets = 0
        self._backfill = False  # the first poll of a new reader returns the ring's backlog
        self._market_key: Any = None
        self._zones_key: Any = None
        self._status_key: Any = None

    def _missing_text(self) -> str:
        return (f"shared-memory segment {self.name!r} not found ({self.path}); "
                "is the Aurum daemon running with this shm.name?")

    # -- the reader's lifecycle --------------------------------------------------------------

    def _drop_reader(self) -> None:
        if self.reader is not None:
            self._lost_base += self.reader.lost
            self._resets_base += self.reader.resets
            self.reader.close()
            self.reader = None
        self.state = None

    def _ensure_reader(self) -> None:
        if self.reader is not None:
            if os.path.exists(self.path):
                return
            # The file was removed (daemon uninstalled, /dev/shm cleaned): the mapping we
            # hold would show the dead writer's last data forever.
            self._drop_reader()
            self._down = Unavailable("segment_missing", self._missing_text(), self.name)
        # A missing file is retried on every refresh (one failed open()); anything else at
        # most every reopen_every_s.
        now = time.monotonic()
        if now < self._next_open:
            return
        try:
            # Never wait for a writer mid-initialisation on the event loop: the next refresh
            # looks again.
            r = ShmReader(self.name, from_start=True, ready_timeout=0)
        except FileNotFoundError:
            self._down = Unavailable("segment_missing", self._missing_text(), self.name)
            return
        except SegmentNotReady as e:
            self._down = Unavailable("daemon_down", f"{e}; waiting for the daemon to start", self.name)
            return
        except (ShmError, OSError, ValueError) as e:
            self._next_open = now + self.reopen_every_s
            self._down = Unavailable("segment_unusable", str(e), self.name)
            return
        self.reader = r
        self._new_buffer()
        self._seen_resets = r.resets
        self.head = max(0, r.written - r.capacity)
        self._backfill = True

    def _new_buffer(self) -> None:
        assert self.reader is not None
        self.signals = collections.deque(maxlen=min(self.reader.capacity, MAX_BUFFER))

    # -- polling ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the segment once: new signals into the buffer, the latest state, and events
        to the listeners for whatever changed. Never raises for a segment problem."""
        self.refreshes += 1
        self._ensure_reader()
        r = self.reader
        if r is None:
            self._announce_status()
            return
        now = self.clock()
        try:
            batch, _lost = r.poll()
            if r.resets != self._seen_resets:  # a new daemon: its seqs start again at 0
                self._seen_resets = r.resets
                self._new_buffer()
                self.head = 0
            hb = r.heartbeat_age_s(signed=True)
            state = self.state
            if hb is not None and abs(hb) <= self.stale_after_s:  # a dead writer's state is not served
                try:
                    state = r.state(timeout_s=STATE_TIMEOUT_S)
                except StateBusy:
                    pass  # keep the last copy: a live writer finishes its update by the next refresh
        except (ShmError, OSError, ValueError) as e:
            self._drop_reader()
            self._down = Unavailable("segment_unusable", str(e), self.name)
            self._announce_status()
            return
        self.signals.extend(batch)
        # A new reader's first batch is the ring's backlog: streamed clients get only its
        # latest signal (the rest is in /signals), not a burst of old ones as if new.
        fresh = batch[-1:] if self._backfill else batch
        self._backfill = False
        if batch:
            self.head = batch[-1]["seq"] + 1
        self.state = state
        if r.reinitialising:
            self._down = Unavailable("daemon_down", f"a new daemon is initialising {self.name!r}; waiting for it",
                                     self.name)
        elif hb is None or abs(hb) > self.stale_after_s:
            seen = "never" if hb is None else f"{hb:.1f} s ago" if hb > 0 else \
                f"{-hb:.1f} s in the future (the clock stepped back)"
            self._down = Unavailable(
                "daemon_down", f"the daemon writing {self.name!r} (pid {r.writer_pid}) is not running: last heartbeat "
                f"{seen}, more than {self.stale_after_s:g} s", self.name, None if hb is None else round(abs(hb), 3))
        else:
            self._down = None
        self._announce_status()
        if self._down is not None:
            return
        for s in fresh:
            self._emit({"type": "signal", **views.signal(s, now)})
        if state is not None:
            m = views.market(self.name, state, now, self.stale_after_s)
            key = tuple(v for k, v in m.items() if k not in ("ts_ns", "timestamp", "age_s"))
            if key != self._market_key:
                self._market_key = key
                self._emit({"type": "market", **m})
            zkey = tuple(tuple(sorted(z.items())) for z in state["zones"])
            if zkey != self._zones_key:
                self._zones_key = zkey
                self._emit({"type": "zones", **views.zones(self.name, state, now, self.stale_after_s)})

    def _emit(self, event: dict[str, Any]) -> None:
        for fn in self.listeners:
            fn(event)

    def status(self) -> dict[str, Any]:
        if self._down is not None:
            return {"type": "status", "available": False, **self._down.body()}
        return {"type": "status", "available": True, "error": None, "detail": "ok", "segment": self.name,
                "heartbeat_age_s": None}

    def _announce_status(self) -> None:
        key = None if self._down is None else self._down.error
        if key != self._status_key:
            self._status_key = key
            # After an outage, the next state is news even if it did not change.
            self._market_key = self._zones_key = None
            self._emit(self.status())

    # -- what the endpoints serve ---------------------------------------------------------------

    def require(self) -> ShmReader:
        if self._down is not None or self.reader is None:
            raise self._down or Unavailable("segment_missing", self._missing_text(), self.name)
        return self.reader

    def _require_state(self) -> dict[str, Any]:
        self.require()
        if self.state is None:
            raise Unavailable("no_state", f"the daemon writing {self.name!r} has not published its state yet",
                              self.name)
        return self.state

    def market(self) -> dict[str, Any]:
        return views.market(self.name, self._require_state(), self.clock(), self.stale_after_s)

    def zones(self) -> dict[str, Any]:
        return views.zones(self.name, self._require_state(), self.clock(), self.stale_after_s)

    def latest_signal(self) -> dict[str, Any]:
        r = self.require()
        last = views.signal(self.signals[-1], self.clock()) if self.signals else None
        return {"segment": self.name, "written": r.written, "signal": last}

    def signal_page(self, since: int | None, limit: int) -> dict[str, Any]:
        """Signals with ``seq >= since`` (oldest first), or the latest ``limit``."""
        r = self.require()
        now = self.clock()
        buf = self.signals
        if since is None:
            picked = list(buf)[-limit:]
        else:
            newer = []
            for s in reversed(buf):  # the buffer is in seq order; callers mostly ask for the tail
                if s["seq"] < since:
                    break
                newer.append(s)
            picked = newer[::-1][:limit]
        oldest = buf[0]["seq"] if buf else None
        floor = oldest if oldest is not None else self.head
        missed = max(0, min(floor, self.head) - since) if since is not None else 0
        return {"segment": self.name, "written": r.written, "oldest": oldest, "missed": missed,
                "next": picked[-1]["seq"] + 1 if picked else self.head,
                "signals": [views.signal(s, now) for s in picked]}

    def health(self, ws_clients: int, ws_dropped: int) -> dict[str, Any]:
        r = self.require()
        st = self.state or {}
        feed = st.get("feed_state")
        return {"status": "ok" if feed == "live" else "degraded", "segment": self.name, "daemon_alive": True,
                "writer_pid": r.writer_pid, "heartbeat_age_s": round(r.heartbeat_age_s() or 0.0, 3),
                "stale_after_s": self.stale_after_s,
                "feed_state": None if feed is None else views.label(feed),
                "source": None if "source" not in st else views.label(st["source"]),
                "signals_written": r.written, "reader_lost": self._lost_base + r.lost,
                "reader_resets": self._resets_base + r.resets, "ws_clients": ws_clients, "ws_dropped": ws_dropped}

    def snapshot(self) -> list[dict[str, Any]]:
        """What a new WebSocket client is sent first: status, then market, zones and the
        latest signal if the daemon is up."""
        out = [self.status()]
        if self._down is None and self.state is not None:
            now = self.clock()
            out.append({"type": "market", **views.market(self.name, self.state, now, self.stale_after_s)})
            out.append({"type": "zones", **views.zones(self.name, self.state, now, self.stale_after_s)})
        if self._down is None and self.signals:
            out.append({"type": "signal", **views.signal(self.signals[-1], self.clock())})
        return out

    def close(self) -> None:
        self._drop_reader()
        self._down = Unavailable("segment_missing", self._missing_text(), self.name)

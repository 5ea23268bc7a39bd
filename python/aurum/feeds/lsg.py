"""``LsgClient``: Databento's Live Subscription Gateway straight into the native pipeline.

The handshake (databento.md §1.2-1.8) is done in Python with the shared message classes of
``aurum.gateway.control``: greeting, CRAM challenge, auth line, auth response, subscription lines
(500 symbols a line), ``start_session``. From then on every byte chunk read from the socket goes
to ``pipeline.feed(chunk)`` as it is (a ``memoryview`` of one reused receive buffer): the native
decoder handles the DBN metadata header, records split anywhere, ts_out, and gateway ErrorMsg /
SystemMsg records. No Python object is made per record; ``on_chunk(nbytes, nrecords)`` runs once
per chunk, and ``on_hold()`` at each bar close inside it when the pipeline holds there
(``aurum.feeds.holds``).

Around that: a watchdog (no bytes for ``heartbeat_interval_s + 10`` s = dead connection, as the
official Python client), reconnects with exponential backoff and full jitter (``Backoff``), a
``reset_stream()`` before every new stream so books are rebuilt from the fresh snapshot, a give-up
signal after ``connect_attempts`` consecutive failed attempts (the daemon switches to its fallback
feed) while retrying in the background, and gateway errors classified by code (§1.10). A session
that ends before any market data counts as a failed attempt; recovery is declared when data
flows, not at the handshake.

The key appears only masked (``ApiKey.masked``) in logs, errors and stats. Plain asyncio: runs
unchanged under uvloop. Not thread-safe: call ``stop()`` from the loop that runs ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import random
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aurum.apikey import ApiKey
from aurum.feeds.backoff import Backoff
from aurum.feeds.holds import run_holds
from aurum.feeds.lsg_protocol import (
    LsgAuthError, LsgError, LsgFatalError, LsgSession, LsgStats, _HandshakeError,
)
from aurum.feeds.threads import in_daemon_thread
from aurum.gateway.control import STYPES_IN, AuthRequest, SubscriptionRequest

log = logging.getLogger("aurum.lsg")

LSG_PORT = 13000
SCHEMAS = ("mbo", "mbp-10", "trades")

# ErrorMsg codes (databento.md §1.10). FATAL: retrying cannot help (key, entitlement or request
# problem) -> stop, LsgFatalError. RECONNECT: the gateway closes, but a later session may work ->
# the normal reconnect path. Everything else (4 symbol resolution, 7 skipped records, unknown)
# is logged and the stream continues.
ERROR_CODES = {
    1: "AUTH_FAILED", 2: "API_KEY_DEACTIVATED", 3: "CONNECTION_LIMIT_EXCEEDED",
    4: "SYMBOL_RESOLUTION_FAILED", 5: "INVALID_SUBSCRIPTION", 6: "INTERNAL_ERROR",
    7: "SKIPPED_RECORDS_AFTER_SLOW_READING", 8: "REPLAY_DATA_AGED_OUT", 255: "UNSET",
}
FATAL_ERROR_CODES = frozenset({1, 2, 5, 8})
AUTH_ERROR_CODES = frozenset({1, 2})  # fatal, unless the client retries refused keys (auth_retry)
RECONNECT_ERROR_CODES = frozenset({3, 6})
# ErrorMsg, SymbolMappingMsg, SystemMsg: a session carrying only these is not delivering data.
NON_MARKET_RTYPES = frozenset({0x15, 0x16, 0x17})


def lsg_host(dataset: str) -> str:
    """``GLBX.MDP3`` -> ``glbx-mdp3.lsg.databento.com`` (databento.md §1.1)."""
    return dataset.lower().replace(".", "-") + ".lsg.databento.com"


def _native_decode_error() -> type[BaseException]:
    try:
        from aurum._native import DecodeError
    except ImportError:  # a test double pipeline without the extension
        return ValueError
    return DecodeError


class LsgClient:
    """Streams one dataset from a Live Subscription Gateway into a native ``Pipeline``.

    ``await run()`` connects, streams, reconnects, and returns after ``stop()``; it raises
    ``LsgAuthError`` or ``LsgFatalError`` on a fatal condition (state ``"failed"``).
    """

    def __init__(
        self,
        pipeline: Any,
        key: ApiKey,
        *,
        host: str | None = None,
        port: int = LSG_PORT,
        dataset: str = "GLBX.MDP3",
        symbols: Sequence[str] = ("GC.FUT",),
        stype_in: str = "parent",
        schemas: Sequence[str] = ("mbo",),
        snapshot: bool = True,
        ts_out: bool = True,
        heartbeat_interval_s: int = 30,
        watchdog_grace_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        handshake_timeout_s: float = 30.0,
        connect_attempts: int = 3,
        retry_interval_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        backoff_multiplier: float = 2.0,
        backoff_reset_after_s: float = 10.0,
        rng: random.Random | None = None,
        on_chunk: Callable[[int, int], None] | None = None,
        on_hold: Callable[[], None] | None = None,
        on_give_up: Callable[[], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
        on_stream_start: Callable[[], None] | None = None,
        journal: Any | None = None,
        auth_retry: bool = False,
    ) -> None:
        syms = [s.strip() for s in symbols if s.strip()]
        if not syms:
            raise ValueError("symbols is empty")
        if stype_in not in STYPES_IN:
            raise ValueError(f"stype_in was {stype_in!r}, expected one of {', '.join(STYPES_IN)}")
        bad = [s for s in schemas if s not in SCHEMAS]
        if bad or not schemas:
            raise ValueError(f"schemas were {list(schemas)!r}, expected some of {', '.join(SCHEMAS)}")
        if not 1 <= heartbeat_interval_s <= 1800:
            raise ValueError(f"heartbeat_interval_s was {heartbeat_interval_s}, expected 1..1800")
        if connect_attempts < 1:
            raise ValueError(f"connect_attempts was {connect_attempts}, expected >= 1")
        if not retry_interval_s > 0:
            raise ValueError(f"retry_interval_s was {retry_interval_s}, expected > 0")
        self.pipeline = pipeline
        self.key = key
        self.dataset = dataset
        self.host = host or lsg_host(dataset)
        self.port = port
        self.symbols = tuple(syms)
        self.stype_in = stype_in
        self.schemas = tuple(dict.fromkeys(schemas))
        self.snapshot = snapshot
        self.ts_out = ts_out
        self.heartbeat_interval_s = int(heartbeat_interval_s)
        self.watchdog_s = heartbeat_interval_s + watchdog_grace_s
        self.connect_timeout_s = connect_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.connect_attempts = connect_attempts
        self.retry_interval_s = retry_interval_s
        self.backoff = Backoff(backoff_initial_s, backoff_max_s, backoff_multiplier, rng or random.Random())
        self.backoff_reset_after_s = backoff_reset_after_s
        self.on_chunk = on_chunk
        # Called where a bar closed inside a chunk, when the pipeline holds there
        # (``hold_at_bar_close``; see ``aurum.feeds.holds``), before the rest is processed.
        self.on_hold = on_hold
        self.on_give_up = on_give_up
        self.on_recovered = on_recovered
        # Called while given up, right before a new stream's first byte reaches the pipeline:
        # whatever else feeds it (the fallback) must stop now. Recovery is declared later,
        # once market data flows (on_recovered).
        self.on_stream_start = on_stream_start
        self.journal = journal  # aurum.journal.FeedJournal: raw bytes to rotating .dbn.zst
        # True: a refused key counts as a failed attempt (backoff, give-up, retry) instead of
        # ending run() with LsgAuthError.
        self.auth_retry = auth_retry
        self.stats = LsgStats()
        self.state = "stopped"
        self._decode_error = _native_decode_error()
        self._session: LsgSession | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._gave_up = False
        self._streamed = False  # a stream was started on this pipeline: reset before the next
        self._disconnected_at: float | None = None
        self._fatal: LsgError | None = None
        self._errors_base = 0  # pipeline error_count at the start of the current stream
        self._market_base = 0  # market records the pipeline had processed before this stream
        self._stream_open = False

    @property
    def gateway(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def gave_up(self) -> bool:
        """``connect_attempts`` failed in a row and no stream has delivered data since."""
        return self._gave_up

    @property
    def stream_open(self) -> bool:
        """A stream owns the pipeline: from its handshake until its connection closes."""
        return self._stream_open

    def flush_journal(self) -> None:
        """The journal's written bytes to the OS (the daemon calls it every second)."""
        if self.journal is not None:
            try:
                self.journal.flush()
            except OSError as e:
                self._journal_failed(e)

    def _log(self, level: int, msg: str, *args: Any) -> None:
        log.log(level, "lsg %s key %s: " + msg, self.gateway, self.key.masked, *args)

    # --- public -------------------------------------------------------------------------------

    def stop(self) -> None:
        """End ``run()``: close the connection (if any) and stop retrying."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._session is not None:
            self._session.abort("stopped", "stopped by the client")

    async def run(self) -> None:
        """Connect, stream and reconnect until ``stop()`` (also one called before ``run``).
        A client runs once; make a new one to start again after ``stop()``."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._stopping:
            self.state = "stopped"
            return
        self._fatal = None
        try:
            while not self._stopping:
                self.state = "connecting"
                session = await self._attempt(loop)
                if session is None:
                    if self._stopping:
                        break
                    await self._pause(self._failure_delay())
                    continue
                started = loop.time()
                kind, reason = await session.closed
                self._session = None
                self._stream_open = False
                self.stats._disconnect(kind, reason)
                if self._fatal is not None:
                    raise self._fatal
                self._disconnected_at = loop.time()
                if self._stopping:
                    break
                if not session.established:
                    # Accepted, then closed before any market data (a refusal sent as an
                    # ErrorMsg, a gateway that drops every session): not a recovery.
                    self._on_failed_attempt(f"session ended before any market data ({reason})")
                    await self._pause(self._failure_delay())
                    continue
                self._log(logging.WARNING, "disconnected after %.1f s (%s); reconnecting", loop.time() - started, reason)
                if loop.time() - started >= self.backoff_reset_after_s:
                    self.backoff.reset()
                self.state = "backoff"
                await self._pause(self.backoff.next_delay())
        except LsgError:
            self.state = "failed"
            raise
        finally:
            self._stream_open = False
            if self._session is not None:
                self._session.abort("stopped", "client run ended")
                self._session = None
            if self.state != "failed":
                self.state = "stopped"

    # --- connection attempts ------------------------------------------------------------------

    async def _attempt(self, loop: asyncio.AbstractEventLoop) -> LsgSession | None:
        """One connect + handshake. The session on success; None after a (retryable) failure."""
        self.stats.attempts += 1
        session = LsgSession(self, loop)
        self._session = session
        watchdog: asyncio.Task[None] | None = None
        try:
            await self._connect(loop, session)
            watchdog = loop.create_task(self._watchdog(session))
            session_id = await session.ready  # the watchdog enforces the handshake deadline
        except LsgAuthError as e:
            if watchdog is not None:
                watchdog.cancel()
            self._session = None
            self.stats._disconnect("auth", str(e))
            self._log(logging.ERROR, "authentication failed")
            if not self.auth_retry:
                raise
            # A daemon keeps going: the key may be re-enabled, and the fallback carries on.
            self._on_failed_attempt(f"authentication failed: {e}")
            return None
        except (OSError, asyncio.TimeoutError, _HandshakeError) as e:
            if watchdog is not None:
                watchdog.cancel()
            reason = session.close_reason if session.close_kind == "watchdog" else None
            session.abort("failed", str(e))
            self._session = None
            if self._stopping:
                return None
            what = reason or ("connect timed out" if isinstance(e, asyncio.TimeoutError) else str(e) or type(e).__name__)
            self._on_failed_attempt(what)
            return None
        # Streaming.
        now = loop.time()
        self.stats.connects += 1
        self.stats.session_id = session_id
        if self._disconnected_at is not None:
            gap = now - self._disconnected_at
            self.stats.reconnects += 1
            self.stats.gaps += 1
            self.stats.last_gap_s = gap
            self.stats.total_gap_s += gap
            self._disconnected_at = None
            self._log(logging.WARNING, "reconnected, session %s, gap %.3f s (reconnect %d)",
                      session_id, gap, self.stats.reconnects)
        else:
            self._log(logging.INFO, "connected, session %s, %s %s %s", session_id, ",".join(self.schemas),
                      self.stype_in, ",".join(self.symbols[:5]) + ("..." if len(self.symbols) > 5 else ""))
        self.state = "streaming"
        session.closed.add_done_callback(lambda _f: watchdog.cancel())
        return session

    async def _connect(self, loop: asyncio.AbstractEventLoop, session: LsgSession) -> None:
        """TCP connect within connect_timeout_s; ``stop()`` interrupts it."""
        assert self._wake is not None
        conn = loop.create_task(self._open(loop, session))
        waker = loop.create_task(self._wake.wait())
        try:
            done, _ = await asyncio.wait({conn, waker}, timeout=self.connect_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not conn.done():
                conn.cancel()
        if conn not in done:
            if self._stopping:
                raise ConnectionAbortedError("stopped")
            raise asyncio.TimeoutError()
        conn.result()  # OSError if refused / unreachable

    async def _open(self, loop: asyncio.AbstractEventLoop, session: LsgSession) -> None:
        """Resolve on a thread a stop can abandon (see aurum.feeds.threads), then connect the
        addresses in turn; the loop itself never resolves (its resolver threads are waited
        for at exit)."""
        infos = await in_daemon_thread(socket.getaddrinfo, self.host, self.port, 0, socket.SOCK_STREAM,
                                       name="aurum-lsg-resolve")
        error: OSError | None = None
        for family, kind, proto, _, addr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, addr)
            except OSError as e:
                sock.close()
                error = e
                continue
            except BaseException:
                sock.close()
                raise
            try:
                await loop.create_connection(lambda: session, sock=sock)
            except BaseException:
                sock.close()
                raise
            return
        raise error or OSError(f"{self.host}:{self.port}: no address to connect to")

    def _on_failed_attempt(self, what: str) -> None:
        self.stats.consecutive_failures += 1
        self.stats._disconnect("connect_failed", what)
        n = self.stats.consecutive_failures
        self._log(logging.WARNING, "connection attempt failed (%d in a row): %s", n, what)
        if n >= self.connect_attempts and not self._gave_up:
            self._gave_up = True
            self.stats.gave_up += 1
            self._log(logging.ERROR, "giving up after %d failed attempts; retrying every %.1f s",
                      n, self.retry_interval_s)
            self._call(self.on_give_up)

    def _failure_delay(self) -> float:
        self.state = "backoff"
        return self.retry_interval_s if self._gave_up else self.backoff.next_delay()

    async def _pause(self, delay: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _watchdog(self, session: LsgSession) -> None:
        """Handshake deadline, then: no bytes for heartbeat_interval_s + grace -> dead."""
        loop = session.loop
        while not session.closed.done():
            limit = self.watchdog_s if session.phase == "stream" else self.handshake_timeout_s
            remaining = session.last_rx + limit - loop.time()
            if remaining <= 0:
                self._log(logging.WARNING, "no data for %.1f s: connection considered dead", limit)
                session.abort("watchdog", f"no data for {limit:.1f} s (heartbeat timeout)")
                return
            # Never sleep past a stream deadline: the phase may change while we sleep.
            await asyncio.sleep(min(remaining, self.watchdog_s))

    # --- handshake helpers (called by LsgSession) -----------------------------------------------

    def _auth_request(self, challenge: str) -> AuthRequest:
        return AuthRequest.for_key(
            challenge, self.key.value, self.dataset, encoding="dbn", ts_out=self.ts_out,
            compression="none", heartbeat_interval_s=self.heartbeat_interval_s,
            client=f"aurum-lsg Python/{platform.python_version()}",
        )

    def _auth_error_text(self, error: str | None) -> str:
        text = (error or "no reason given").replace(self.key.value, self.key.masked)
        return f"gateway {self.gateway} refused key {self.key.masked}: {text}"

    def _subscription_lines(self) -> list[SubscriptionRequest]:
        lines: list[SubscriptionRequest] = []
        for sub_id, schema in enumerate(self.schemas):
            lines += SubscriptionRequest.batched(
                schema, self.symbols, stype_in=self.stype_in,
                snapshot=self.snapshot and schema == "mbo", id=sub_id,
            )
        return lines

    def _begin_stream(self) -> None:
        self._stream_open = True
        if self._gave_up:
            self._call(self.on_stream_start)
        if self.journal is not None:
            try:
                self.journal.begin_stream()
            except OSError as e:
                self._journal_failed(e)
        if self._streamed:
            self.pipeline.reset_stream()
        self._streamed = True
        self._errors_base = self.pipeline.error_count
        self._market_base = self._market_records()

    def _journal_failed(self, e: OSError) -> None:
        # A full or failing journal disk must never stop the feed: drop the journal, say so.
        self._log(logging.ERROR, "journal disabled: %s", e)
        journal, self.journal = self.journal, None
        with contextlib.suppress(OSError):
            journal.abandon()

    def _market_records(self) -> int:
        by = self.pipeline.stats()["records_by_rtype"]
        return int(sum(n for rt, n in by.items() if rt not in NON_MARKET_RTYPES))

    def _check_established(self, session: LsgSession) -> None:
        """Until the first market record of a session (stats() costs ~12 us: never per chunk
        of an established session): the gateway counts as back only once data flows."""
        if self._market_records() <= self._market_base:
            return
        session.established = True
        self.stats.consecutive_failures = 0
        if self._gave_up:
            self._gave_up = False
            self.stats.recovered += 1
            self._log(logging.WARNING, "recovered after giving up: market data is flowing")
            self._call(self.on_recovered)

    # --- the stream ---------------------------------------------------------------------------

    def _on_stream(self, session: LsgSession, chunk: memoryview, recv_ns: int = 0) -> None:
        if session.close_kind is not None:
            return  # closing: drop the rest
        try:
            n = self.pipeline.feed(chunk, recv_ns)
        except self._decode_error as e:
            offset = getattr(e, "offset", None)
            # The records before the bad bytes were processed (and may be decided on): the
            # journal keeps them, so a replay of it still gives the live session.
            good = len(chunk) if offset is None else max(0, min(len(chunk), offset - session.stream_bytes))
            self._journal_write(chunk[:good], 0)
            self.stats.decode_errors += 1
            self._log(logging.ERROR, "decode error in session %s at stream offset %s: %s; resetting and reconnecting",
                      session.session_id, offset, e)
            if self.pipeline.held:  # the good records before the error: decided and processed first
                run_holds(self.pipeline, self.on_hold, self._callback_failed)
            self.pipeline.reset_stream()
            session.abort("decode_error", f"decode error at offset {offset}: {e}")
            return
        if self.pipeline.held:
            run_holds(self.pipeline, self.on_hold, self._callback_failed)
        nbytes = len(chunk)
        session.stream_bytes += nbytes
        self._journal_write(chunk, self.pipeline.pending_bytes)
        if not session.established:
            self._check_established(session)
        self.stats.bytes += nbytes
        self.stats.chunks += 1
        self.stats.records += n
        self._check_errors(session)
        if self.on_chunk is not None:
            try:
                self.on_chunk(nbytes, n)
            except Exception:
                self._callback_failed("on_chunk")

    def _journal_write(self, chunk: memoryview, pending: int) -> None:
        if self.journal is not None and len(chunk):
            try:
                self.journal.write(chunk, pending)
            except OSError as e:
                self._journal_failed(e)

    def _check_errors(self, session: LsgSession) -> None:
        # Per chunk: the cheap counter first, the stats dict only when there is something new.
        count = self.pipeline.error_count - self._errors_base
        new = count - session.errors_seen
        if new <= 0:
            return
        session.errors_seen = count
        self.stats.gateway_errors += new
        errors = list(self.pipeline.stats().get("errors", ()))
        for code, text in errors[-new:] if new <= len(errors) else errors:
            code = int(code)
            name = ERROR_CODES.get(code, "UNKNOWN")
            if code in AUTH_ERROR_CODES and self.auth_retry:
                # The key refused inside the stream: as a refusal at the handshake (the daemon
                # keeps retrying on its fallback; the key may be re-enabled).
                self._log(logging.ERROR, "gateway error %d %s: %s; retrying as a refused key", code, name, text)
                session.abort("auth", f"gateway error {code} {name}")
                return
            if code in FATAL_ERROR_CODES:
                self._log(logging.ERROR, "fatal gateway error %d %s: %s", code, name, text)
                self._fatal = LsgFatalError(
                    code, text, f"gateway {self.gateway} (key {self.key.masked}) sent fatal error {code} {name}: {text}"
                )
                self._stopping = True
                session.abort("fatal", f"gateway error {code} {name}")
                return
            level = logging.WARNING if code in RECONNECT_ERROR_CODES else logging.INFO
            self._log(level, "gateway error %d %s: %s", code, name, text)

    def _call(self, cb: Callable[[], None] | None) -> None:
        if cb is None:
            return
        try:
            cb()
        except Exception:
            self._callback_failed(getattr(cb, "__name__", "callback"))

    def _callback_failed(self, name: str) -> None:
        self.stats.callback_errors += 1
        n = self.stats.callback_errors
        if n <= 3 or n % 1000 == 0:
            log.exception("lsg %s: %s raised (callback error %d)", self.gateway, name, n)


__all__ = [
    "ERROR_CODES", "FATAL_ERROR_CODES", "LSG_PORT", "LsgAuthError", "LsgClient", "LsgError",
    "LsgFatalError", "LsgStats", "RECONNECT_ERROR_CODES", "SCHEMAS", "lsg_host",
]

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
feed) while retrying in the background, and gateway errors classified by code (§1.10).

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aurum.apikey import ApiKey
from aurum.feeds.backoff import Backoff
from aurum.feeds.holds import run_holds
from aurum.gateway.control import (
    STYPES_IN, AuthRequest, AuthResponse, Challenge, ControlError, Greeting, SessionStart,
    SubscriptionRequest, parse_server_line,
)

log = logging.getLogger("aurum.lsg")

LSG_PORT = 13000
SCHEMAS = ("mbo", "mbp-10", "trades")
READ_BUFFER = 1 << 18  # 256 KiB: one read hands the decoder up to this much
MAX_HANDSHAKE_BYTES = 1 << 16

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
RECONNECT_ERROR_CODES = frozenset({3, 6})


def lsg_host(dataset: str) -> str:
    """``GLBX.MDP3`` -> ``glbx-mdp3.lsg.databento.com`` (databento.md §1.1)."""
    return dataset.lower().replace(".", "-") + ".lsg.databento.com"


def _native_decode_error() -> type[BaseException]:
    try:
        from aurum._native import DecodeError
    except ImportError:  # a test double pipeline without the extension
        return ValueError
    return DecodeError


class LsgError(Exception):
    """Base of the client's errors."""


class LsgAuthError(LsgError):
    """The gateway refused the key (``success=0``). Fatal: retrying cannot help."""


class LsgFatalError(LsgError):
    """A fatal gateway ErrorMsg (auth, entitlement, invalid subscription...). ``code`` is its code."""

    def __init__(self, code: int, text: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = text


class _HandshakeError(LsgError):
    """A gateway line that does not parse, or no handshake in time: a failed attempt."""


@dataclass
class LsgStats:
    connects: int = 0  # handshakes that reached start_session
    reconnects: int = 0  # connects after a stream was lost
    attempts: int = 0  # connection attempts, successful or not
    consecutive_failures: int = 0  # failed attempts since the last successful one
    disconnects: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    last_disconnect: str | None = None  # the last reason, in full
    bytes: int = 0  # stream bytes fed to the pipeline (after the handshake)
    chunks: int = 0
    records: int = 0  # records the pipeline reported for those chunks
    last_gap_s: float | None = None  # disconnected -> streaming again, the last time
    total_gap_s: float = 0.0
    gaps: int = 0
    decode_errors: int = 0
    gateway_errors: int = 0  # ErrorMsg records seen
    gave_up: int = 0  # times on_give_up fired
    recovered: int = 0  # times on_recovered fired
    callback_errors: int = 0
    session_id: str | None = None

    def _disconnect(self, kind: str, reason: str) -> None:
        self.disconnects[kind] = self.disconnects.get(kind, 0) + 1
        self.last_disconnect = reason


class _Session(asyncio.BufferedProtocol):
    """One TCP connection: the handshake, then raw chunks to the client."""

    def __init__(self, client: LsgClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.buf = bytearray(READ_BUFFER)
        self.view = memoryview(self.buf)
        self.pending = bytearray()  # handshake bytes not yet split into lines
        self.phase = "greeting"  # greeting -> challenge -> auth -> stream
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[str] = loop.create_future()  # session id, after start_session
        # A failed handshake nobody awaits any more must not warn "exception never retrieved".
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closed: asyncio.Future[tuple[str, str]] = loop.create_future()  # (kind, reason)
        self.last_rx = loop.time()
        self.close_kind: str | None = None
        self.close_reason: str | None = None
        self.fatal: LsgFatalError | None = None
        self.errors_seen = 0
        self.session_id: str | None = None  # the gateway's, once authenticated: names it in logs

    # - asyncio callbacks -

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.last_rx = self.loop.time()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.last_rx = self.loop.time()
        if self.phase == "stream":
            # The read time, so the pipeline can time socket read -> processed natively.
            self.client._on_stream(self, self.view[:nbytes], time.time_ns())
        else:
            self._handshake(bytes(self.view[:nbytes]))

    def eof_received(self) -> bool:
        self.abort("eof", "gateway closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_kind is None:
            self.close_kind = "lost" if exc else "eof"
            self.close_reason = f"connection lost: {exc}" if exc else "gateway closed the connection"
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.close_reason))
        if not self.closed.done():
            self.closed.set_result((self.close_kind, self.close_reason or ""))

    # - control -

    def abort(self, kind: str, reason: str) -> None:
        """Close now with this reason (the first reason given wins)."""
        if self.close_kind is None:
            self.close_kind, self.close_reason = kind, reason
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException, kind: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        self.abort(kind, str(exc))

    # - handshake -

    def _handshake(self, data: bytes) -> None:
        self.pending += data
        while self.phase != "stream":
            end = self.pending.find(b"\n")
            if end < 0:
                if len(self.pending) > MAX_HANDSHAKE_BYTES:
                    self._fail(_HandshakeError(f"gateway line over {MAX_HANDSHAKE_BYTES} bytes"), "protocol")
                return
            line = bytes(self.pending[: end + 1])
            del self.pending[: end + 1]
            try:
                self._on_line(line)
            except LsgAuthError as e:
                self._fail(e, "auth")
                return
            except ControlError as e:
                self._fail(_HandshakeError(f"bad gateway line in phase {self.phase}: {e}"), "protocol")
                return
        if self.pending:  # stream bytes that came with the last handshake line
            rest = bytes(self.pending)
            self.pending.clear()
            self.client._on_stream(self, memoryview(rest))

    def _on_line(self, line: bytes) -> None:
        msg = parse_server_line(line)
        c = self.client
        if self.phase == "greeting":
            if not isinstance(msg, Greeting):
                raise ControlError(f"expected the greeting, got {type(msg).__name__}")
            self.phase = "challenge"
        elif self.phase == "challenge":
            if not isinstance(msg, Challenge):
                raise ControlError(f"expected the CRAM challenge, got {type(msg).__name__}")
            self._write(bytes(c._auth_request(msg.cram)))
            self.phase = "auth"
        elif self.phase == "auth":
            if not isinstance(msg, AuthResponse):
                raise ControlError(f"expected the auth response, got {type(msg).__name__}")
            if not msg.success:
                raise LsgAuthError(c._auth_error_text(msg.error))
            c._begin_stream()  # reset_stream before any byte of the new stream
            self._write(b"".join(bytes(r) for r in c._subscription_lines()) + bytes(SessionStart()))
            self.phase = "stream"
            self.session_id = msg.session_id or ""
            self.ready.set_result(self.session_id)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


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
        self.journal = journal  # aurum.journal.FeedJournal: raw bytes to rotating .dbn.zst
        # True: a refused key counts as a failed attempt (backoff, give-up, retry) instead of
        # ending run() with LsgAuthError.
        self.auth_retry = auth_retry
        self.stats = LsgStats()
        self.state = "stopped"
        self._decode_error = _native_decode_error()
        self._session: _Session | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._gave_up = False
        self._streamed = False  # a stream was started on this pipeline: reset before the next
        self._disconnected_at: float | None = None
        self._fatal: LsgError | None = None
        self._errors_base = 0  # pipeline error_count at the start of the current stream

    @property
    def gateway(self) -> str:
        return f"{self.host}:{self.port}"

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
                self.stats._disconnect(kind, reason)
                if self._fatal is not None:
                    raise self._fatal
                self._disconnected_at = loop.time()
                if self._stopping:
                    break
                self._log(logging.WARNING, "disconnected after %.1f s (%s); reconnecting", loop.time() - started, reason)
                if loop.time() - started >= self.backoff_reset_after_s:
                    self.backoff.reset()
                self.state = "backoff"
                await self._pause(self.backoff.next_delay())
        except LsgError:
            self.state = "failed"
            raise
        finally:
            if self._session is not None:
                self._session.abort("stopped", "client run ended")
                self._session = None
            if self.state != "failed":
                self.state = "stopped"

    # --- connection attempts ------------------------------------------------------------------

    async def _attempt(self, loop: asyncio.AbstractEventLoop) -> _Session | None:
        """One connect + handshake. The session on success; None after a (retryable) failure."""
        self.stats.attempts += 1
        session = _Session(self, loop)
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
        self.stats.consecutive_failures = 0
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
        if self._gave_up:
            self._gave_up = False
            self.stats.recovered += 1
            self._log(logging.WARNING, "recovered after giving up")
            self._call(self.on_recovered)
        session.closed.add_done_callback(lambda _f: watchdog.cancel())
        return session

    async def _connect(self, loop: asyncio.AbstractEventLoop, session: _Session) -> None:
        """TCP connect within connect_timeout_s; ``stop()`` interrupts it."""
        assert self._wake is not None
        conn = loop.create_task(loop.create_connection(lambda: session, self.host, self.port))
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

    async def _watchdog(self, session: _Session) -> None:
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

    # --- handshake helpers (called by _Session) -----------------------------------------------

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
        if self.journal is not None:
            self.journal.begin_stream()
        if self._streamed:
            self.pipeline.reset_stream()
        self._streamed = True
        self._errors_base = self.pipeline.error_count

    # --- the stream ---------------------------------------------------------------------------

    def _on_stream(self, session: _Session, chunk: memoryview, recv_ns: int = 0) -> None:
        if session.close_kind is not None:
            return  # closing: drop the rest
        try:
            n = self.pipeline.feed(chunk, recv_ns)
        except self._decode_error as e:
            offset = getattr(e, "offset", None)
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
        if self.journal is not None:
            try:
                self.journal.write(chunk, self.pipeline.pending_bytes)
            except OSError as e:  # a full disk must not stop the feed: drop the journal, say so
                self._log(logging.ERROR, "journal disabled: %s", e)
                self.journal = None
        self.stats.bytes += nbytes
        self.stats.chunks += 1
        self.stats.records += n
        self._check_errors(session)
        if self.on_chunk is not None:
            try:
                self.on_chunk(nbytes, n)
            except Exception:
                self._callback_failed("on_chunk")

    def _check_errors(self, session: _Session) -> None:
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

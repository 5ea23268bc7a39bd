"""The Live Subscription Gateway client's connection: one ``LsgSession`` per TCP connection
(the handshake lines, then raw stream chunks handed to its ``LsgClient``), the client's
errors and its statistics. Split from ``lsg.py`` as databento-python splits ``live/protocol``
from ``live/session``: this part knows the wire, the client knows what to do with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aurum.gateway.control import AuthResponse, Challenge, ControlError, Greeting, SessionStart, parse_server_line

if TYPE_CHECKING:
    from aurum.feeds.lsg import LsgClient

READ_BUFFER = 1 << 18  # 256 KiB: one read hands the decoder up to this much
MAX_HANDSHAKE_BYTES = 1 << 16


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


class LsgSession(asyncio.BufferedProtocol):
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
        # Market data has flowed (see LsgClient._check_established): only then is the gateway
        # back. A session that ends before that counts as a failed connection attempt.
        self.established = False
        self.stream_bytes = 0  # stream bytes fed before the current chunk (decode error offsets)

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

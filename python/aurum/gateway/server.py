"""The asyncio gateway: one TCP server, one ``Session`` per client connection.

A session follows databento.md §1-2: greeting and CRAM challenge, the auth line, subscription
lines until ``start_session``, then one DBN v3 metadata header and records until the connection
closes. All binary output of a session goes through ``Session._write``: that is where zstd,
byte-level faults, throttling and back-pressure (``await drain()``, never an unbounded buffer)
live, under one lock so a heartbeat can never land inside a half-written batch.

Keys never reach a log line or an error text: the log shows ``mask_key(key)`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aurum.gateway import records as R
from aurum.gateway.assembly import SubscriptionAssembler
from aurum.gateway.control import (
    AuthRequest, AuthResponse, Challenge, ControlError, Greeting, SessionStart, SubscriptionRequest,
    mask_key, parse_client_line,
)
from aurum.gateway.faults import Fault, FaultPlan
from aurum.gateway.keys import GatewayError, KeyStore
from aurum.gateway.sources import (
    BatchKind, RecordBatch, Source, Subscription, SymbolTable, resolve_subscription, subscription_mask,
    validate_subscription,
)

log = logging.getLogger("aurum.gateway")

LSG_VERSION = "aurum-0.1"
MAX_LINE_BYTES = 1 << 20
WRITE_HIGH_WATER = 1 << 20  # bytes queued in the transport before drain() waits
DEFAULT_HEARTBEAT_S = 30
HEARTBEAT_RANGE = (1, 1800)  # the docs say 5..1800; 1 is allowed so tests can be quick


class _Close(Exception):
    """End the session now; whatever had to be sent has been sent."""


@dataclass
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 13000
    lsg_version: str = LSG_VERSION
    at_end: str = "close"  # "close": close sessions when the source ends; "idle": keep them open
    faults: FaultPlan = field(default_factory=FaultPlan)
    slow_reader_lag_s: float = 2.0
    auth_timeout_s: float = 30.0


class Gateway:
    def __init__(self, config: GatewayConfig, source: Source, keys: KeyStore) -> None:
        self.config = config
        self.source = source
        self.keys = keys
        self.sessions: dict[int, Session] = {}
        self.next_faults = FaultPlan()  # armed by the admin `fault` command, for one session
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self.port = config.port

    async def start(self) -> int:
        try:
            self._server = await asyncio.start_server(
                self._on_client, self.config.host, self.config.port, limit=MAX_LINE_BYTES
            )
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise GatewayError(
                    f"port {self.config.port} on {self.config.host} is already in use"
                ) from None
            raise GatewayError(f"cannot listen on {self.config.host}:{self.config.port}: {e.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions.values()):
            s.abort()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sid = next(self._ids)
        faults = self.config.faults.combined(self.next_faults)
        self.next_faults = FaultPlan()
        session = Session(self, sid, reader, writer, faults)
        self.sessions[sid] = session
        try:
            await session.run()
        finally:
            self.sessions.pop(sid, None)

    # - admin control (stdin lines) -

    def admin(self, line: str) -> str:
        # Any whitespace separates the command from its argument: a key after a tab must
        # never come back in an "unknown command" echo.
        cmd, arg = (line.split(None, 1) + ["", ""])[:2]
        arg = arg.strip()
        try:
            if cmd == "ping":
                return "ok pong"
            if cmd == "fault":
                self.next_faults = self.next_faults.combined(FaultPlan.parse(arg.split()))
                return f"ok fault {self.next_faults}"
            if cmd == "clear_faults":
                self.next_faults = FaultPlan()
                return "ok"
            if cmd == "add_key":
                self.keys.add(arg)
                return f"ok key {mask_key(arg)}"
            if cmd == "del_key":
                return f"ok removed {mask_key(arg)}" if self.keys.remove(arg) else f"error no key {mask_key(arg)}"
            if cmd == "sessions":
                # `ok sessions N id:records:bytes ...` (bytes = wire bytes after the handshake)
                detail = " ".join(f"{s.id}:{s.records_out}:{s.bytes_out}" for s in self.sessions.values())
                return f"ok sessions {len(self.sessions)} {detail}".rstrip()
            if cmd == "disconnect":
                for s in list(self.sessions.values()):
                    if arg in ("", "all") or arg == str(s.id):
                        s.abort()
                return "ok"
        except ValueError as e:
            return f"error {e}"
        return f"error unknown command {cmd!r}"


class Session:
    def __init__(
        self, gateway: Gateway, sid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        faults: FaultPlan,
    ) -> None:
        self.gw = gateway
        self.id = sid
        self.reader = reader
        self.writer = writer
        self.faults = faults
        self.loop = asyncio.get_running_loop()
        self.peer = writer.get_extra_info("peername")
        self.auth: AuthRequest | None = None
        self.subs: list[Subscription] = []
        self._assembler = SubscriptionAssembler()  # before and after start_session: one symbol budget
        self.symbols = SymbolTable(gateway.source.instruments(), gateway.source.clock())
        self.heartbeat_s = DEFAULT_HEARTBEAT_S
        self.clock_ts = gateway.source.clock()  # data time, the ts_event of gateway records
        self.records_out = 0  # data records sent
        self.bytes_out = 0  # wire bytes after the handshake
        self.last_send = self.loop.time()
        self.stalled = False
        self.streaming = False
        self.stream_start: int | None = None
        self._compressor: Any = None  # zstandard.ZstdCompressionObj when compression=zstd
        self._wlock = asyncio.Lock()
        self._mapped: set[tuple[str, str, int]] = set()
        self._slow_episode = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if faults.sndbuf is not None:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, faults.sndbuf)
            writer.transport.set_write_buffer_limits(high=faults.sndbuf)

    def abort(self) -> None:
        self._closed = True
        self.writer.transport.abort()

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        log.info("session %d: connected from %s:%s", self.id, *(self.peer or ("?", "?"))[:2])
        if self.faults:
            log.info("session %d: faults %s", self.id, self.faults)
        try:
            if not await self._handshake():
                return
            pending = await self._read_subscriptions()
            if pending is None:
                return
            await self._start(pending)
            await self._stream()
            if self.gw.config.at_end == "idle" and not self._closed:
                log.info("session %d: end of data after %d records; idle until the client leaves", self.id, self.records_out)
                await self._wait_for_client()
            await self._finish()
        except _Close as e:
            log.info("session %d: closing: %s", self.id, e)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.info("session %d: connection lost: %s", self.id, type(e).__name__)
        except (ValueError, asyncio.LimitOverrunError) as e:
            # StreamReader.readline raises ValueError for a line over MAX_LINE_BYTES.
            log.warning("session %d: protocol error: %s", self.id, e)
        except asyncio.CancelledError:
            pass
        except Exception:
            # One broken session must not take the gateway down; tell the client if we can.
            log.exception("session %d: internal error", self.id)
            if self.streaming and not self.writer.transport.is_closing():
                with contextlib.suppress(Exception):  # already failing; closing below
                    await self._send_gateway(R.error_msg(6, "Internal gateway error", self.clock_ts))
        finally:
            for task in self._tasks:
                task.cancel()
            if not self.writer.transport.is_closing():
                self.writer.close()
            log.info("session %d: ended after %d records, %d bytes", self.id, self.records_out, self.bytes_out)

    async def _readline(self, timeout: float | None) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise _Close("client closed the connection")
        return line

    async def _handshake(self) -> bool:
        challenge = Challenge.random()
        # Greeting and challenge in one write: the clients handle both arriving together.
        self.writer.write(bytes(Greeting(self.gw.config.lsg_version)) + bytes(challenge))
        await self.writer.drain()
        try:
            line = await self._readline(self.gw.config.auth_timeout_s)
        except TimeoutError:
            raise _Close("no auth request in time") from None
        try:
            req = AuthRequest.parse(line)
        except ControlError as e:
            await self._reject(f"Invalid authentication request: {e}")
            return False
        key = self.gw.keys.match(challenge.cram, req)
        if key is None:
            log.info("session %d: authentication failed", self.id)
            await self._reject("Authentication failed.")
            return False
        if req.dataset != self.gw.source.dataset:
            await self._reject(f"Dataset {req.dataset} is not served here (this gateway serves {self.gw.source.dataset}).")
            return False
        hb = req.heartbeat_interval_s
        if hb is not None and not HEARTBEAT_RANGE[0] <= hb <= HEARTBEAT_RANGE[1]:
            await self._reject(f"heartbeat_interval_s was {hb}, expected {HEARTBEAT_RANGE[0]}..{HEARTBEAT_RANGE[1]}")
            return False
        self.auth = req
        self.heartbeat_s = hb if hb is not None else DEFAULT_HEARTBEAT_S
        self.writer.write(bytes(AuthResponse(True, session_id=str(self.id))))
        await self.writer.drain()
        log.info(
            "session %d: authenticated key %s, ts_out=%d compression=%s heartbeat=%ds slow_reader=%s client=%s",
            self.id, mask_key(key), req.ts_out, req.compression, self.heartbeat_s,
            req.slow_reader_behavior or "skip", req.client,
        )
        return True

    async def _reject(self, error: str) -> None:
        self.writer.write(bytes(AuthResponse(False, error=error.replace("|", "/"))))
        await self.writer.drain()

    async def _read_subscriptions(self) -> list[SubscriptionRequest] | None:
        """Subscription lines until start_session; chunks of one id are joined until is_last."""
        done: list[SubscriptionRequest] = []
        for n in itertools.count(1):
            line = await self._readline(None)
            if n % 64 == 0:
                await asyncio.sleep(0)  # buffered lines never yield: let other sessions run
            try:
                msg = parse_client_line(line)
            except ControlError as e:
                await self._invalid(f"Invalid subscription request: {e}")
            if isinstance(msg, SessionStart):
                if self._assembler.open_ids:
                    await self._invalid(f"subscription {self._assembler.open_ids[0]} never got is_last=1")
                return done
            if not isinstance(msg, SubscriptionRequest):
                await self._invalid("unexpected authentication request after authentication")
            assert isinstance(msg, SubscriptionRequest)
            reason = validate_subscription(msg)
            if reason is not None:
                await self._invalid(f"Invalid subscription request {msg.id}: {reason}")
            try:
                whole = self._assembler.add(msg)
            except ControlError as e:
                await self._invalid(f"Invalid subscription request {msg.id}: {e}")
            if whole is not None:
                done.append(whole)
        raise AssertionError("unreachable")

    async def _invalid(self, error: str) -> None:
        """INVALID_SUBSCRIPTION (code 5) is fatal: header (if not sent yet), ErrorMsg, close."""
        log.info("session %d: %s", self.id, error)
        if not self.streaming:
            self._open_stream()
            await self._write(R.metadata_header(self.gw.source.dataset, schema=None, stype_in=None,
                                                start=self.clock_ts, ts_out=self._ts_out))
        await self._send_gateway(R.error_msg(5, error, self.clock_ts))
        await self._finish()
        raise _Close("invalid subscription")

    @property
    def _ts_out(self) -> bool:
        return bool(self.auth and self.auth.ts_out)

    def _open_stream(self) -> None:
        self.streaming = True
        if self.auth is not None and self.auth.compression == "zstd":
            import zstandard

            # One zstd stream for everything after the handshake; flushed per write.
            self._compressor = zstandard.ZstdCompressor(level=1).compressobj()

    async def _announce(self, sub: Subscription) -> None:
        """Per-symbol resolution errors, a mapping per instrument (before its data), the ack."""
        req = sub.request
        for n, (sym, why) in enumerate(sub.failed):
            await self._send_gateway(
                R.error_msg(4, f"Failed to resolve symbol {sym}: {why}", self.clock_ts, is_last=n == len(sub.failed) - 1)
            )
        for sym, iid in sub.mappings:
            key = (req.stype_in, sym, iid)
            if key in self._mapped:
                continue
            self._mapped.add(key)
            await self._send_gateway(R.symbol_mapping(
                iid, stype_in=req.stype_in, stype_in_symbol=sym,
                stype_out_symbol=self.symbols.raw_symbol(iid), ts_event=self.clock_ts,
            ))
        await self._send_gateway(
            R.system_msg(1, f"Subscription request {req.id} for {req.schema} data succeeded", self.clock_ts)
        )
        log.info(
            "session %d: subscription %s: %s %s %d symbol(s) -> %d instrument(s), %d unresolved%s%s",
            self.id, req.id, req.schema, req.stype_in, len(req.symbols), len(sub.ids), len(sub.failed),
            f", start={req.start}" if req.start is not None else "", ", snapshot" if req.snapshot else "",
        )

    async def _start(self, pending: list[SubscriptionRequest]) -> None:
        starts = [r.start for r in pending if r.start is not None]
        schemas = {r.schema for r in pending}
        stypes = {r.stype_in for r in pending}
        self.stream_start = min(starts) if starts else None
        if self.stream_start is not None:
            self.clock_ts = self.stream_start
        self._open_stream()
        await self._write(R.metadata_header(
            self.gw.source.dataset,
            schema=schemas.pop() if len(schemas) == 1 else None,
            stype_in=stypes.pop() if len(stypes) == 1 else None,
            start=self.clock_ts, ts_out=self._ts_out,
        ))
        for req in pending:
            sub = resolve_subscription(self.symbols, req)
            self.subs.append(sub)
            await self._announce(sub)
        self._tasks.append(asyncio.create_task(self._heartbeats()))
        self._tasks.append(asyncio.create_task(self._control_after_start()))

    async def _control_after_start(self) -> None:
        """Lines after start_session: more (real-time) subscriptions, or the client leaving."""
        try:
            while True:
                try:
                    line = await self.reader.readline()
                except (ValueError, asyncio.LimitOverrunError):  # a line over MAX_LINE_BYTES
                    log.warning("session %d: control line over %d bytes after start_session", self.id, MAX_LINE_BYTES)
                    await self._send_gateway(R.error_msg(
                        5, f"Invalid subscription request: control line over {MAX_LINE_BYTES} bytes", self.clock_ts))
                    self.abort()
                    return
                await asyncio.sleep(0)  # buffered lines never yield: the stream goes on meanwhile
                if not line:
                    self._closed = True
                    self.writer.transport.close()
                    return
                try:
                    msg = parse_client_line(line)
                    if not isinstance(msg, SubscriptionRequest):
                        continue  # a repeated start_session is harmless
                    reason = validate_subscription(msg)
                    if reason is None and (msg.start is not None or msg.snapshot):
                        reason = "start and snapshot are not supported after start_session on this gateway"
                    if reason is not None:
                        raise ControlError(reason)
                    whole = self._assembler.add(msg)
                except ControlError as e:
                    log.info("session %d: invalid subscription after start: %s", self.id, e)
                    await self._send_gateway(R.error_msg(5, f"Invalid subscription request: {e}", self.clock_ts))
                    self.abort()
                    return
                if whole is None:
                    continue
                msg = whole
                # The filter takes the subscription only after its mappings have gone out, so
                # no record precedes its mapping.
                sub = resolve_subscription(self.symbols, msg)
                await self._announce(sub)
                self.subs.append(sub)
        except (ConnectionError, _Close):
            return

    async def _wait_for_client(self) -> None:
        while not self._closed and not self.writer.transport.is_closing():
            await asyncio.sleep(0.2)

    async def _finish(self) -> None:
        """Graceful end: finish the zstd frame, flush, close."""
        if self._compressor is not None and not self.writer.transport.is_closing():
            import zstandard

            async with self._wlock:
                tail = self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
                self._compressor = None
                if tail:
                    self.writer.write(tail)
        if not self.writer.transport.is_closing():
            try:
                await self.writer.drain()
            except ConnectionError:
                pass
            self.writer.close()

    # --- the record stream --------------------------------------------------------------------

    async def _stream(self) -> None:
        snapshot_ids: set[int] = set()
        for sub in self.subs:
            if sub.request.snapshot:
                snapshot_ids.update(sub.ids.tolist())
        had_history = False
        replay_done = self.stream_start is None
        async for batch in self.gw.source.stream(start=self.stream_start, snapshot_ids=snapshot_ids):
            if self._closed:
                return
            if batch.kind is BatchKind.HISTORICAL:
                had_history = True
            elif not replay_done:
                replay_done = True
                if had_history:
                    await self._send_gateway(R.system_msg(3, "Finished replay", self.clock_ts))
            await self._send_batch(batch)
        if not replay_done and had_history:
            await self._send_gateway(R.system_msg(3, "Finished replay", self.clock_ts))

    async def _send_batch(self, batch: RecordBatch) -> None:
        mask = subscription_mask(self.subs, batch)
        if batch.due is not None:
            mask = await self._slow_reader(batch, mask)
        if not mask.any():
            return
        payload: bytes | np.ndarray
        if mask.all():
            payload, lengths = batch.data, batch.lengths
        else:
            payload = R.gather(batch.data, batch.offsets[mask], batch.lengths[mask])
            lengths = batch.lengths[mask]
        if self._ts_out:
            frame = R.TsOutFrame(payload, lengths)
            # Stamped after the framing work, right before the write: ts_out is the send time.
            payload, lengths = frame.stamp(time.time_ns()), frame.lengths
        await self._send_records(payload, lengths)
        self.clock_ts = int(batch.ts[-1])

    async def _slow_reader(self, batch: RecordBatch, mask: np.ndarray) -> np.ndarray:
        """Paced sessions that fall behind: ``skip`` drops MBP/BBO records and says so with an
        ErrorMsg code 7; ``warn`` (and skip sessions with nothing skippable) send SystemMsg
        code 2. One message per episode; an episode ends when the lag halves below the limit."""
        assert batch.due is not None
        lag = self.loop.time() - batch.due
        limit = self.gw.config.slow_reader_lag_s
        if lag < limit:
            if lag < limit / 2:
                self._slow_episode = False
            return mask
        behavior = (self.auth.slow_reader_behavior if self.auth else None) or "skip"
        dropped = 0
        if behavior == "skip":
            skippable = np.isin(batch.schemas, [R.SCHEMA_CODES[s] for s in R.SKIPPABLE_SCHEMAS])
            drop = mask & skippable
            dropped = int(drop.sum())
            mask = mask & ~skippable
        if not self._slow_episode:
            self._slow_episode = True
            if dropped:
                msg = R.error_msg(7, f"Skipped records after slow reading: {lag:.1f} s behind", self.clock_ts)
            else:
                msg = R.system_msg(2, f"Warning: slow reading, {lag:.1f} s behind", self.clock_ts)
            await self._send_gateway(msg)
        return mask

    async def _send_records(self, payload: bytes | np.ndarray, lengths: np.ndarray) -> None:
        """Data records, with the record-count faults fired at their exact record."""
        while len(lengths):
            fault = self.faults.next_record_fault()
            k = None if fault is None else fault.at - self.records_out
            if fault is None or k is None or k >= len(lengths):
                await self._write(payload)
                self.records_out += len(lengths)
                return
            cut = int(lengths[: max(k, 0)].sum())
            if cut:
                await self._write(payload[:cut])
                self.records_out += k
            payload, lengths = payload[cut:], lengths[max(k, 0):]
            self.faults.mark_fired()
            await self._fire(fault, payload, lengths)

    async def _fire(self, fault: Fault, payload: bytes | np.ndarray, lengths: np.ndarray) -> None:
        log.info("session %d: fault %s after %d records", self.id, fault, self.records_out)
        if fault.kind == "cut":
            half = int(lengths[0]) // 2 if len(lengths) else 0
            await self._write(payload[:half])
            raise _Close(f"fault {fault}")
        if fault.kind == "stall":
            self.stalled = True
            try:
                await asyncio.sleep(fault.value)
            finally:
                self.stalled = False
        elif fault.kind == "garbage":
            await self._write(bytes(int(fault.value)))
        elif fault.kind == "error":
            await self._send_gateway(R.error_msg(int(fault.value), f"Injected fault: error code {int(fault.value)}", self.clock_ts))
            await self._finish()
            raise _Close(f"fault {fault}")

    # --- output -------------------------------------------------------------------------------

    def _framed(self, record: bytes) -> bytes:
        return R.with_ts_out(record, time.time_ns()) if self._ts_out else record

    async def _send_gateway(self, record: bytes) -> None:
        await self._write(self._framed(record))

    async def _write(self, raw: bytes | np.ndarray) -> None:
        async with self._wlock:
            await self._write_locked(raw)

    async def _write_locked(self, raw: bytes | np.ndarray) -> None:
        if isinstance(raw, np.ndarray):
            raw = memoryview(raw)  # transports take bytes-like objects, not arrays
        if self._compressor is not None:
            import zstandard

            data = self._compressor.compress(raw) + self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        else:
            data = raw
        limit = self.faults.close_after_bytes
        if limit is not None and self.bytes_out + len(data) >= limit:
            data = data[: max(limit - self.bytes_out, 0)]
            self.writer.write(data)
            self.bytes_out += len(data)
            self._closed = True
            self.writer.close()  # close, not abort: the first N bytes still reach the client
            raise _Close(f"fault close_after_bytes={limit}")
        bps = self.faults.throttle_bps
        if bps:
            step = max(256, int(bps / 20))  # ~20 writes a second
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                self.writer.write(piece)
                self.bytes_out += len(piece)
                self.last_send = self.loop.time()
                await self.writer.drain()
                await asyncio.sleep(len(piece) / bps)
            return
        self.writer.write(data)
        self.bytes_out += len(data)
        self.last_send = self.loop.time()
        await self.writer.drain()

    async def _heartbeats(self) -> None:
        """A heartbeat when nothing was written for the interval (never during a stall)."""
        try:
            while not self._closed:
                wait = self.last_send + self.heartbeat_s - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if self.stalled or self._wlock.locked():
                    await asyncio.sleep(min(0.1, self.heartbeat_s))
                    continue
                async with self._wlock:  # re-check: a batch may have gone out meanwhile
                    if not self.stalled and self.loop.time() - self.last_send >= self.heartbeat_s:
                        await self._write_locked(self._framed(R.heartbeat(self.clock_ts)))
        except (ConnectionError, _Close):
            self._closed = True

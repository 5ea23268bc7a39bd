"""``WS /api/v1/stream``: one poller task for every client, and a bounded queue per client.

The poller calls ``ShmHub.refresh`` whenever the daemon publishes (``aurum.api.notify``) and
at least every ``poll_interval_s``; the hub announces what
changed (``market``, ``zones``, ``signal``, ``status`` events); each event is serialised once
and offered to every client's queue. A client's own coroutine drains its queue onto its
socket, so a slow client only ever waits on itself. When its queue is full the oldest
message is dropped and counted; the client is told with a ``dropped`` message before the
next one it receives (signals carry ``seq``: ``/api/v1/signals?since=`` fills a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from aurum.api import auth
from aurum.api.hub import ShmHub
from aurum.api.notify import PublishWaiter
from aurum.consumer import HAVE_FUTEX

log = logging.getLogger("aurum.api")

_CLOSE = None  # queue sentinel: the client is gone or the server is stopping


class Subscriber:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.reported = 0
        self.closed = False

    def offer(self, msg: str | None) -> None:
        """Never waits: a full queue loses its oldest message instead."""
        if self.closed:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(msg)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.queue.full():
            self.queue.get_nowait()  # the client is leaving or the server stopping: not a drop
        self.queue.put_nowait(_CLOSE)


class Fanout:
    def __init__(self, hub: ShmHub, *, poll_interval_s: float = 0.05, queue_size: int = 256,
                 wake_on_publish: bool = True) -> None:
        self.hub, self.poll_interval_s, self.queue_size = hub, poll_interval_s, queue_size
        self.wake_on_publish = wake_on_publish
        self.waiter: PublishWaiter | None = None
        self.subscribers: set[Subscriber] = set()
        self.messages = 0  # events serialised (once each, whatever the number of clients)
        self._dropped_gone = 0  # drops of clients already disconnected
        self._task: asyncio.Task[None] | None = None
        self._last_error = 0.0
        hub.listeners.append(self.broadcast)

    @property
    def dropped(self) -> int:
        return self._dropped_gone + sum(s.dropped for s in self.subscribers)

    def broadcast(self, event: dict[str, Any]) -> None:
        if not self.subscribers:
            return
        text = orjson.dumps(event).decode()
        self.messages += 1
        for s in self.subscribers:
            s.offer(text)

    def subscribe(self) -> Subscriber:
        self.hub.refresh()  # the snapshot is as of now, and nothing lands between it and the stream
        sub = Subscriber(self.queue_size)
        for event in self.hub.snapshot():
            sub.offer(orjson.dumps(event).decode())
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self._dropped_gone += sub.dropped
        sub.close()

    # -- the one poller ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the poller on the running loop, unless it already runs there."""
        loop = asyncio.get_running_loop()
        if self.running and self._task.get_loop() is loop:  # type: ignore[union-attr]
            return
        if self.waiter is not None:  # another loop's: its poller falls back to its timer
            self.waiter.request_stop()
            self.waiter = None
        wake = None
        # Without futexes the waiter could only nap 0.2 ms at a time: the timer alone is better.
        if self.wake_on_publish and HAVE_FUTEX:
            wake = asyncio.Event()
            self.waiter = PublishWaiter(self.hub.name, loop, wake)
            self.waiter.start()
        self._task = loop.create_task(self._run(wake), name="aurum-api-poller")

    async def _run(self, wake: asyncio.Event | None) -> None:
        while True:
            if wake is not None:
                wake.clear()  # before the read: a publication during it wakes the next wait
            try:
                self.hub.refresh()
            except Exception:  # a bug here must not end the stream for every client
                if time.monotonic() - self._last_error > 60:
                    self._last_error = time.monotonic()
                    log.exception("shared-memory poll failed (repeats are silenced for 60 s)")
            if wake is None:
                await asyncio.sleep(self.poll_interval_s)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval_s)

    async def stop(self) -> None:
        if self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            await asyncio.to_thread(waiter.stop)  # up to a futex wait (0.25 s): not on the loop
        for s in list(self.subscribers):
            s.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
            self._task = None


async def _watch_disconnect(ws: WebSocket, sub: Subscriber) -> None:
    # Client messages carry nothing; reading them is how a close is noticed.
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    sub.close()


async def serve(ws: WebSocket, fanout: Fanout, token: str | None) -> None:
    if not auth.same_origin(ws):
        # A page of another site must not read the stream through the user's browser.
        await ws.close(code=4403, reason="cross-origin WebSocket refused")
        return
    subprotocol = auth.SUBPROTOCOL if auth.SUBPROTOCOL in ws.scope.get("subprotocols", []) else None
    await ws.accept(subprotocol=subprotocol)
    if token is not None and not auth.ws_authorized(ws, token):
        await ws.close(code=4401, reason="unauthorized: a bearer token is required")
        return
    fanout.start()
    sub = fanout.subscribe()
    watcher = asyncio.create_task(_watch_disconnect(ws, sub))
    try:
        while True:
            msg = await sub.queue.get()
            if msg is _CLOSE:
                break
            if sub.dropped > sub.reported:
                note = {"type": "dropped", "count": sub.dropped - sub.reported, "total": sub.dropped}
                sub.reported = sub.dropped
                await ws.send_text(orjson.dumps(note).decode())
            await ws.send_text(msg)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        fanout.unsubscribe(sub)
        watcher.cancel()
        if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(code=1001)

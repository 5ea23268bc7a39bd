"""The FastAPI application of ``aurum api``: JSON endpoints under ``/api/v1``, the WebSocket
stream, and the status page at ``/``. It reads nothing but the shared-memory segment.

Every data endpoint first refreshes the hub (a few microseconds of mmap reads), so an answer
is as fresh as the segment even between poller ticks. When the segment is missing or the
daemon's heartbeat is older than ``stale_after_s``, endpoints answer 503 with a JSON body
(models.Error) that names the segment; they never serve old data as current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from aurum.api import auth, models, stream
from aurum.api.hub import ShmHub, Unavailable

STATIC = Path(__file__).with_name("static")
log = logging.getLogger("aurum.api")


class OrjsonResponse(JSONResponse):
    """orjson-encoded JSON. FastAPI's own ``ORJSONResponse`` is deprecated in the pinned
    version; this is the same few lines without the warning."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return OrjsonResponse(models.Error(**body).model_dump(), status_code=status, headers=headers)


def create_app(shm_name: str, *, token: str | None = None, stale_after_s: float = 5.0,
               poll_interval_s: float = 0.05, ws_queue: int = 256, wake_on_publish: bool = True,
               allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """``allowed_hosts``: the ``Host`` names answered (``auth.trusted_hosts``); None = the
    loopback names only. Anything else gets 400, WebSocket handshakes included."""
    hosts = auth.trusted_hosts() if allowed_hosts is None else auth.trusted_hosts(None, allowed_hosts)
    hub = ShmHub(shm_name, stale_after_s=stale_after_s)
    fanout = stream.Fanout(hub, poll_interval_s=poll_interval_s, queue_size=ws_queue, wake_on_publish=wake_on_publish)
    page = (STATIC / "index.html").read_bytes()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.refresh()
        fanout.start()
        loop = type(asyncio.get_running_loop())
        log.info("reading /dev/shm/%s (%s); event loop %s.%s; token %s", shm_name,
                 "available" if hub.status()["available"] else hub.status()["error"], loop.__module__,
                 loop.__qualname__, "required" if token else "off")
        try:
            yield
        finally:
            await fanout.stop()
            hub.close()

    # /docs and /redoc load their scripts from a CDN, which an offline host cannot reach;
    # /openapi.json is the contract.
    app = FastAPI(title="Aurum API", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  default_response_class=OrjsonResponse,
                  description="Read-only view of the Aurum daemon's shared-memory output "
                              f"(/dev/shm/{shm_name}): market, zones, signals, health, and a WebSocket stream.")
    app.state.hub, app.state.fanout = hub, fanout
    # Before routing, so neither a route nor the stream runs for a rebound name.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)

    @app.exception_handler(Unavailable)
    async def _unavailable(_req: Request, exc: Unavailable) -> Response:
        return _error(503, exc.body(), {"Retry-After": "1"})

    @app.exception_handler(auth.Unauthorized)
    async def _unauthorized(_req: Request, exc: auth.Unauthorized) -> Response:
        return _error(401, {"error": "unauthorized", "detail": str(exc)}, {"WWW-Authenticate": "Bearer"})

    deps = auth.http_dependencies(token)
    errors: dict[int | str, dict[str, Any]] = {
        503: {"model": models.Error, "description": "segment missing or unusable, daemon down, or no state yet"}}
    if token is not None:
        errors[401] = {"model": models.Error, "description": "missing or wrong bearer token"}

    def get(path: str, model: type, summary: str) -> Any:
        return app.get(path, response_model=model, responses=errors, dependencies=deps, summary=summary)

    @get("/api/v1/market", models.Market, "Price, bid/ask, volume, source and their age")
    async def market() -> dict[str, Any]:
        hub.refresh()
        return hub.market()

    @get("/api/v1/zones", models.Zones, "Active iceberg and absorption zones")
    async def zones() -> dict[str, Any]:
        hub.refresh()
        return hub.zones()

    @get("/api/v1/signal", models.LatestSignal, "The latest signal, with pillars and reasons")
    async def signal() -> dict[str, Any]:
        hub.refresh()
        return hub.latest_signal()

    @get("/api/v1/signals", models.SignalPage, "Recent signals from the ring, oldest first")
    async def signals(q: Annotated[models.SignalsQuery, Query()]) -> dict[str, Any]:
        hub.refresh()
        return hub.signal_page(q.since, q.limit)

    @get("/api/v1/health", models.Health, "Daemon liveness (writer heartbeat), feed state, reader losses")
    async def health() -> dict[str, Any]:
        hub.refresh()
        return hub.health(len(fanout.subscribers), fanout.dropped)

    @app.websocket("/api/v1/stream")
    async def stream_ws(ws: WebSocket) -> None:
        await stream.serve(ws, fanout, token)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        # The page holds no data (it comes over the WebSocket, behind the token), so it is
        # served to anyone; the CSP lets it talk to this origin only.
        return HTMLResponse(page, headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                       "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    return app

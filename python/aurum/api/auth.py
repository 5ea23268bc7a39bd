"""The optional bearer token (``api.token`` / ``$AURUM_API_TOKEN``), the Host allowlist, the
WebSocket origin check, and the log filter that keeps the token out of every log line.

Host: a page on an attacker's name that later resolves to 127.0.0.1 (DNS rebinding) reaches
this server with its own name in ``Host`` and a matching ``Origin``, so an origin check alone
passes it. Only the names in ``trusted_hosts`` are answered (400 otherwise).

HTTP: ``Authorization: Bearer <token>``. WebSocket, where browsers cannot set headers: the
subprotocol ``bearer.<token>`` next to ``aurum.v1`` (the status page does this), or
``?token=`` (redacted from uvicorn's logs), or the header. Comparisons use
``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.websockets import WebSocket

from aurum.api.hosts import LOOPBACK_HOSTS, trusted_hosts  # noqa: F401 (re-exported for the app and cli)

SUBPROTOCOL = "aurum.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
# Answered whatever the config says; IPv6 literals as they appear in a Host header.


class Unauthorized(Exception):
    """Answered 401 (models.Error) by the app's handler."""


def matches(presented: str | None, token: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode())


def http_dependencies(token: str | None) -> list[Any]:
    """The route dependencies enforcing ``token``; none when no token is configured (so the
    OpenAPI document only declares the bearer scheme when the server really requires it)."""
    if token is None:
        return []
    scheme = HTTPBearer(auto_error=False, scheme_name="bearer",
                        description="the token set in api.token or $AURUM_API_TOKEN")

    async def require_token(creds: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        if creds is None or not matches(creds.credentials, token):
            raise Unauthorized("a valid bearer token is required (Authorization: Bearer <token>)")

    return [Depends(require_token)]


def ws_authorized(ws: WebSocket, token: str) -> bool:
    for proto in ws.scope.get("subprotocols", []):
        if proto.startswith(TOKEN_SUBPROTOCOL_PREFIX) and matches(proto[len(TOKEN_SUBPROTOCOL_PREFIX):], token):
            return True
    header = ws.headers.get("authorization", "")
    if header[:7].lower() == "bearer " and matches(header[7:].strip(), token):
        return True
    return matches(ws.query_params.get("token"), token)


def same_origin(ws: WebSocket) -> bool:
    """Browsers always send Origin on a WebSocket; other clients usually do not. A browser
    page may only connect from this server's own origin (host and port). Meaningful only
    because Host is one of ``trusted_hosts`` (checked before any route runs)."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.lower() == ws.headers.get("host", "").lower()


class RedactToken(logging.Filter):
    """Redacts ``token=...`` query values and the token itself from a record's message and
    arguments (uvicorn logs each request's path with its query string)."""

    _QUERY = re.compile(r"(?i)(token=)[^&\s\"']*")

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token

    def _clean(self, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = self._QUERY.sub(r"\1***", v)
        return v.replace(self.token, "***") if self.token else v

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks these, so they stay a tuple of the same size.
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(a) for k, a in record.args.items()}
        return True


def install_log_filter(token: str | None, loggers: tuple[str, ...] = ("uvicorn", "uvicorn.error",
                                                                      "uvicorn.access", "aurum.api")) -> None:
    f = RedactToken(token)
    for name in loggers:
        lg = logging.getLogger(name)
        lg.filters = [x for x in lg.filters if not isinstance(x, RedactToken)]
        lg.addFilter(f)

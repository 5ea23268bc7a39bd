"""DNS rebinding: a page served from an attacker's name that later resolves to 127.0.0.1 sends
that name in ``Host`` (and a matching ``Origin``). The API answers only the loopback names,
the address it binds and ``api.allowed_hosts``: in process (TestClient) and as the real
``aurum api`` process over its socket."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from aurum.api import auth
from aurum.api.app import create_app
from api_helpers import ApiProc, local_client, shm_name, unlink_shm

_native = pytest.importorskip("aurum._native")
pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")

EVIL = {"host": "evil.example:8000", "origin": "http://evil.example:8000"}


@pytest.fixture
def segment():
    name = shm_name()
    w = _native.ShmSignalWriter(name, capacity=16)
    w.publish(action="BUY", entry=4100.0, reason="not for evil.example")
    w.update_state(feed_state="live", last=4100.0)
    yield name
    w.close()
    unlink_shm(name)


def test_a_rebound_host_is_refused_over_http_and_websocket(segment):
    with TestClient(create_app(segment), base_url="http://evil.example:8000") as c:
        r = c.get("/api/v1/signal", headers=EVIL)
        assert r.status_code == 400 and "not for evil.example" not in r.text
        assert c.get("/", headers=EVIL).status_code == 400
        with pytest.raises(WebSocketDenialResponse) as e:
            with c.websocket_connect("ws://evil.example:8000/api/v1/stream", headers=EVIL) as ws:
                ws.receive_json()
        assert e.value.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "127.0.0.1:1"])
def test_loopback_names_with_any_port_are_answered(segment, host):
    with local_client(create_app(segment)) as c:
        r = c.get("/api/v1/signal", headers={"host": host})
        assert r.status_code == 200 and r.json()["signal"]["reason"] == "not for evil.example"
        origin = {"host": host, "origin": f"http://{host}"}
        with c.websocket_connect("/api/v1/stream", headers=origin, subprotocols=["aurum.v1"]) as ws:
            assert ws.receive_json()["type"] == "status"


def test_configured_names_are_answered_and_nothing_else(segment):
    app = create_app(segment, allowed_hosts=auth.trusted_hosts("10.1.2.3", ["aurum.internal", "*.desk.example"]))
    with TestClient(app, base_url="http://aurum.internal:8000") as c:
        for host in ("aurum.internal:8000", "10.1.2.3:8000", "ops.desk.example", "127.0.0.1:8000"):
            assert c.get("/api/v1/signal", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "aurum.internal.evil.example", "desk.example.evil", "10.1.2.4:8000"):
            assert c.get("/api/v1/signal", headers={"host": host}).status_code == 400, host
        with pytest.raises(WebSocketDenialResponse):
            with c.websocket_connect("ws://evil.example/api/v1/stream", headers=EVIL):
                pass


def test_trusted_hosts_normalises_and_rejects_what_is_not_a_host_name():
    assert auth.trusted_hosts() == ["localhost", "127.0.0.1", "[::1]"]
    # A wildcard bind address is not a name any client sends; IPv6 goes in brackets.
    assert auth.trusted_hosts("0.0.0.0") == auth.trusted_hosts("::") == auth.trusted_hosts()
    assert auth.trusted_hosts("fe80::1", ["Aurum.Internal."])[3:] == ["[fe80::1]", "aurum.internal."]
    for bad in ("http://aurum.internal", "aurum.internal:8000", "a/b", "*.", "a*.example", "", "ev il"):
        with pytest.raises(ValueError, match="allowed_hosts"):
            auth.trusted_hosts(None, [bad])


def raw(url: str, request: str) -> str:
    """The answer to a hand-written request (the Host header exactly as given): all of it, or
    the headers of a 101, after which the connection stays open."""
    host, port = url.removeprefix("http://").split(":")
    buf = b""
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request.encode())
        while chunk := s.recv(4096):
            buf += chunk
            if buf.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in buf:
                break
    return buf.decode(errors="replace")


def test_the_served_api_refuses_a_rebound_host(segment, tmp_path: Path):
    api = ApiProc(segment, log_path=tmp_path / "api.log")
    try:
        port = api.url.rsplit(":", 1)[1]
        evil = raw(api.url, "GET /api/v1/signal HTTP/1.1\r\nHost: evil.example:8000\r\nConnection: close\r\n\r\n")
        assert evil.startswith("HTTP/1.1 400") and "not for evil.example" not in evil
        upgrade = ("GET /api/v1/stream HTTP/1.1\r\nHost: evil.example:{p}\r\nOrigin: http://evil.example:{p}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        assert raw(api.url, upgrade.format(p=port)).startswith("HTTP/1.1 400")
        ok = raw(api.url, f"GET /api/v1/signal HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        assert ok.startswith("HTTP/1.1 200")
        assert json.loads(ok.split("\r\n\r\n", 1)[1])["signal"]["reason"] == "not for evil.example"
        switched = raw(api.url, upgrade.replace("evil.example", "localhost").format(p=port))
        assert switched.startswith("HTTP/1.1 101")
    finally:
        api.stop()

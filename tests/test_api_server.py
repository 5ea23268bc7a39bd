"""``aurum api`` as a real process (uvicorn on uvloop, 127.0.0.1) over a real segment: HTTP
and WebSocket from outside, the token never in its output, a stalled WebSocket client that
does not hold up another, and a clean SIGTERM with clients connected."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api_helpers import ApiProc, fake_token, shm_name, unlink_shm

_native = pytest.importorskip("aurum._native")
pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")


@pytest.fixture
def segment():
    name = shm_name()
    w = _native.ShmSignalWriter(name, capacity=4096)
    w.update_state(last=4101.2, bid=4101.1, ask=4101.3, volume=1200, instrument_id=42, source="replay",
                   feed_state="live", zones=[{"price": 4099.5, "side": "B", "kind": 1, "state": 1}])
    yield name, w
    w.close()
    unlink_shm(name)


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_served_on_uvloop_on_loopback_with_the_token_kept_out_of_its_output(segment, tmp_path: Path):
    name, w = segment
    tok = fake_token()
    api = ApiProc(name, log_path=tmp_path / "api.log", token=tok)
    try:
        assert api.url.startswith("http://127.0.0.1:")
        assert get(api.url + "/api/v1/market")[0] == 401
        status, m = get(api.url + "/api/v1/market", tok)
        assert status == 200 and m["price"] == 4101.2 and m["source"] == "replay"

        async def stream() -> list[dict]:
            out = []
            async with connect(f"{api.ws_url}/api/v1/stream?token={tok}", open_timeout=30) as ws:
                out += [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(3)]
                w.publish(action="BUY", reason="over the wire")
                while out[-1]["type"] != "signal":
                    out.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            async with connect(f"{api.ws_url}/api/v1/stream", subprotocols=["aurum.v1", f"bearer.{tok}"],
                               open_timeout=30) as ws:
                assert ws.subprotocol == "aurum.v1"
                out.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            return out

        msgs = asyncio.run(stream())
        assert [m["type"] for m in msgs[:3]] == ["status", "market", "zones"]
        assert msgs[-2]["reason"] == "over the wire" and msgs[-1]["type"] == "status"
        assert "event loop uvloop" in api.log()
    finally:
        rc = api.stop()
    out = api.output()
    assert rc in (0, -15), out  # uvicorn re-raises the SIGTERM it handled
    assert "GET /api/v1/market" in out and "token=***" in out  # the access log ran, redacted
    assert tok not in out


def test_a_stalled_websocket_client_does_not_hold_up_another(segment, tmp_path: Path):
    name, w = segment
    api = ApiProc(name, log_path=tmp_path / "api.log")
    total = 600

    async def scenario() -> tuple[list[int], dict]:
        # The stalled client never reads, with a tiny receive buffer; the other must still get
        # every signal. (Whether the stalled one's queue overflows depends on the kernel's
        # buffers; the drop-and-count rule itself is pinned in test_api.py.)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((api.url.split("//")[1].split(":")[0], int(api.url.rsplit(":", 1)[1])))
        stalled = await connect(f"{api.ws_url}/api/v1/stream", sock=raw, max_queue=1, open_timeout=30,
                                close_timeout=1)
        seqs: list[int] = []
        async with connect(f"{api.ws_url}/api/v1/stream", open_timeout=30) as fast:
            assert json.loads(await fast.recv())["type"] == "status"  # subscribed: publishing may start

            async def read() -> None:
                while not seqs or seqs[-1] < total - 1:
                    m = json.loads(await fast.recv())
                    if m["type"] == "signal":
                        seqs.append(m["seq"])

            reader = asyncio.create_task(read())
            for i in range(total // 10):  # bursts well below the queue size, as bar closes are
                for _ in range(10):
                    w.publish(action="SELL", reason="x" * 110 + str(i))
                await asyncio.sleep(0.02)
            try:
                await asyncio.wait_for(reader, 120)
            except TimeoutError:
                raise AssertionError(f"got {len(seqs)} of {total} signals; {api.output()[-3000:]}") from None
            health = await asyncio.to_thread(get, api.url + "/api/v1/health")
        try:
            await stalled.close()
        except ConnectionClosed:
            pass
        return seqs, health[1]

    try:
        seqs, health = asyncio.run(scenario())
    finally:
        api.stop()
    assert seqs == list(range(total)), (len(seqs), sorted(set(range(total)) - set(seqs))[:10])
    assert health["ws_clients"] == 2 and health["reader_lost"] == 0


def test_sigterm_stops_it_with_clients_connected(segment, tmp_path: Path):
    name, _w = segment
    api = ApiProc(name, log_path=tmp_path / "api.log")

    async def hold() -> None:
        ws = await connect(f"{api.ws_url}/api/v1/stream", open_timeout=30)
        await asyncio.wait_for(ws.recv(), 30)
        t0 = time.monotonic()
        rc = await asyncio.to_thread(api.stop, 30)
        assert rc in (0, -15), api.output()
        assert time.monotonic() - t0 < 30  # it was not killed
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 30)

    try:
        asyncio.run(hold())
    finally:
        api.stop()
    assert "Application shutdown complete" in api.log()


def test_bad_settings_stop_it_with_one_line(tmp_path: Path):
    import subprocess
    import sys

    env = {**os.environ, "AURUM_API_TOKEN": "short"}
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "api", "--port", "0"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "api.token" in out.stderr and "short" not in out.stderr
    env.pop("AURUM_API_TOKEN")
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "api", "--port", "0", "--shm-name", "../etc"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "plain file name" in out.stderr

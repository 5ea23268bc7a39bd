"""``aurum doctor`` against local stand-ins: an HTTPS stub of Databento's Historical API
(self-signed certificate, trusted through REQUESTS_CA_BUNDLE; the official client runs
unchanged), our own ``aurum gateway`` for the live side, and real /dev/shm."""

from __future__ import annotations

import base64
import http.server
import os
import random
import re
import shutil
import ssl
import string
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from aurum.doctor import run_checks


def fake_key() -> str:
    return "db-" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(29))


class Stub(http.server.BaseHTTPRequestHandler):
    good_key = ""
    datasets = ["GLBX.MDP3", "XNAS.ITCH"]

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        auth = self.headers.get("Authorization", "")
        user = base64.b64decode(auth.split()[-1]).decode().split(":")[0] if auth.startswith("Basic ") else ""
        if "metadata.list_datasets" not in self.path:
            self.send_response(404)
            self.end_headers()
            return
        if user != self.good_key:
            body, code = orjson.dumps({"detail": "Authentication failed."}), 401
        else:
            body, code = orjson.dumps(self.datasets), 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def historical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make the stub's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    yield f"https://localhost:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from aurum.sim import run_to_files

    tmp = tmp_path_factory.mktemp("gw")
    _, summary = run_to_files("quiet", tmp / "s.dbn.zst", seed=1, records=20_000)
    gw = subprocess.Popen([sys.executable, "-m", "aurum.cli", "gateway", "--data", summary["paths"]["mbo"], "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "AURUM_GATEWAY_KEYS": fake_key()})
    assert gw.stdout is not None
    yield int(gw.stdout.readline().split("127.0.0.1:")[1].split()[0])
    gw.terminate()
    gw.wait(timeout=10)


def doctor(env: dict[str, str], historical: str, monkeypatch: pytest.MonkeyPatch) -> tuple[bool, list[str]]:
    for k in [k for k in os.environ if k.startswith("AURUM_") or k == "DATABENTO_API_KEY"]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env
    lines: list[str] = []
    ok = run_checks(None, historical, 5.0, out=lines.append)
    return ok, lines


def test_everything_ok(historical: str, gateway: int, monkeypatch: pytest.MonkeyPatch) -> None:
    key = fake_key()
    Stub.good_key = key
    ok, lines = doctor({"DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1", "AURUM_FEED_PORT": str(gateway),
                        "AURUM_SHM_NAME": f"aurum-doc-{uuid.uuid4().hex[:8]}"}, historical, monkeypatch)
    assert ok, lines
    assert [line.split()[1].rstrip(":") for line in lines] == ["config", "key", "account", "gateway", "shared",
                                                               "shared"]
    assert all(line.startswith("ok") for line in lines)
    assert "GLBX.MDP3" in lines[2] and "lsg_version=" in lines[3]
    # Free space on /dev/shm against the default segment (1280 + 1024 x 256 bytes); a full
    # tmpfs is in test_shm_space.py.
    assert re.fullmatch(r"ok   shared memory space: /dev/shm has [\d.]+ MiB free, the segment needs 0\.3 MiB "
                        r"\(shm\.capacity 1024\)", lines[5]), lines[5]
    assert not any(key in line for line in lines) and key[:8] + "***" in lines[1]


def test_failures_are_one_line_each_and_never_show_the_key(historical: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Stub.good_key = fake_key()
    wrong = fake_key()
    ok, lines = doctor({"DATABENTO_API_KEY": wrong, "AURUM_FEED_GATEWAY": "127.0.0.1", "AURUM_FEED_PORT": "1"},
                       historical, monkeypatch)
    assert not ok
    fails = [line for line in lines if line.startswith("FAIL")]
    assert any("key rejected" in f and "401" in f for f in fails), lines
    assert any(f.startswith("FAIL gateway: cannot connect to 127.0.0.1:1") for f in fails), lines
    assert not any(wrong in line for line in lines)


def test_missing_key_and_bad_segment_mode(historical: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"aurum-doc-{uuid.uuid4().hex[:8]}"
    seg = Path("/dev/shm", name)
    seg.write_bytes(b"")
    seg.chmod(0o644)
    try:
        ok, lines = doctor({"AURUM_SHM_NAME": name, "AURUM_FEED_GATEWAY": "127.0.0.1", "AURUM_FEED_PORT": "1"},
                           historical, monkeypatch)
    finally:
        seg.unlink()
    assert not ok
    assert any(line.startswith("FAIL key: no Databento API key") for line in lines)
    assert any("mode 0644, config says 0600" in line for line in lines)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "1e9"])
def test_a_bad_timeout_is_one_line(value: str) -> None:
    out = subprocess.run([sys.executable, "-m", "aurum.cli", "doctor", "--timeout", value], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "argument --timeout" in out.stderr.strip().splitlines()[-1]

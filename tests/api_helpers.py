"""Helpers for the ``aurum api`` tests: tokens made up at run time, unique segment names, the
API as a real subprocess, and the whole live stack (simulated gateway -> daemon -> API)."""

from __future__ import annotations

import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin

AURUM = [sys.executable, "-m", "aurum.cli"]


def fake_token() -> str:
    # Never a literal: a fresh URL-safe token each run.
    return secrets.token_urlsafe(24)


def fake_db_key() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "db-" + "".join(secrets.choice(alphabet) for _ in range(29))


LOCAL_URL = "http://127.0.0.1:8000"


def local_client(app, **kw):  # type: ignore[no-untyped-def]
    """FastAPI's TestClient addressing the API as a local client does (``Host: 127.0.0.1:8000``,
    WebSockets included): its default ``testserver`` is not a name the API answers."""
    from fastapi.testclient import TestClient

    class LocalClient(TestClient):
        def websocket_connect(self, url, *args, **kwargs):  # type: ignore[no-untyped-def]
            # TestClient joins WebSocket paths to ws://testserver whatever base_url says.
            return super().websocket_connect(urljoin(LOCAL_URL.replace("http", "ws", 1), url), *args, **kwargs)

    return LocalClient(app, base_url=LOCAL_URL, **kw)


def shm_name() -> str:
    return f"aurum-apitest-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def unlink_shm(name: str) -> None:
    Path("/dev/shm", name).unlink(missing_ok=True)


class ApiProc:
    """``aurum api --port 0`` in its own process; ``url`` is where it listens."""

    def __init__(self, shm: str, *, log_path: Path, token: str | None = None, extra_env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AURUM_API_")}
        env.update(extra_env or {})
        if token is not None:
            env["AURUM_API_TOKEN"] = token
        self.log_path = log_path
        self.proc = subprocess.Popen([*AURUM, "api", "--port", "0", "--shm-name", shm, *args], stdout=subprocess.PIPE,
                                     stderr=log_path.open("w"), text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            first = self.lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"aurum api did not start: {self.log()}") from None
        assert "listening on http://" in first, first + self.log()
        self.url = first.split("listening on ")[1].split()[0]
        self.ws_url = self.url.replace("http://", "ws://", 1)
        self.stdout: list[str] = [first]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def output(self) -> str:
        """Everything printed so far: the log on stderr, the access log on stdout."""
        while not self.lines.empty():
            self.stdout.append(self.lines.get_nowait())
        return self.log() + "".join(self.stdout)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


class LiveStack:
    """``aurum gateway --sim`` -> ``aurum run`` -> ``aurum api``, all on 127.0.0.1, as
    ``aurum demo`` wires them (5 s bars, the data clock)."""

    def __init__(self, work: Path, *, token: str | None = None, scenario: str = "mixed", speed: str = "40x") -> None:
        self.work = work
        self.shm = shm_name()
        self.procs: list[subprocess.Popen[str]] = []
        self.api: ApiProc | None = None
        key = fake_db_key()
        try:
            gw = subprocess.Popen([*AURUM, "gateway", "--sim", scenario, "--seed", "7", "--sim-records", "600000",
                                   "--sim-dir", str(work / "sim"), "--port", "0", "--speed", speed, "--at-end", "idle"],
                                  stdout=subprocess.PIPE, stderr=(work / "gateway.log").open("w"), text=True,
                                  env={**os.environ, "AURUM_GATEWAY_KEYS": key})
            self.procs.append(gw)
            assert gw.stdout is not None
            line = gw.stdout.readline()
            assert "listening on 127.0.0.1:" in line, line + (work / "gateway.log").read_text()
            port = int(line.split("127.0.0.1:")[1].split()[0])
            env = {**os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
                   "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
                   "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": self.shm,
                   "AURUM_PERSISTENCE_CHECKPOINT": str(work / "iceberg-memory.bin"), "AURUM_SIGNALS_BAR_INTERVAL_S": "5",
                   "AURUM_METRICS_ENABLED": "false"}
            self.procs.append(subprocess.Popen([*AURUM, "run"], stdout=subprocess.DEVNULL,
                                               stderr=(work / "daemon.log").open("w"), text=True, env=env))
            self.api = ApiProc(self.shm, log_path=work / "api.log", token=token)
        except BaseException:
            self.stop()
            raise

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.work.glob("*.log")))

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        unlink_shm(self.shm)


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``pred`` until it returns something truthy; generous timeouts, no timing asserts."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)

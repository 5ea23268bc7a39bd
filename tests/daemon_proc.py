"""``aurum run`` (the daemon) as a test subprocess, pointed at a local gateway: its environment,
its log, its Prometheus endpoint and its shared-memory segment. Shared by the end-to-end tests."""

from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

AURUM = [sys.executable, "-m", "aurum.cli"]


def fake_key() -> str:
    """A made-up key of the real shape, built at run time (no key literal in the repo)."""
    return "db-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(29))


def parse_metrics(body: str) -> dict[str, float]:
    """Prometheus text -> ``{'name{labels}': value}`` (comment lines skipped)."""
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class DaemonProc:
    """Starts ``aurum run`` against ``127.0.0.1:port`` with everything per test: a unique shm
    segment, the checkpoint path, metrics on a free port (read back from the log), the data
    clock (a simulated session's times are not today's). ``env`` overrides or adds variables."""

    def __init__(self, tmp_path: Path, port: int, key: str, *, checkpoint: Path | None = None,
                 log_name: str = "daemon.log", shm: str | None = None, env: dict[str, str] | None = None) -> None:
        self.shm = shm or f"aurum-test-{uuid.uuid4().hex[:8]}"
        self.checkpoint = checkpoint or tmp_path / "iceberg-memory.bin"
        self.log_path = tmp_path / log_name
        full = {
            **os.environ, "DATABENTO_API_KEY": key, "AURUM_FEED_GATEWAY": "127.0.0.1",
            "AURUM_FEED_PORT": str(port), "AURUM_FEED_SYMBOLS": "GCZ6", "AURUM_FEED_STYPE_IN": "raw_symbol",
            "AURUM_FEED_SCHEMAS": "mbo", "AURUM_FEED_CLOCK": "data", "AURUM_SHM_NAME": self.shm,
            "AURUM_PERSISTENCE_CHECKPOINT": str(self.checkpoint), "AURUM_METRICS_PORT": "0",
            # Reconnect at once: the tests are about what happens after it, not about the wait.
            "AURUM_FEED_BACKOFF_INITIAL_S": "0.05", "AURUM_FEED_BACKOFF_MAX_S": "0.2",
            # A Yahoo fallback would reach the internet; none of these tests wants it.
            "AURUM_FALLBACK_ENABLED": "false",
            **(env or {}),
        }
        self._metrics_url: str | None = None
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([*AURUM, "run"], stderr=log, stdout=subprocess.DEVNULL, env=full)

    # --- observing -------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, check: Callable[[], T], timeout: float = 60.0, every: float = 0.1) -> T:
        """Polls ``check`` until it returns something truthy; fails if the daemon exits first."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"daemon exited ({self.proc.returncode}) while waiting for {what}:\n{self.log()[-3000:]}"
            got = check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}:\n{self.log()[-3000:]}")
            time.sleep(every)

    def wait_log(self, text: str, timeout: float = 60.0) -> str:
        return self.wait_for(repr(text) + " in the daemon log", lambda: text in self.log() and self.log(), timeout)

    def metrics_text(self) -> str:
        """One scrape of the daemon's Prometheus endpoint (its URL is in the log: port 0)."""
        if self._metrics_url is None:
            self.wait_log("metrics on http://")
            self._metrics_url = self.log().split("metrics on ")[1].split()[0]
        return urllib.request.urlopen(self._metrics_url, timeout=10).read().decode()

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.metrics_text())

    def metric(self, name: str) -> float:
        m = self.metrics()
        assert name in m, f"{name} not exported; have {sorted(m)[:50]}"
        return m[name]

    def _read(self, what: Callable[[Any], T], default: T) -> T:
        from aurum.consumer import ShmError, ShmReader

        try:
            with ShmReader(self.shm) as r:
                return what(r)
        except (FileNotFoundError, ShmError):  # not created (or not initialised) yet
            return default

    def state(self) -> dict[str, Any] | None:
        """The shared-memory state block, or None before the daemon wrote it."""
        return self._read(lambda r: r.state(), None)

    def signals_written(self) -> int:
        """Signals published to shared memory so far (the ring's write sequence)."""
        return self._read(lambda r: r.written, 0)

    # --- stopping --------------------------------------------------------------------------

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the daemon's exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Whatever happened: stop the process, remove its segment."""
        try:
            if self.alive():
                self.terminate()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            Path("/dev/shm", self.shm).unlink(missing_ok=True)

    def __enter__(self) -> DaemonProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

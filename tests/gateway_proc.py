"""``aurum gateway`` as a test subprocess: started on a free port (or a given one), admin
commands on stdin, killed on exit. Shared by every test that needs a real gateway."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path


def gateway_command() -> list[str]:
    return [sys.executable, "-m", "aurum.cli", "gateway"]


class GatewayProc:
    def __init__(self, data: list[Path], *args: str, log_path: Path, env_keys: str | None = None,
                 port: int = 0) -> None:
        env = dict(os.environ)
        env.pop("AURUM_GATEWAY_KEYS", None)
        if env_keys is not None:
            env["AURUM_GATEWAY_KEYS"] = env_keys
        self.log_path = log_path
        cmd = [*gateway_command(), "--port", str(port), "--admin-stdin"]
        for d in data:
            cmd += ["--data", str(d)]
        self.proc = subprocess.Popen(
            [*cmd, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True, env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            first = self.lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"gateway did not start: {self.log()}") from None
        assert "listening on 127.0.0.1:" in first, first + self.log()
        self.port = int(first.split("127.0.0.1:")[1].split()[0])

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def admin(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self.lines.get(timeout=10)
        assert reply.startswith("ok"), reply
        return reply

    def sessions(self) -> dict[int, tuple[int, int]]:
        """session id -> (data records sent, wire bytes sent)."""
        parts = self.admin("sessions").split()[3:]
        return {int(s): (int(r), int(b)) for s, r, b in (p.split(":") for p in parts)}

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

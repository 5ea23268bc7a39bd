"""systemd's notify protocol: READY=1, WATCHDOG=1, STOPPING=1, STATUS=... datagrams to
``$NOTIFY_SOCKET``.

Written by hand: the protocol is one ``sendto`` of ``KEY=VALUE`` lines on a Unix datagram
socket, and the packaged helpers either need libsystemd or are unmaintained. A missing
socket (not under systemd) makes every call a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | None = None
        self._sock: socket.socket | None = None
        if addr:
            # "@name" is an abstract socket: the kernel wants a leading NUL instead.
            self.address = "\0" + addr[1:] if addr.startswith("@") else addr
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str | int) -> bool:
        """Sends ``KEY=value`` lines (``ready=1`` becomes ``READY=1``). False if not under
        systemd or the send failed (the daemon must never die because systemd went away)."""
        if self._sock is None or self.address is None:
            return False
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(msg, self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self, status: str = "") -> bool:
        return self.notify(stopping=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def watchdog_interval_s(self) -> float | None:
        """Half of ``$WATCHDOG_USEC`` (systemd's advice), or None if no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        try:
            return int(usec) / 2e6 if usec else None
        except ValueError:
            return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["Notifier"]

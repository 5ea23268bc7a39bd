"""Blocking calls that a stop must be able to abandon.

``loop.run_in_executor`` threads are joined when the loop shuts down (``asyncio.run`` and
``uvloop.run`` wait for the default executor) and again at interpreter exit, so one hung
call, a Yahoo request (yfinance waits 10 s per try) or a DNS lookup of an unreachable
gateway, held SIGTERM for ~17 s: past systemd's TimeoutStopSec, which then kills the daemon
before its checkpoint. No standard helper runs a call on a thread nobody waits for; this
does, on a daemon thread, with the result handed back to the loop if it is still there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_daemon_thread(fn: Callable[..., T], *args: Any, name: str = "aurum-blocking") -> asyncio.Future[T]:
    """``fn(*args)`` on a new daemon thread; await the returned future for its result. If the
    future is cancelled or the loop is gone by the time ``fn`` returns, the result is dropped."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():
            return  # cancelled meanwhile
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (False, e)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop has closed: nobody is waiting any more

    threading.Thread(target=work, name=name, daemon=True).start()
    return fut


__all__ = ["in_daemon_thread"]

"""Helpers shared by the live-client tests: clients against a gateway on 127.0.0.1, made-up
keys, and running a client inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aurum.apikey import ApiKey
from aurum.feeds import LsgClient


def fake_key() -> str:
    return "db-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(29))


def client_for(pipeline: Any, key: str, port: int, **kw: Any) -> LsgClient:
    kw.setdefault("symbols", ["GCZ6"])
    kw.setdefault("stype_in", "raw_symbol")
    kw.setdefault("schemas", ["mbo"])
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.2)
    kw.setdefault("rng", random.Random(1))
    return LsgClient(pipeline, ApiKey(key, "test"), host="127.0.0.1", port=port, **kw)


async def wait_for(cond: Callable[[], bool], timeout: float, what: str, task: asyncio.Task[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if task is not None and task.done():
            task.result()  # surface the client's error
            raise AssertionError(f"client stopped before: {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)


def run_async(coro: Awaitable[Any], timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(client: LsgClient) -> Any:
    task = asyncio.get_running_loop().create_task(client.run())
    try:
        yield task
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
        assert client.state == "stopped"

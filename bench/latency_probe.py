"""``aurum run`` with stage timers, for ``bench_latency.py --probe``: where a signal's
microseconds go inside the daemon.

    AURUM_PROBE_OUT=stages.json python bench/latency_probe.py   # same environment as aurum run

The daemon's own methods are wrapped (no copies of their code), each timed with
``perf_counter_ns`` into a list; at exit (SIGTERM stops the daemon gracefully) the lists go
to ``AURUM_PROBE_OUT`` as JSON, one list of microseconds per stage. A wrapper costs ~1 us a
call, so this is a breakdown, not the headline figure: ``bench_latency.py`` without
``--probe`` measures that.

Stages (all in microseconds):

* ``send_to_read``: gateway ``ts_out`` of a chunk's newest record -> the socket read that
  delivered it (wall clocks of two processes on one machine);
* ``chunk``: the live client's whole chunk handling (native feed, error check, ``on_chunk``);
* ``on_chunk``: the daemon's per-chunk hook alone (bar drain, decision, outputs);
* ``decide_signal`` / ``decide_quiet``: ``DecisionEngine.on_bars`` on batches that did / did
  not produce a signal;
* ``emit``: building one Signal (levels, score with reasons, stop and targets);
* ``publish``: one signal into shared memory (``Daemon._publish``);
* ``send_to_published``: ``ts_out`` of the record that closed the bar -> its signal written;
* ``state``: a latest-state refresh, including the reader wake-up;
* ``gc0``/``gc1``/``gc2``: Python garbage-collector pauses by generation.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from typing import Any

import orjson

from aurum import daemon as daemon_mod
from aurum.feeds import lsg

STAGES: dict[str, list[float]] = {}
_ns = time.perf_counter_ns


def _add(name: str, ns: int) -> None:
    STAGES.setdefault(name, []).append(ns / 1e3)


def _timed(name: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = _ns()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, _ns() - t)
    return wrapper


def _install() -> None:
    on_stream = lsg.LsgClient._on_stream

    def timed_on_stream(self: Any, session: Any, chunk: memoryview, recv_ns: int = 0) -> None:
        before = self.pipeline.last_ts_out
        t = _ns()
        on_stream(self, session, chunk, recv_ns)
        _add("chunk", _ns() - t)
        newest = self.pipeline.last_ts_out
        # Only reads that completed a record: otherwise ts_out is an earlier read's.
        if newest and recv_ns and newest != before:
            _add("send_to_read", recv_ns - newest)

    lsg.LsgClient._on_stream = timed_on_stream  # type: ignore[method-assign]
    D = daemon_mod.Daemon
    D.on_chunk = _timed("on_chunk", D.on_chunk)  # type: ignore[method-assign]
    D._publish_state = _timed("state", D._publish_state)  # type: ignore[method-assign]
    publish = D._publish

    def timed_publish(self: Any, sig: Any, ts_out: int = 0) -> Any:
        t = _ns()
        out = publish(self, sig, ts_out)
        _add("publish", _ns() - t)
        if ts_out:
            _add("send_to_published", time.time_ns() - ts_out)
        return out

    D._publish = timed_publish  # type: ignore[method-assign]
    init = D.__init__

    def timed_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        engine = self.decision
        on_bars, emit = engine.on_bars, engine._emit

        def timed_on_bars(*a: Any, **k: Any) -> Any:
            t = _ns()
            sigs = on_bars(*a, **k)
            _add("decide_signal" if sigs else "decide_quiet", _ns() - t)
            return sigs

        engine.on_bars = timed_on_bars
        engine._emit = _timed("emit", emit)

    D.__init__ = timed_init  # type: ignore[method-assign]
    started = [0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = _ns()
        else:
            _add(f"gc{info['generation']}", _ns() - started[0])

    gc.callbacks.append(on_gc)


def _dump() -> None:
    out = os.environ.get("AURUM_PROBE_OUT")
    if out:
        with open(out, "wb") as f:
            f.write(orjson.dumps(STAGES))


def main() -> int:
    _install()
    atexit.register(_dump)
    from aurum.cli import main as cli_main

    return cli_main(["run", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())

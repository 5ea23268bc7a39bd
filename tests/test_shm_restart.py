"""Readers across daemon restarts and dead writers, with real writers in their own processes:
a restart at another capacity caught mid-initialisation (the API hub and ``aurum tail``), the
C reader after in-place re-initialisations, the writer pid after a restart, a heartbeat from
the future (the clock stepped back), and a state lock left odd by a writer that died."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import INCLUDE, PYENV

from aurum.api.hub import ShmHub, Unavailable
from aurum.consumer import MAGIC, STATE_OFFSET, ShmReader, StateBusy

_native = pytest.importorskip("aurum._native")
Writer = _native.ShmSignalWriter


pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")

# A daemon's writer in its own process: creates the segment, publishes, then lives until its
# stdin closes (its flock goes with it; the segment stays, as when a daemon dies).
WRITER = """
import sys
from aurum._native import ShmSignalWriter
w = ShmSignalWriter(sys.argv[1], capacity=int(sys.argv[2]))
w.update_state(feed_state="live", last=4100.0)
for reason in sys.argv[3:]:
    w.publish(action="BUY", reason=reason)
print("ready", flush=True)
sys.stdin.read()
"""
BIG = 1 << 18  # 64 MiB: its initialisation takes long enough (~0.1 s) to be caught in it


@pytest.fixture
def name():
    n = f"aurum-restart-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


class WriterProc:
    def __init__(self, name: str, capacity: int, *reasons: str, wait: bool = True) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, name, str(capacity), *reasons], env=PYENV,
                                     text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        if wait:
            self.ready()

    def ready(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def frozen_mid_init(name: str, capacity: int, *reasons: str) -> WriterProc:
    """A new writer of another capacity, stopped (SIGSTOP) while it initialises the file
    that replaces the old one: the window a reader must wait through without blocking."""
    path = f"/dev/shm/{name}"
    old = os.stat(path).st_ino
    w = WriterProc(name, capacity, *reasons, wait=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if os.fstat(fd).st_ino != old and os.pread(fd, 8, 0) != MAGIC:
                os.kill(w.pid, signal.SIGSTOP)
                break
        finally:
            os.close(fd)
    else:
        raise AssertionError("never saw the new writer initialising")
    with open(path, "rb") as f:
        assert f.read(8) != MAGIC, "the writer finished before it could be stopped"
    return w


def lines_of(stream) -> queue.Queue[str]:  # type: ignore[no-untyped-def]
    q: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in stream], daemon=True).start()
    return q


def wait_line(q: queue.Queue[str], text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} in {seen}")


def test_restart_at_another_capacity_never_blocks_the_hub_or_kills_tail(name):
    a = WriterProc(name, 16, "before")
    hub = ShmHub(name)
    hub.refresh()
    assert hub.status()["available"] and hub.reader is not None and hub.reader.capacity == 16
    tail = subprocess.Popen([sys.executable, "-m", "aurum.tail", "--name", name, "--json", "--count", "1",
                             "--interval", "0.05"], env=PYENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = None
    try:
        time.sleep(0.5)  # tail attached to the old segment
        a.stop()
        b = frozen_mid_init(name, BIG, "after restart")
        err = lines_of(tail.stderr)
        # The hub's reader looks for a new file once a second: refresh through a few checks.
        worst, t_end = 0.0, time.monotonic() + 2.5
        while time.monotonic() < t_end:
            t = time.perf_counter()
            hub.refresh()
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.01)
        st = hub.status()
        assert worst < 0.1, f"a refresh blocked the event loop for {worst * 1000:.0f} ms"
        assert st["error"] == "daemon_down" and "initialising" in st["detail"], st
        assert hub.reader is not None and hub.reader.reinitialising
        wait_line(err, "initialising")
        assert tail.poll() is None, "aurum tail exited while the new daemon initialised"

        os.kill(b.pid, signal.SIGCONT)
        b.ready()
        deadline = time.monotonic() + 30
        while not (hub.status()["available"] and hub.signals):
            assert time.monotonic() < deadline, hub.status()
            hub.refresh()
            time.sleep(0.02)
        assert hub.reader.capacity == BIG and [s["reason"] for s in hub.signals] == ["after restart"]
        assert hub.health(0, 0)["writer_pid"] == b.pid
        assert tail.wait(timeout=30) == 0  # not communicate(): stderr is the lines_of thread's
        assert [json.loads(x)["reason"] for x in tail.stdout.read().splitlines()] == ["after restart"]
        assert f"writer pid {b.pid}, capacity {BIG}" in wait_line(err, "restarted")
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        a.stop()
        if b is not None:
            b.stop()
        hub.close()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_reader_resyncs_on_a_new_epoch(name, tmp_path):
    exe = tmp_path / "aurum_shm_reader"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(INCLUDE / "aurum_shm_reader.c")], check=True)

    def restart_under_reader(w, position: int, new_reasons: list[str], want: int):  # type: ignore[no-untyped-def]
        """Starts the C reader, proves it is attached (it prints a marker published now, at
        seq ``position``), restarts the writer in place (same size: a new epoch) with
        ``new_reasons``, and returns the reasons the reader printed after the marker, its
        stderr, and the new writer."""
        live = subprocess.Popen([str(exe), name, "--count", str(1 + want), "--timeout-ms", "10000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = lines_of(live.stdout)
        time.sleep(0.2)
        w.publish(reason="marker")
        assert wait_line(out, "reason=marker").startswith(f"seq={position} ")
        w.close()
        w2 = Writer(name, capacity=16)
        for r in new_reasons:
            w2.publish(reason=r)
        live.wait(timeout=30)  # stdout is the lines_of thread's; stderr is a line or two
        err = live.stderr.read()
        got = []
        while True:
            try:
                got.append(out.get(timeout=1))
            except queue.Empty:
                break
        assert live.returncode == 0, (got, err)
        return [ln.split("reason=")[1].strip() for ln in got if "reason=" in ln], err, w2

    w = Writer(name, capacity=16)
    for i in range(10):
        w.publish(reason=f"old{i}")
    # The new writer's seqs (0..2) stay below the reader's position (11): it must not stall.
    got, err, w = restart_under_reader(w, 10, ["new0", "new1", "new2"], 3)
    assert got == ["new0", "new1", "new2"] and "resync" in err, err
    # Now at 4 (3 + the marker); the next writer's seqs pass it: none of its first is skipped.
    got, err, w = restart_under_reader(w, 3, [f"newer{i}" for i in range(6)], 3)
    assert got == ["newer0", "newer1", "newer2"] and "resync" in err, err
    w.close()


def test_writer_pid_follows_a_same_size_restart(name):
    a = WriterProc(name, 16, "first")
    r = ShmReader(name)
    hub = ShmHub(name)
    try:
        hub.refresh()
        assert r.writer_pid == hub.health(0, 0)["writer_pid"] == a.pid
        a.stop()
        b = WriterProc(name, 16, "second")  # same size: re-initialised in place, a new epoch
        try:
            got, _ = r.poll()
            hub.refresh()
            assert [s["reason"] for s in got] == ["second"] and r.resets == 1
            assert r.writer_pid == b.pid
            h = hub.health(0, 0)
            assert h["writer_pid"] == b.pid and h["reader_resets"] == 1
        finally:
            b.stop()
    finally:
        a.stop()
        r.close()
        hub.close()


def test_a_heartbeat_from_the_future_is_stale(name):
    w = Writer(name, capacity=16)
    w.update_state(feed_state="live", last=4100.0)
    w.heartbeat(time.time_ns() + 1_000_000_000)  # 1 s ahead: clock skew within the limit
    r = ShmReader(name)
    assert r.writer_alive(5.0)
    # Written just before the clock stepped back an hour, and then the daemon died.
    w.heartbeat(time.time_ns() + 3600 * 10**9)
    w.close()
    assert 3590 < r.heartbeat_age_s() <= 3600 and r.heartbeat_age_s(signed=True) < -3590
    assert not r.writer_alive(5.0)
    hub = ShmHub(name)
    hub.refresh()
    st = hub.status()
    assert st["error"] == "daemon_down" and "in the future" in st["detail"] and 3590 < st["heartbeat_age_s"] <= 3600
    with pytest.raises(Unavailable):
        hub.market()
    r.close()
    hub.close()


def test_a_state_lock_left_odd_never_stalls_a_refresh(name):
    a = WriterProc(name, 16, "x")
    hub = ShmHub(name, stale_after_s=1.0)
    try:
        hub.refresh()
        before = hub.market()
        assert before["last"] == 4100.0
        # The writer dies inside update_state: its lock word stays odd.
        fd = os.open(f"/dev/shm/{name}", os.O_RDWR)
        try:
            os.pwrite(fd, struct.pack("<Q", 2 * 1 + 1), STATE_OFFSET)
        finally:
            os.close(fd)
        os.kill(a.pid, signal.SIGKILL)
        a.proc.wait(timeout=30)

        r = ShmReader(name)
        t = time.perf_counter()
        with pytest.raises(StateBusy, match="locked"):
            r.state(timeout_s=0.003)
        assert time.perf_counter() - t < 0.1
        r.close()

        def refresh_ms() -> float:
            t = time.perf_counter()
            hub.refresh()
            return (time.perf_counter() - t) * 1000

        # Heartbeat still fresh (the writer set it at start): the last good state is kept,
        # and each read of the locked block is cut short.
        assert statistics.median(refresh_ms() for _ in range(5)) < 30
        assert hub.status()["available"] and hub.market()["last"] == 4100.0
        time.sleep(1.2)  # past stale_after_s: the dead writer shows as down, not as a broken segment
        assert statistics.median(refresh_ms() for _ in range(5)) < 30
        st = hub.status()
        assert st["error"] == "daemon_down", st
        assert hub.reader is not None
    finally:
        a.stop()
        hub.close()


def test_a_file_that_is_not_a_segment_is_never_taken_over() -> None:
    """A typo'd shm.name that hits another program's file in /dev/shm: refused, untouched."""
    from aurum import _native

    name = f"aurum-test-foreign-{uuid.uuid4().hex[:8]}"
    path = Path("/dev/shm", name)
    junk = os.urandom(300_000)
    path.write_bytes(junk)
    try:
        with pytest.raises(OSError, match="is not an Aurum segment") as e:
            _native.ShmSignalWriter(name, capacity=16)
        assert str(path) in str(e.value) and len(str(e.value).splitlines()) == 1
        assert path.read_bytes() == junk  # neither resized, removed nor rewritten
        # A segment whose writer died while initialising it (zeros) is ours to take.
        path.write_bytes(bytes(4096))
        w = _native.ShmSignalWriter(name, capacity=16)
        assert path.read_bytes()[:8] == MAGIC
        w.close()
    finally:
        path.unlink(missing_ok=True)


def test_the_daemon_exits_2_on_a_foreign_segment_file(tmp_path: Path) -> None:
    """Exit 2: the unit's RestartPreventExitStatus, since restarting cannot fix a name."""
    name = f"aurum-test-foreign-{uuid.uuid4().hex[:8]}"
    path = Path("/dev/shm", name)
    path.write_bytes(b"someone else's data\n" * 100)
    cfg = tmp_path / "aurum.toml"
    cfg.write_text(f'[persistence]\ncheckpoint = "{tmp_path / "m.bin"}"\n[metrics]\nenabled = false\n')
    key = "db-" + "k" * 29  # a well-formed fake, built here
    try:
        out = subprocess.run([sys.executable, "-m", "aurum.cli", "run", "--config", str(cfg)], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "DATABENTO_API_KEY": key, "AURUM_SHM_NAME": name})
        assert out.returncode == 2, out.stderr
        assert "is not an Aurum segment" in out.stderr and "Traceback" not in out.stderr and key not in out.stderr
        assert path.read_bytes() == b"someone else's data\n" * 100
    finally:
        path.unlink(missing_ok=True)

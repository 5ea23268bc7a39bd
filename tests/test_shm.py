"""Shared-memory signal output: the native writer, ``aurum.consumer``, ``aurum tail`` and the
C reader, all against real segments in /dev/shm (unique names, removed afterwards)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from conftest import INCLUDE, PYENV

from aurum import consumer
from aurum.consumer import LayoutMismatch, SegmentMissing, ShmReader

_native = pytest.importorskip("aurum._native")
Writer = _native.ShmSignalWriter


pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")


@pytest.fixture
def name():
    n = f"aurum-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    try:
        os.unlink(f"/dev/shm/{n}")
    except FileNotFoundError:
        pass


def test_layout_description_is_identical_in_rust_python_and_c():
    header = (INCLUDE / "aurum_shm.h").read_text()
    macro = header.split("#define AURUM_SHM_LAYOUT_DESC", 1)[1].split("\n\nstruct", 1)[0]
    c_desc = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', macro))
    assert Writer.layout_desc == consumer.LAYOUT_DESC == c_desc
    assert Writer.layout_hash == consumer.LAYOUT_HASH == consumer.fnv1a64(c_desc.encode())


def test_round_trip_signals_and_state(name):
    with Writer(name, capacity=16) as w:
        r = ShmReader(name)
        assert r.state() is None and r.poll() == ([], 0)
        sig = {"ts_ns": 123, "instrument_id": 42, "action": "BUY", "flags": 3, "veto": 7, "entry": 4100.5,
               "stop": 4095.25, "targets": [4110.0, 4120.0, None], "direction": 0.75, "confidence": 0.5,
               "pillar_dir": [1.0, -1.0, 0.5, 0.0, 0.25], "pillar_conf": [0.5, 0.5, 0.25, 1.0, 0.0],
               "reason": "absorption at 4099.9 ✓", "ts_out": 1_700_000_000_123_456_789}
        assert w.publish(sig) == 0
        assert w.publish(action="sell", reason="x" * 500) == 1
        w.update_state(last=4100.7, bid=4100.6, ask=4100.8, volume=1234, market_ts=99, instrument_id=42,
                       source="yahoo", feed_state="live", pillar_dir=[0.5] * 5, pillar_conf=[0.25] * 5,
                       zones=[{"price": 4099.9, "side": "B", "kind": 1, "state": 1, "strength": 0.5, "volume": 80}])
        w.update_state(volume=1300)  # a partial update keeps everything else
        got, lost = r.poll()
        assert lost == 0 and [s["seq"] for s in got] == [0, 1]
        first = {k: got[0][k] for k in sig}
        assert first == sig
        assert got[1]["action"] == "SELL" and got[1]["reason"] == "x" * 111 and got[1]["entry"] is None
        assert got[1]["ts_out"] == 0  # not given: unknown
        st = r.state()
        assert st["update_seq"] == 2 and st["volume"] == 1300 and st["last"] == 4100.7
        assert (st["source"], st["feed_state"], st["instrument_id"]) == ("yahoo", "live", 42)
        assert st["zones"] == [{"price": 4099.9, "side": "B", "kind": 1, "state": 1, "strength": 0.5, "volume": 80}]
        assert w.written == 2 and w.capacity == 16 and w.path == f"/dev/shm/{name}"
        # A consumer's dict can be re-published as is (seq/crc32 are the writer's).
        assert w.publish(got[0]) == 2
        again = r.poll()[0][0]
        assert {k: again[k] for k in sig} == sig
        r.close()


def test_lapped_reader_reports_exact_loss(name):
    with Writer(name, capacity=16) as w:
        r = ShmReader(name)
        for i in range(16 * 3 + 5):
            w.publish(instrument_id=i)
        got, lost = r.poll()
        assert lost == 37 and [s["seq"] for s in got] == list(range(37, 53))
        assert [s["instrument_id"] for s in got] == list(range(37, 53))
        for i in range(3):
            w.publish(instrument_id=i)
        got, lost = r.poll(max_records=2)
        assert lost == 0 and [s["seq"] for s in got] == [53, 54]
        assert [s["seq"] for s in r.poll()[0]] == [55]
        assert r.lost == 37 and r.torn == 0


def test_from_start_reads_what_is_still_in_the_ring(name):
    with Writer(name, capacity=8) as w:
        for i in range(11):
            w.publish(instrument_id=i)
        assert [s["seq"] for s in ShmReader(name, from_start=True).poll()[0]] == list(range(3, 11))
        assert ShmReader(name).poll() == ([], 0)


def test_permissions_default_0600_and_configurable(name):
    old = os.umask(0o077)  # the configured mode wins over the umask
    try:
        with Writer(name):
            assert os.stat(f"/dev/shm/{name}").st_mode & 0o777 == 0o600
        with Writer(name, mode=0o644):
            assert os.stat(f"/dev/shm/{name}").st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    with pytest.raises(ValueError, match="mode"):
        Writer(name, mode=0o4755)


def test_missing_segment_and_wrong_layout_are_clear_errors(name):
    with pytest.raises(SegmentMissing, match=name):
        ShmReader(name)
    with Writer(name, capacity=8):
        pass
    raw = bytearray(Path(f"/dev/shm/{name}").read_bytes())
    raw[16:24] = (consumer.LAYOUT_HASH ^ 1).to_bytes(8, "little")
    Path(f"/dev/shm/{name}").write_bytes(raw)
    with pytest.raises(LayoutMismatch, match=rf"{name}.*hash"):
        ShmReader(name)
    Path(f"/dev/shm/{name}").write_bytes(b"NOTAURUM" + bytes(4096))
    with pytest.raises(LayoutMismatch, match="magic"):
        ShmReader(name)
    with pytest.raises(ValueError, match="plain file name"):
        ShmReader("../etc/passwd")


def test_writer_rules_and_bad_input(name):
    with Writer(name, capacity=8) as w:
        with pytest.raises(OSError, match="live writer"):
            Writer(name, capacity=8)
        with pytest.raises(ValueError, match="unknown signal field 'bogus'|\"bogus\""):
            w.publish(bogus=1)
        with pytest.raises(ValueError, match="at most 32"):
            w.update_state(zones=[{"price": 1.0}] * 33)
        with pytest.raises(ValueError, match="action"):
            w.publish(action="HOLD")
        with pytest.raises(ValueError, match="veto"):
            w.publish(veto=70000)
    with pytest.raises(RuntimeError, match="closed"):
        w.publish()
    with pytest.raises(ValueError, match="power of two"):
        Writer(name, capacity=12)


def test_heartbeat_and_writer_restart(name):
    w = Writer(name, capacity=8)
    r = ShmReader(name)
    assert r.writer_alive(2.0)
    w.heartbeat(time.time_ns() - 10_000_000_000)
    assert not r.writer_alive(2.0) and r.heartbeat_age_s() > 9
    w.heartbeat()
    assert r.writer_alive(2.0)
    for i in range(5):
        w.publish(instrument_id=i)
    assert len(r.poll()[0]) == 5
    w.close()  # the writer "dies", leaving the segment behind
    w2 = Writer(name, capacity=8)  # same size: re-initialised in place
    w2.publish(instrument_id=100)
    got, lost = r.poll()
    assert r.resets == 1 and lost == 0 and [(s["seq"], s["instrument_id"]) for s in got] == [(0, 100)]
    w2.close()
    w3 = Writer(name, capacity=32)  # another size: a new file, the reader reopens it
    w3.publish(instrument_id=200)
    r._next_inode_check = 0.0
    got, _ = r.poll()
    assert r.resets == 2 and r.capacity == 32 and [s["instrument_id"] for s in got] == [200]
    w3.close()


STRESS_N = 200_000
STRESS_COMMON = textwrap.dedent("""
    import json, sys, time, zlib
    def signal(seq):
        e = 1000.0 + seq * 0.25
        return dict(ts_ns=seq * 1000 + 7, instrument_id=(seq * 2654435761) % 2**32, action=seq % 3,
                    flags=seq % 256, veto=seq % 65536, entry=e, stop=e - 5.0, targets=[e + 1.0, e + 2.0, e + 3.0],
                    direction=(seq % 1000) / 1000.0, confidence=1.0 / (seq + 1),
                    pillar_dir=[(seq % 7) * 0.5] * 5, pillar_conf=[(seq % 11) * 0.25] * 5,
                    reason="sig-%d-%08x" % (seq, zlib.crc32(str(seq).encode())))
    def state(k):
        last = 2000.0 + k * 0.5
        zones = [dict(price=1000.0 + k + i, side="B" if (k + i) % 2 else "A", kind=i % 3, state=k % 4,
                      strength=(i % 4) * 0.25, volume=k + i) for i in range(k % 33)]
        return dict(last=last, bid=last - 0.25, ask=last + 0.25, volume=k, market_ts=k * 3, instrument_id=k % 1000,
                    source=k % 3, feed_state=k % 4, pillar_dir=[(k % 5) * 0.5] * 5, pillar_conf=[(k % 9) * 0.125] * 5,
                    zones=zones)
""")
STRESS_WRITER = STRESS_COMMON + textwrap.dedent("""
    from aurum._native import ShmSignalWriter
    name, n = sys.argv[1], int(sys.argv[2])
    w = ShmSignalWriter(name, capacity=256)
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for seq in range(n):
        w.publish(signal(seq))
        if seq % 8 == 0:
            w.update_state(state(seq // 8))
    print(json.dumps({"elapsed": time.perf_counter() - t0}), flush=True)
    sys.stdin.readline()
""")
STRESS_READER = STRESS_COMMON + textwrap.dedent("""
    from aurum.consumer import ShmReader, SOURCES, FEED_STATES, ACTIONS
    name, n = sys.argv[1], int(sys.argv[2])
    r = ShmReader(name, verify_crc=False)  # the seqlock alone must never accept a torn copy
    print("ready", flush=True)
    seen = bad = backwards = states = bad_states = 0
    last_seq, last_upd, deadline = -1, 0, time.monotonic() + 120
    checks = ("ts_ns", "instrument_id", "flags", "veto", "entry", "stop", "targets", "direction",
              "confidence", "pillar_dir", "pillar_conf", "reason")
    while seen + r.lost < n and time.monotonic() < deadline:
        got, _ = r.poll(max_records=512)
        for s in got:
            want = signal(s["seq"])
            ok = all(s[k] == want[k] for k in checks) and s["action"] == ACTIONS[want["action"]]
            bad += not ok
            backwards += s["seq"] <= last_seq
            last_seq = s["seq"]
        seen += len(got)
        st = r.state()
        if st is not None:
            want = state(st["volume"])
            want["source"], want["feed_state"] = SOURCES[want["source"]], FEED_STATES[want["feed_state"]]
            zw = want.pop("zones")
            ok = all(st[k] == v for k, v in want.items()) and st["update_seq"] == st["volume"] + 1 and \\
                [(z["price"], z["side"], z["kind"], z["state"], z["strength"], z["volume"]) for z in st["zones"]] == \\
                [(z["price"], z["side"], z["kind"], z["state"], z["strength"], z["volume"]) for z in zw]
            bad_states += not ok
            backwards += st["update_seq"] < last_upd
            last_upd = st["update_seq"]
            states += 1
    print(json.dumps(dict(seen=seen, lost=r.lost, torn=r.torn, bad=bad, backwards=backwards,
                          states=states, bad_states=bad_states, resets=r.resets)), flush=True)
""")


def test_multiprocess_stress_never_accepts_a_torn_read(name):
    py = sys.executable
    writer = subprocess.Popen([py, "-c", STRESS_WRITER, name, str(STRESS_N)], env=PYENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    readers = []
    try:
        assert writer.stdout.readline().strip() == "ready"
        for _ in range(3):
            p = subprocess.Popen([py, "-c", STRESS_READER, name, str(STRESS_N)], env=PYENV, text=True,
                                 stdout=subprocess.PIPE)
            assert p.stdout.readline().strip() == "ready"
            readers.append(p)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        wstats = json.loads(writer.stdout.readline())
        results = [json.loads(p.communicate(timeout=180)[0]) for p in readers]
    finally:
        for p in [writer, *readers]:
            if p.poll() is None:
                p.kill()
            p.wait()
    print(f"\nwriter: {STRESS_N} signals + {STRESS_N // 8} state updates in {wstats['elapsed']:.2f}s; readers: {results}")
    for res in results:
        assert res["bad"] == 0 and res["bad_states"] == 0 and res["backwards"] == 0, res
        assert res["seen"] + res["lost"] == STRESS_N, res
        assert res["seen"] > 0 and res["states"] > 0 and res["resets"] == 0, res


def _run_tail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aurum.tail", *args], env=PYENV, text=True,
                          capture_output=True, timeout=30)


def test_wait_sleeps_in_the_kernel_until_the_writer_publishes(name):
    """``ShmReader.wait`` blocks on the notify futex: a reader in another process, waiting
    with a 60 s timeout, wakes on the writer's publication (not on its timeout), for a signal
    and for a state update; nothing published means a timeout; and a publication between a
    poll and the next wait is never slept through."""
    script = textwrap.dedent(f"""
        import json, sys, time
        from aurum.consumer import ShmReader
        r = ShmReader({name!r})
        out = []
        for _ in range(2):
            print("waiting", flush=True)
            t0 = time.monotonic()
            woke = r.wait(60.0)
            out.append([woke, time.monotonic() - t0, len(r.poll()[0]), r.state_seq()])
        print(json.dumps(out), flush=True)
    """)
    with Writer(name, capacity=8) as w:
        r = ShmReader(name)
        assert r.wait(0.05) is False  # nothing published: the timeout
        child = subprocess.Popen([sys.executable, "-c", script], env=PYENV, text=True, stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == "waiting"
        cpu0 = _cpu_seconds(child.pid)
        time.sleep(1.0)
        # A blocked waiter uses no CPU (a spinning one would use ~1 s of it here).
        assert _cpu_seconds(child.pid) - cpu0 < 0.3
        w.publish(reason="wake-1")
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        w.update_state(last=4100.5)
        res = json.loads(child.stdout.readline())
        assert child.wait(timeout=30) == 0
        (woke1, dt1, n1, _), (woke2, dt2, n2, st2) = res
        assert woke1 and n1 == 1 and dt1 < 30  # woken by the publication, not the 60 s timeout
        assert woke2 and n2 == 0 and st2 == 1 and dt2 < 30
        # No lost wake-up: a publication after the reader's last wait returned is seen at once.
        assert r.wait(0) is True  # the publications above
        assert r.wait(0) is True  # and "wake-1" is still unread
        assert [x["reason"] for x in r.poll()[0]] == ["wake-1"]
        assert r.wait(0.01) is False
        w.publish(reason="between")
        assert r.wait(60.0) is True and r.poll()[0][-1]["reason"] == "between"
        r.close()


def test_batched_wake_ups_wake_readers_only_at_wake(name):
    """With ``wake_on_publish=False`` (the daemon) publications count in ``notify`` at once,
    so a reader that checks sees them, but a reader blocked in the kernel is woken by
    ``wake()``; a ``wake()`` with nothing published is a no-op."""
    script = textwrap.dedent(f"""
        import sys, time
        from aurum.consumer import ShmReader
        r = ShmReader({name!r})
        print("waiting", flush=True)
        t0 = time.monotonic()
        woke = r.wait(60.0)
        print(woke, len(r.poll()[0]), r.state_seq(), flush=True)
    """)
    with Writer(name, capacity=8, wake_on_publish=False) as w:
        w.wake()  # nothing published: nothing to do
        child = subprocess.Popen([sys.executable, "-c", script], env=PYENV, text=True, stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == "waiting"
        r = ShmReader(name)
        time.sleep(0.3)
        w.publish(reason="a")
        w.update_state(last=4100.0)
        time.sleep(0.5)
        assert child.poll() is None  # still blocked: no wake yet
        assert r.wait(0) is True  # but a reader that looks sees the publications
        w.wake()
        assert child.stdout.readline().split() == ["True", "1", "1"]
        assert child.wait(timeout=30) == 0
        r.close()


def test_a_waiting_reader_skips_what_another_reads(name):
    """``skip`` moves past unread signals (they would make every ``wait`` return at once),
    including across a re-initialised ring, whose write_seq starts again from 0."""
    with Writer(name, capacity=8) as w:
        r = ShmReader(name)
        for i in range(3):
            w.publish(reason=f"s{i}")
        assert r.wait(0) is True and r.wait(0) is True  # unread signals: at once, every time
        assert r.skip() == 3 and r.skip() == 0
        assert r.wait(0.05) is False  # nothing new: it slept until the timeout
        w.publish(reason="s3")
        assert r.wait(5) is True and r.skip() == 1 and r.poll() == ([], 0)
        r.close()
    with Writer(name, capacity=8) as w:  # a restarted writer re-initialises the ring
        r2 = ShmReader(name)
        w.publish(reason="new")
        assert r2.wait(5) is True and r2.skip() == 1 and r2.wait(0.05) is False
        r2.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_tail_command(name):
    missing = _run_tail("--name", name)
    assert missing.returncode == 2 and name in missing.stderr and missing.stderr.count("\n") == 1
    with Writer(name, capacity=8) as w:
        for i in range(3):
            w.publish(action="buy", entry=4100 + i, reason=f"r{i}")
        w.update_state(last=4100.5, zones=[{"price": 4099.0, "side": "A"}])
        out = _run_tail("--name", name, "--json", "--count", "2", "--from-start")
        assert out.returncode == 0, out.stderr
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        assert [(s["seq"], s["entry"], s["reason"]) for s in lines] == [(0, 4100.0, "r0"), (1, 4101.0, "r1")]
        human = _run_tail("--name", name, "--count", "3", "--from-start")
        assert human.stdout.splitlines()[2].startswith("#2 ") and "BUY" in human.stdout
        st = _run_tail("--name", name, "--state", "--json")
        assert json.loads(st.stdout)["last"] == 4100.5
        assert "4099.00 A" in _run_tail("--name", name, "--state").stdout
        # Live: tail waits for signals published after it started.
        live = subprocess.Popen([sys.executable, "-m", "aurum.tail", "--name", name, "--json", "--count", "2"],
                                env=PYENV, text=True, stdout=subprocess.PIPE)
        time.sleep(1.0)
        w.publish(reason="late-1")
        w.publish(reason="late-2")
        assert [json.loads(x)["reason"] for x in live.communicate(timeout=30)[0].splitlines()] == ["late-1", "late-2"]
        # A NaN field is JSON null (the stdlib wrote NaN, which no JSON parser accepts).
        w.publish(reason="nan", direction=float("nan"))
        out = _run_tail("--name", name, "--json", "--count", "6", "--from-start")
        got = [json.loads(x, parse_constant=lambda c: pytest.fail(f"not JSON: {c}")) for x in out.stdout.splitlines()]
        assert got[-1]["reason"] == "nan" and got[-1]["direction"] is None
    # An --interval of 0 spun a core: refused, as is any non-positive or absurd value.
    for bad in ("0", "-1", "nan", "1e9"):
        res = _run_tail("--name", name, "--interval", bad)
        assert res.returncode == 2 and "--interval" in res.stderr, (bad, res.stderr)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_reader(name, tmp_path):
    exe = tmp_path / "aurum_shm_reader"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(INCLUDE / "aurum_shm_reader.c")], check=True)
    missing = subprocess.run([str(exe), name], capture_output=True, text=True)
    assert missing.returncode == 2 and name in missing.stderr
    with Writer(name, capacity=8) as w:
        for i in range(10):
            w.publish(instrument_id=i, action=i % 3, entry=4100 + i * 0.1, direction=-0.5, reason=f"c{i}",
                      pillar_dir=[0.25, 0, 0, 0, 0])
        w.update_state(last=4101.2, volume=55, zones=[{"price": 4099.5, "side": "B", "strength": 0.75, "volume": 9}])
        out = subprocess.run([str(exe), name, "--from-start", "--count", "8"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[-1] == "lost=0" and len(lines) == 9
        for i, line in zip(range(2, 10), lines):
            f = dict(kv.split("=", 1) for kv in line.split(" "))
            assert f["seq"] == str(i) and f["inst"] == str(i) and f["action"] == str(i % 3)
            assert int(f["entry"]) == round((4100 + i * 0.1) * 1e9) and f["crc"] == "ok"
            assert f["reason"] == f"c{i}" and f["dir"] == "-0.500000" and f["p0"] == "0.250"
        st = subprocess.run([str(exe), name, "--state"], capture_output=True, text=True).stdout.splitlines()
        assert st[0].startswith("state update=1 last=4101200000000 ") and "volume=55" in st[0] and st[0].endswith("crc=ok")
        assert st[1] == "zone price=4099500000000 side=B strength=0.750 volume=9"
        # Live: the C reader waits for new signals.
        live = subprocess.Popen([str(exe), name, "--count", "2"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        w.publish(reason="new-a")
        w.publish(reason="new-b")
        got = live.communicate(timeout=30)[0].splitlines()
        assert live.returncode == 0 and [ln.rsplit("reason=", 1)[1] for ln in got[:2]] == ["new-a", "new-b"]

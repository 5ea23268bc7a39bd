"""Bad input and Ctrl-C on `aurum sim`, `aurum gateway`, `aurum demo` and `aurum tail`, run as
real commands: one line naming the flag or value, a non-zero exit (2 for usage errors), no
traceback; Ctrl-C stops with one line and exit 130, leaving no partial files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import PYENV

AURUM = [sys.executable, "-m", "aurum.cli"]
KEY = "db-" + "k" * 29


def aurum(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AURUM, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or PYENV, cwd=cwd)


def last_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines, f"nothing on stderr (exit {res.returncode}); stdout: {res.stdout}"
    return lines[-1]


def interrupt(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return proc.returncode, err


def wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- aurum sim -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, named", [
    (["--seed", "-1"], "--seed"),
    (["--price", "nan"], "--price"),
    (["--price", "inf"], "--price"),
    (["--start", "yesterday"], "yesterday"),
    (["--records", "inf"], "--records"),
    (["--duration", "inf"], "--duration"),
    (["--zstd-level", "99"], "--zstd-level"),
    (["--set", "channel_id=99999999"], "channel_id=99999999"),
    (["--set", "inband_mappings=maybe"], "inband_mappings=maybe"),
    (["--set", "add_rate=-5"], "add_rate=-5"),
    (["--set", "records=inf"], "records=inf"),
    (["--set", "iceberg_clip=5,1"], "iceberg_clip=5,1"),
    (["--set", "nosuch=1"], "nosuch"),
    (["--symbols", "GCZ6,GCZ6"], "GCZ6"),
    # 2 x 60 snapshot records cannot fit in 100 (was an IndexError after generating)
    (["--records", "100", "--symbols", "GCZ6,GCG7"], "records was 100"),
    (["--out", "no/such/dir/x.dbn.zst"], "no/such/dir"),
    (["--out", "x.csv"], "--out x.csv"),
])
def test_sim_rejects_bad_input_with_one_line(tmp_path: Path, args: list[str], named: str) -> None:
    res = aurum("sim", "--quiet", *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert named in last_line(res)
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing written


def test_sim_set_booleans_and_files_in_place(tmp_path: Path) -> None:
    out = tmp_path / "s.dbn.zst"
    res = aurum("sim", "--quiet", "--records", "1000", "--set", "inband_mappings=false", "--out", str(out))
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in tmp_path.iterdir())  # no hidden staging folder left behind
    assert names == ["s.dbn.zst", "s.labels.jsonl", "s.mbp-10.dbn.zst", "s.trades.dbn.zst"]
    assert '"inband_mappings": false' in (tmp_path / "s.labels.jsonl").read_text().splitlines()[0]


def test_sim_ctrl_c_exits_130_and_leaves_no_partial_files(tmp_path: Path) -> None:
    proc = subprocess.Popen([*AURUM, "sim", "--records", "3000000", "--out", str(tmp_path / "big.dbn.zst")],
                            env=PYENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(tmp_path.iterdir()))  # the staging folder: generation starts
        time.sleep(1.0)
        assert proc.poll() is None, "finished before it could be interrupted"
        rc, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    assert err.strip().splitlines()[-1] == "aurum sim: interrupted; no files written"
    assert list(tmp_path.iterdir()) == []


# --- aurum gateway -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["70000", "-1", "65536", "http"])
def test_gateway_port_out_of_range(tmp_path: Path, value: str) -> None:
    res = aurum("gateway", "--data", str(tmp_path / "x.dbn"), f"--port={value}")
    assert res.returncode == 2
    line = last_line(res)
    assert "--port" in line and value in line


def test_gateway_ctrl_c_while_simulating(tmp_path: Path) -> None:
    sim_dir = tmp_path / "sim"
    proc = subprocess.Popen([*AURUM, "gateway", "--sim", "mixed", "--sim-records", "2000000", "--sim-dir",
                             str(sim_dir), "--port", "0"], env={**PYENV, "AURUM_GATEWAY_KEYS": KEY},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: sim_dir.is_dir() and any(sim_dir.iterdir()))
        time.sleep(0.5)
        assert proc.poll() is None
        rc, err = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130 and err.strip().splitlines()[-1] == "aurum gateway: interrupted"
    assert list(sim_dir.iterdir()) == []


# --- aurum demo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, named", [
    (["--timeout", "0"], "--timeout"), (["--timeout", "-3"], "--timeout"), (["--count", "0"], "--count"),
    (["--scenario", "nosuch"], "--scenario"), (["--seed", "-1"], "--seed"), (["--speed", "fast"], "--speed"),
])
def test_demo_rejects_bad_flags_before_starting_anything(args: list[str], named: str) -> None:
    res = aurum("demo", *args)
    assert res.returncode == 2
    assert named in last_line(res)
    assert "gateway" not in res.stdout  # nothing was started


def test_demo_failure_keeps_its_logs() -> None:
    res = aurum("demo", "--count", "1000", "--timeout", "1", "--speed", "1x", timeout=120)
    line = last_line(res)
    found = re.search(r"(/\S*/aurum-demo-[^/\s]+)", line)
    work = Path(found.group(1)) if found else None
    try:
        assert res.returncode == 1, res.stderr
        # Fewer than 1000 signals in 1 s (or, on a slow machine, no segment yet): a failure.
        assert "--timeout 1 s" in line and "kept" in line and work is not None, line
        assert (work / "gateway.log").is_file() and (work / "daemon.log").is_file()
    finally:
        if work is not None and work.name.startswith("aurum-demo-"):
            shutil.rmtree(work, ignore_errors=True)


# --- aurum tail ----------------------------------------------------------------------------------


@pytest.fixture
def shm_name():
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm")
    name = f"aurum-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    Path("/dev/shm", name).unlink(missing_ok=True)


def test_tail_says_the_writer_stopped_cleanly(shm_name: str) -> None:
    from aurum._native import ShmSignalWriter

    w = ShmSignalWriter(shm_name, capacity=16)
    w.publish(instrument_id=7)
    w.heartbeat(0)  # what the daemon does on a clean stop
    w.close()
    res = aurum("tail", "--name", shm_name, "--from-start", "--count", "1", "--json", timeout=20)
    assert res.returncode == 0, res.stderr
    assert '"instrument_id":7' in res.stdout
    assert f"writer (pid {os.getpid()}) stopped cleanly" in res.stderr
    assert "never" not in res.stderr and "Traceback" not in res.stderr


def test_tail_gives_up_on_a_segment_never_initialised(shm_name: str) -> None:
    Path("/dev/shm", shm_name).touch()  # a writer died between creating and sizing it
    t0 = time.monotonic()
    res = aurum("tail", "--name", shm_name, timeout=30)
    assert res.returncode == 2
    line = last_line(res)
    assert shm_name in line and "not initialised" in line
    assert time.monotonic() - t0 < 15


def test_tail_waits_for_a_daemon_that_is_starting(shm_name: str) -> None:
    from aurum._native import ShmSignalWriter

    Path("/dev/shm", shm_name).touch()
    proc = subprocess.Popen([*AURUM, "tail", "--name", shm_name, "--from-start", "--count", "1", "--json"],
                            env=PYENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        w = ShmSignalWriter(shm_name, capacity=16)  # takes the empty file over
        w.publish(instrument_id=9)
        out, err = proc.communicate(timeout=20)
        w.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert '"instrument_id":9' in out and "initialising" in err and "Traceback" not in err


def test_tail_ctrl_c(shm_name: str) -> None:
    from aurum._native import ShmSignalWriter

    w = ShmSignalWriter(shm_name, capacity=16)
    try:
        proc = subprocess.Popen([*AURUM, "tail", "--name", shm_name], env=PYENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        rc, err = interrupt(proc)
    finally:
        w.close()
    assert rc == 130 and err.strip().splitlines()[-1] == "aurum tail: interrupted"

"""A /dev/shm too small for the segment (Docker's default is 64 MiB): the writer must fail
with ENOSPC naming the segment and the size, never die of SIGBUS, and ``aurum doctor`` must
say so first. Runs in a private mount namespace on a 1 MiB tmpfs, so the host's /dev/shm is
never touched; skips where mount namespaces are not allowed."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("aurum._native")

NAME = "aurum-space-test"
SMALL_TMPFS = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/dev/shm"]


def in_small_shm(script: str) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` with ``/dev/shm`` a fresh 1 MiB tmpfs, in its own mount namespace."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f'{" ".join(SMALL_TMPFS)} && exec "$0" -c "$1"', sys.executable, textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def mount_namespace() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", *SMALL_TMPFS], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here (needs CAP_SYS_ADMIN): {probe.stderr.strip()}")


def test_writer_reports_a_full_shm_instead_of_dying_of_sigbus() -> None:
    # 8192 slots = 2 MiB + 1280 bytes: twice the tmpfs. The daemon's own call (Daemon._open_shm).
    out = in_small_shm(f"""
        import json, os
        from aurum._native import ShmSignalWriter
        try:
            ShmSignalWriter({NAME!r}, capacity=8192, mode=0o600, wake_on_publish=False)
            print(json.dumps({{"created": True}}))
        except OSError as e:
            print(json.dumps({{"error": str(e), "left": os.listdir("/dev/shm")}}))
        w = ShmSignalWriter({NAME!r}, capacity=2048, mode=0o600, wake_on_publish=False)  # 513 KiB fits
        w.publish(reason="fits")
        print(json.dumps({{"fits": os.path.getsize(w.path)}}))
    """)
    assert out.returncode != -signal.SIGBUS, "the writer died of SIGBUS"
    assert out.returncode == 0, out.stderr
    first, second = (json.loads(line) for line in out.stdout.splitlines())
    err = first.get("error", "")
    assert f"/dev/shm/{NAME}" in err and "2098432 bytes" in err and "No space left on device" in err, first
    assert "shm.capacity" in err, err  # says what to change
    assert first["left"] == [], "a refused segment must not stay behind as an empty file"
    assert second == {"fits": 1280 + 2048 * 256}


def test_doctor_compares_free_space_with_the_segment_size() -> None:
    out = in_small_shm("""
        from aurum.config import load_config
        from aurum.doctor import check_shm_space
        for cap in ("8192", "1024"):
            ok, line = check_shm_space(load_config(None, environ={"AURUM_SHM_CAPACITY": cap}))
            print(ok, line)
    """)
    assert out.returncode == 0, out.stderr
    too_big, fits = out.stdout.splitlines()
    assert too_big.startswith("False shared memory space: /dev/shm has 1.0 MiB free, the segment needs 2.0 MiB "
                              "(shm.capacity 8192)"), too_big
    assert "lower shm.capacity" in too_big
    assert fits == "True shared memory space: /dev/shm has 1.0 MiB free, the segment needs 0.3 MiB (shm.capacity 1024)"

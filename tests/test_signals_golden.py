"""Determinism of the decision layer: a seeded simulator session replayed in two fresh
processes gives byte-identical signals and pillars, and the bytes match a pinned digest.

When a deliberate change to an engine, a pillar or the builder changes the output, the
digest below must be updated in the same commit, with the reason in its message.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import simulated_mbo

GOLDEN_SHA256 = "73fe6be5ea2b83f35cd341d59aa5cff7b75745334d034ce007680c12d63ea1fb"

SCRIPT = r"""
import sys, orjson
from aurum.replay import ReplayOptions, Replayer
rep = Replayer(ReplayOptions(bar_interval_ns=5_000_000_000)).run([sys.argv[1]]).report
sys.stdout.buffer.write(orjson.dumps({"signals": rep["signals"], "pillars": rep["pillars"]}, option=orjson.OPT_SORT_KEYS))
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_mbo(tmp_path_factory.mktemp("golden"), seed=21, records=600_000)


def _signals(path: Path) -> bytes:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_signals_are_byte_identical_and_pinned(session: Path) -> None:
    import orjson

    a, b = _signals(session), _signals(session)
    assert a == b
    doc = orjson.loads(a)
    assert len(doc["signals"]) >= 4, "the golden session should exercise the builder"
    assert {s["action"] for s in doc["signals"]} >= {"BUY", "FLAT"} or {s["action"] for s in doc["signals"]} >= {"SELL", "FLAT"}
    for s in doc["signals"]:
        assert set(s["pillars"]) <= {"qmo", "imo", "gann", "astro", "cycle"} and s["reasons"]
        if s["action"] != "FLAT":
            assert s["entry"] is not None and s["stop"] is not None and s["targets"]
            assert (s["stop"] < s["entry"]) if s["action"] == "BUY" else (s["stop"] > s["entry"])
    assert hashlib.sha256(a).hexdigest() == GOLDEN_SHA256

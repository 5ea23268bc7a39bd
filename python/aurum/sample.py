"""The embedded default session for `make run` / `aurum replay --sample`.

A seeded synthetic GC MBO session (`aurum.testing.synth`), generated on first use into the
user cache and reused afterwards. The same seed gives the same bytes, so every machine
replays the same session. The labelled market simulator (`aurum sim`) supersedes this.
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_RECORDS = 1_000_000
SAMPLE_SEED = 7
SAMPLE_NAME = f"sample-gcz6-{SAMPLE_RECORDS}-seed{SAMPLE_SEED}.dbn.zst"


def cache_dir() -> Path:
    """``$AURUM_CACHE_DIR``, else ``$XDG_CACHE_HOME/aurum``, else ``~/.cache/aurum``."""
    env = os.environ.get("AURUM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "aurum"


def sample_session() -> Path:
    """Path to the sample session, generating it if missing (atomically: temp + rename)."""
    from aurum.testing.synth import write_synth

    path = cache_dir() / SAMPLE_NAME
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.{path.name}")  # keeps the .zst suffix write_synth reads
    try:
        write_synth(tmp, SAMPLE_RECORDS, seed=SAMPLE_SEED, symbol="GCZ6", price0=4100.0)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

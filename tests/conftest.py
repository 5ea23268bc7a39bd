"""Shared fixtures: the real DBN samples in ../shared/data (outside the repo, never copied in)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INCLUDE = REPO_ROOT / "native" / "include"  # the C header and reader of the shared-memory layout
# The environment for a child Python that must import this tree's package.
PYENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}

# Let `import aurum` work from a source checkout when the package is not installed (the
# extension module still has to be built into python/aurum/ for native tests to run).
if importlib.util.find_spec("aurum") is None:
    sys.path.insert(0, str(REPO_ROOT / "python"))

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SKIP_HINT = "real DBN samples live in ../shared/data, outside the repo (or set AURUM_SHARED_DATA)"


def shared_data_dir() -> Path:
    """``$AURUM_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("AURUM_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return REPO_ROOT.parent / "shared" / "data"


def read_dbn_bytes(path: Path) -> bytes:
    """The decompressed DBN stream of a ``.dbn`` or ``.dbn.zst`` file (zstd detected by magic)."""
    raw = Path(path).read_bytes()
    if raw[:4] != ZSTD_MAGIC:
        return raw
    import zstandard

    # Frames written by streaming encoders may not record their content size: stream it.
    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
        return reader.read()


def simulated_mbo(directory: Path, *, seed: int, records: int, scenario: str = "mixed") -> Path:
    """The MBO file of a seeded ``aurum sim`` session written into ``directory``."""
    from aurum.sim import run_to_files

    _, summary = run_to_files(scenario, Path(directory) / "s.dbn.zst", seed=seed, records=records)
    return Path(summary["paths"]["mbo"])


def split_dbn(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a decompressed DBN stream into (metadata header, [record bytes, ...]).

    The header is the 8-byte prefix plus its little-endian u32 length at bytes 4..8; each record's
    first byte is its length in 4-byte words.
    """
    if data[:3] != b"DBN":
        raise ValueError("not a DBN stream (missing 'DBN' magic)")
    meta_end = 8 + int.from_bytes(data[4:8], "little")
    records: list[bytes] = []
    pos = meta_end
    while pos < len(data):
        length = data[pos] * 4
        if length == 0 or pos + length > len(data):
            raise ValueError(f"bad record length {length} at offset {pos}")
        records.append(data[pos : pos + length])
        pos += length
    return data[:meta_end], records


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the shared sample data folder (may not exist; see the other fixtures)."""
    return shared_data_dir()


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} not found: {SKIP_HINT}")
    return path


@pytest.fixture(scope="session")
def es_real(shared_data: Path) -> Path:
    """``shared/data/es-real``: real ES MBO/MBP/trades/definition files (DBN v1)."""
    return _require_dir(shared_data / "es-real")


@pytest.fixture(scope="session")
def glbx_samples(shared_data: Path) -> Path:
    """``shared/data/glbx-samples``: ESH1 one file per schema plus a live capture (DBN v3)."""
    return _require_dir(shared_data / "glbx-samples")


@pytest.fixture(scope="session")
def dbn_bytes() -> Iterator[object]:
    """A cached ``read_dbn_bytes`` (decompress each sample once per session)."""
    cache: dict[Path, bytes] = {}

    def read(path: Path) -> bytes:
        key = Path(path).resolve()
        if key not in cache:
            cache[key] = read_dbn_bytes(key)
        return cache[key]

    yield read
    cache.clear()


@pytest.fixture(scope="session")
def split_dbn_stream() -> object:
    """``split_dbn``: a decompressed stream -> (metadata header bytes, [record bytes, ...])."""
    return split_dbn


@pytest.fixture(scope="session")
def native() -> object:
    """The ``aurum._native`` extension, or a skip when it has not been built."""
    return pytest.importorskip("aurum._native", reason="aurum._native is not built (build the extension first)")

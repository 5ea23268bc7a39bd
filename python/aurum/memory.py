"""Iceberg Memory snapshots: the iceberg and zone tables, checkpointed and restored.

The daemon checkpoints atomically and restores at start-up, so zones built during a session
survive a restart. Two encodings, told apart by their first bytes when loading:

- **binary** (what ``save_memory`` writes): a 40-byte header, then the native rows exactly as
  the tables hold them. Written straight from the tables' memory, so a checkpoint allocates
  nothing in proportion to the table (the JSON checkpoints of a full table made the daemon's
  RSS ratchet up by ~1 MiB a minute in ``bench/bench_latency.py``). Header, little-endian::

      0  8s  magic b"AURUMIM2"
      8  u32 iceberg record size     12 u32 zone record size
      16 u64 iceberg rows            24 u64 zone rows
      32 u32 CRC-32 of the rows      36 u32 reserved (0)

- **JSON** (``export_memory`` / ``restore_memory``, format ``aurum-iceberg-memory/1``): one
  document with a row object per iceberg and zone, for inspection; JSON snapshots written by
  earlier builds still load.

Either way a snapshot whose record layout differs from this build's, or that is truncated or
corrupt, is refused with an error naming the file, and the tables are left as they were.
"""

from __future__ import annotations

import contextlib
import glob
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from aurum import _native
from aurum.engines import ICEBERG_DTYPE, ZONE_DTYPE, table_array

FORMAT = "aurum-iceberg-memory/1"
MAGIC = b"AURUMIM2"
_HEADER = struct.Struct("<8sIIQQII")


class SnapshotError(ValueError):
    """A snapshot file that cannot be restored; the message names the file and the reason."""


def _rows(arr: np.ndarray) -> list[dict[str, Any]]:
    # Column-wise (one tolist per field): the same Python scalars as .item() per cell, without
    # a numpy scalar per cell; a checkpoint of a full table is ~20x faster.
    names = arr.dtype.names
    return [dict(zip(names, vals)) for vals in zip(*(arr[n].tolist() for n in names))]


def export_memory(pipeline: _native.Pipeline) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "record_sizes": {"iceberg": ICEBERG_DTYPE.itemsize, "zone": ZONE_DTYPE.itemsize},
        "icebergs": _rows(table_array(pipeline, "icebergs")),
        "zones": _rows(table_array(pipeline, "zones")),
    }


def _array(rows: list[dict[str, Any]], dtype: np.dtype, what: str, src: str) -> np.ndarray:
    if not isinstance(rows, list):
        raise SnapshotError(f"{src}: {what}s must be a list of rows, got {type(rows).__name__}")
    arr = np.zeros(len(rows), dtype=dtype)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SnapshotError(f"{src}: {what} row {i} must be an object, got {type(row).__name__}")
        missing = set(dtype.names) - set(row)
        if missing:
            raise SnapshotError(f"{src}: {what} row {i} lacks {', '.join(sorted(missing))}")
        for name in dtype.names:
            try:
                arr[name][i] = row[name]
            except (TypeError, ValueError, OverflowError) as e:
                raise SnapshotError(f"{src}: {what} row {i} field {name!r}: {e}") from None
    return arr


def restore_memory(pipeline: _native.Pipeline, doc: dict[str, Any], src: str = "snapshot",
                   keep_days: float = 0.0) -> tuple[int, int]:
    """Replaces the pipeline's iceberg and zone tables. Returns (icebergs, zones) kept."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{src}: not an Iceberg Memory snapshot (expected format {FORMAT!r})")
    sizes = doc.get("record_sizes", {})
    if sizes != {"iceberg": ICEBERG_DTYPE.itemsize, "zone": ZONE_DTYPE.itemsize}:
        raise SnapshotError(f"{src}: record layout {sizes} differs from this build's")
    ice = _array(doc.get("icebergs", []), ICEBERG_DTYPE, "iceberg", src)
    zones = _array(doc.get("zones", []), ZONE_DTYPE, "zone", src)
    return pipeline.memory_restore(*_recent(ice, zones, keep_days))


def _recent(ice: np.ndarray, zones: np.ndarray, keep_days: float) -> tuple[bytes, bytes]:
    """The rows last seen within ``keep_days`` of the snapshot's newest row (all of them for 0).
    The tables have a fixed size: a daemon restored day after day would otherwise fill them
    with old rows, then refuse every new iceberg and zone. Measured on the data's own clock,
    so a replayed or simulated session's snapshot ages as its data did, not as the wall's."""
    if keep_days > 0 and (len(ice) or len(zones)):
        newest = max(int(ice["last_ts"].max()) if len(ice) else 0, int(zones["last_ts"].max()) if len(zones) else 0)
        since = newest - int(keep_days * 86_400e9)
        ice = ice[ice["last_ts"] >= since]
        zones = zones[zones["last_ts"] >= since]
    return ice.tobytes(), zones.tobytes()


def _raw(rows: np.ndarray) -> memoryview:
    return memoryview(rows.view(np.uint8))  # the rows' bytes in place, as format "B"


def _binary_header(ice: np.ndarray, zones: np.ndarray) -> bytes:
    crc = zlib.crc32(_raw(zones), zlib.crc32(_raw(ice)))
    return _HEADER.pack(MAGIC, ICEBERG_DTYPE.itemsize, ZONE_DTYPE.itemsize, len(ice), len(zones), crc, 0)


def save_memory(pipeline: _native.Pipeline, path: str | os.PathLike[str]) -> Path:
    """Writes the binary snapshot atomically: a temporary file in the same directory, fsync,
    rename. The rows go from the native tables to the file without a copy."""
    path = Path(path)
    ice = table_array(pipeline, "icebergs")
    zones = table_array(pipeline, "zones")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            for view in (memoryview(_binary_header(ice, zones)), _raw(ice), _raw(zones)):
                while view:  # raw writes may be short
                    view = view[f.write(view):]
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory is on disk too.
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    # A process killed mid-write leaves its temporary file behind; one older than a minute is
    # nobody's write in progress (a write takes milliseconds).
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 60:
                stale.unlink()
    return path


def _parse_binary(data: bytes, src: str) -> tuple[memoryview, memoryview]:
    """The iceberg and zone rows' bytes of a binary snapshot, validated."""
    if len(data) < _HEADER.size:
        raise SnapshotError(f"{src}: truncated snapshot header ({len(data)} of {_HEADER.size} bytes)")
    _, ice_size, zone_size, n_ice, n_zones, crc, _ = _HEADER.unpack_from(data)
    if (ice_size, zone_size) != (ICEBERG_DTYPE.itemsize, ZONE_DTYPE.itemsize):
        raise SnapshotError(f"{src}: record layout iceberg={ice_size} zone={zone_size} bytes differs from "
                            f"this build's iceberg={ICEBERG_DTYPE.itemsize} zone={ZONE_DTYPE.itemsize}")
    body = memoryview(data)[_HEADER.size:]
    want = n_ice * ice_size + n_zones * zone_size
    if len(body) != want:
        raise SnapshotError(f"{src}: {len(body)} bytes of rows where the header announces {want} "
                            f"({n_ice} icebergs, {n_zones} zones); the file is truncated or corrupt")
    if zlib.crc32(body) != crc:
        raise SnapshotError(f"{src}: checksum mismatch; the file is corrupt")
    cut = n_ice * ice_size
    return body[:cut], body[cut:]


def read_memory(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """A binary snapshot's (icebergs, zones) rows as structured arrays, without a pipeline."""
    ice, zones = _parse_binary(Path(path).read_bytes(), str(path))
    return np.frombuffer(ice, dtype=ICEBERG_DTYPE), np.frombuffer(zones, dtype=ZONE_DTYPE)


def load_memory(pipeline: _native.Pipeline, path: str | os.PathLike[str], keep_days: float = 0.0) -> tuple[int, int]:
    """Restores a snapshot (binary, or JSON from ``export_memory``), without the rows last
    seen more than ``keep_days`` before its newest (0 keeps all). Returns (icebergs, zones)."""
    data = Path(path).read_bytes()
    if data.startswith(MAGIC):
        ice, zones = _parse_binary(data, str(path))
        if keep_days <= 0:
            return pipeline.memory_restore(ice, zones)
        return pipeline.memory_restore(*_recent(np.frombuffer(ice, dtype=ICEBERG_DTYPE),
                                                np.frombuffer(zones, dtype=ZONE_DTYPE), keep_days))
    if data.lstrip()[:1] != b"{":
        raise SnapshotError(f"{path}: not an Iceberg Memory snapshot (neither {MAGIC.decode()} nor JSON)")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"{path}: not valid JSON ({e})") from None
    return restore_memory(pipeline, doc, str(path), keep_days)


__all__ = ["FORMAT", "MAGIC", "SnapshotError", "export_memory", "load_memory", "read_memory", "restore_memory", "save_memory"]

"""Runs the native detectors over a DBN file and collects what they found.

Absorption zones are session-long rows that count their signals; to score signals one by
one, the runner feeds the file in small chunks and records each increase of a zone's count
with the zone's timestamp at that point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aurum import _native
from aurum.engines import (
    ZONE_KINDS, engine_status, iceberg_dict, sweep_dict, table_array, zone_dict,
)
from aurum.rings import RingReader

ZONE_ABSORPTION = next(k for k, v in ZONE_KINDS.items() if v == "absorption")


@dataclass
class Detections:
    path: str
    records: int = 0
    seconds: float = 0.0
    icebergs: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    absorption_signals: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    sweeps_lost: int = 0
    engines: dict[str, Any] = field(default_factory=dict)


def detect(path: str | Path, *, engine_config: dict[str, Any] | None = None, chunk: int = 1 << 16) -> Detections:
    pl = _native.Pipeline(engine_config=engine_config)
    out = Detections(str(path))
    sweeps = RingReader(pl, "sweeps")
    sweep_chunks: list[np.ndarray] = []
    counts = np.zeros(0, dtype=np.uint32)
    f = _native.DbnFile(str(path))
    t0 = time.perf_counter()

    def poll() -> None:
        nonlocal counts
        batch = sweeps.poll()
        if len(batch.records):
            sweep_chunks.append(batch.records.copy())
        z = table_array(pl, "zones")
        grown = np.zeros(len(z), dtype=np.uint32)
        grown[: len(counts)] = counts
        new = (z["count"] > grown) & (z["kind"] == ZONE_ABSORPTION)
        for i in np.nonzero(new)[0]:
            d = zone_dict(z[i])
            for _ in range(int(z["count"][i] - grown[i])):
                out.absorption_signals.append({"instrument_id": d["instrument_id"], "side": d["side"],
                                               "price": d["price"], "ts": d["last_ts"]})
        counts = z["count"].copy()

    while pl.feed_file(f, chunk):
        poll()
    pl.finish()
    pl.flush_bars()
    poll()
    out.seconds = time.perf_counter() - t0
    out.records = pl.stats()["records_total"]
    out.icebergs = [iceberg_dict(r) for r in table_array(pl, "icebergs")]
    out.zones = [zone_dict(r) for r in table_array(pl, "zones")]
    out.sweeps = [sweep_dict(r) for r in (np.concatenate(sweep_chunks) if sweep_chunks else [])]
    out.sweeps_lost = sweeps.lost_total
    out.engines = engine_status(pl)
    return out


__all__ = ["Detections", "detect"]

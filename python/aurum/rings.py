"""Zero-copy numpy views over the native rings, and a lap-aware reader.

The native pipeline writes fixed-size records into preallocated rings (capacity a power of
two, fixed at start-up). When a ring is full the oldest record is overwritten: the writer
never waits for readers. Each ring has a write sequence ``written`` (records ever written);
slot ``i`` holds record ``i % capacity``. A reader keeps its own cursor; if
``written - cursor > capacity`` it was lapped, and the records between are gone. ``RingReader``
reports how many it missed instead of silently skipping them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurum import _native
from aurum.engines import ENGINE_RING_DTYPES

# Layouts mirror the #[repr(C)] structs in native/src/ring.rs; tests check the sizes.
TRADE_DTYPE = np.dtype(
    {
        "names": ["ts_event", "ts_recv", "price", "order_id", "size", "instrument_id", "side", "flags", "rtype"],
        "formats": ["<u8", "<u8", "<i8", "<u8", "<u4", "<u4", "u1", "u1", "u1"],
        "offsets": [0, 8, 16, 24, 32, 36, 40, 41, 42],
        "itemsize": 48,
    }
)

TOP_DTYPE = np.dtype(
    {
        "names": [
            "ts_event", "ts_recv", "bid_px", "ask_px", "bid_sz", "ask_sz",
            "bid_ct", "ask_ct", "instrument_id", "flags", "rtype", "sequence",
        ],
        "formats": ["<u8", "<u8", "<i8", "<i8", "<u4", "<u4", "<u4", "<u4", "<u4", "u1", "u1", "<u8"],
        "offsets": [0, 8, 16, 24, 32, 36, 40, 44, 48, 52, 53, 56],
        "itemsize": 64,
    }
)

BAR_DTYPE = np.dtype(
    {
        "names": [
            "ts_open", "ts_close", "open", "high", "low", "close", "volume",
            "buy_volume", "sell_volume", "vwap", "trade_count", "instrument_id", "kind",
        ],
        "formats": ["<u8", "<u8", "<i8", "<i8", "<i8", "<i8", "<u8", "<u8", "<u8", "<f8", "<u4", "<u4", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 84, 88],
        "itemsize": 96,
    }
)

RING_DTYPES: dict[str, np.dtype] = {"trades": TRADE_DTYPE, "tops": TOP_DTYPE, "bars": BAR_DTYPE, **ENGINE_RING_DTYPES}


def ring_array(pipeline: _native.Pipeline, name: str) -> np.ndarray:
    """The whole ring as a read-only structured array (no copy)."""
    view = pipeline.ring(name)
    dtype = RING_DTYPES[name]
    if view.record_size != dtype.itemsize:
        raise RuntimeError(
            f"ring {name!r}: native record size {view.record_size} != numpy dtype size {dtype.itemsize}; "
            "the extension and the Python package are from different builds"
        )
    return np.frombuffer(view, dtype=dtype)


@dataclass
class RingBatch:
    records: np.ndarray
    """New records in write order. A view where possible: copy it before the next feed."""
    lost: int
    """Records overwritten before this reader saw them (0 unless lapped)."""


class RingReader:
    """Reads one ring in order, tracking its own cursor and the records it lost to laps."""

    def __init__(self, pipeline: _native.Pipeline, name: str, *, from_start: bool = True) -> None:
        self._pipeline = pipeline
        self._name = name
        self._array = ring_array(pipeline, name)
        self._capacity = len(self._array)
        self.cursor = 0 if from_start else pipeline.ring_written(name)
        self.lost_total = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def poll(self) -> RingBatch:
        written = self._pipeline.ring_written(self._name)
        lost = 0
        if written - self.cursor > self._capacity:
            lost = written - self.cursor - self._capacity
            self.cursor = written - self._capacity
            self.lost_total += lost
        n = written - self.cursor
        if n == 0:
            return RingBatch(self._array[:0], lost)
        start = self.cursor % self._capacity
        end = start + n
        if end <= self._capacity:
            records = self._array[start:end]
        else:
            records = np.concatenate((self._array[start:], self._array[: end - self._capacity]))
        self.cursor = written
        return RingBatch(records, lost)

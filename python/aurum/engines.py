"""Numpy views of the native engines' outputs, and their JSON-ready forms.

The layouts mirror the ``#[repr(C)]`` structs in ``native/src/engines/records.rs``; a test
checks every size and offset against the native record sizes. Tables (``icebergs``,
``zones``) are updated in place by the native code; rings (``sweeps``, ``flow``,
``footprint``) are read with :class:`aurum.rings.RingReader`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aurum import _native

SCALE = 1e-9  # DBN fixed-point prices


def _dtype(fields: list[tuple[str, str, int]], itemsize: int) -> np.dtype:
    return np.dtype({"names": [f[0] for f in fields], "formats": [f[1] for f in fields],
                     "offsets": [f[2] for f in fields], "itemsize": itemsize})


ICEBERG_DTYPE = _dtype([
    ("order_id", "<u8", 0), ("first_order_id", "<u8", 8), ("price", "<i8", 16), ("hidden_qty", "<u8", 24),
    ("filled_qty", "<u8", 32), ("first_ts", "<u8", 40), ("last_ts", "<u8", 48), ("instrument_id", "<u4", 56),
    ("clip", "<u4", 60), ("refills", "<u4", 64), ("events", "<u4", 68), ("side", "u1", 72), ("kind", "u1", 73),
    ("state", "u1", 74),
], 80)

ZONE_DTYPE = _dtype([
    ("price", "<i8", 0), ("first_ts", "<u8", 8), ("last_ts", "<u8", 16), ("volume", "<u8", 24),
    ("hidden_qty", "<u8", 32), ("strength", "<f8", 40), ("instrument_id", "<u4", 48), ("count", "<u4", 52),
    ("side", "u1", 56), ("kind", "u1", 57), ("state", "u1", 58),
], 64)

SWEEP_DTYPE = _dtype([
    ("ts_event", "<u8", 0), ("ts_recv", "<u8", 8), ("first_px", "<i8", 16), ("last_px", "<i8", 24),
    ("volume", "<u8", 32), ("order_id", "<u8", 40), ("instrument_id", "<u4", 48), ("levels", "<u2", 52),
    ("stops", "<u2", 54), ("side", "u1", 56), ("kind", "u1", 57), ("source", "u1", 58),
], 64)

FLOW_DTYPE = _dtype([
    ("ts_open", "<u8", 0), ("ts_close", "<u8", 8), ("delta", "<i8", 16), ("cvd", "<i8", 24),
    ("buy_volume", "<u8", 32), ("sell_volume", "<u8", 40), ("none_volume", "<u8", 48), ("ofi", "<i8", 56),
    ("high", "<i8", 64), ("low", "<i8", 72), ("close", "<i8", 80), ("poc", "<i8", 88), ("fp_start", "<u8", 96),
    ("fp_len", "<u4", 104), ("fp_overflow", "<u4", 108), ("instrument_id", "<u4", 112), ("flags", "<u4", 116),
    ("buy_imbalances", "<u2", 120), ("sell_imbalances", "<u2", 122), ("stacked_buy", "<u2", 124),
    ("stacked_sell", "<u2", 126),
], 128)

FOOTPRINT_DTYPE = _dtype([
    ("bar_ts", "<u8", 0), ("price", "<i8", 8), ("ask_volume", "<u4", 16), ("bid_volume", "<u4", 20),
    ("none_volume", "<u4", 24), ("instrument_id", "<u4", 28), ("imbalance", "u1", 32),
], 40)

TABLE_DTYPES: dict[str, np.dtype] = {"icebergs": ICEBERG_DTYPE, "zones": ZONE_DTYPE}
ENGINE_RING_DTYPES: dict[str, np.dtype] = {"sweeps": SWEEP_DTYPE, "flow": FLOW_DTYPE, "footprint": FOOTPRINT_DTYPE}

ICEBERG_KINDS = {1: "native", 2: "synthetic"}
ICEBERG_STATES = {1: "active", 2: "filled", 3: "cancelled"}
ZONE_KINDS = {1: "iceberg", 2: "absorption"}
ZONE_STATES = {1: "active", 2: "held", 3: "broken"}
SWEEP_KINDS = {1: "sweep", 2: "stop_run"}
FLOW_FLAGS = {1: "divergence_bear", 2: "divergence_bull", 4: "stacked_buy", 8: "stacked_sell", 16: "session_start"}


def table_array(pipeline: _native.Pipeline, name: str) -> np.ndarray:
    """The table's rows in use, as a read-only structured array over native memory (no
    copy). Rows change in place as the pipeline runs; copy to keep a snapshot."""
    view = pipeline.table(name)
    dtype = TABLE_DTYPES[name]
    if view.record_size != dtype.itemsize:
        raise RuntimeError(f"table {name!r}: native record size {view.record_size} != numpy {dtype.itemsize}; "
                           "the extension and the Python package are from different builds")
    return np.frombuffer(view, dtype=dtype)


def _px(v: int) -> float | None:
    return None if v == _native.UNDEF_PRICE else round(int(v) * SCALE, 9)


def iceberg_dict(r: np.void) -> dict[str, Any]:
    return {
        "order_id": int(r["order_id"]), "first_order_id": int(r["first_order_id"]),
        "instrument_id": int(r["instrument_id"]), "price": _px(r["price"]), "side": chr(r["side"]),
        "kind": ICEBERG_KINDS.get(int(r["kind"]), str(int(r["kind"]))),
        "state": ICEBERG_STATES.get(int(r["state"]), str(int(r["state"]))),
        "clip": int(r["clip"]), "refills": int(r["refills"]), "events": int(r["events"]),
        "hidden_qty": int(r["hidden_qty"]), "filled_qty": int(r["filled_qty"]),
        "first_ts": int(r["first_ts"]), "last_ts": int(r["last_ts"]),
    }


def zone_dict(r: np.void) -> dict[str, Any]:
    return {
        "instrument_id": int(r["instrument_id"]), "kind": ZONE_KINDS.get(int(r["kind"]), str(int(r["kind"]))),
        "side": chr(r["side"]), "price": _px(r["price"]),
        "state": ZONE_STATES.get(int(r["state"]), str(int(r["state"]))),
        "strength": round(float(r["strength"]), 6), "volume": int(r["volume"]), "hidden_qty": int(r["hidden_qty"]),
        "count": int(r["count"]), "first_ts": int(r["first_ts"]), "last_ts": int(r["last_ts"]),
    }


def sweep_dict(r: np.void) -> dict[str, Any]:
    return {
        "instrument_id": int(r["instrument_id"]), "kind": SWEEP_KINDS.get(int(r["kind"]), str(int(r["kind"]))),
        "side": chr(r["side"]), "first_px": _px(r["first_px"]), "last_px": _px(r["last_px"]),
        "levels": int(r["levels"]), "stops": int(r["stops"]), "volume": int(r["volume"]),
        "order_id": int(r["order_id"]), "ts_event": int(r["ts_event"]), "ts_recv": int(r["ts_recv"]),
        "source": int(r["source"]),
    }


def flow_dict(r: np.void) -> dict[str, Any]:
    flags = int(r["flags"])
    return {
        "instrument_id": int(r["instrument_id"]), "ts_open": int(r["ts_open"]), "ts_close": int(r["ts_close"]),
        "delta": int(r["delta"]), "cvd": int(r["cvd"]), "buy_volume": int(r["buy_volume"]),
        "sell_volume": int(r["sell_volume"]), "none_volume": int(r["none_volume"]), "ofi": int(r["ofi"]),
        "poc": _px(r["poc"]), "buy_imbalances": int(r["buy_imbalances"]),
        "sell_imbalances": int(r["sell_imbalances"]), "stacked_buy": int(r["stacked_buy"]),
        "stacked_sell": int(r["stacked_sell"]), "footprint_cells": int(r["fp_len"]),
        "flags": [name for bit, name in FLOW_FLAGS.items() if flags & bit],
    }


def engine_status(pipeline: _native.Pipeline) -> dict[str, dict[str, Any]]:
    """Per instrument id (as a string): ``{engine: {"active": bool, "reason": str}}``."""
    return {
        str(iid): {name: {"active": active, **({"reason": why} if why else {})} for name, active, why in rows}
        for iid, rows in sorted(pipeline.engine_status().items())
    }


__all__ = [
    "ENGINE_RING_DTYPES", "FLOW_DTYPE", "FOOTPRINT_DTYPE", "ICEBERG_DTYPE", "SWEEP_DTYPE", "TABLE_DTYPES",
    "ZONE_DTYPE", "engine_status", "flow_dict", "iceberg_dict", "sweep_dict", "table_array", "zone_dict",
]

"""DBN v3 bytes the gateway writes itself: the session metadata header, SystemMsg, ErrorMsg,
SymbolMappingMsg, MBO snapshot records, and the per-batch record transforms (gather, ts_out).

The gateway-made records go through the official ``databento_dbn`` classes, so their layout is
the one the clients decode (databento.md §3.5). Market records are never rebuilt: they are
forwarded as the bytes of the source, which is why the transforms below work on byte arrays
and record-length arrays with numpy, never one Python object per record.
"""

from __future__ import annotations

from collections.abc import Iterable

import databento_dbn as dbn
import numpy as np

UNDEF_PRICE = 2**63 - 1
UNDEF_TIMESTAMP = 2**64 - 1
F_LAST = 0x80
F_SNAPSHOT = 0x20
F_BAD_TS_RECV = 0x08
SNAPSHOT_FLAGS = F_SNAPSHOT | F_BAD_TS_RECV  # 0x28, databento.md §3.11

RTYPE_MBP0 = 0x00
RTYPE_MBP1 = 0x01
RTYPE_MBP10 = 0x0A
RTYPE_STATUS = 0x12
RTYPE_DEFINITION = 0x13
RTYPE_IMBALANCE = 0x14
RTYPE_ERROR = 0x15
RTYPE_SYMBOL_MAPPING = 0x16
RTYPE_SYSTEM = 0x17
RTYPE_STATISTICS = 0x18
RTYPE_MBO = 0xA0

# Gateway-level records: a source file may contain them (a live capture does), but they
# belong to the session that produced them, so the gateway drops them and makes its own.
GATEWAY_RTYPES = frozenset({RTYPE_ERROR, RTYPE_SYMBOL_MAPPING, RTYPE_SYSTEM})

# Schema name -> the rtypes its records carry. mbp-1 and tbbo share rtype 0x01, so a record
# of a mixed-schema file with rtype 0x01 is taken as mbp-1 (see sources.schema_of).
SCHEMA_RTYPES: dict[str, frozenset[int]] = {
    "mbo": frozenset({RTYPE_MBO}),
    "mbp-1": frozenset({RTYPE_MBP1}),
    "mbp-10": frozenset({RTYPE_MBP10}),
    "tbbo": frozenset({RTYPE_MBP1}),
    "trades": frozenset({RTYPE_MBP0}),
    "ohlcv-1s": frozenset({0x20}),
    "ohlcv-1m": frozenset({0x21}),
    "ohlcv-1h": frozenset({0x22}),
    "ohlcv-1d": frozenset({0x23}),
    "ohlcv-eod": frozenset({0x24}),
    "definition": frozenset({RTYPE_DEFINITION}),
    "statistics": frozenset({RTYPE_STATISTICS}),
    "status": frozenset({RTYPE_STATUS}),
    "imbalance": frozenset({RTYPE_IMBALANCE}),
    "cmbp-1": frozenset({0xB1}),
    "cbbo-1s": frozenset({0xC0}),
    "cbbo-1m": frozenset({0xC1}),
    "tcbbo": frozenset({0xC2}),
    "bbo-1s": frozenset({0xC3}),
    "bbo-1m": frozenset({0xC4}),
}
# A small integer per schema, for the per-record numpy index (order of DBN's u16 schema ids).
SCHEMA_CODES: dict[str, int] = {name: i for i, name in enumerate(SCHEMA_RTYPES)}
NO_SCHEMA = 0xFFFF
# Schemas whose records a `skip` slow reader may lose (databento.md §1.11); MBO and trades never.
SKIPPABLE_SCHEMAS = frozenset({"mbp-1", "mbp-10", "bbo-1s", "bbo-1m", "cmbp-1", "cbbo-1s", "cbbo-1m"})

# SType("raw_symbol") rather than SType.RAW_SYMBOL: the databento-dbn stubs type the members as str.
_STYPES: dict[str, dbn.SType] = {
    name: dbn.SType(name) for name in ("raw_symbol", "instrument_id", "parent", "continuous")
}

# The 56-byte MboMsg (databento.md §3.3), for writing snapshot records in one numpy pass.
MBO_DTYPE = np.dtype(
    {
        "names": [
            "length", "rtype", "publisher_id", "instrument_id", "ts_event", "order_id", "price",
            "size", "flags", "channel_id", "action", "side", "ts_recv", "ts_in_delta", "sequence",
        ],
        "formats": ["u1", "u1", "<u2", "<u4", "<u8", "<u8", "<i8", "<u4", "u1", "u1", "u1", "u1", "<u8", "<i4", "<u4"],
        "offsets": [0, 1, 2, 4, 8, 16, 24, 32, 36, 37, 38, 39, 40, 48, 52],
        "itemsize": 56,
    }
)


def metadata_header(
    dataset: str, *, schema: str | None, stype_in: str | None, start: int, ts_out: bool
) -> bytes:
    """The one DBN v3 metadata header of a live session.

    ``schema=None`` writes NULL (0xFFFF) like a real mixed-schema live capture; ``stype_out`` is
    always ``instrument_id`` and the symbol lists are empty: symbology arrives in-band.
    """
    meta = dbn.Metadata(
        dataset=dataset,
        start=int(start),
        stype_in=None if stype_in is None else _STYPES[stype_in],
        stype_out=_STYPES["instrument_id"],
        schema=None if schema is None else dbn.Schema.from_str(schema),
        symbols=[],
        partial=[],
        not_found=[],
        mappings=[],
        ts_out=ts_out,
        version=3,
    )
    return bytes(meta.encode())


def _clip(text: str, limit: int) -> str:
    # The C strings are fixed-size (303 / 302 bytes with the NUL); never let the class raise.
    raw = text.encode("utf-8")[: limit - 1]
    return raw.decode("utf-8", errors="ignore")


def system_msg(code: int, msg: str, ts_event: int) -> bytes:
    """A SystemMsg (rtype 0x17): 0 heartbeat, 1 subscription ack, 2 slow reader, 3 replay done."""
    return bytes(dbn.SystemMsg(ts_event=ts_event, msg=_clip(msg, 303), code=dbn.SystemCode(code)))


def heartbeat(ts_event: int) -> bytes:
    return system_msg(0, "Heartbeat", ts_event)


def error_msg(code: int, err: str, ts_event: int, *, is_last: bool = True) -> bytes:
    """An ErrorMsg (rtype 0x15) with a gateway error code (databento.md §1.10)."""
    return bytes(
        dbn.ErrorMsg(ts_event=ts_event, err=_clip(err, 302), is_last=is_last, code=dbn.ErrorCode(code))
    )


def symbol_mapping(
    instrument_id: int, *, stype_in: str, stype_in_symbol: str, stype_out_symbol: str, ts_event: int
) -> bytes:
    """A SymbolMappingMsg (rtype 0x16): publisher 0, open-ended interval, like the live gateway."""
    return bytes(
        dbn.SymbolMappingMsg(
            publisher_id=0,
            instrument_id=instrument_id,
            ts_event=ts_event,
            stype_in=_STYPES[stype_in],
            stype_in_symbol=stype_in_symbol,
            stype_out=_STYPES["raw_symbol"],
            stype_out_symbol=stype_out_symbol,
            start_ts=UNDEF_TIMESTAMP,
            end_ts=UNDEF_TIMESTAMP,
        )
    )


def mbo_snapshot(
    instrument_id: int,
    orders: Iterable[tuple[int, str, int, int]],
    *,
    ts: int,
    publisher_id: int = 1,
    channel_id: int = 0,
    sequence: int = 0,
) -> bytes:
    """One instrument's MBO snapshot (databento.md §3.11): an ``R`` clear, then one ``A`` per
    resting order ``(order_id, side, price, size)`` in the order given (queue order), every record
    flagged F_SNAPSHOT|F_BAD_TS_RECV and F_LAST on the last. ``ts`` is both ts_event and ts_recv:
    the book carries no per-order times, and ts_recv is the snapshot time by definition.
    """
    rows = list(orders)
    recs = np.zeros(len(rows) + 1, dtype=MBO_DTYPE)
    recs["length"] = 14
    recs["rtype"] = RTYPE_MBO
    recs["publisher_id"] = publisher_id
    recs["instrument_id"] = instrument_id
    recs["ts_event"] = ts
    recs["ts_recv"] = ts
    recs["channel_id"] = channel_id
    recs["sequence"] = sequence
    recs["flags"] = SNAPSHOT_FLAGS
    recs[0]["action"] = ord("R")
    recs[0]["side"] = ord("N")
    recs[0]["price"] = UNDEF_PRICE
    if rows:
        recs["order_id"][1:] = [r[0] for r in rows]
        recs["side"][1:] = [ord(r[1]) for r in rows]
        recs["price"][1:] = [r[2] for r in rows]
        recs["size"][1:] = [r[3] for r in rows]
        recs["action"][1:] = ord("A")
    recs["flags"][-1] |= F_LAST
    return recs.tobytes()


# --- batch transforms ----------------------------------------------------------------------


def walk_lengths(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Byte length of every record in a buffer of whole records (a sequential walk over the
    length bytes; used once per source file or live chunk, never per session)."""
    view = memoryview(data.tobytes() if isinstance(data, np.ndarray) else data).cast("B")
    n = len(view)
    out: list[int] = []
    pos = 0
    while pos < n:
        length = view[pos] * 4
        if length < 16:
            raise ValueError(f"record length {length} at byte offset {pos}")
        if pos + length > n:
            raise ValueError(f"truncated record of {length} bytes at byte offset {pos}")
        out.append(length)
        pos += length
    return np.asarray(out, dtype=np.int64)


def _spread(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices start_i .. start_i+len_i-1 for every record, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def gather(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> bytes:
    """The selected records (``offsets``/``lengths`` into ``data``) concatenated."""
    if len(offsets) == 0:
        return b""
    return data[_spread(offsets, lengths)].tobytes()


class TsOutFrame:
    """A batch framed for ts_out: every record followed by an 8-byte slot for the gateway send
    time, filled by ``stamp`` just before the socket write (so the stamp is the send time, not
    the time the batch was prepared)."""

    def __init__(self, data: bytes | np.ndarray, lengths: np.ndarray) -> None:
        n = len(lengths)
        src = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        self.lengths = lengths + 8
        self.buf = np.empty(int(self.lengths.sum()), dtype=np.uint8)
        self._slots: np.ndarray | None = None  # a u64 column, or byte indices when lengths vary
        self._idx: np.ndarray | None = None
        if n == 0:
            return
        old_starts = np.cumsum(lengths) - lengths
        if np.any(src[old_starts] > 253):
            raise ValueError("record too long for ts_out (length byte would overflow)")
        width = int(lengths[0])
        if width % 8 == 0 and np.all(lengths == width):
            # One record size (the common single-schema case): a 2-D view, no index arrays;
            # the slots are one strided u64 column.
            grid = self.buf.reshape(n, width + 8)
            grid[:, :width] = src[: n * width].reshape(n, width)
            self._slots = self.buf.view("<u8").reshape(n, width // 8 + 1)[:, -1]
            self.buf[:: width + 8] += 2
        else:
            new_starts = np.cumsum(self.lengths) - self.lengths
            self.buf[_spread(new_starts, lengths)] = src[_spread(old_starts, lengths)]
            self._idx = _spread(new_starts + lengths, np.full(n, 8, dtype=np.int64))
            self.buf[new_starts] += 2

    def stamp(self, ts_out: int) -> np.ndarray:
        """Writes the send time into every slot; returns the framed bytes (a uint8 array)."""
        if self._slots is not None:
            self._slots[:] = ts_out
        elif self._idx is not None:
            self.buf[self._idx] = np.tile(np.frombuffer(ts_out.to_bytes(8, "little"), dtype=np.uint8), len(self.lengths))
        return self.buf


def add_ts_out(data: bytes, lengths: np.ndarray, ts_out: int) -> tuple[bytes, np.ndarray]:
    """Append the u64 gateway send time to every record and add 2 words to its length byte.

    Returns the new buffer and the new record lengths. One send time per batch: every record of a
    batch leaves the gateway in the same socket write.
    """
    if len(lengths) == 0:
        return bytes(data), lengths
    frame = TsOutFrame(data, lengths)
    return frame.stamp(ts_out).tobytes(), frame.lengths


def with_ts_out(record: bytes, ts_out: int) -> bytes:
    """One gateway-made record with ts_out appended (length byte + 2 words)."""
    buf = bytearray(record)
    buf[0] += 2
    return bytes(buf) + ts_out.to_bytes(8, "little")

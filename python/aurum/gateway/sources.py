"""Where a gateway session's records come from: the ``Source`` protocol and the DBN file source.

A source hands each session an async iterator of ``RecordBatch``: whole DBN v3 records, already
upgraded, without ts_out, in time order, with a numpy index (rtype, schema, instrument id,
time key) so that a session filters a batch with a few array operations instead of one Python
step per record. The session does the per-client work (schema/symbol filter, ts_out, zstd,
faults); the source does the per-data work (decode once, order, pace, book snapshots).

The simulator (``aurum.sim``) will implement the same protocol: it produces records live, so it
paces itself and yields ``BatchKind.LIVE`` batches as they happen, and builds snapshots from its
own book.

Symbol rules (``SymbolTable``):

* ``raw_symbol``: exact match on the raw symbol (``GCZ6``).
* ``instrument_id``: a decimal id that the source knows.
* ``parent``: ``<ROOT>.FUT`` resolves to every instrument whose raw symbol starts with ROOT,
  outrights and spreads alike (``GC.FUT`` -> ``GCZ6``, ``GCG7``, ``GCZ6-GCG7``).
* ``continuous``: ``<ROOT>.c.<N>`` is the N-th outright of ROOT by expiration, earliest first:
  "front" (``GC.c.0``) is the earliest-expiring outright in the source. An outright is
  ``ROOT`` + month code + 1-2 year digits. The expiration comes from an InstrumentDefMsg when
  the source has one, else from the symbol: the 28th of the contract month, the year digit read
  as the first matching year not before the year before the source's clock. Only the calendar rule (``.c.``) exists here;
  ``.v.``/``.n.`` (volume, open interest) do not resolve. As on the live gateway, a continuous
  symbol is not re-mapped during a session.
* ``ALL_SYMBOLS`` resolves to every instrument.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import re
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import databento_dbn as dbn
import numpy as np

from aurum.gateway import records as R
from aurum.gateway.control import STYPES_IN, SubscriptionRequest

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PACE_EVERY_S = 0.001  # default: a paced session wakes at most this often to send what is due
BATCH_BYTES = 256 * 1024  # records per yield: big enough to amortise numpy, small enough to pace
MONTH_CODES = "FGHJKMNQUVXZ"
SYMBOL_BYTES = 70  # DBN symbol fields are 71-byte NUL-terminated C strings


class BatchKind(enum.Enum):
    HISTORICAL = "historical"  # before the source's "now": only for subscriptions with start=
    SNAPSHOT = "snapshot"  # MBO book snapshot records for snapshot=1 subscriptions
    LIVE = "live"  # from "now" on: every subscription gets these


@dataclass(frozen=True)
class Instrument:
    instrument_id: int
    raw_symbol: str | None
    expiration: int | None = None  # ns, from an InstrumentDefMsg


@dataclass
class RecordBatch:
    """Whole DBN v3 records plus a per-record index. ``ts`` is the time key (ts_event, made
    non-decreasing per source) used for start= filtering. ``due`` is the loop time at which a
    paced source meant the first record to leave (None when unpaced): sessions measure
    slow-reader lag against it."""

    kind: BatchKind
    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64, into data
    lengths: np.ndarray  # int64, bytes
    rtypes: np.ndarray  # uint8
    schemas: np.ndarray  # uint16, records.SCHEMA_CODES or NO_SCHEMA
    instrument_ids: np.ndarray  # uint32
    ts: np.ndarray  # uint64
    due: float | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_records(
        cls, data: bytes, kind: BatchKind = BatchKind.LIVE, *, schema: str | None = None,
        due: float | None = None,
    ) -> RecordBatch:
        """Index a buffer of whole v3 records (for live sources such as the simulator)."""
        buf = np.frombuffer(data, dtype=np.uint8)
        lengths = R.walk_lengths(data)
        offsets, rtypes, iids, ts = _index(buf, lengths)
        schemas = schema_codes(rtypes, schema)
        return cls(kind, buf, offsets, lengths, rtypes, schemas, iids, ts, due)


class Source(Protocol):
    """What a gateway session needs from a market data source."""

    @property
    def dataset(self) -> str: ...

    def instruments(self) -> Mapping[int, Instrument]:
        """Every instrument that can be resolved now (id -> instrument)."""
        ...

    def clock(self) -> int:
        """The source's present time in ns (data time): the reference for symbol years."""
        ...

    def stream(self, *, start: int | None, snapshot_ids: Collection[int]) -> AsyncIterator[RecordBatch]:
        """Batches for one session. ``start`` (ns) asks for history from that time first
        (HISTORICAL batches up to "now"), None for real time only. If ``snapshot_ids`` is not
        empty, one SNAPSHOT batch with those instruments' MBO books as of "now" comes before the
        first LIVE batch. The iterator ends when the source has nothing more, ever."""
        ...


def schema_codes(rtypes: np.ndarray, schema: str | None) -> np.ndarray:
    """Per-record schema code: the file's schema for records of its rtype, else by rtype.
    Gateway records (error, mapping, system) and unknown rtypes get NO_SCHEMA and are dropped."""
    lut = np.full(256, R.NO_SCHEMA, dtype=np.uint16)
    for name, rts in reversed(list(R.SCHEMA_RTYPES.items())):  # first name wins (mbp-1 over tbbo)
        for rt in rts:
            lut[rt] = R.SCHEMA_CODES[name]
    if schema is not None and schema in R.SCHEMA_RTYPES:
        for rt in R.SCHEMA_RTYPES[schema]:
            lut[rt] = R.SCHEMA_CODES[schema]
    for rt in R.GATEWAY_RTYPES:
        lut[rt] = R.NO_SCHEMA
    return lut[rtypes]


def _index(buf: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.cumsum(lengths) - lengths
    if len(buf) % 4 or np.any(offsets % 4):
        raise ValueError("DBN records are not 4-byte aligned")
    words = buf.view("<u4")
    rtypes = buf[offsets + 1]
    iids = words[(offsets + 4) // 4]
    ts = words[(offsets + 8) // 4].astype(np.uint64) | (words[(offsets + 12) // 4].astype(np.uint64) << np.uint64(32))
    return offsets.astype(np.int64), rtypes, iids, ts


# --- symbology -------------------------------------------------------------------------------


def _expiry_from_symbol(raw: str, root: str, ref_year: int) -> tuple[int, int] | None:
    m = re.fullmatch(re.escape(root) + r"([FGHJKMNQUVXZ])(\d{1,2})", raw)
    if m is None:
        return None
    month = MONTH_CODES.index(m.group(1)) + 1
    digits = m.group(2)
    if len(digits) == 2:
        year = ref_year // 100 * 100 + int(digits)
        if year < ref_year - 1:
            year += 100
    else:
        year = ref_year // 10 * 10 + int(digits)
        if year < ref_year - 1:
            year += 10
    return year, month


class SymbolTable:
    """Resolves subscription symbols to instruments (rules in the module docstring)."""

    def __init__(self, instruments: Mapping[int, Instrument], clock_ns: int) -> None:
        self._by_id = dict(instruments)
        self._by_raw: dict[str, list[int]] = {}
        for iid, inst in sorted(self._by_id.items()):
            if inst.raw_symbol:
                self._by_raw.setdefault(inst.raw_symbol, []).append(iid)
        self._ref_year = dt.datetime.fromtimestamp(max(clock_ns, 0) / 1e9, tz=dt.UTC).year

    def raw_symbol(self, iid: int) -> str:
        inst = self._by_id.get(iid)
        return inst.raw_symbol if inst is not None and inst.raw_symbol else str(iid)

    def resolve(self, stype_in: str, symbol: str) -> list[int] | str:
        """Instrument ids, or an error text saying why the symbol does not resolve."""
        if symbol == "ALL_SYMBOLS":
            return sorted(self._by_id)
        if len(symbol.encode()) > SYMBOL_BYTES:
            # It could not go out in a SymbolMappingMsg (71-byte C strings) anyway.
            return f"symbol is longer than {SYMBOL_BYTES} bytes"
        if stype_in == "raw_symbol":
            ids = self._by_raw.get(symbol)
            return list(ids) if ids else f"unknown raw symbol {symbol!r}"
        if stype_in == "instrument_id":
            if not symbol.isdigit() or int(symbol) not in self._by_id:
                return f"unknown instrument id {symbol!r}"
            return [int(symbol)]
        if stype_in == "parent":
            root, dot, kind = symbol.rpartition(".")
            if not dot or not root or kind != "FUT":
                return f"parent symbol {symbol!r} is not of the form ROOT.FUT"
            ids = [i for raw, group in sorted(self._by_raw.items()) if raw.startswith(root) for i in group]
            return sorted(ids) if ids else f"no instrument of parent {symbol!r}"
        if stype_in == "continuous":
            return self._continuous(symbol)
        return f"stype_in {stype_in!r} is not supported"

    def _continuous(self, symbol: str) -> list[int] | str:
        m = re.fullmatch(r"(.+)\.([cvn])\.(\d+)", symbol)
        if m is None:
            return f"continuous symbol {symbol!r} is not of the form ROOT.c.N"
        root, rule, rank = m.group(1), m.group(2), int(m.group(3))
        if rule != "c":
            return f"continuous rule {rule!r} of {symbol!r} is not supported (only calendar .c.)"
        outrights: list[tuple[int, str, int]] = []
        for raw, ids in self._by_raw.items():
            parsed = _expiry_from_symbol(raw, root, self._ref_year)
            if parsed is None:
                continue
            # Without a definition, the 28th of the contract month stands in for the expiration
            # (GC's last trade is the third-last business day), so both kinds sort together.
            approx = dt.datetime(parsed[0], parsed[1], 28, tzinfo=dt.UTC)
            for iid in ids:
                exp = self._by_id[iid].expiration
                outrights.append((exp if exp is not None else int(approx.timestamp()) * 10**9, raw, iid))
        outrights.sort()
        if rank >= len(outrights):
            return f"{symbol!r}: only {len(outrights)} outright(s) of {root} in the source"
        return [outrights[rank][2]]


# --- subscriptions ---------------------------------------------------------------------------


@dataclass
class Subscription:
    request: SubscriptionRequest
    ids: np.ndarray  # resolved instrument ids
    all_symbols: bool
    failed: list[tuple[str, str]]  # (symbol, reason)
    mappings: list[tuple[str, int]]  # (symbol as subscribed, instrument id)

    @property
    def schema_code(self) -> int:
        return R.SCHEMA_CODES[self.request.schema]


def validate_subscription(req: SubscriptionRequest) -> str | None:
    """Why a subscription is invalid (an INVALID_SUBSCRIPTION error), or None."""
    if req.schema not in R.SCHEMA_RTYPES:
        return f"unknown schema {req.schema!r}"
    if req.stype_in not in STYPES_IN:
        return f"stype_in {req.stype_in!r} is not supported (expected one of {', '.join(STYPES_IN)})"
    if req.snapshot and req.start is not None:
        return "snapshot=1 cannot be combined with start"
    if req.snapshot and req.schema != "mbo":
        return f"snapshot=1 is only supported for the mbo schema, not {req.schema}"
    return None


def resolve_subscription(symbols: SymbolTable, req: SubscriptionRequest) -> Subscription:
    """Resolve every symbol of a subscription; unresolved ones are kept with the reason."""
    ids: set[int] = set()
    failed: list[tuple[str, str]] = []
    mappings: list[tuple[str, int]] = []
    for sym in req.symbols:
        got = symbols.resolve(req.stype_in, sym)
        if isinstance(got, str):
            failed.append((sym, got))
            continue
        ids.update(got)
        mappings += [(sym, i) for i in got]
    return Subscription(req, np.array(sorted(ids), dtype=np.uint32), "ALL_SYMBOLS" in req.symbols, failed, mappings)


def _member(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    # np.isin sorts and merges (~20 us a batch); a subscription names a few instruments.
    if len(wanted) > 8:
        return np.isin(ids, wanted)
    out = np.zeros(len(ids), dtype=bool)
    for w in wanted.tolist():
        out |= ids == w
    return out


def subscription_mask(subs: Sequence[Subscription], batch: RecordBatch) -> np.ndarray:
    """Which records of a batch a session with these subscriptions gets."""
    if batch.kind is BatchKind.SNAPSHOT:
        return np.ones(len(batch), dtype=bool)  # the source built it for our snapshot ids only
    mask = np.zeros(len(batch), dtype=bool)
    for sub in subs:
        start = sub.request.start
        if batch.kind is BatchKind.HISTORICAL and start is None:
            continue
        m = batch.schemas == sub.schema_code
        if not sub.all_symbols:
            m &= _member(batch.instrument_ids, sub.ids)
        if start is not None and int(batch.ts[0]) < start:
            m &= batch.ts >= np.uint64(start)
        mask |= m
    return mask


# --- the DBN file source -----------------------------------------------------------------------


# Offsets of ts_recv in the v3 market records a lap shifts (databento.md §3): MBO, and the
# MBP-0 (trades) / MBP-1 / MBP-10 family, which share their first 48 bytes.
_TS_RECV_AT = {R.RTYPE_MBO: 40, 0x00: 32, 0x01: 32, 0x0A: 32}


def _shift_lap(b: RecordBatch, dt: int, oid: int) -> RecordBatch:
    """A copy of ``b`` moved on by ``dt`` ns of data time, MBO order ids by ``oid``."""
    n = len(b.lengths)
    width = int(b.lengths[0]) if n else 0
    rt = int(b.rtypes[0]) if n else -1
    if (n and width % 8 == 0 and rt in _TS_RECV_AT and len(b.data) == n * width
            and np.all(b.lengths == width) and np.all(b.rtypes == rt)):
        return _shift_uniform(b, dt, oid)
    return _shift_general(b, dt, oid)


def _shift_uniform(b: RecordBatch, dt: int, oid: int) -> RecordBatch:
    # One record type and size (a looped single-schema session): the records are rows of u64
    # words, so each shift is one strided column add instead of gathered byte indices.
    data = b.data.copy()
    rt = int(b.rtypes[0])
    words = data.view("<u8").reshape(len(b.lengths), int(b.lengths[0]) // 8)
    words[:, 1] += np.uint64(dt)  # header ts_event
    words[:, _TS_RECV_AT[rt] // 8] += np.uint64(dt)
    if rt == R.RTYPE_MBO:
        words[:, 2] += np.uint64(oid)
    return RecordBatch(b.kind, data, b.offsets, b.lengths, b.rtypes, b.schemas, b.instrument_ids,
                       b.ts + np.uint64(dt), b.due)


def _shift_general(b: RecordBatch, dt: int, oid: int) -> RecordBatch:
    data = b.data.copy()

    def add(rows: np.ndarray, at: int, delta: int) -> None:
        if len(rows):
            idx = b.offsets[rows, None] + at + np.arange(8)
            v = data[idx].copy().view("<u8").reshape(-1)
            data[idx] = (v + np.uint64(delta)).view(np.uint8).reshape(-1, 8)

    market = np.flatnonzero(np.isin(b.rtypes, list(_TS_RECV_AT)))
    add(market, 8, dt)  # header ts_event
    for rt, at in _TS_RECV_AT.items():
        add(market[b.rtypes[market] == rt], at, dt)
    add(np.flatnonzero(b.rtypes == R.RTYPE_MBO), 16, oid)
    return RecordBatch(b.kind, data, b.offsets, b.lengths, b.rtypes, b.schemas, b.instrument_ids,
                       b.ts + np.uint64(dt), b.due)


def read_dbn(path: Path) -> bytes:
    """The decompressed bytes of a .dbn or .dbn.zst file (zstd detected by magic)."""
    raw = Path(path).read_bytes()
    if raw[:4] != ZSTD_MAGIC:
        return raw
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
        return reader.read()


@dataclass
class _Loaded:
    meta: dbn.Metadata
    data: np.ndarray
    lengths: np.ndarray


def _load_v3(path: Path) -> _Loaded:
    """Decode a file once into v3 record bytes (v1/v2 upgraded by databento-dbn), no ts_out."""
    raw = read_dbn(path)
    if raw[:3] != b"DBN":
        raise ValueError(f"{path}: not a DBN file (no 'DBN' magic)")
    version = raw[3]
    meta_end = 8 + int.from_bytes(raw[4:8], "little")
    if version == 3:
        dec = dbn.DBNDecoder()
        dec.write(raw[:meta_end])
        meta = dec.decode()[0]
        body = raw[meta_end:]
    else:
        policy: Any = dbn.VersionUpgradePolicy.UPGRADE_TO_V3
        dec = dbn.DBNDecoder(upgrade_policy=policy, ts_out=False)
        objs = dec.write_and_decode(raw)
        meta, body = objs[0], b"".join(bytes(o) for o in objs[1:])
    if not isinstance(meta, dbn.Metadata):
        raise ValueError(f"{path}: no DBN metadata header")
    lengths = R.walk_lengths(body)
    data = np.frombuffer(body, dtype=np.uint8)
    if meta.ts_out:
        # The session adds its own send time; drop the capture's.
        keep = lengths - 8
        data = np.frombuffer(R.gather(data, np.cumsum(lengths) - lengths, keep), dtype=np.uint8).copy()
        lengths = keep
        data[np.cumsum(lengths) - lengths] -= 2
    return _Loaded(meta, data, lengths)


def _cstr(buf: np.ndarray, start: int, size: int) -> str:
    raw = buf[start : start + size].tobytes()
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


class FileSource:
    """DBN files replayed as a live feed.

    All files are decoded once at start-up into one buffer of v3 records, merged across files
    by time while keeping each file's own order (each file's ts_event is made non-decreasing
    with a running maximum, then a stable sort merges them). ``now`` (ns, default: the first
    record) splits the data into history, reachable with start=, and the real-time part every
    subscription gets. ``speed`` paces the real-time part by ts_event: None = as fast as
    possible, 1.0 = real time, N = N times real time; gaps longer than ``max_gap_s`` of data
    time are not waited out. History is always sent as fast as possible, as on the real gateway.

    ``loop=True`` replays the real-time part forever, for soak and latency runs: each lap
    starts with an MBO clear (``R``) per instrument, and its times (ts_event, ts_recv) move
    on by one lap's span and its MBO order ids by ``lap << 52`` (real and simulated ids stay below 2^52), so every lap is a valid
    continuation of the one before (no time going backwards, no duplicate order ids).
    """

    def __init__(
        self, paths: Sequence[Path], *, now: int | None = None, speed: float | None = None,
        max_gap_s: float = 60.0, loop: bool = False, batch_every_s: float = PACE_EVERY_S,
    ) -> None:
        if not paths:
            raise ValueError("no DBN files given")
        self.paths = [Path(p) for p in paths]
        self.speed = speed
        self.loop = loop
        # Paced: after sending what is due, wait this long for more (0: come back at once).
        self.batch_every_s = batch_every_s
        self.max_gap_ns = int(max_gap_s * 1e9)
        loaded = [_load_v3(p) for p in self.paths]
        datasets = {str(f.meta.dataset) for f in loaded if f.meta.dataset}
        if len(datasets) > 1:
            raise ValueError(f"files mix datasets {sorted(datasets)}; one gateway serves one dataset")
        self._dataset = datasets.pop() if datasets else "GLBX.MDP3"
        self._instruments: dict[int, Instrument] = {}
        parts: list[tuple[np.ndarray, ...]] = []
        for f in loaded:
            offsets, rtypes, iids, ts = _index(f.data, f.lengths)
            self._harvest_symbology(f, offsets, rtypes)
            schema = None if f.meta.schema is None else str(f.meta.schema)
            schemas = schema_codes(rtypes, schema)
            key = np.maximum.accumulate(ts) if len(ts) else ts
            keep = schemas != R.NO_SCHEMA
            parts.append((f.data, offsets[keep], f.lengths[keep], rtypes[keep], schemas[keep], iids[keep], key[keep]))
        for part in parts:
            for iid in np.unique(part[5]).tolist():
                self._instruments.setdefault(int(iid), Instrument(int(iid), None))
        self._merge(parts)
        n = len(self.lengths)
        self.now_index = 0 if now is None else int(np.searchsorted(self.ts, np.uint64(max(now, 0)), "left"))
        if n:
            self._now_ts = int(self.ts[min(self.now_index, n - 1)])
        else:
            self._now_ts = 0 if now is None else now
        self._snapshots: dict[int, bytes] | None = None
        self._snapshot_lock: asyncio.Lock | None = None

    # - loading -

    def _harvest_symbology(self, f: _Loaded, offsets: np.ndarray, rtypes: np.ndarray) -> None:
        """Raw symbols from the metadata mappings, in-band SymbolMappingMsg and definitions."""
        if f.meta.stype_in is not None and str(f.meta.stype_in) == "raw_symbol":
            for raw, intervals in (f.meta.mappings or {}).items():
                for iv in intervals:
                    sym = str(iv["symbol"])
                    if sym.isdigit():
                        self._set_symbol(int(sym), raw)
        words = f.data.view("<u4")
        for off in offsets[rtypes == R.RTYPE_SYMBOL_MAPPING].tolist():
            out = _cstr(f.data, off + 89, 71)
            if out and not out.isdigit():
                self._set_symbol(int(words[(off + 4) // 4]), out)
        for off in offsets[rtypes == R.RTYPE_DEFINITION].tolist():
            iid = int(words[(off + 4) // 4])
            raw = _cstr(f.data, off + 238, 71)
            exp = int(f.data[off + 40 : off + 48].view("<u8")[0])
            self._set_symbol(iid, raw or None, None if exp == R.UNDEF_TIMESTAMP else exp)

    def _set_symbol(self, iid: int, raw: str | None, expiration: int | None = None) -> None:
        old = self._instruments.get(iid)
        self._instruments[iid] = Instrument(
            iid,
            raw or (old.raw_symbol if old else None),
            expiration if expiration is not None else (old.expiration if old else None),
        )

    def _merge(self, parts: list[tuple[np.ndarray, ...]]) -> None:
        if len(parts) == 1:
            data, offsets, lengths, rtypes, schemas, iids, key = parts[0]
            order = None
        else:
            key = np.concatenate([p[6] for p in parts])
            order = np.argsort(key, kind="stable")
            rtypes, schemas, iids = (np.concatenate([p[i] for p in parts])[order] for i in (3, 4, 5))
            key = key[order]
        # Copy the kept records, in merged order, into one contiguous buffer (in slices, so the
        # gather index stays small).
        if order is None and int(lengths.sum()) == len(data):
            chunks = [data.tobytes()]  # one file, nothing dropped: already contiguous
            lengths_out = lengths
        elif order is None:
            chunks = [R.gather(data, offsets[i : i + 65536], lengths[i : i + 65536]) for i in range(0, len(offsets), 65536)]
            lengths_out = lengths
        else:
            base = np.cumsum([0] + [len(p[0]) for p in parts])[:-1]
            all_data = np.concatenate([p[0] for p in parts])
            all_off = np.concatenate([p[1] + b for p, b in zip(parts, base)])[order]
            lengths_out = np.concatenate([p[2] for p in parts])[order]
            chunks = [R.gather(all_data, all_off[i : i + 65536], lengths_out[i : i + 65536]) for i in range(0, len(all_off), 65536)]
        self.data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        self.lengths = np.asarray(lengths_out, dtype=np.int64)
        self.offsets = np.cumsum(self.lengths) - self.lengths
        self.rtypes, self.schemas, self.iids, self.ts = rtypes, schemas, iids, key
        self._ends = self.offsets + self.lengths

    # - Source protocol -

    @property
    def dataset(self) -> str:
        return self._dataset

    def instruments(self) -> Mapping[int, Instrument]:
        return self._instruments

    def clock(self) -> int:
        return self._now_ts

    def __len__(self) -> int:
        return len(self.lengths)

    def _batch(self, kind: BatchKind, lo: int, hi: int, due: float | None, lap: int = 0) -> RecordBatch:
        base = int(self.offsets[lo])
        end = int(self._ends[hi - 1])
        b = RecordBatch(
            kind, self.data[base:end], self.offsets[lo:hi] - base, self.lengths[lo:hi],
            self.rtypes[lo:hi], self.schemas[lo:hi], self.iids[lo:hi], self.ts[lo:hi], due,
        )
        return _shift_lap(b, lap * self._lap_span(), (lap % 4096) << 52) if lap else b

    def _lap_span(self) -> int:
        """Data time one lap of the real-time part covers, plus a second between laps."""
        n = len(self.ts)
        return int(self.ts[n - 1]) - int(self.ts[min(self.now_index, n - 1)]) + 1_000_000_000

    def _lap_start(self, lap: int) -> RecordBatch:
        ts = int(self.ts[min(self.now_index, len(self.ts) - 1)]) + lap * self._lap_span()
        clears = np.zeros(len(self._instruments), dtype=R.MBO_DTYPE)
        clears["length"] = R.MBO_DTYPE.itemsize // 4
        clears["rtype"] = R.RTYPE_MBO
        clears["publisher_id"] = 1
        clears["instrument_id"] = sorted(self._instruments)
        clears["ts_event"] = ts
        clears["ts_recv"] = ts
        clears["action"] = ord("R")
        clears["side"] = ord("N")
        clears["flags"] = R.F_LAST
        return RecordBatch.from_records(clears.tobytes(), BatchKind.LIVE, schema="mbo")

    def _batch_end(self, lo: int, hi_limit: int) -> int:
        # At least one record, at most BATCH_BYTES worth.
        target = int(self.offsets[lo]) + BATCH_BYTES
        hi = int(np.searchsorted(self._ends, target, "right"))
        return max(lo + 1, min(hi, hi_limit))

    async def stream(self, *, start: int | None, snapshot_ids: Collection[int]) -> AsyncIterator[RecordBatch]:
        loop = asyncio.get_running_loop()
        n = len(self.lengths)
        pos = self.now_index if start is None else int(np.searchsorted(self.ts, np.uint64(start), "left"))
        while pos < min(self.now_index, n):
            hi = self._batch_end(pos, self.now_index)
            yield self._batch(BatchKind.HISTORICAL, pos, hi, None)
            pos = hi
            await asyncio.sleep(0)  # let other sessions run between batches
        if snapshot_ids:
            books = await self._snapshot_books()
            parts = [books.get(i) or self._empty_snapshot(i) for i in sorted(snapshot_ids)]
            yield RecordBatch.from_records(b"".join(parts), BatchKind.SNAPSHOT, schema="mbo")
        anchor_wall = loop.time()
        anchor_ts = int(self.ts[pos]) if pos < n else 0
        lap = 0
        while pos < n:
            if self.speed is None:
                hi = self._batch_end(pos, n)
                yield self._batch(BatchKind.LIVE, pos, hi, None, lap)
                pos = hi
                await asyncio.sleep(0)
                if pos == n and self.loop and self.now_index < n:
                    lap += 1
                    pos = self.now_index
                    yield self._lap_start(lap)
                continue
            now = loop.time()
            data_now = anchor_ts + int((now - anchor_wall) * self.speed * 1e9)
            due_idx = int(np.searchsorted(self.ts, np.uint64(max(data_now, 0)), "right"))
            if due_idx <= pos:
                nxt = int(self.ts[pos])
                prev = int(self.ts[pos - 1]) if pos > 0 else nxt
                if nxt - prev > self.max_gap_ns and data_now >= prev:
                    anchor_wall, anchor_ts = now, nxt  # a long gap (daily break) costs no time
                    continue
                # At least batch_every_s (a timer tick by default): at high rates shorter sleeps
                # return at once and spin the gateway on a core, starving the client it feeds.
                await asyncio.sleep(min(max((nxt - data_now) / self.speed / 1e9, self.batch_every_s), 1.0))
                continue
            hi = self._batch_end(pos, due_idx)
            due = anchor_wall + (int(self.ts[pos]) - anchor_ts) / self.speed / 1e9
            yield self._batch(BatchKind.LIVE, pos, hi, due, lap)
            pos = hi
            if pos == n and self.loop and self.now_index < n:
                lap += 1
                pos = self.now_index
                anchor_wall, anchor_ts = loop.time(), int(self.ts[pos])
                yield self._lap_start(lap)
            elif pos == due_idx and pos < n and self.batch_every_s:
                # Everything due went out: let the next interval's records gather instead of
                # coming back for each few (a batch costs ~50 us of numpy and a write whatever
                # its size, so at 1M records/s per-iteration batches keep a core busy).
                await asyncio.sleep(self.batch_every_s)

    # - snapshots -

    def _empty_snapshot(self, iid: int) -> bytes:
        return R.mbo_snapshot(iid, [], ts=self._now_ts)

    async def _snapshot_books(self) -> dict[int, bytes]:
        """Every instrument's MBO book as of "now", built once (in a thread) and cached."""
        if self._snapshots is None:
            if self._snapshot_lock is None:
                self._snapshot_lock = asyncio.Lock()
            async with self._snapshot_lock:
                if self._snapshots is None:
                    self._snapshots = await asyncio.to_thread(self._build_snapshots)
        return self._snapshots

    def _build_snapshots(self) -> dict[int, bytes]:
        """Replays the MBO history before "now" through the native L3 book, then writes each
        instrument's resting orders in queue order as a snapshot."""
        from aurum import _native

        hi = min(self.now_index, len(self.lengths))
        sel = np.flatnonzero(self.rtypes[:hi] == R.RTYPE_MBO)
        if len(sel) == 0:
            return {}
        history = R.gather(self.data, self.offsets[sel], self.lengths[sel])
        mbo = np.frombuffer(history, dtype=R.MBO_DTYPE)
        book = _native.Pipeline(trade_capacity=2, top_capacity=2, bar_capacity=2, bar_interval_ns=0, engines=False)
        book.feed(R.metadata_header(self.dataset, schema="mbo", stype_in=None, start=0, ts_out=False))
        book.feed(history)
        out: dict[int, bytes] = {}
        for iid in book.book_ids():
            orders = [(oid, chr(side), px, sz) for oid, side, px, sz in book.book_orders(iid) or []]
            # Publisher, channel and sequence of the instrument's last record before "now".
            last = np.flatnonzero(mbo["instrument_id"] == iid)[-1]
            pub, chan, seq = (int(mbo[c][last]) for c in ("publisher_id", "channel_id", "sequence"))
            out[iid] = R.mbo_snapshot(iid, orders, ts=self._now_ts, publisher_id=pub, channel_id=chan, sequence=seq)
        return out

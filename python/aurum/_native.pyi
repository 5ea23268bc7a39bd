"""Type stubs for ``aurum._native``, the Rust extension (crate ``aurum-native``).

Rust owns decoding, books, rings and bars; Python owns wiring. Every entry point takes a
whole byte chunk (or a file), never one record, so the per-record path stays native.

Prices are DBN fixed-point integers (1 unit = 1e-9); ``UNDEF_PRICE`` marks "no price".
"""

from typing import Any

UNDEF_PRICE: int
UNDEF_TIMESTAMP: int
FIXED_PRICE_SCALE: int
F_LAST: int
F_TOB: int
F_SNAPSHOT: int
F_MBP: int
F_BAD_TS_RECV: int
F_MAYBE_BAD_BOOK: int

TRADE_RECORD_SIZE: int
TOP_RECORD_SIZE: int
BAR_RECORD_SIZE: int
ICEBERG_RECORD_SIZE: int
ZONE_RECORD_SIZE: int
SWEEP_RECORD_SIZE: int
FLOW_RECORD_SIZE: int
FOOTPRINT_RECORD_SIZE: int

BAR_KIND_TIME: int
BAR_KIND_TICK: int
BAR_KIND_VOLUME: int

__version__: str
DBN_CRATE_VERSION: str

class DecodeError(ValueError):
    """Malformed DBN input. ``offset`` is the byte offset in the (decompressed) stream
    where the offending header or record starts; the message names it too."""

    offset: int

class StreamDecoder:
    """Inspection decoder: DBN v1/v2/v3 chunks in, records out as JSON strings written
    by the official ``dbn`` crate's JSON encoder (prices and timestamps as integers).

    Records are upgraded to DBN v3 layouts. Not the hot path: use ``Pipeline``.
    """

    def __init__(self, *, strict: bool = False) -> None: ...
    def feed(self, chunk: bytes | bytearray | memoryview) -> list[str]: ...
    def finish(self) -> None:
        """Raise ``DecodeError`` if the stream ended inside the metadata or a record."""

    @property
    def metadata(self) -> dict[str, Any] | None: ...
    @property
    def unknown_rtypes(self) -> int: ...
    @property
    def bytes_fed(self) -> int: ...

class RingView:
    """A read-only buffer over one native ring (use ``numpy.frombuffer``).

    Holds a reference to its ``Pipeline``, so the memory outlives every view."""

    @property
    def capacity(self) -> int: ...
    @property
    def record_size(self) -> int: ...

class DbnFile:
    """A ``.dbn`` or ``.dbn.zst`` file opened for streaming (zstd detected by magic)."""

    def __init__(self, path: str) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def compressed(self) -> bool: ...
    @property
    def size(self) -> int:
        """Size of the file on disk in bytes."""

    @property
    def position(self) -> int:
        """File bytes consumed so far (compressed bytes for ``.zst``)."""

class Pipeline:
    """feed -> decoder -> books -> trade/top/bar rings, all native.

    ``feed`` accepts arbitrary chunks: the metadata header first, records split anywhere.
    Top-of-book changes are published only at F_LAST boundaries.
    """

    def __init__(
        self,
        *,
        trade_capacity: int = 65536,
        top_capacity: int = 65536,
        bar_capacity: int = 16384,
        bar_interval_ns: int = 60_000_000_000,
        tick_bar_trades: int = 0,
        volume_bar_contracts: int = 0,
        strict: bool = False,
        engines: bool = True,
        engine_config: dict[str, Any] | None = None,
        max_instruments: int = 4096,
        hold_at_bar_close: bool = False,
        max_deferred_bytes: int = 256 << 20,
    ) -> None:
        """Ring capacities are rounded up to a power of two. ``strict`` turns an
        unknown rtype into a ``DecodeError`` instead of counting and skipping it.

        ``engines=False`` runs decode + books + bars only. ``engine_config`` overrides
        engine thresholds: top-level keys (``depth_sample_ns``, ``iceberg_capacity``,
        ``zone_capacity``, ``sweep_capacity``, ``flow_capacity``, ``footprint_capacity``) and
        sections ``iceberg``, ``absorption``, ``sweep``, ``flow``, ``pressure``, ``protect``
        whose keys are the fields documented in ``native/src/engines/*.rs``. An unknown key
        or a bad value raises ``ValueError`` naming it. Records of instruments beyond
        ``max_instruments`` are skipped and counted (``stats()["instruments_refused"]``).

        ``hold_at_bar_close`` stops the record stream where a bar closes (before the record
        that ends a time bar, after the trade that ends a tick or volume bar): ``held``
        turns true, records fed meanwhile are deferred in order, and ``resume()`` goes on.
        Whatever decides on closed bars then sees the engines as of the bar's end, however
        the bytes were chunked (``aurum.feeds.holds.run_holds``). A held pipeline with more
        than ``max_deferred_bytes`` deferred refuses ``feed``/``feed_file`` with a
        ``RuntimeError`` (a caller that never resumes), rather than grow without bound."""

    def feed(self, chunk: bytes | bytearray | memoryview, recv_ns: int = 0) -> int:
        """Decode and process one chunk. Returns the records decoded from it (all processed
        unless a hold deferred some). ``recv_ns`` (wall-clock ns of the socket read that
        delivered the chunk), when non-zero, times the chunk into the ``socket_to_processed``
        latency histogram (when a hold interrupts it: once ``resume`` has finished it)."""

    @property
    def held(self) -> bool:
        """True while a bar close holds the pipeline (``hold_at_bar_close``)."""

    @property
    def deferred_bytes(self) -> int:
        """Bytes of records deferred by a hold, waiting for ``resume``."""

    def resume(self) -> int:
        """Process the deferred records up to the next bar close (which holds again).
        Returns records processed; 0 if not held."""

    @property
    def last_ts_out(self) -> int:
        """Gateway send time (``ts_out``, UNIX ns) of the newest record processed; 0 if unknown."""

    def take_close_ts_out(self) -> int:
        """Gateway send time (``ts_out``, UNIX ns) of the record that closed the bars drained
        since the last call (the first, if several closed); 0 if unknown: no ``ts_out`` on
        the stream, or closed by ``advance_clock``. Resets it."""

    def observe_signal_latency(self, ts_out_ns: int, published_ns: int = 0) -> None:
        """Record one gateway-to-signal span in native code (``published_ns`` 0 = now);
        ``ts_out_ns`` 0 is ignored."""

    def latency(self) -> dict[str, tuple[list[float], list[int], float]]:
        """``{"socket_to_processed" | "gateway_to_signal": (bounds_s, cumulative_counts,
        sum_s)}``; counts has one more entry than bounds (the +Inf total)."""

    def feed_file(self, file: DbnFile, max_bytes: int = 1 << 20) -> int:
        """Read up to ``max_bytes`` decompressed bytes from ``file`` straight into the
        decoder and process them. Returns bytes read; 0 at end of file. Stops early when a
        bar close holds the pipeline."""

    def finish(self) -> None:
        """End of stream: raise ``DecodeError`` on a truncated header or record."""

    def advance_clock(self, ts_ns: int) -> int:
        """Close time bars whose boundary is <= ``ts_ns`` (the live clock). Returns bars closed."""

    def flush_bars(self) -> int:
        """Close every open bar (end of a replay). Returns bars closed."""

    @property
    def metadata(self) -> dict[str, Any] | None: ...
    @property
    def clock(self) -> int:
        """The largest ``ts_event`` seen, or the last ``advance_clock`` time (ns)."""

    def last_top(self, instrument_id: int) -> tuple[int, int, int, int, int, int] | None:
        """The last top of book published (at an F_LAST) from the instrument's best schema:
        MBO, else MBP-10, else MBP-1. Same tuple shape as ``book_top``."""

    @property
    def failed(self) -> str | None:
        """The error that stopped decoding, or None. A failed pipeline refuses input."""

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered after the last feed that do not yet form a whole record (so
        ``len(chunk) - pending_bytes`` is a record boundary in the chunk, when positive)."""

    @property
    def error_count(self) -> int:
        """ErrorMsg records decoded so far (``stats()["error_count"]``, without the dict)."""

    def reset_stream(self) -> None:
        """Expect a new metadata header (a reconnect). Books, rings and bars are kept."""

    def continue_stream(self) -> None:
        """The next file of the same stream (a journal's next part): the decoder expects a new
        metadata header; events open in the books carry on (``reset_stream`` drops them)."""

    def stats(self) -> dict[str, Any]:
        """records_total, records_by_rtype {rtype: count}, unknown_rtypes, bytes_fed,
        mbo_anomalies (unknown-order cancels/modifies, duplicate adds, over-cancels),
        bars_closed, trades, top_changes, errors (ErrorMsg texts), heartbeats, instruments_refused,
        trades_refused (a null price or a time past 2^63 ns: not prints, in no ring, bar or engine),
        memory {"icebergs"|"zones": (rows, capacity, dropped)}: Iceberg Memory's tables, and rows
        refused because the table was full."""

    def instruments(self) -> dict[int, str]:
        """instrument_id -> raw symbol, from SymbolMappingMsg records."""

    def book_ids(self) -> list[int]:
        """Instruments with an L3 (MBO) book."""

    def book_top(self, instrument_id: int) -> tuple[int, int, int, int, int, int] | None:
        """(bid_px, bid_sz, bid_ct, ask_px, ask_sz, ask_ct) of the L3 book as of the last
        F_LAST; empty sides give (UNDEF_PRICE, 0, 0). None if there is no such book."""

    def book_levels(
        self, instrument_id: int, depth: int = 10
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None:
        """Top ``depth`` (price, size, order count) per side, best first: the MBP-10
        view derived from MBO. Read it at an F_LAST boundary (see ``in_event``)."""

    def book_orders(self, instrument_id: int) -> list[tuple[int, int, int, int]] | None:
        """Every resting order as (order_id, side as ord('B'|'A'), price, size): bids then asks,
        best level first, each level in queue order (the order of an MBO snapshot)."""

    def in_event(self, instrument_id: int) -> bool:
        """True while an MBO event for the instrument is open (no F_LAST yet)."""

    def queue_position(self, instrument_id: int, order_id: int) -> tuple[int, int, int, int, int] | None:
        """(side as ord('B'|'A'), price, size, orders_ahead, size_ahead) or None."""

    def mbp10_levels(
        self, instrument_id: int
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None:
        """The book as last sent in MBP-10 records (10 levels per side)."""

    def table(self, name: str) -> RingView:
        """The rows in use of ``icebergs`` or ``zones`` (updated in place); see
        ``aurum.engines.table_array``."""

    def engine_status(self) -> dict[int, list[tuple[str, bool, str]]]:
        """Per instrument: (engine, active, reason if not) for every engine."""

    def pressure(self, instrument_id: int) -> dict[str, Any] | None:
        """Queue and depth imbalance, OFI (total and decayed), microprice, mid, spread."""

    def risk(self, instrument_id: int, now_ns: int = 0) -> dict[str, Any] | None:
        """Capital-protection inputs: spread blow-out, liquidity vacuum, crossed/locked
        book, F_MAYBE_BAD_BOOK, stale data (judged at ``now_ns``; 0 skips it), ``flags``."""

    def cvd(self, instrument_id: int) -> int | None:
        """Session cumulative delta."""

    def reset_session(self) -> None:
        """Start a new order-flow session (CVD to 0) for every instrument."""

    def memory_restore(self, icebergs: bytes, zones: bytes) -> tuple[int, int]:
        """Replace the iceberg and zone tables with raw rows (see ``aurum.memory``)."""

    def ring(self, name: str) -> RingView:
        """``trades``, ``tops``, ``bars``, or the engine rings ``sweeps``, ``flow``, ``footprint``."""

    def ring_written(self, name: str) -> int:
        """Records ever written to the ring (the write sequence; laps = written // capacity)."""

def check_engine_config(engine_config: dict[str, Any]) -> None:
    """Raises ``ValueError`` naming the key if ``engine_config`` (what ``Pipeline`` takes as
    ``engine_config``) is not valid; builds nothing. Config loading calls it."""

def derive_mbp10_trades(mbo: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
    """MBP-10 and trades records derived from a DBN MBO stream (metadata header included).

    Returns ``(mbp10_records, trade_records)``: concatenated DBN v3 ``Mbp10Msg`` and
    ``TradeMsg`` records (no metadata header), so all three schemas describe one market.
    Per MBO event (records up to F_LAST, per instrument):
    - each ``T`` gives one ``TradeMsg`` (price, size, aggressor side, ts/sequence copied) and
      one MBP-10 record with action ``T`` and the levels as they stood at the trade;
    - at ``F_LAST``, if the top 10 levels changed, one MBP-10 record with the levels after the
      event; its action/side/price/size/depth describe the last change inside the top 10
      (``A`` a level appeared, ``C`` one vanished, ``M`` a size changed).
    The last MBP-10 record of an event carries F_LAST. Raises ``DecodeError`` on bad input.
    """

class ShmSignalWriter:
    """The single writer of a shared-memory signal segment ``/dev/shm/<name>`` (layout:
    ``native/include/README.md``; readers: ``aurum.consumer.ShmReader``, ``aurum tail``).

    Creates the segment with permissions exactly ``mode``, or takes over one left by a dead
    writer; raises ``OSError`` if a live writer holds it, ``ValueError`` for a bad name,
    capacity (a power of two, 2..=4194304) or mode. Prices are USD floats (``None`` = none),
    stored as 1e-9 fixed point. Unknown keys raise ``ValueError``. Never blocks on readers.
    """

    layout_hash: int
    """FNV-1a 64 of ``layout_desc``, stored in the header."""
    layout_desc: str
    version: int

    def __init__(self, name: str = "aurum-signals", capacity: int = 4096, mode: int = 0o600,
                 unlink_on_close: bool = False, wake_on_publish: bool = True) -> None:
        """Each publication (signal or state) counts in the header's ``notify`` word and, with
        ``wake_on_publish``, wakes readers blocked on it (``ShmReader.wait``) at once; without
        it they wake at the next ``wake()``."""
    def wake(self) -> None:
        """Wakes blocked readers if anything was published since the last wake."""
    def publish(self, mapping: dict[str, Any] | None = None, /, **fields: Any) -> int:
        """Publishes one signal; returns its sequence number. Fields (all optional):
        ``ts_ns`` (default now), ``instrument_id``, ``action`` (0/1/2 or "FLAT"/"BUY"/"SELL"),
        ``flags`` (u8), ``veto`` (u16), ``entry``, ``stop``, ``targets`` (up to 3),
        ``direction``, ``confidence``, ``pillar_dir``/``pillar_conf`` (up to 5 floats),
        ``reason`` (UTF-8, truncated at a character boundary to at most 111 bytes). ``seq``/``crc32`` are ignored, so a
        reader's dict can be re-published. Also refreshes the heartbeat."""
    def update_state(self, mapping: dict[str, Any] | None = None, /, **fields: Any) -> None:
        """Updates the latest-state block; fields not given keep their previous value.
        ``ts_ns`` (default now), ``last``/``bid``/``ask``, ``volume``, ``market_ts``,
        ``instrument_id``, ``source`` (0/1/2 or "databento"/"yahoo"/"replay"), ``feed_state``
        (0..3 or "down"/"live"/"stale"/"recovering"), ``pillar_dir``/``pillar_conf``,
        ``zones`` (at most 32 dicts of ``price, side ('B'/'A'), kind, state, strength,
        volume``; replaces the list). Also refreshes the heartbeat."""
    def heartbeat(self, now_ns: int | None = None) -> None:
        """Wall-clock ns (default now). Readers treat an old heartbeat as a dead writer."""
    def close(self) -> None:
        """Unmaps and releases the writer lock (and unlinks if ``unlink_on_close``)."""
    def __enter__(self) -> ShmSignalWriter: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def capacity(self) -> int: ...
    @property
    def written(self) -> int:
        """Signals published so far (the next signal's sequence)."""

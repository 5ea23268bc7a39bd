"""Read Aurum's shared-memory signal output: ``ShmReader``.

The daemon writes ``/dev/shm/<name>`` (default ``aurum-signals``; layout in
``native/include/README.md`` and ``aurum_shm.h``). Pure Python (``mmap`` + ``struct``): no
extension module needed, so any process can consume signals::

    from aurum.consumer import ShmReader

    with ShmReader("aurum-signals") as r:
        while True:
            signals, lost = r.poll()
            ...

The ring is lossy: the writer never waits for readers. A reader that falls more than
``capacity`` signals behind is lapped; ``poll`` then returns how many it lost (exact), and
continues with the oldest signal still in the ring. A torn copy (the writer overwrote the
slot while we copied it) is never returned: it counts as lost too.

Memory ordering: each read below (``struct.unpack_from`` / a slice of the mmap) is an
opaque C call, so CPython cannot reorder them, and x86-64 never reorders loads with loads,
which is all the seqlock read side needs. On other architectures every accepted record is
also checked against the CRC-32 the writer stores in it (``verify_crc`` defaults to on).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct
import sys
import time
import zlib
from typing import Any

DEFAULT_NAME = "aurum-signals"
SHM_DIR = "/dev/shm"

# Must equal LAYOUT_DESC in native/src/shm.rs and AURUM_SHM_LAYOUT_DESC in aurum_shm.h.
LAYOUT_DESC = (
    "aurum-shm/3;"
    "header=256{magic:u8[8]@0,version:u32@8,header_size:u32@12,layout_hash:u64@16,capacity:u32@24,"
    "record_size:u32@28,state_offset:u32@32,state_size:u32@36,ring_offset:u32@40,writer_pid:u32@44,"
    "total_size:u64@48,epoch:u64@56,write_seq:u64@64,notify:u64@72,heartbeat_ns:u64@128};"
    "state=1024@256{lock:u64@0,update_ts:u64@8,last:i64@16,bid:i64@24,ask:i64@32,volume:u64@40,"
    "market_ts:u64@48,instrument_id:u32@56,source:u8@60,feed_state:u8@61,zone_count:u16@62,"
    "pillar_dir:f32[5]@64,pillar_conf:f32[5]@84,ts_out:u64@104,zones:zone[32]@128,crc32:u32@1020};"
    "zone=24{price:i64@0,volume:u32@8,strength:f32@12,side:u8@16,kind:u8@17,state:u8@18};"
    "signal=256@1280{lock:u64@0,seq:u64@8,ts:u64@16,instrument_id:u32@24,action:u8@28,flags:u8@29,"
    "veto:u16@30,entry:i64@32,stop:i64@40,targets:i64[3]@48,direction:f64@72,confidence:f64@80,"
    "pillar_dir:f32[5]@88,pillar_conf:f32[5]@108,reason:char[112]@128,ts_out:u64@240,crc32:u32@252};"
    "price=i64e-9;lock=seqlock(2*seq+1 writing,2*seq+2 done);crc32=ieee(bytes[8,size-4))"
)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


LAYOUT_HASH = fnv1a64(LAYOUT_DESC.encode())
MAGIC = b"AURUMSHM"
VERSION = 3
HEADER_SIZE, STATE_OFFSET, STATE_SIZE, RING_OFFSET, RECORD_SIZE = 256, 256, 1024, 1280, 256
MAX_ZONES = 32
OFF_WRITE_SEQ, OFF_NOTIFY, OFF_HEARTBEAT, OFF_EPOCH = 64, 72, 128, 56
PRICE_SCALE = 1_000_000_000
UNDEF_PRICE = (1 << 63) - 1
ACTIONS = ("FLAT", "BUY", "SELL")
SOURCES = ("databento", "yahoo", "replay")
FEED_STATES = ("down", "live", "stale", "recovering")
# Zone codes in the state block (the engines' own, aurum.engines.ZONE_KINDS / ZONE_STATES).
ZONE_KINDS = {1: "iceberg", 2: "absorption"}
ZONE_STATES = {1: "active", 2: "held", 3: "broken"}

_U64 = struct.Struct("<Q")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _futex_syscall() -> tuple[int, Any] | None:
    """(futex syscall number, libc's syscall) on Linux, else None: ``wait`` then naps. No
    binding of the futex syscall ships with Python or a small, well-kept package, so ctypes."""
    nr = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
    if not sys.platform.startswith("linux") or nr is None:
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return nr, fn


_FUTEX = _futex_syscall()
# ShmReader.wait sleeps in the kernel (True) or naps 0.2 ms at a time (False: not Linux, or an
# architecture whose futex syscall number is not known here).
HAVE_FUTEX = _FUTEX is not None


class _PyBuffer(ctypes.Structure):  # CPython's Py_buffer
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


def _buffer_address(obj: Any) -> int:
    """The address of a (read-only) buffer's memory, which ctypes' from_buffer refuses for
    read-only mappings. Valid while the mapping is: the export is released at once."""
    view = _PyBuffer()
    if ctypes.pythonapi.PyObject_GetBuffer(ctypes.py_object(obj), ctypes.byref(view), 0) != 0:
        raise ShmError("cannot get the address of the shared-memory mapping")
    try:
        return int(view.buf)
    finally:
        ctypes.pythonapi.PyBuffer_Release(ctypes.byref(view))


_FUTEX_WAIT = 0  # shared (not FUTEX_PRIVATE_FLAG): the writer is another process

# magic version header_size layout_hash capacity record_size state_offset state_size
# ring_offset writer_pid total_size epoch
_HEADER = struct.Struct("<8sIIQIIIIIIQQ")
# The 248 bytes after a slot's lock word.
_SIGNAL = struct.Struct("<QQIBBHqq3qdd5f5f112sQ4xI")
# The first 120 bytes after the state lock word, then 32 zones from offset 128.
_STATE = struct.Struct("<QqqqQQIBBH5f5fQ16x")
_ZONE = struct.Struct("<qIfBBB5x")
assert _SIGNAL.size == RECORD_SIZE - 8 and _STATE.size == 120 and _ZONE.size == 24


class ShmError(Exception):
    """The segment cannot be used; the message names it."""


class SegmentMissing(ShmError, FileNotFoundError):
    pass


class LayoutMismatch(ShmError):
    pass


class SegmentNotReady(ShmError):
    """A writer is creating or re-initialising the segment (its magic is not published yet):
    not an error, try again shortly."""


class StateBusy(ShmError):
    """The state block's lock stayed odd for the whole read: a writer descheduled mid-update,
    or one killed mid-update (then its heartbeat goes stale too). The previous state stands."""


def segment_path(name: str) -> str:
    if not name or "/" in name or "\0" in name or name.startswith(".") or len(name) > 255:
        raise ValueError(f"shared-memory segment name {name!r} must be a plain file name (no '/', not starting with '.')")
    return os.path.join(SHM_DIR, name)


def _px(v: int) -> float | None:
    return None if v == UNDEF_PRICE else v / PRICE_SCALE


def _name(names: tuple[str, ...], code: int) -> str | int:
    return names[code] if code < len(names) else code


def decode_signal(payload: bytes) -> dict[str, Any]:
    """The dict of one signal from the 248 bytes after its slot's lock word."""
    f = _SIGNAL.unpack(payload)
    return {
        "seq": f[0], "ts_ns": f[1], "instrument_id": f[2], "action": _name(ACTIONS, f[3]),
        "flags": f[4], "veto": f[5], "entry": _px(f[6]), "stop": _px(f[7]),
        "targets": [_px(t) for t in f[8:11]], "direction": f[11], "confidence": f[12],
        "pillar_dir": list(f[13:18]), "pillar_conf": list(f[18:23]),
        "reason": f[23].split(b"\0", 1)[0].decode("utf-8", "replace"),
        # Gateway send time of the record that closed the bar (0: unknown); now - ts_out is
        # the end-to-end latency as this reader sees it.
        "ts_out": f[24], "crc32": f[25],
    }


def decode_state(payload: bytes, update_seq: int) -> dict[str, Any]:
    """The dict of the state block from the 1016 bytes after its lock word."""
    f = _STATE.unpack_from(payload)
    zones = []
    for i in range(min(f[9], MAX_ZONES)):
        price, volume, strength, side, kind, state = _ZONE.unpack_from(payload, 120 + 24 * i)
        zones.append({"price": _px(price), "side": chr(side) if side else "", "kind": kind, "state": state,
                      "strength": strength, "volume": volume})
    return {
        "update_seq": update_seq, "ts_ns": f[0], "last": _px(f[1]), "bid": _px(f[2]), "ask": _px(f[3]),
        "volume": f[4], "market_ts": f[5], "instrument_id": f[6], "source": _name(SOURCES, f[7]),
        "feed_state": _name(FEED_STATES, f[8]), "pillar_dir": list(f[10:15]), "pillar_conf": list(f[15:20]),
        "ts_out": f[20], "zones": zones, "crc32": struct.unpack_from("<I", payload, STATE_SIZE - 12)[0],
    }


class ShmReader:
    """A read-only, lap-aware reader of one signal segment. Not thread-safe: one per thread.

    ``from_start=True`` first returns the signals still in the ring; otherwise only new ones.
    Counters: ``lost`` (total lost to laps), ``torn`` (copies rejected because the writer
    overwrote the slot mid-copy; included in ``lost``), ``resets`` (writer restarts seen).
    """

    def __init__(self, name: str = DEFAULT_NAME, *, from_start: bool = False, verify_crc: bool | None = None,
                 ready_timeout: float = 0.5) -> None:
        """``ready_timeout``: how long to wait for a writer that is still initialising the
        segment before raising ``SegmentNotReady``; 0 on an event loop."""
        self.name = name
        self.path = segment_path(name)
        if verify_crc is None:
            verify_crc = platform.machine().lower() not in ("x86_64", "amd64")
        self.verify_crc = verify_crc
        self.lost = self.torn = self.corrupt = self.resets = 0
        self._pending_reopen = False
        self._mm: mmap.mmap | None = None
        self._open(ready_timeout)
        w = self._u64(OFF_WRITE_SEQ)
        self._next = max(0, w - self.capacity) if from_start else w
        self._next_inode_check = time.monotonic() + 1.0
        self._notify_seen = self._notify_word()

    # -- segment ----------------------------------------------------------------------------

    def _open(self, ready_timeout: float = 0.0) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise SegmentMissing(f"shared-memory segment {self.name!r} not found ({self.path}); "
                                 "is the Aurum daemon running with shared-memory output enabled?") from None
        except PermissionError:
            raise ShmError(f"shared-memory segment {self.name!r} ({self.path}): permission denied "
                           "(the writer creates it 0600 unless configured otherwise)") from None
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                # Read before mapping: a new writer's file is empty, then allocated in one
                # step, then zeroed; magic comes last. Neither state is worth an mmap.
                st = os.fstat(fd)
                head = os.pread(fd, 8, 0) if st.st_size >= RING_OFFSET else b""
                if head == MAGIC:
                    break
                if 0 < st.st_size < RING_OFFSET:
                    raise LayoutMismatch(f"shared-memory segment {self.name!r}: {st.st_size} bytes, "
                                         "too small for an Aurum segment")
                # Zero, or magic being stored (any byte still 0): a writer at work.
                if any(b not in (0, m) for b, m in zip(head, MAGIC)):
                    raise LayoutMismatch(f"shared-memory segment {self.name!r}: bad magic {head!r}, "
                                         "not an Aurum segment")
                if time.monotonic() >= deadline:
                    raise SegmentNotReady(f"shared-memory segment {self.name!r} has no magic yet: a writer is "
                                          "initialising it")
                time.sleep(0.005)
            mm = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the mapping keeps its own reference
        try:
            self._check_header(mm, st.st_size)
        except BaseException:
            mm.close()
            raise
        if self._mm is not None:
            self._mm.close()
        self._mm, self._inode = mm, st.st_ino
        self._notify_addr: int | None = None  # of this mapping; found on the first wait()

    def _check_header(self, mm: mmap.mmap, size: int) -> None:
        (magic, version, _hsize, lhash, capacity, record_size, state_off, state_size, ring_off, pid,
         total, epoch) = _HEADER.unpack_from(mm, 0)
        if magic != MAGIC:  # cleared again since _open looked: another writer started
            raise SegmentNotReady(f"shared-memory segment {self.name!r} is being initialised by a new writer")
        if version != VERSION or lhash != LAYOUT_HASH:
            raise LayoutMismatch(
                f"shared-memory segment {self.name!r}: layout v{version} hash {lhash:#018x}, but this reader "
                f"expects v{VERSION} hash {LAYOUT_HASH:#018x}; writer and reader come from different Aurum versions")
        geometry = (record_size, state_off, state_size, ring_off)
        if geometry != (RECORD_SIZE, STATE_OFFSET, STATE_SIZE, RING_OFFSET) or capacity < 2 \
                or capacity & (capacity - 1) or RING_OFFSET + capacity * RECORD_SIZE > min(total, size):
            raise LayoutMismatch(f"shared-memory segment {self.name!r}: inconsistent geometry "
                                 f"(capacity {capacity}, {size} bytes)")
        self.capacity, self.writer_pid, self._epoch = capacity, pid, epoch

    def _u64(self, off: int) -> int:
        return _U64.unpack_from(self._mm, off)[0]

    def _resync(self) -> None:
        """A new writer took the segment over: start again from its first signal."""
        self.resets += 1
        self._next = 0
        self._epoch = self._u64(OFF_EPOCH)
        # Published with the epoch, before magic: the new writer's, not the dead one's.
        self.writer_pid = _HEADER.unpack_from(self._mm, 0)[9]

    def _maybe_reopen(self) -> None:
        # A writer that needed another size replaced the file: our mapping is orphaned.
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            self._pending_reopen = False
            return
        if ino != self._inode:
            try:
                self._open()
            except SegmentNotReady:
                # Keep the old mapping (its writer is gone; what it left unread still counts)
                # and look again on the next call rather than wait here.
                self._pending_reopen = True
                self._next_inode_check = 0.0
                return
            self._pending_reopen = False
            self._next = 0
            self.resets += 1

    # -- reading ----------------------------------------------------------------------------

    @property
    def reinitialising(self) -> bool:
        """True while a new writer initialises the segment, in place or as the file that
        replaces it: ``poll`` returns nothing new meanwhile, and picks the writer up by itself."""
        return self._pending_reopen or self._mm[:8] != MAGIC

    @property
    def written(self) -> int:
        """Signals the writer has published (its write sequence)."""
        return self._u64(OFF_WRITE_SEQ)

    def heartbeat_age_s(self, signed: bool = False) -> float | None:
        """Seconds between the writer's last heartbeat and now (None: never written), in
        either direction: a heartbeat in the future means the wall clock stepped back since
        it was written, and a live writer (same host, same clock) rewrites it within about a
        second, so one far in the future is as stale as one far in the past. ``signed``:
        negative for the future."""
        hb = self._u64(OFF_HEARTBEAT)
        if hb == 0:
            return None
        age = (time.time_ns() - hb) / 1e9
        return age if signed else abs(age)

    def writer_alive(self, max_age_s: float = 2.0) -> bool:
        """True if the segment is initialised and the writer's heartbeat is within
        ``max_age_s`` of now."""
        age = self.heartbeat_age_s()
        return self._mm[:8] == MAGIC and age is not None and age <= max_age_s

    def poll(self, max_records: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """New signals in sequence order, and how many were lost since the last poll."""
        self.poll_inode()
        mm, u64 = self._mm, _U64.unpack_from
        if mm[:8] != MAGIC:
            return [], 0  # being re-initialised in place
        epoch = u64(mm, OFF_EPOCH)[0]
        w = u64(mm, OFF_WRITE_SEQ)[0]
        if epoch != self._epoch or w < self._next:
            self._resync()
        out: list[bytes] = []
        lost = 0
        cap, mask, nxt = self.capacity, self.capacity - 1, self._next
        limit = max_records if max_records is not None else 1 << 62
        while nxt < w and len(out) < limit:
            if w - nxt > cap:  # lapped: everything older than w - cap is gone
                lost += w - cap - nxt
                nxt = w - cap
            off = RING_OFFSET + (nxt & mask) * RECORD_SIZE
            expect = 2 * nxt + 2
            l1 = u64(mm, off)[0]
            if l1 < expect:
                break  # not complete yet (or zeroed by a re-initialisation)
            nxt += 1
            if l1 != expect:  # a later lap already took the slot
                lost += 1
                w = u64(mm, OFF_WRITE_SEQ)[0]
                continue
            payload = mm[off + 8:off + RECORD_SIZE]
            if u64(mm, off)[0] != l1:  # overwritten while we copied: torn, never returned
                self.torn += 1
                lost += 1
                w = u64(mm, OFF_WRITE_SEQ)[0]
                continue
            if self.verify_crc and zlib.crc32(payload[:-4]) != int.from_bytes(payload[-4:], "little"):
                self.corrupt += 1
                lost += 1
                continue
            out.append(payload)
        # A re-initialisation during the loop changes the epoch: what we read may mix writers.
        if mm[:8] != MAGIC or u64(mm, OFF_EPOCH)[0] != self._epoch:
            return [], 0
        self._next = nxt
        self.lost += lost
        return [decode_signal(p) for p in out], lost

    def _notify_word(self) -> int:
        return _U64.unpack_from(self._mm, OFF_NOTIFY)[0] & 0xFFFFFFFF

    def wait(self, timeout: float | None = 1.0) -> bool:
        """Blocks until the writer publishes something (a signal or a state update) or
        ``timeout`` seconds pass; True if it published. Returns at once if signals are unread
        or something was published since the last ``wait`` returned, so a loop of ``wait``
        then ``poll``/``state`` never misses a publication::

            while True:
                if r.wait(1.0):
                    signals, lost = r.poll()

        It sleeps in the kernel on the segment's ``notify`` futex (woken by the writer at
        each publication): no CPU while idle, unlike spinning on ``poll``, and a scheduler
        wake-up instead of a nap's delay (tens of µs on bare metal; up to ~200 µs seen on a
        2-vCPU KVM guest, where waking an idle vCPU is an IPI through the host). ``timeout=None`` waits without limit;
        keep a timeout to notice a dead writer (``writer_alive``)."""
        self.poll_inode()
        mm = self._mm
        seen = self._notify_word()
        if seen != self._notify_seen or _U64.unpack_from(mm, OFF_WRITE_SEQ)[0] != self._next:
            self._notify_seen = seen
            return True
        if _FUTEX is not None:
            if self._notify_addr is None:
                # The futex word is the counter's low half (its second word on a big-endian host).
                self._notify_addr = _buffer_address(mm) + OFF_NOTIFY + (4 if sys.byteorder == "big" else 0)
            ts = None
            if timeout is not None:
                t = max(0.0, timeout)
                ts = ctypes.byref(_Timespec(int(t), int((t - int(t)) * 1e9)))
            nr, syscall = _FUTEX
            # Returns 0 when woken, -1 with EAGAIN if the word already changed, ETIMEDOUT or
            # EINTR: all mean "look again", which the caller does.
            syscall(ctypes.c_long(nr), ctypes.c_void_p(self._notify_addr), ctypes.c_int(_FUTEX_WAIT),
                    ctypes.c_uint32(seen), ts, None, ctypes.c_int(0))
        else:
            time.sleep(min(timeout if timeout is not None else 0.0002, 0.0002))
        now = self._notify_word()
        self._notify_seen = now
        return now != seen or _U64.unpack_from(mm, OFF_WRITE_SEQ)[0] != self._next

    def skip(self) -> int:
        """Moves past every signal written so far without reading it; returns how many. For a
        reader that only ``wait``s while another reads: unread signals would make each
        ``wait`` return at once."""
        w = _U64.unpack_from(self._mm, OFF_WRITE_SEQ)[0]
        n = max(0, w - self._next)
        self._next = w
        return n

    def poll_inode(self) -> None:
        """Reopens the segment if the writer replaced its file (checked at most once a second)."""
        if time.monotonic() >= self._next_inode_check:
            self._next_inode_check = time.monotonic() + 1.0
            self._maybe_reopen()

    def state_seq(self) -> int:
        """How many times the state block has been written (0: never). One load: a cheap way
        to spin for a change before paying for ``state()``."""
        return _U64.unpack_from(self._mm, STATE_OFFSET)[0] // 2

    def state(self, *, timeout_s: float = 0.05) -> dict[str, Any] | None:
        """A consistent snapshot of the latest-state block, or None if never written (or
        being re-initialised). Raises ``StateBusy`` if no consistent copy could be taken
        within ``timeout_s``: an update takes about a microsecond, so only a writer stopped
        mid-update holds the lock that long (preempted: a scheduler slice or two; killed:
        forever, and a dead writer must not stall the caller). On an event loop, pass a few
        milliseconds and keep the previous state on ``StateBusy``, as ``aurum.api`` does."""
        mm, u64 = self._mm, _U64.unpack_from
        lo, hi = STATE_OFFSET + 8, STATE_OFFSET + STATE_SIZE
        deadline = None
        i = 0
        while True:
            l1 = u64(mm, STATE_OFFSET)[0]
            if l1 == 0:
                return None
            if not l1 & 1:
                payload = mm[lo:hi]
                if u64(mm, STATE_OFFSET)[0] == l1 and (
                        not self.verify_crc or zlib.crc32(payload[:-4]) == int.from_bytes(payload[-4:], "little")):
                    # Re-initialisation zeroes the block without its seqlock: magic, cleared
                    # first, tells whether the copy may be half old and half zeroes.
                    return decode_state(payload, l1 // 2) if mm[:8] == MAGIC else None
            i += 1
            if i % 64 == 0:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout_s
                elif now >= deadline:
                    break
                time.sleep(0)  # let a descheduled writer finish its update
        raise StateBusy(f"shared-memory segment {self.name!r}: state block locked by its writer for more than "
                        f"{timeout_s * 1000:g} ms (pid {self.writer_pid} stopped mid-update?)")

    def header(self) -> dict[str, Any]:
        f = _HEADER.unpack_from(self._mm, 0)
        keys = ("magic", "version", "header_size", "layout_hash", "capacity", "record_size", "state_offset",
                "state_size", "ring_offset", "writer_pid", "total_size", "epoch")
        h = dict(zip(keys, f))
        h["magic"] = h["magic"].decode("ascii", "replace")
        h.update(write_seq=self._u64(OFF_WRITE_SEQ), heartbeat_ns=self._u64(OFF_HEARTBEAT))
        return h

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __enter__(self) -> ShmReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The raw feed journal: every byte the live gateway sent, as rotating ``.dbn.zst`` files
that ``aurum replay`` reads back.

Each stream (a connection's session) starts a new file. A file that grows past
``rotate_bytes`` (uncompressed) is closed at the next record boundary and the stream goes on
in a new part that starts with the stream's own metadata header again, so every file is a
complete DBN stream on its own. Boundaries come from the native decoder
(``pipeline.pending_bytes``: the bytes of a record not yet complete), so the journal never
looks at records one by one: a chunk's trailing partial record is held back until the next
chunk completes it, so every file ends on a record boundary, and a stream cut by a reconnect
leaves out the half record that the pipeline dropped too.

Names: ``<prefix>-<UTC start of the stream>-s<stream>-p<part>.dbn.zst``; the parts of one
stream share everything before ``-p``. ``aurum replay`` reads part N+1 right after part N as
the same stream (``Pipeline.continue_stream``): a rotation splits no event, so the replay
matches the live session across it.

Durability. ``flush()`` (the daemon calls it every second) ends the current zstd block and
hands it to the OS, so a crashed process loses at most that second: the file then ends in an
unterminated frame, and ``aurum replay`` reads every whole record before that end and says
where it stopped. Closing a file (rotation, a new stream, shutdown) ends its frame and fsyncs
it. A write that fails (a full disk) raises ``OSError``; the live client then drops the
journal with one error line, never the feed.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import re
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

log = logging.getLogger("aurum.journal")


class FeedJournal:
    def __init__(self, directory: str | Path, *, rotate_bytes: int = 256 << 20, level: int = 3,
                 prefix: str = "aurum") -> None:
        if rotate_bytes < 1 << 12:
            raise ValueError(f"journal rotate size was {rotate_bytes} bytes, expected at least 4096")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = rotate_bytes
        self.prefix = prefix
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._raw: BinaryIO | None = None
        self._zw: Any = None
        self._written = 0
        self._header = bytearray()
        self._header_len: int | None = None
        self._seen = 0  # stream bytes before the current chunk
        self._carry = bytearray()  # the stream's incomplete last record, not written yet
        self._stream = 0
        self._part = 0
        self._base: str | None = None  # the current stream's file names up to "-p"
        self.files: list[Path] = []

    def begin_stream(self) -> None:
        """A new stream (connection) starts: its bytes go to a new file. The old stream's
        incomplete last record, which the pipeline dropped as well, is dropped."""
        self._close()
        self._header = bytearray()
        self._header_len = None
        self._seen = 0
        self._carry.clear()
        self._stream += 1
        self._part = 0
        self._base = None

    def write(self, chunk: bytes | memoryview, pending: int) -> None:
        """One chunk as fed to the pipeline; ``pending`` is ``pipeline.pending_bytes`` after it."""
        data = memoryview(chunk)
        self._take_header(data)
        if self._zw is None:
            self._open()
        # Stream bytes up to the last complete record, relative to this chunk's start.
        boundary = len(data) - pending
        if boundary <= 0:
            self._carry += data  # still inside the record the carry started
        else:
            if self._carry:
                self._put(self._carry)
                self._carry.clear()
            self._put(data[:boundary])
            self._carry += data[boundary:]
            if self._written >= self.rotate_bytes and self._header_len is not None:
                self._close()
                self._part += 1
                self._open()
                self._put(self._header)  # each part is a whole stream: metadata first
        self._seen += len(data)

    def _take_header(self, data: memoryview) -> None:
        # The stream's metadata (the 8-byte prelude, then as many bytes as it declares) is the
        # stream's first bytes: copy them once, for the later parts.
        while True:
            target = self._header_len if self._header_len is not None else 8
            have = len(self._header)
            if have >= target:
                if self._header_len is None:
                    self._header_len = 8 + int.from_bytes(self._header[4:8], "little")
                    continue
                break
            start = have - self._seen
            if start >= len(data):
                break
            self._header += data[start:start + target - have]

    def _open(self) -> None:
        if self._base is None:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            # Never reuse an earlier stream's names: a restart within the same second would.
            for n in range(1000):
                base = f"{self.prefix}-{stamp}{f'.{n}' if n else ''}-s{self._stream:03d}"
                if not any(self.dir.glob(f"{glob.escape(base)}-p*.dbn.zst")):
                    break
            else:
                raise FileExistsError(f"journal: no free file name for stream {self._stream} in {self.dir}")
            self._base = base
        path = self.dir / f"{self._base}-p{self._part:03d}.dbn.zst"
        self._raw = path.open("xb")  # never truncates
        self._zw = self._cctx.stream_writer(self._raw, closefd=False)
        self._written = 0
        self.files.append(path)
        log.info("journal: writing %s", path)

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        self._zw.write(data)
        self._written += len(data)

    def flush(self) -> None:
        """Everything written so far to the OS (a complete zstd block): survives a crash of
        this process, not of the machine."""
        if self._zw is not None:
            self._zw.flush(zstandard.FLUSH_BLOCK)
            assert self._raw is not None
            self._raw.flush()

    def _close(self) -> None:
        # The handles are forgotten even when a step fails, so a failing disk is reported
        # once and a later call does not trip on the same half-closed writer.
        zw, raw, self._zw, self._raw = self._zw, self._raw, None, None
        try:
            if zw is not None:
                zw.flush(zstandard.FLUSH_FRAME)
                zw.close()
            if raw is not None:
                raw.flush()
                os.fsync(raw.fileno())
        finally:
            if raw is not None:
                raw.close()

    def close(self) -> None:
        self._close()

    def abandon(self) -> None:
        """After a failed write: close what can be closed; the journal is not used again."""
        try:
            self._close()
        except OSError as e:
            log.warning("journal: closing %s failed: %s", self.files[-1] if self.files else self.dir, e)


_PART = re.compile(r"(?P<base>.+-s\d{3})-p(?P<part>\d{3})\.dbn\.zst")


def continues(prev: Path, path: Path) -> bool:
    """Whether ``path`` is the journal part right after ``prev`` of the same stream."""
    a, b = _PART.fullmatch(prev.name), _PART.fullmatch(path.name)
    return bool(a and b and prev.parent == path.parent and a["base"] == b["base"]
                and int(b["part"]) == int(a["part"]) + 1)


__all__ = ["FeedJournal", "continues"]

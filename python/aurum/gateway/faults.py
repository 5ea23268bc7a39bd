"""Fault injection for gateway sessions, so clients can be tested against a misbehaving feed.

A fault is written ``kind[=value][@records]``; ``@records`` is how many data records the
session sends before the fault fires (default 0: before the first data record). Data records
are the market records of the source (snapshot records included); the metadata header,
symbol mappings and system messages do not count.

======================  =========================================================================
``close_after_bytes=N`` close the connection once N bytes have been written after the handshake
                        (wire bytes, so compressed bytes under zstd); usually mid-record
``cut@K``               after K records, write the first half of the next record, then close
``stall=S@K``           after K records, write nothing at all for S seconds (no heartbeats
                        either), then carry on
``garbage=N@K``         after K records, write N zero bytes (an impossible record length: a
                        conforming decoder must fail), then carry on
``error=C@K``           after K records, send an ErrorMsg with code C, then close
``throttle=BPS``        write at most BPS bytes per second: the gateway side of a slow reader
``sndbuf=N``            shrink the socket send buffer to N bytes, so back-pressure starts early
======================  =========================================================================

Faults from ``aurum gateway --fault`` apply to every session; the admin ``fault`` command
(stdin) arms faults for the next session only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

RECORD_FAULTS = ("cut", "stall", "garbage", "error")
CONNECTION_FAULTS = ("close_after_bytes", "throttle", "sndbuf")
KINDS = RECORD_FAULTS + CONNECTION_FAULTS
NEEDS_VALUE = {"close_after_bytes", "stall", "garbage", "error", "throttle", "sndbuf"}


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float = 0.0
    at: int = 0

    @classmethod
    def parse(cls, spec: str) -> Fault:
        text = spec.strip()
        body, at_sep, at_text = text.partition("@")
        kind, eq, value_text = body.partition("=")
        kind = kind.strip().replace("-", "_")
        if kind not in KINDS:
            raise FaultSpecError(f"fault {spec!r}: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
        if kind in NEEDS_VALUE and not eq:
            raise FaultSpecError(f"fault {spec!r}: {kind} needs a value ({kind}=...)")
        try:
            value = float(value_text) if eq else 0.0
        except ValueError:
            raise FaultSpecError(f"fault {spec!r}: value {value_text!r} is not a number") from None
        if value < 0:
            raise FaultSpecError(f"fault {spec!r}: value must be >= 0")
        at = 0
        if at_sep:
            if kind in CONNECTION_FAULTS:
                raise FaultSpecError(f"fault {spec!r}: {kind} takes no @records")
            if not at_text.strip().isdigit():
                raise FaultSpecError(f"fault {spec!r}: @{at_text} is not a record count")
            at = int(at_text)
        if kind == "error" and not 0 < value < 256:
            raise FaultSpecError(f"fault {spec!r}: error code must be 1..255")
        return cls(kind, value, at)

    def __str__(self) -> str:
        value = "" if self.kind not in NEEDS_VALUE else f"={self.value:g}"
        at = f"@{self.at}" if self.kind in RECORD_FAULTS else ""
        return f"{self.kind}{value}{at}"


@dataclass
class FaultPlan:
    """The faults of one session. Record faults fire once each, in record order."""

    faults: list[Fault] = field(default_factory=list)
    fired: int = 0  # record faults already fired (they are sorted by `at`)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> FaultPlan:
        faults: list[Fault] = []
        for spec in specs:
            for part in spec.split(","):
                if part.strip():
                    faults.append(Fault.parse(part))
        return cls(faults)

    def combined(self, other: FaultPlan) -> FaultPlan:
        return FaultPlan(self.faults + other.faults)

    def _value(self, kind: str) -> float | None:
        vals = [f.value for f in self.faults if f.kind == kind]
        return min(vals) if vals else None

    @property
    def close_after_bytes(self) -> int | None:
        v = self._value("close_after_bytes")
        return None if v is None else int(v)

    @property
    def throttle_bps(self) -> float | None:
        return self._value("throttle")

    @property
    def sndbuf(self) -> int | None:
        v = self._value("sndbuf")
        return None if v is None else int(v)

    @property
    def record_faults(self) -> list[Fault]:
        return sorted((f for f in self.faults if f.kind in RECORD_FAULTS), key=lambda f: f.at)

    def next_record_fault(self) -> Fault | None:
        pending = self.record_faults[self.fired :]
        return pending[0] if pending else None

    def mark_fired(self) -> None:
        self.fired += 1

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __str__(self) -> str:
        return ",".join(map(str, self.faults)) or "none"

"""Control messages of the Live Subscription Gateway handshake (databento.md §1.2-1.8).

Each message is a dataclass that parses and serialises its own ``key=value|key=value\\n`` line.
The gateway uses the client-to-server classes to parse and the server-to-client classes to
write; a client (our future daemon) uses them the other way round, so both sides share one
definition of the wire format.

Serialisation follows what the strictest official client (Python) accepts: the keys in the
documented order, ``None`` values omitted, no trailing ``|``, one ``\\n``. Parsing is lenient
where the protocol asks for it: the auth request is an unordered key set whose unknown keys are
kept in ``extra`` and otherwise ignored, and ``start_session`` may come with or without ``=0``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from aurum.apikey import mask_key  # one masking rule for the package; re-exported here

MAX_LINE_BYTES = 1 << 20  # 500 symbols of up to 71 chars fit many times over
SYMBOL_BATCH = 500  # every official client splits symbol lists into lines of at most 500
ALL_SYMBOLS = "ALL_SYMBOLS"

COMPRESSIONS = ("none", "zstd")
SLOW_READER_BEHAVIORS = ("skip", "warn")
STYPES_IN = ("raw_symbol", "instrument_id", "parent", "continuous")


class ControlError(ValueError):
    """A control line that does not parse. The message names the offending key and value."""


def split_line(line: str | bytes) -> dict[str, str]:
    """``k=v|k=v\\n`` -> dict. A token without ``=`` is a key with an empty value.

    Raises ``ControlError`` on a missing newline, non-UTF-8 bytes, an empty key or a duplicate
    key (a trailing ``|`` yields an empty key, which the Python client rejects too).
    """
    if isinstance(line, (bytes, bytearray)):
        try:
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            raise ControlError(f"control line is not UTF-8: {bytes(line)[:80]!r}") from None
    else:
        text = line
    if not text.endswith("\n"):
        raise ControlError(f"control line does not end with a newline: {text[:80]!r}")
    body = text[:-1]
    body = body.removesuffix("\r")
    if not body:
        raise ControlError("empty control line")
    fields: dict[str, str] = {}
    for token in body.split("|"):
        key, _, value = token.partition("=")
        if not key:
            raise ControlError(f"control line has an empty key: {body[:80]!r}")
        if key in fields:
            raise ControlError(f"control line repeats key {key!r}")
        fields[key] = value
    return fields


def join_line(pairs: Iterable[tuple[str, object | None]]) -> str:
    """Serialise ``(key, value)`` pairs, skipping ``None`` values. Values must not contain the
    separators: a ``|`` or newline inside a value would change the message."""
    tokens = []
    for key, value in pairs:
        if value is None:
            continue
        text = str(value)
        if any(c in text for c in "|\n\r"):
            raise ControlError(f"value of {key} contains a separator: {text[:80]!r}")
        tokens.append(f"{key}={text}")
    return "|".join(tokens) + "\n"


def _int(fields: Mapping[str, str], key: str, default: int | None = None) -> int | None:
    raw = fields.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ControlError(f"{key} was {raw!r}, expected an integer") from None


def _flag(fields: Mapping[str, str], key: str, default: bool) -> bool:
    raw = fields.get(key)
    if raw is None or raw == "":
        return default
    if raw not in ("0", "1"):
        raise ControlError(f"{key} was {raw!r}, expected 0 or 1")
    return raw == "1"


def _required(fields: Mapping[str, str], key: str, what: str) -> str:
    value = fields.get(key)
    if value is None or value == "":
        raise ControlError(f"{what} has no {key}")
    return value


def _exact_keys(fields: Mapping[str, str], allowed: set[str], what: str) -> None:
    # Server-to-client messages are parsed strictly, as the Python client does.
    extra = set(fields) - allowed
    if extra:
        raise ControlError(f"{what} has unexpected keys {sorted(extra)}")


# --- server -> client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    """``lsg_version=<v>``: the first line on every connection."""

    lsg_version: str

    @classmethod
    def parse(cls, line: str | bytes) -> Greeting:
        fields = split_line(line)
        _exact_keys(fields, {"lsg_version"}, "greeting")
        return cls(_required(fields, "lsg_version", "greeting"))

    def to_line(self) -> str:
        return join_line([("lsg_version", self.lsg_version)])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


@dataclass(frozen=True)
class Challenge:
    """``cram=<challenge>``: the CRAM challenge (free text; we send 32 random letters)."""

    cram: str

    @classmethod
    def random(cls, length: int = 32) -> Challenge:
        return cls("".join(secrets.choice(string.ascii_letters) for _ in range(length)))

    @classmethod
    def parse(cls, line: str | bytes) -> Challenge:
        fields = split_line(line)
        _exact_keys(fields, {"cram"}, "challenge")
        return cls(_required(fields, "cram", "challenge"))

    def to_line(self) -> str:
        return join_line([("cram", self.cram)])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


@dataclass(frozen=True)
class AuthResponse:
    """``success=1|session_id=<digits>`` or ``success=0|error=<text>``."""

    success: bool
    session_id: str | None = None
    error: str | None = None

    @classmethod
    def parse(cls, line: str | bytes) -> AuthResponse:
        fields = split_line(line)
        _exact_keys(fields, {"success", "session_id", "error"}, "auth response")
        success = _required(fields, "success", "auth response")
        # Python treats anything but "0" as success; Rust requires "1". Accept the strict form.
        if success not in ("0", "1"):
            raise ControlError(f"success was {success!r}, expected 0 or 1")
        return cls(success == "1", fields.get("session_id"), fields.get("error"))

    def to_line(self) -> str:
        if self.success:
            return join_line([("success", 1), ("session_id", self.session_id)])
        return join_line([("success", 0), ("error", self.error or "Authentication failed.")])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


# --- client -> server ------------------------------------------------------------------------


def cram_response(challenge: str, key: str) -> str:
    """``sha256(challenge|key)`` hex, ``-``, the key's last 5 characters (its bucket)."""
    digest = hashlib.sha256(f"{challenge}|{key}".encode()).hexdigest()
    return f"{digest}-{key[-5:]}"


@dataclass(frozen=True)
class AuthRequest:
    """``auth=<hash>-<bucket>|dataset=...|encoding=dbn|ts_out=0|compression=none|...``.

    ``heartbeat_interval_s`` is None when the client did not send it (the gateway then uses
    30 s). ``slow_reader_behavior`` ``drop`` (Python < 0.74) is read as ``skip``.
    """

    auth: str
    dataset: str
    encoding: str = "dbn"
    ts_out: bool = False
    compression: str = "none"
    heartbeat_interval_s: int | None = None
    slow_reader_behavior: str | None = None
    client: str | None = None
    details: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {"auth", "dataset", "encoding", "ts_out", "compression", "heartbeat_interval_s",
         "slow_reader_behavior", "client", "details"}
    )

    @classmethod
    def for_key(cls, challenge: str, key: str, dataset: str, **kwargs: object) -> AuthRequest:
        """The request a client sends in answer to ``challenge``."""
        return cls(auth=cram_response(challenge, key), dataset=dataset, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, line: str | bytes) -> AuthRequest:
        return cls.from_fields(split_line(line))

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> AuthRequest:
        auth = _required(fields, "auth", "auth request")
        if "-" not in auth:
            raise ControlError("auth was not of the form <hash>-<bucket>")
        encoding = fields.get("encoding") or "dbn"
        if encoding != "dbn":
            raise ControlError(f"encoding was {encoding!r}, expected 'dbn'")
        compression = (fields.get("compression") or "none").lower()
        if compression not in COMPRESSIONS:
            raise ControlError(f"compression was {compression!r}, expected one of {', '.join(COMPRESSIONS)}")
        srb = fields.get("slow_reader_behavior") or None
        if srb is not None:
            srb = "skip" if srb == "drop" else srb
            if srb not in SLOW_READER_BEHAVIORS:
                raise ControlError(f"slow_reader_behavior was {srb!r}, expected skip or warn")
        return cls(
            auth=auth,
            dataset=_required(fields, "dataset", "auth request"),
            encoding=encoding,
            ts_out=_flag(fields, "ts_out", False),
            compression=compression,
            heartbeat_interval_s=_int(fields, "heartbeat_interval_s"),
            slow_reader_behavior=srb,
            client=fields.get("client"),
            details=fields.get("details"),
            extra={k: v for k, v in fields.items() if k not in cls.KNOWN},
        )

    @property
    def bucket(self) -> str:
        # The hash is hex (no '-'); the bucket, a key's last 5 characters, may contain one.
        return self.auth.partition("-")[2]

    def verify(self, challenge: str, key: str) -> bool:
        """True if ``auth`` answers ``challenge`` with ``key`` (constant-time compare)."""
        return hmac.compare_digest(self.auth.encode(), cram_response(challenge, key).encode())

    def to_line(self) -> str:
        # Python's order; `auth` first is what every official client sends.
        return join_line([
            ("auth", self.auth), ("dataset", self.dataset), ("encoding", self.encoding),
            ("details", self.details), ("ts_out", int(self.ts_out)), ("compression", self.compression),
            ("heartbeat_interval_s", self.heartbeat_interval_s),
            ("slow_reader_behavior", self.slow_reader_behavior), ("client", self.client),
        ])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


@dataclass(frozen=True)
class SubscriptionRequest:
    """``schema=mbo|stype_in=raw_symbol|symbols=GCZ6,GCG7|start=<ns>|snapshot=0|id=0|is_last=1``.

    One line carries at most 500 symbols; the lines of one subscription share ``id`` and only
    the last has ``is_last=1``. ``schema`` and ``stype_in`` are kept as text: whether they are
    supported is the gateway's decision (an INVALID_SUBSCRIPTION error), not a parse error.
    """

    schema: str
    symbols: tuple[str, ...]
    stype_in: str = "raw_symbol"
    start: int | None = None
    snapshot: bool = False
    id: int | None = None
    is_last: bool = True
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {"schema", "stype_in", "symbols", "start", "snapshot", "id", "is_last"}
    )

    @classmethod
    def parse(cls, line: str | bytes) -> SubscriptionRequest:
        return cls.from_fields(split_line(line))

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> SubscriptionRequest:
        symbols_raw = fields.get("symbols")
        if symbols_raw is None:
            raise ControlError("subscription has no symbols")
        symbols = tuple(s.strip() for s in symbols_raw.split(",") if s.strip())
        if not symbols:
            raise ControlError("subscription has an empty symbols list")
        if len(symbols) > SYMBOL_BATCH:
            raise ControlError(f"subscription line has {len(symbols)} symbols, at most {SYMBOL_BATCH} allowed")
        start = _int(fields, "start")
        if start is not None and not 0 <= start < 1 << 64:
            raise ControlError(f"start was {start}, expected UNIX nanoseconds in 0..2^64-1")
        return cls(
            schema=_required(fields, "schema", "subscription"),
            symbols=symbols,
            stype_in=fields.get("stype_in") or "raw_symbol",
            start=start,
            snapshot=_flag(fields, "snapshot", False),
            id=_int(fields, "id"),
            is_last=_flag(fields, "is_last", True),
            extra={k: v for k, v in fields.items() if k not in cls.KNOWN},
        )

    @classmethod
    def batched(
        cls, schema: str, symbols: Iterable[str], *, stype_in: str = "raw_symbol",
        start: int | None = None, snapshot: bool = False, id: int | None = None,
    ) -> list[SubscriptionRequest]:
        """The lines a client sends for one subscription: chunks of 500, is_last on the last."""
        syms = list(symbols)
        chunks = [tuple(syms[i : i + SYMBOL_BATCH]) for i in range(0, len(syms), SYMBOL_BATCH)] or [()]
        return [
            cls(schema, chunk, stype_in, start, snapshot, id, i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)
        ]

    def to_line(self) -> str:
        return join_line([
            ("schema", self.schema), ("stype_in", self.stype_in), ("symbols", ",".join(self.symbols)),
            ("start", self.start), ("snapshot", int(self.snapshot)), ("id", self.id),
            ("is_last", int(self.is_last)),
        ])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


@dataclass(frozen=True)
class SessionStart:
    """``start_session=0`` (Python) or bare ``start_session`` (Rust, C++)."""

    value: str = "0"

    @classmethod
    def parse(cls, line: str | bytes) -> SessionStart:
        return cls.from_fields(split_line(line))

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> SessionStart:
        if "start_session" not in fields:
            raise ControlError("not a start_session line")
        return cls(fields["start_session"])

    def to_line(self) -> str:
        return join_line([("start_session", self.value)])

    def __bytes__(self) -> bytes:
        return self.to_line().encode()


ClientMessage = AuthRequest | SubscriptionRequest | SessionStart
ServerMessage = Greeting | Challenge | AuthResponse


def parse_client_line(line: str | bytes) -> ClientMessage:
    """Classify and parse a client line by its keys (auth / subscription / start_session)."""
    fields = split_line(line)
    if "start_session" in fields:
        return SessionStart.from_fields(fields)
    if "auth" in fields:
        return AuthRequest.from_fields(fields)
    if "schema" in fields or "symbols" in fields:
        return SubscriptionRequest.from_fields(fields)
    raise ControlError(f"unrecognised client line with keys {sorted(fields)}")


def parse_server_line(line: str | bytes) -> ServerMessage:
    """Classify and parse a gateway line (what a client reads during the handshake)."""
    fields = split_line(line)
    if "lsg_version" in fields:
        return Greeting.parse(line)
    if "cram" in fields:
        return Challenge.parse(line)
    if "success" in fields:
        return AuthResponse.parse(line)
    raise ControlError(f"unrecognised gateway line with keys {sorted(fields)}")


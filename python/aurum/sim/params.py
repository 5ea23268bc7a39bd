"""Parameters of the CME GC market simulator, and the named scenarios (presets of them).

Every knob lives in one frozen dataclass, ``SimParams``; a scenario is a dict of overrides
applied to the defaults. Rates are per second of *trading* time (the daily break does not
count), planted-event rates per hour of trading time. Times are UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
from dataclasses import dataclass
from typing import Any

GC_TICK = 100_000_000  # 0.10 USD/oz in DBN fixed-point units (1e-9)
GC_TICK_USD = 0.10


@dataclass(frozen=True)
class SimParams:
    # --- what and when ----------------------------------------------------------------------
    seed: int = 0
    symbols: tuple[str, ...] = ("GCZ6",)
    # None: derived from the symbol (stable, distinct, CME-like magnitudes).
    instrument_ids: tuple[int, ...] | None = None
    price: float = 4100.0  # front contract's starting mid, USD/oz
    carry_usd: float = 14.0  # each later contract starts this much higher (contango)
    activity_decay: float = 0.35  # each later contract has this share of the previous one's flow
    # A Monday in EDT, so the fixed 21:00 UTC break is also 17:00 New York time.
    start: str = "2026-09-14T13:30:00Z"
    duration_s: float | None = None  # wall-clock span (breaks included); or give records
    records: int | None = 1_000_000  # approximate MBO record count (cut at a whole event)
    # "utc": no records 21:00-22:00 UTC every day (GC's 17:00-18:00 ET break during EDT).
    # "et": 17:00-18:00 America/New_York, following DST (22:00-23:00 UTC in winter).
    session_break: str = "utc"

    # --- regimes ------------------------------------------------------------------------------
    quiet_mean_s: float = 240.0  # mean length of a quiet spell
    fast_mean_s: float = 60.0  # mean length of a fast spell (0 disables fast regimes)
    fast_rate_mult: float = 3.0  # adds, cancels-by-lifetime, market orders and steps speed up
    fast_life_div: float = 2.0  # lifetimes shrink in the fast regime

    # --- latent mid (the book is built around it, so it never crosses) -------------------------
    step_rate: float = 1.0  # mid steps per second (quiet)
    up_prob: float = 0.5  # > 0.5 gives an up-trend

    # --- limit orders ---------------------------------------------------------------------------
    add_rate: float = 150.0  # add events per second (quiet)
    dist_p: float = 0.22  # geometric distance from the touch, in ticks: clusters at the touch
    max_dist: int = 40
    size_p: float = 0.5  # geometric order size (lots)
    max_size: int = 60
    ladder_prob: float = 0.06  # share of add events that place 2-4 orders at once (one event)
    # Lifetimes: a mixture tuned so the touch holds ~10-40 lots, as GC's usually does.
    fleeting_share: float = 0.7
    fleeting_life_s: float = 0.3
    normal_life_s: float = 3.0
    long_share: float = 0.03
    long_life_s: float = 20.0
    fade_prob: float = 0.6  # an order the mid is about to walk through is pulled first
    fade_ms: tuple[float, float] = (1.0, 200.0)  # ... this long before the step
    partial_prob: float = 0.18  # one partial cancel or modify-down during the life
    modify_share: float = 0.5  # of those, the share sent as M (new size) rather than C
    fill_update_m_share: float = 0.15  # partial fills reported as M (new size) instead of C
    snapshot_levels: int = 10
    snapshot_orders_per_level: int = 3

    # --- market orders (aggressors into the touch) ---------------------------------------------
    market_rate: float = 3.0  # per second (quiet)
    buy_prob: float = 0.5
    market_size_p: float = 0.35
    max_market_size: int = 80
    rest_prob: float = 0.25  # a mid step's aggressor rests its remainder at the cleared price

    # --- planted events (per hour of trading time, per front contract) -------------------------
    native_icebergs_per_h: float = 0.0
    synthetic_icebergs_per_h: float = 0.0
    absorptions_per_h: float = 0.0
    sweeps_per_h: float = 0.0
    stop_runs_per_h: float = 0.0
    spoofs_per_h: float = 0.0
    warmup_s: float = 5.0  # nothing is planted this early: the book is still filling

    iceberg_clip: tuple[int, int] = (1, 10)  # display quantity range (lots)
    iceberg_tranches: tuple[int, int] = (4, 30)  # total size = clip x tranches (+ a part clip)
    iceberg_duration_s: tuple[float, float] = (8.0, 45.0)
    iceberg_exhaust_prob: float = 0.6  # else it is cancelled when the episode ends
    episode_aggr_rate: float = 3.0  # extra aggressors per second into the planted level
    episode_aggr_size_p: float = 0.25

    synthetic_clip: tuple[int, int] = (2, 10)
    synthetic_clips: tuple[int, int] = (3, 15)
    synthetic_delay_ms: tuple[float, float] = (0.7, 1.5)  # re-add delay after a clip fills

    absorption_duration_s: tuple[float, float] = (10.0, 40.0)
    absorption_chains: tuple[int, int] = (2, 4)  # concurrent replenishing orders
    absorption_size: tuple[int, int] = (4, 25)
    absorption_delay_ms: tuple[float, float] = (0.3, 25.0)
    absorption_aggr_mult: float = 2.5  # aggression is this much heavier than in an iceberg
    absorption_break_prob: float = 0.35  # else the level holds and the price turns away

    sweep_levels: tuple[int, int] = (2, 4)
    stop_run_stops: tuple[int, int] = (1, 3)  # elected stops after a 2-level trigger sweep
    spoof_size: tuple[int, int] = (60, 300)
    spoof_dist: tuple[int, int] = (2, 6)  # ticks behind the touch
    spoof_life_s: tuple[float, float] = (1.0, 20.0)

    # --- wire details ---------------------------------------------------------------------------
    # SymbolMappingMsg records at the head of every file, as a live session starts. The files
    # then hold two record types, so their metadata schema is None ("mixed", as Databento marks
    # such streams; read with ``to_df(schema="mbo")``). False: schema-homogeneous files.
    inband_mappings: bool = True
    publisher_id: int = 1  # GLBX.MDP3
    channel_id: int = 0
    first_sequence: int = 1_000

    def replace(self, **changes: Any) -> SimParams:
        return dataclasses.replace(self, **changes)

    def start_ns(self) -> int:
        return start_ns_of(self.start)

    def ids(self) -> tuple[int, ...]:
        if self.instrument_ids is not None:
            if len(self.instrument_ids) != len(self.symbols):
                raise ValueError(f"{len(self.instrument_ids)} instrument_ids for {len(self.symbols)} symbols; "
                                 "expected one per symbol")
            return tuple(int(i) for i in self.instrument_ids)
        import zlib

        ids = tuple(100_000 + zlib.crc32(s.encode()) % 900_000 for s in self.symbols)
        if len(set(ids)) != len(ids):
            raise ValueError(f"the instrument ids derived from {','.join(self.symbols)} collide; "
                             "give instrument_ids")
        return ids

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of its range (see ``check_field``)."""
        for f in dataclasses.fields(self):
            check_field(f.name, getattr(self, f.name))
        if not self.symbols:
            raise ValueError("at least one symbol is needed")
        if self.records is None and self.duration_s is None:
            raise ValueError("give records or duration_s")
        # The cut keeps whole events: the opening snapshots and at least one event after them.
        least = len(self.symbols) * (2 * self.snapshot_levels * self.snapshot_orders_per_level + 1)
        if self.records is not None and self.duration_s is None and self.records < least:
            raise ValueError(f"records was {self.records}, expected at least {least} for {len(self.symbols)} "
                             f"symbol(s): each opens with a snapshot of 2 x snapshot_levels x "
                             "snapshot_orders_per_level orders")
        if self.add_rate + self.market_rate + self.step_rate <= 0:
            raise ValueError("add_rate, market_rate and step_rate are all 0: nothing would happen")
        last = self.price + (len(self.symbols) - 1) * self.carry_usd
        if last <= 1.0:
            raise ValueError(f"carry_usd {self.carry_usd:g} puts the last contract at {last:g} USD/oz; "
                             "expected a price above 1")
        self.ids()  # instrument_ids of the right length, or derived ids that do not collide


# Scenario = overrides of the defaults. "mixed" is the one to reach for.
SCENARIOS: dict[str, dict[str, Any]] = {
    # A calm market: no fast spells, thin aggression, the odd spoof. Nothing else planted.
    "quiet": dict(fast_mean_s=0.0, step_rate=0.4, market_rate=1.5, add_rate=100.0, spoofs_per_h=20.0),
    # A persistent up-move: steps and aggressors lean to the buy side; sweeps follow the trend.
    "trend": dict(up_prob=0.55, buy_prob=0.58, step_rate=1.3, market_rate=4.0,
                  sweeps_per_h=30.0, stop_runs_per_h=10.0),
    "icebergs": dict(native_icebergs_per_h=90.0, synthetic_icebergs_per_h=60.0),
    "absorption": dict(absorptions_per_h=60.0, native_icebergs_per_h=10.0),
    "sweeps": dict(sweeps_per_h=120.0, stop_runs_per_h=60.0, fast_mean_s=90.0),
    # Hold episodes (icebergs, absorption) freeze the mid: these rates keep them to ~1/4 of the time.
    "mixed": dict(native_icebergs_per_h=15.0, synthetic_icebergs_per_h=10.0, absorptions_per_h=8.0,
                  sweeps_per_h=40.0, stop_runs_per_h=15.0, spoofs_per_h=40.0),
}


def scenario_params(name: str = "mixed", **overrides: Any) -> SimParams:
    """The defaults, then the scenario's presets, then ``overrides`` (any SimParams field)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    known = {f.name for f in dataclasses.fields(SimParams)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    params = SimParams(**{**SCENARIOS[name], **overrides})
    params.validate()
    return params


# --- field checks (``validate``, and ``aurum sim --set`` before anything runs) -------------------

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(SimParams)}
_DAY = 86_400.0
_BIG_RATE = 100_000.0
_OPEN_UNIT = ("up_prob", "buy_prob", "dist_p", "size_p", "market_size_p", "episode_aggr_size_p")
# name: (lowest, highest, lowest excluded). Unlisted float fields are rates: 0 to _BIG_RATE.
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "seed": (0, math.inf, False), "records": (100, math.inf, False),
    "duration_s": (0.0, 400 * _DAY, True),  # the session clock knows 400 days
    "price": (1.0, 1_000_000.0, True), "carry_usd": (-10_000.0, 10_000.0, False),
    "activity_decay": (0.0, 1.0, True),
    # Spell means of at least a second: the spells are drawn one by one.
    "quiet_mean_s": (1.0, 1e6, False), "fast_mean_s": (0.0, 1e6, False),
    "fast_rate_mult": (0.0, 1000.0, True), "fast_life_div": (0.0, 1000.0, True),
    "absorption_aggr_mult": (0.0, 1000.0, True),
    # Strictly between 0 and 1 (checked apart): a one-sided market, or a geometric size or
    # distance law with no spread at all (0: no size at all).
    **{name: (0.0, 1.0, True) for name in _OPEN_UNIT},
    "max_dist": (0, 10_000, False), "max_size": (1, 1_000_000, False), "max_market_size": (1, 1_000_000, False),
    "snapshot_levels": (0, 1000, False), "snapshot_orders_per_level": (0, 1000, False),
    "fleeting_life_s": (0.0, _DAY, True), "normal_life_s": (0.0, _DAY, True), "long_life_s": (0.0, _DAY, True),
    "warmup_s": (0.0, _DAY, False),
    "publisher_id": (0, 65_535, False), "channel_id": (0, 255, False), "first_sequence": (0, 2**32 - 1, False),
}
_PROBS = ("ladder_prob", "fleeting_share", "long_share", "fade_prob", "partial_prob", "modify_share",
          "fill_update_m_share", "rest_prob", "iceberg_exhaust_prob", "absorption_break_prob")
_BOUNDS.update({name: (0.0, 1.0, False) for name in _PROBS})
# (low, high) pairs: name -> bounds of each end.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "fade_ms": (0.0, 60_000.0, False), "synthetic_delay_ms": (0.0, 60_000.0, False),
    "absorption_delay_ms": (0.0, 60_000.0, False),
    "iceberg_duration_s": (0.1, _DAY, False), "absorption_duration_s": (0.1, _DAY, False),
    "spoof_life_s": (0.1, _DAY, False),
    "iceberg_clip": (1, 1_000_000, False), "iceberg_tranches": (1, 10_000, False),
    "synthetic_clip": (1, 1_000_000, False), "synthetic_clips": (1, 10_000, False),
    "absorption_chains": (1, 100, False), "absorption_size": (1, 1_000_000, False),
    "sweep_levels": (1, 100, False), "stop_run_stops": (1, 100, False),
    "spoof_size": (1, 1_000_000, False), "spoof_dist": (1, 1000, False),
}
_SYMBOL_MAX = 70  # DBN's symbol field (71 bytes, NUL-terminated)


def _expected(lo: float, hi: float, lo_open: bool, integer: bool) -> str:
    kind = "an integer" if integer else "a number"
    low = f"above {lo:g}" if lo_open else f"{lo:g}"
    if math.isinf(hi):
        return f"{kind} {'above' if lo_open else '>='} {lo:g}"
    return f"{kind} from {low} to {hi:g}" if not lo_open else f"{kind} {low}, at most {hi:g}"


def _check_number(name: str, v: Any, bounds: tuple[float, float, bool], integer: bool) -> None:
    lo, hi, lo_open = bounds
    ok_type = isinstance(v, numbers.Integral) if integer else isinstance(v, numbers.Real)
    if isinstance(v, bool) or not ok_type:
        raise ValueError(f"{name} was {v!r}, expected {_expected(lo, hi, lo_open, integer)}")
    if not (math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi):
        raise ValueError(f"{name} was {v!r}, expected {_expected(lo, hi, lo_open, integer)}")


def start_ns_of(text: str) -> int:
    """``start`` as UNIX ns; ``ValueError`` naming the value when it is not a usable ISO 8601 time."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"start was {text!r}, expected an ISO 8601 time such as 2026-09-14T13:30:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    if not 1971 <= t.astimezone(dt.timezone.utc).year <= 2200:
        raise ValueError(f"start was {text!r}, expected a time between 1971 and 2200")
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000


def check_field(name: str, v: Any) -> None:
    """Raise ``ValueError`` ("NAME was VALUE, expected ...") if ``v`` is not a usable value of
    SimParams field ``name``."""
    default = _DEFAULTS[name]
    if name == "symbols":
        if not isinstance(v, tuple) or not all(isinstance(s, str) for s in v):
            raise ValueError(f"symbols was {v!r}, expected a tuple of raw symbols such as ('GCZ6',)")
        for s in v:
            if not 1 <= len(s) <= _SYMBOL_MAX or not s.isascii() or not s.isprintable() or "," in s:
                raise ValueError(f"symbol {s!r}: expected 1-{_SYMBOL_MAX} printable ASCII characters, no comma")
        for s in v:
            if v.count(s) > 1:
                raise ValueError(f"symbol {s!r} is given twice")
    elif name == "instrument_ids":
        if v is not None:
            if not isinstance(v, tuple):
                raise ValueError(f"instrument_ids was {v!r}, expected a tuple of integers")
            for i in v:
                _check_number("instrument_id", i, (0, 2**32 - 1, False), True)
    elif name == "start":
        start_ns_of(v)
    elif name == "session_break":
        if v not in ("utc", "et"):
            raise ValueError(f"session_break was {v!r}, expected 'utc' or 'et'")
    elif name == "inband_mappings":
        if not isinstance(v, bool):
            raise ValueError(f"inband_mappings was {v!r}, expected true or false")
    elif name in ("records", "duration_s"):
        if v is not None:
            _check_number(name, v, _BOUNDS[name], name == "records")
    elif name in _RANGES:
        if not isinstance(v, tuple) or len(v) != 2:
            raise ValueError(f"{name} was {v!r}, expected two values low,high, e.g. {default[0]},{default[1]}")
        for x in v:
            _check_number(name, x, _RANGES[name], isinstance(default[0], int))
        if v[0] > v[1]:
            raise ValueError(f"{name} was {v[0]},{v[1]}, expected low,high with low <= high")
    else:
        bounds = _BOUNDS.get(name, (0.0, _BIG_RATE, False))  # the rates, per second or per hour
        _check_number(name, v, bounds, isinstance(default, int) and not isinstance(default, bool))
        if name in _OPEN_UNIT and v >= 1.0:
            raise ValueError(f"{name} was {v!r}, expected a number above 0 and below 1")
        if name == "fast_mean_s" and 0 < v < 1:
            raise ValueError(f"fast_mean_s was {v!r}, expected 0 (no fast spells) or 1 to 1e+06")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce_field(name: str, text: str) -> Any:
    """Parse ``text`` as the type of SimParams field ``name`` (for ``--set name=value``) and check
    it; ``ValueError`` ("NAME was ..., expected ...") when it cannot be used."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown parameter {name!r}; see SimParams in aurum/sim/params.py")
    default = _DEFAULTS[name]
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            value: Any = text.lower() in _TRUE
        elif name in ("symbols", "instrument_ids"):
            parts = [p.strip() for p in text.split(",")]
            value = tuple(parts) if name == "symbols" else tuple(int(p) for p in parts)
        elif isinstance(default, tuple):
            value = tuple(type(default[0])(p.strip()) for p in text.split(","))
        elif isinstance(default, int) or name == "records":
            f = float(text)
            value = int(f) if math.isfinite(f) and f == int(f) else f  # 2.5 fails the check below
        elif isinstance(default, float) or name == "duration_s":
            value = float(text)
        else:
            value = text
    except ValueError:
        if isinstance(default, bool):
            kind = "true or false"
        elif name == "symbols" or isinstance(default, str):
            kind = "text"
        elif name == "instrument_ids":
            kind = "integers separated by commas"
        elif isinstance(default, tuple):
            kind = f"two {'integers' if isinstance(default[0], int) else 'numbers'} low,high, e.g. " \
                   f"{default[0]},{default[1]}"
        else:
            kind = "an integer" if isinstance(default, int) else "a number"
        raise ValueError(f"{name} was {text!r}, expected {kind}") from None
    check_field(name, value)
    return value


__all__ = ["GC_TICK", "GC_TICK_USD", "SCENARIOS", "SimParams", "check_field", "coerce_field",
           "scenario_params", "start_ns_of"]

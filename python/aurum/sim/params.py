"""Parameters of the CME GC market simulator, and the named scenarios (presets of them).

Every knob lives in one frozen dataclass, ``SimParams``; a scenario is a dict of overrides
applied to the defaults. Rates are per second of *trading* time (the daily break does not
count), planted-event rates per hour of trading time. Times are UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
        text = self.start.replace("Z", "+00:00")
        t = dt.datetime.fromisoformat(text)
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000

    def ids(self) -> tuple[int, ...]:
        if self.instrument_ids is not None:
            if len(self.instrument_ids) != len(self.symbols):
                raise ValueError("instrument_ids and symbols differ in length")
            return tuple(int(i) for i in self.instrument_ids)
        import zlib

        ids = tuple(100_000 + zlib.crc32(s.encode()) % 900_000 for s in self.symbols)
        if len(set(ids)) != len(ids):
            raise ValueError("derived instrument ids collide; pass instrument_ids")
        return ids

    def validate(self) -> None:
        if not self.symbols:
            raise ValueError("at least one symbol is needed")
        if self.records is None and self.duration_s is None:
            raise ValueError("give records or duration_s")
        if self.records is not None and self.records < 100:
            raise ValueError("records must be >= 100")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        if not 0.0 < self.up_prob < 1.0 or not 0.0 < self.buy_prob < 1.0:
            raise ValueError("up_prob and buy_prob must be in (0, 1)")
        if self.session_break not in ("utc", "et"):
            raise ValueError("session_break must be 'utc' or 'et'")
        if self.price <= 1.0:
            raise ValueError("price must be a GC price in USD/oz, e.g. 4100")
        if self.iceberg_clip[0] < 1 or self.synthetic_clip[0] < 1:
            raise ValueError("clip sizes must be >= 1")


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


def coerce_field(name: str, text: str) -> Any:
    """Parse ``text`` as the type of SimParams field ``name`` (for ``--set name=value``)."""
    fields = {f.name: f for f in dataclasses.fields(SimParams)}
    if name not in fields:
        raise ValueError(f"unknown parameter {name!r}")
    default = getattr(SimParams(), name)
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(default, tuple):
        parts = [p for p in text.split(",") if p]
        kind = type(default[0]) if default else str
        return tuple(kind(p) for p in parts)
    if isinstance(default, int) or name in ("records",):
        return int(float(text))
    if isinstance(default, float) or name in ("duration_s",):
        return float(text)
    if name == "instrument_ids":
        return tuple(int(p) for p in text.split(","))
    return text


__all__ = ["GC_TICK", "GC_TICK_USD", "SCENARIOS", "SimParams", "coerce_field", "scenario_params"]

"""Timing windows around astronomical events, cached per UTC day.

A window is the span around an event in which it is considered "in force": a configurable
number of hours before/after per event type, or, for aspects, the time the separation stays
within the orb (capped). Strategies ask ``active_windows(t)`` or ``score_inputs(t)`` for
every bar, so events are computed once per UTC day and kept in an LRU; a window can reach
into neighbouring days, so a day's windows gather the events of the days around it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aurum.astro.ephemeris import as_utc
from aurum.astro.events import ASPECT_TYPES, DEFAULT_ORB, AstroEngine, AstroEvent, check_orb

# Hours before and after the exact time. Phases and stations act over longer spans than the
# Moon's hourly-scale aspects and ingresses; stations are the slowest events of all.
DEFAULT_HOURS: dict[str, float] = {
    "new_moon": 24.0, "full_moon": 24.0, "first_quarter": 12.0, "last_quarter": 12.0,
    "conjunction": 6.0, "sextile": 6.0, "square": 6.0, "trine": 6.0, "opposition": 6.0,
    "station_retrograde": 48.0, "station_direct": 48.0, "ingress": 6.0,
}


@dataclass(frozen=True)
class WindowConfig:
    """How wide windows are. ``hours``: half-width per event type (types missing from it get
    ``default_hours``). Aspects use their orb span when ``aspect_windows_from_orb``, capped at
    ``max_aspect_hours`` on each side (slow pairs stay within orb for days). ``types``
    restricts the events considered (None: all)."""

    hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HOURS))
    default_hours: float = 6.0
    orb: float = DEFAULT_ORB
    aspect_windows_from_orb: bool = True
    max_aspect_hours: float = 72.0
    types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_orb(self.orb)
        widths = [self.default_hours, self.max_aspect_hours, *self.hours.values()]
        if any(not (math.isfinite(h) and h >= 0.0) for h in widths):
            raise ValueError("window hours must be finite and >= 0")

    def reach_hours(self) -> float:
        """The widest half-width any window can have."""
        widest = max([self.default_hours, *self.hours.values()])
        return max(widest, self.max_aspect_hours) if self.aspect_windows_from_orb else widest

    def bounds(self, event: AstroEvent) -> tuple[datetime, datetime]:
        """(start, end) of the window around one event."""
        if self.aspect_windows_from_orb and event.type in ASPECT_TYPES:
            cap = timedelta(hours=self.max_aspect_hours)
            lo = event.orb_start if event.orb_start is not None else event.time - cap
            hi = event.orb_end if event.orb_end is not None else event.time + cap
            return max(lo, event.time - cap), min(hi, event.time + cap)
        half = timedelta(hours=self.hours.get(event.type, self.default_hours))
        return event.time - half, event.time + half


@dataclass(frozen=True, slots=True)
class TimingWindow:
    """An event and the [start, end] span around it."""

    event: AstroEvent
    start: datetime
    end: datetime

    def contains(self, t: datetime) -> bool:
        return self.start <= t <= self.end

    def offset_hours(self, t: datetime) -> float:
        """Signed hours from the exact event to t (negative before it)."""
        return (t - self.event.time).total_seconds() / 3600.0

    def weight(self, t: datetime) -> float:
        """1 at the exact moment, falling linearly to 0 at the window's edge on that side."""
        if not self.contains(t):
            return 0.0
        edge = self.end if t >= self.event.time else self.start
        span = abs((edge - self.event.time).total_seconds())
        if span == 0.0:
            return 1.0
        return max(0.0, 1.0 - abs((t - self.event.time).total_seconds()) / span)


class AstroWindows:
    """Per-day cached events and windows; ``active_windows(t)`` answers for any instant.

    ``cache_days`` bounds both LRUs (events per day and windows per day). Not thread-safe.
    """

    def __init__(self, engine: AstroEngine | None = None, config: WindowConfig | None = None,
                 cache_days: int = 64) -> None:
        self.config = config or WindowConfig()
        self.engine = engine or AstroEngine(orb=self.config.orb)
        self.cache_days = max(1, int(cache_days))
        self._events: OrderedDict[date, list[AstroEvent]] = OrderedDict()
        self._windows: OrderedDict[date, list[TimingWindow]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _lru_get(self, cache: OrderedDict[date, Any], day: date) -> Any:
        value = cache.get(day)
        if value is not None:
            cache.move_to_end(day)
        return value

    def _lru_put(self, cache: OrderedDict[date, Any], day: date, value: Any) -> None:
        cache[day] = value
        if len(cache) > self.cache_days:
            cache.popitem(last=False)

    def events_on(self, day: date | datetime | str) -> list[AstroEvent]:
        """Events whose exact time falls on this UTC day (filtered by ``config.types``)."""
        d = _day(day)
        cached = self._lru_get(self._events, d)
        if cached is not None:
            return cached
        start = as_utc(d)
        events = self.engine.events_between(start, start + timedelta(days=1), orb=self.config.orb,
                                            types=self.config.types)
        self._lru_put(self._events, d, events)
        return events

    def windows_on(self, day: date | datetime | str) -> list[TimingWindow]:
        """Windows overlapping this UTC day, sorted by event time."""
        d = _day(day)
        cached = self._lru_get(self._windows, d)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        reach = math.ceil(self.config.reach_hours() / 24.0)
        day_start = as_utc(d)
        day_end = day_start + timedelta(days=1)
        out = []
        for offset in range(-reach, reach + 1):
            for ev in self.events_on(d + timedelta(days=offset)):
                lo, hi = self.config.bounds(ev)
                if lo < day_end and hi >= day_start:
                    out.append(TimingWindow(ev, lo, hi))
        out.sort(key=lambda w: (w.event.time, w.event.type, w.event.bodies))
        self._lru_put(self._windows, d, out)
        return out

    def active_windows(self, t: datetime | str) -> list[TimingWindow]:
        """Windows covering instant t."""
        ts = as_utc(t)
        return [w for w in self.windows_on(ts.date()) if w.contains(ts)]

    def nearest_event(self, t: datetime | str, types: Iterable[str] | None = None,
                      max_days: int = 40) -> tuple[AstroEvent, float] | None:
        """The event closest to t (optionally of these types) and its signed offset in hours
        (negative: the event is in the past); searches day by day out to ``max_days``."""
        ts = as_utc(t)
        wanted = None if types is None else set(types)
        best: tuple[AstroEvent, float] | None = None
        for radius in range(max_days + 1):
            days = {ts.date()} if radius == 0 else {ts.date() - timedelta(days=radius),
                                                    ts.date() + timedelta(days=radius)}
            for d in days:
                for ev in self.events_on(d):
                    if wanted is not None and ev.type not in wanted:
                        continue
                    off = (ev.time - ts).total_seconds() / 3600.0
                    if best is None or abs(off) < abs(best[1]):
                        best = (ev, off)
            # Any event on a day further out is at least `radius` whole days away.
            if best is not None and abs(best[1]) <= radius * 24.0:
                break
        return best

    def score_inputs(self, t: datetime | str) -> dict[str, Any]:
        """Features for a timing score at t: how many windows are active, of which types,
        the strongest triangular weight, and the nearest event (type, signed hours)."""
        ts = as_utc(t)
        active = self.active_windows(ts)
        nearest = self.nearest_event(ts)
        return {
            "active": len(active),
            "types": sorted({w.event.type for w in active}),
            "proximity": max((w.weight(ts) for w in active), default=0.0),
            "nearest_type": nearest[0].type if nearest else None,
            "nearest_hours": nearest[1] if nearest else None,
        }

    def cache_info(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "days": len(self._windows),
                "event_days": len(self._events), "max_days": self.cache_days}


def _day(value: date | datetime | str) -> date:
    if isinstance(value, (datetime, str)):
        return as_utc(value).date()
    return value

"""Astronomical events: lunar phases, aspects, stations and sign ingresses, times in UTC.

Everything is a zero of a smooth function of time built from geocentric apparent ecliptic
longitudes (tropical): scan a time grid aligned to absolute multiples of its step (1 h when
the Moon is involved, 6 h otherwise), flag sign changes, refine each with Brent's method.
Aligning the grid to absolute time (not to the query start) gives every root the same
bracket whatever range is asked, so per-day scans and a whole-year scan return identical
times and each event falls in exactly one day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from aurum.astro.ephemeris import (
    BODIES,
    SECOND,
    SIGNS,
    STATION_BODIES,
    Ephemeris,
    from_djd,
    sign_of,
    to_djd,
    wrap180,
)
from aurum.astro.roots import crossings, refine

# Elongation of the Moon from the Sun (USNO definition of the phases) -> event type.
PHASES: dict[float, str] = {0.0: "new_moon", 90.0: "first_quarter", 180.0: "full_moon",
                            270.0: "last_quarter"}
ASPECTS: dict[float, str] = {0.0: "conjunction", 60.0: "sextile", 90.0: "square", 120.0: "trine",
                             180.0: "opposition"}
PHASE_TYPES: tuple[str, ...] = tuple(PHASES.values())
ASPECT_TYPES: tuple[str, ...] = tuple(ASPECTS.values())
STATION_TYPES: tuple[str, ...] = ("station_retrograde", "station_direct")
EVENT_TYPES: tuple[str, ...] = PHASE_TYPES + ASPECT_TYPES + STATION_TYPES + ("ingress",)

FINE_STEP = 1.0 / 24.0  # days: the Moon moves ~0.55 deg/h, so no aspect is crossed twice
COARSE_STEP = 0.25  # days: Mercury, the fastest planet, moves < 2.3 deg/day
EXACT_TOL = 1e-3 * SECOND  # event times: far below the ephemeris' own error
EDGE_TOL = 1.0 * SECOND  # orb edges and stations: both are fuzzy by nature
DEFAULT_ORB = 1.0


@dataclass(frozen=True, slots=True)
class AstroEvent:
    """One event. ``time`` is the exact moment (aware UTC datetime, microseconds).

    ``angle``: the phase elongation (0/90/180/270), the aspect angle (0-180), the sign
    boundary crossed by an ingress, or the longitude of a station. ``sign``: the sign entered
    (ingress) or occupied (station). For aspects ``orb_start``/``orb_end`` bound the time
    during which the separation is within ``orb`` degrees of exact (None if beyond the
    engine's ``max_orb_days``).
    """

    type: str
    time: datetime
    bodies: tuple[str, ...]
    angle: float | None = None
    sign: str | None = None
    detail: str = ""
    orb: float | None = None
    orb_start: datetime | None = None
    orb_end: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC rounded to the second, e.g. 2026-01-03T10:02:51Z."""
        out: dict[str, Any] = {"type": self.type, "time": iso_utc(self.time),
                               "bodies": list(self.bodies), "angle": self.angle,
                               "sign": self.sign, "detail": self.detail}
        if self.orb is not None:
            out["orb"] = self.orb
            out["orb_start"] = iso_utc(self.orb_start) if self.orb_start else None
            out["orb_end"] = iso_utc(self.orb_end) if self.orb_end else None
        return out


def iso_utc(t: datetime) -> str:
    """ISO-8601 UTC with a Z, rounded to the nearest second."""
    return (t + timedelta(microseconds=500_000)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt_lon(lon: float) -> str:
    return f"{lon % 30.0:05.2f}\u00b0 {sign_of(lon)}"


class _Grid:
    """Longitude samples on two grids aligned to absolute time, and positions between them.

    The Moon is sampled hourly, the Sun and planets every 6 h (linearly interpolated onto the
    hourly grid to flag brackets of Moon pairs). Refinement then evaluates ``position``: a
    4-point Lagrange cubic through the samples. Every longitude here is smooth on those
    scales (fourth derivatives: Moon < 0.05 deg/day^4, planets < 1e-3) that the cubic stays
    within 1e-8 deg of direct calls, except near PyEphem's own tiny step discontinuities
    (~1e-5 deg = 0.04"), where it differs by that much: < 0.1 s of lunar elongation, and far
    below the ephemeris' accuracy (~1"). Each avoided ephemeris call saves ~60 us. Outside
    the grid (the far orb edge of a slow pair) positions are computed exactly.
    """

    def __init__(self, eph: Ephemeris, t0: float, t1: float) -> None:
        self._eph = eph
        # Pad beyond the range: roots near the ends need their bracket and cubic stencil,
        # stations a neighbour for the central difference.
        k0c, k0f = math.floor(t0 / COARSE_STEP) - 3, math.floor(t0 / FINE_STEP) - 3
        self.coarse = np.arange(k0c, math.ceil(t1 / COARSE_STEP) + 4) * COARSE_STEP
        self.fine = np.arange(k0f, math.ceil(t1 / FINE_STEP) + 4) / 24.0
        self._origin = {True: (k0f, FINE_STEP), False: (k0c, COARSE_STEP)}
        self._coarse: dict[str, np.ndarray] = {}
        self._fine: dict[str, np.ndarray] = {}
        self._unwrapped: dict[str, list[float]] = {}

    def coarse_lon(self, body: str) -> np.ndarray:
        if body not in self._coarse:
            self._coarse[body] = self._eph.sample(body, self.coarse)
        return self._coarse[body]

    def fine_lon(self, body: str) -> np.ndarray:
        if body not in self._fine:
            if body == "moon":
                self._fine[body] = self._eph.sample(body, self.fine)
            else:
                self._fine[body] = np.interp(self.fine, self.coarse,
                                             _unwrap(self.coarse_lon(body))) % 360.0
        return self._fine[body]

    def lon(self, body: str, fine: bool) -> tuple[np.ndarray, np.ndarray, float]:
        """(times, longitudes, step) on the fine or the coarse grid."""
        if fine:
            return self.fine, self.fine_lon(body), FINE_STEP
        return self.coarse, self.coarse_lon(body), COARSE_STEP

    def position(self, body: str, t: float) -> float:
        """Longitude (degrees) at any time t (days)."""
        moon = body == "moon"
        ys = self._unwrapped.get(body)
        if ys is None:
            ys = _unwrap(self.fine_lon(body) if moon else self.coarse_lon(body)).tolist()
            self._unwrapped[body] = ys
        k0, step = self._origin[moon]
        x = t / step - k0
        k = math.floor(x)
        if not 1 <= k < len(ys) - 2:
            return self._eph.longitude(body, t)
        u = x - k  # the stencil's nodes are at u = -1, 0, 1, 2
        y0, y1, y2, y3 = ys[k - 1], ys[k], ys[k + 1], ys[k + 2]
        v = (-u * (u - 1.0) * (u - 2.0) / 6.0 * y0 + (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0 * y1
             - (u + 1.0) * u * (u - 2.0) / 2.0 * y2 + (u + 1.0) * u * (u - 1.0) / 6.0 * y3)
        return v % 360.0


def _unwrap(lon: np.ndarray) -> np.ndarray:
    """Longitudes made continuous (no 360 -> 0 jumps), degrees."""
    return np.degrees(np.unwrap(np.radians(lon)))


class AstroEngine:
    """Finds events between two UTC instants. Not thread-safe (see ``Ephemeris``).

    ``orb`` (degrees) is the default aspect orb; ``max_orb_days`` bounds the search for the
    orb edges of slow pairs (a planet near a station can stay within orb for months).
    """

    def __init__(self, orb: float = DEFAULT_ORB, bodies: Iterable[str] = BODIES,
                 max_orb_days: float = 60.0, ephemeris: Ephemeris | None = None) -> None:
        given = set(bodies)
        self.bodies = tuple(b for b in BODIES if b in given)
        unknown = given - set(BODIES)
        if unknown:
            raise ValueError(f"unknown bodies {sorted(unknown)}; known: {', '.join(BODIES)}")
        check_orb(orb)
        self.orb = float(orb)
        self.max_orb_days = float(max_orb_days)
        self.eph = ephemeris or Ephemeris()

    # -- positions ---------------------------------------------------------------------
    def longitude(self, body: str, t: datetime | date | str) -> float:
        """Apparent geocentric ecliptic longitude (tropical, of date) in degrees."""
        return self.eph.longitude(body, to_djd(t))

    def speed(self, body: str, t: datetime | date | str) -> float:
        """Longitude speed in degrees/day (negative while retrograde)."""
        return self.eph.speed(body, to_djd(t))

    # -- events ------------------------------------------------------------------------
    def events_between(self, start: datetime | date | str, end: datetime | date | str,
                       orb: float | None = None,
                       types: Iterable[str] | None = None) -> list[AstroEvent]:
        """Events with start <= time < end, sorted by time (then type, bodies)."""
        t0, t1 = to_djd(start), to_djd(end)
        if not t1 > t0:
            return []
        orb = self.orb if orb is None else check_orb(orb)
        wanted = check_types(types)
        grid = _Grid(self.eph, t0, t1)
        found: list[AstroEvent] = []
        if wanted & set(PHASE_TYPES) and {"sun", "moon"} <= set(self.bodies):
            found += self._phases(grid, wanted)
        if wanted & set(ASPECT_TYPES):
            found += self._aspects(grid, wanted, orb)
        if wanted & set(STATION_TYPES):
            found += self._stations(grid, wanted)
        if "ingress" in wanted:
            found += self._ingresses(grid)
        lo, hi = from_djd(t0), from_djd(t1)
        found = [e for e in found if lo <= e.time < hi]
        found.sort(key=lambda e: (e.time, e.type, e.bodies))
        return found

    @staticmethod
    def _pair_fn(grid: _Grid, a: str, b: str, target: float) -> Callable[[float], float]:
        lon = grid.position
        return lambda t: wrap180(lon(a, t) - lon(b, t) - target)

    def _pair_roots(self, grid: _Grid, a: str, b: str,
                    targets: Iterable[float]) -> Iterable[tuple[float, float, float, float]]:
        """(target, root, |rate| deg/day, step) for each time lon(a) - lon(b) = target."""
        fine = "moon" in (a, b)
        times, la, step = grid.lon(a, fine)
        lb = grid.lon(b, fine)[1]
        diff = la - lb
        for target in targets:
            g = (diff - target + 180.0) % 360.0 - 180.0
            for i in crossings(g):
                root = refine(self._pair_fn(grid, a, b, target), float(times[i]), float(times[i + 1]),
                              EXACT_TOL, widen=step)
                if root is not None:
                    yield target, root, abs(g[i + 1] - g[i]) / step, step

    def _phases(self, grid: _Grid, wanted: frozenset[str]) -> list[AstroEvent]:
        targets = [elong for elong, name in PHASES.items() if name in wanted]
        out = []
        for target, root, _, _ in self._pair_roots(grid, "moon", "sun", targets):
            name = PHASES[target]
            out.append(AstroEvent(name, from_djd(root), ("moon", "sun"), target, None,
                                  name.replace("_", " ")))
        return out

    def _aspects(self, grid: _Grid, wanted: frozenset[str], orb: float) -> list[AstroEvent]:
        angles = [a for a, name in ASPECTS.items() if name in wanted]
        out = []
        for i, a in enumerate(self.bodies):
            for b in self.bodies[i + 1:]:
                sun_moon = {a, b} == {"sun", "moon"}
                targets: dict[float, float] = {}
                for angle in angles:
                    # Sun-Moon at 0/90/180 are the lunar phases: reported once, as phases.
                    if sun_moon and angle in (0.0, 90.0, 180.0):
                        continue
                    targets[angle % 360.0] = angle
                    targets[-angle % 360.0] = angle
                for target, root, rate, step in self._pair_roots(grid, a, b, targets):
                    angle = targets[target]
                    fn = self._pair_fn(grid, a, b, target)
                    guess = orb / rate if rate > 0 else self.max_orb_days
                    lo = self._orb_edge(fn, root, -1.0, orb, guess, step)
                    hi = self._orb_edge(fn, root, 1.0, orb, guess, step)
                    name = ASPECTS[angle]
                    out.append(AstroEvent(
                        name, from_djd(root), (a, b), angle, None,
                        f"{a.title()} {name} {b.title()} ({angle:g}\u00b0)", orb,
                        from_djd(lo) if lo is not None else None,
                        from_djd(hi) if hi is not None else None))
        return out

    def _orb_edge(self, fn: Callable[[float], float], root: float, direction: float, orb: float,
                  guess: float, step: float) -> float | None:
        """First time from ``root`` in ``direction`` where |separation - angle| = orb.

        Probe just past the linear estimate, then walk out a grid step at a time: steps no
        longer than the scan's keep a retrograde loop from being jumped over.
        """
        def excess(t: float) -> float:
            return abs(fn(t)) - orb

        inside = root
        probe = root + direction * min(max(1.2 * guess, step / 4.0), self.max_orb_days)
        while abs(probe - root) <= self.max_orb_days:
            if excess(probe) >= 0.0:
                a, b = sorted((inside, probe))
                return refine(excess, a, b, EDGE_TOL)
            inside = probe
            probe += direction * step
        return None

    def _stations(self, grid: _Grid, wanted: frozenset[str]) -> list[AstroEvent]:
        out = []
        for body in (b for b in STATION_BODIES if b in self.bodies):
            unwrapped = _unwrap(grid.coarse_lon(body))
            speed = (unwrapped[2:] - unwrapped[:-2]) / (2.0 * COARSE_STEP)
            times = grid.coarse[1:-1]
            for i in crossings(speed, jump=math.inf):
                kind = "station_retrograde" if speed[i] >= 0 else "station_direct"
                if kind not in wanted:
                    continue
                root = refine(lambda t, b=body: self.eph.speed(b, t), float(times[i]),
                              float(times[i + 1]), EDGE_TOL, widen=COARSE_STEP)
                if root is None:
                    continue
                lon = self.eph.longitude(body, root)
                word = "retrograde" if kind == "station_retrograde" else "direct"
                out.append(AstroEvent(kind, from_djd(root), (body,), round(lon, 4), sign_of(lon),
                                      f"{body.title()} stations {word} at {_fmt_lon(lon)}"))
        return out

    def _ingresses(self, grid: _Grid) -> list[AstroEvent]:
        out = []
        for body in self.bodies:
            times, lon, step = grid.lon(body, body == "moon")
            unwrapped = _unwrap(lon)
            k = np.floor(unwrapped / 30.0)
            for i in np.nonzero(k[1:] != k[:-1])[0]:
                forward = k[i + 1] > k[i]
                boundary = float((k[i + 1] if forward else k[i]) * 30.0) % 360.0
                root = refine(lambda t, b=body, x=boundary: wrap180(grid.position(b, t) - x),
                              float(times[i]), float(times[i + 1]), EXACT_TOL, widen=step)
                if root is None:
                    continue
                sign = SIGNS[int(k[i + 1]) % 12]  # the sign entered, whichever the direction
                note = "" if forward else " (retrograde)"
                out.append(AstroEvent("ingress", from_djd(root), (body,), boundary, sign,
                                      f"{body.title()} enters {sign}{note}"))
        return out


def check_orb(orb: float) -> float:
    """The orb as a float, or ValueError if it is not in (0, 30] degrees."""
    orb = float(orb)
    if not 0.0 < orb <= 30.0:
        raise ValueError(f"orb must be in (0, 30] degrees, got {orb:g}")
    return orb


def check_types(types: Iterable[str] | None) -> frozenset[str]:
    """The set of event types asked for (all when None), or ValueError naming an unknown one."""
    if types is None:
        return frozenset(EVENT_TYPES)
    wanted = frozenset(t.strip() for t in types if t.strip())
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return wanted


_default: AstroEngine | None = None


def events_between(start: datetime | date | str, end: datetime | date | str,
                   orb: float = DEFAULT_ORB, types: Iterable[str] | None = None) -> list[AstroEvent]:
    """Events in [start, end) from a shared module-level engine (single-threaded use)."""
    global _default
    if _default is None:
        _default = AstroEngine()
    return _default.events_between(start, end, orb=orb, types=types)

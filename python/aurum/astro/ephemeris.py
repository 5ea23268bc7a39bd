"""Geocentric apparent ecliptic longitudes (tropical, equinox of date) from PyEphem.

PyEphem (``ephem``, MIT) is used rather than Swiss Ephemeris: both match USNO-style
published lunar phase times to the minute, but Swiss Ephemeris is AGPL/commercial and would
relicense Aurum (see shared/reference/microstructure.md section 8). PyEphem's theories are
compiled in, so nothing is read from disk or the network at run time.

Times inside this package are PyEphem "Dublin Julian Dates" (float days since
1899-12-31 12:00 UT); ``to_djd``/``from_djd`` convert from/to aware UTC datetimes. UTC is
treated as UT1 (they differ by < 0.9 s), as published almanac times do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import ephem
import numpy as np

# Ordered: the pair order of aspects (and the "bodies" tuple of events) follows it.
BODIES: tuple[str, ...] = ("sun", "moon", "mercury", "venus", "mars", "jupiter", "saturn")
# Bodies that can appear retrograde from the Earth (the Sun and Moon never do).
STATION_BODIES: tuple[str, ...] = ("mercury", "venus", "mars", "jupiter", "saturn")
SIGNS: tuple[str, ...] = ("Aries", "Taurus", "Gemini", "Cancer", "Leo", "Virgo", "Libra",
                          "Scorpio", "Sagittarius", "Capricorn", "Aquarius", "Pisces")

_BODY_CLASSES = {"sun": ephem.Sun, "moon": ephem.Moon, "mercury": ephem.Mercury,
                 "venus": ephem.Venus, "mars": ephem.Mars, "jupiter": ephem.Jupiter,
                 "saturn": ephem.Saturn}

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DJD_AT_UNIX_EPOCH = 25567.5  # ephem.Date('1970/1/1')
SECOND = 1.0 / 86400.0  # one second in days
_DEG = 180.0 / math.pi

# ephem's public route (Ecliptic(Equatorial(...))) builds two objects per call and costs ~50 %
# more; eq_ecl is exactly what ephem's own next_new_moon uses, so use it when present.
_eq_ecl = getattr(getattr(ephem, "_libastro", None), "eq_ecl", None)


def as_utc(value: datetime | date | str) -> datetime:
    """An aware UTC datetime from a datetime (naive = UTC), a date (midnight) or ISO text.

    Raises ``ValueError`` with a readable message on text that is not a date/time.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a UTC date such as 2026-01-01 or "
                             f"2026-01-01T12:00:00Z") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"expected datetime, date or ISO string, got {type(value).__name__}")


def to_djd(value: datetime | date | str) -> float:
    """Dublin Julian Date (PyEphem's time scale) of a UTC instant."""
    dt = as_utc(value)
    # Whole days and the remainder separately: keeps microseconds exact in the float.
    delta = dt - _UNIX_EPOCH
    return _DJD_AT_UNIX_EPOCH + delta.days + (delta.seconds + delta.microseconds * 1e-6) / 86400.0


def from_djd(djd: float) -> datetime:
    """Aware UTC datetime (microsecond resolution) of a Dublin Julian Date."""
    days = djd - _DJD_AT_UNIX_EPOCH
    whole = math.floor(days)
    return _UNIX_EPOCH + timedelta(days=whole, microseconds=round((days - whole) * 86400e6))


def wrap180(deg: float) -> float:
    """Angle folded into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


def sign_of(lon: float) -> str:
    """Zodiac sign name of a tropical longitude in degrees."""
    return SIGNS[int((lon % 360.0) // 30.0) % 12]


class Ephemeris:
    """Longitudes and longitude speeds of the seven classical bodies.

    Holds one PyEphem body object per name (``compute`` mutates it), so one instance must not
    be shared between threads; make one per thread instead.
    """

    def __init__(self) -> None:
        self._bodies = {name: cls() for name, cls in _BODY_CLASSES.items()}
        self.evaluations = 0  # body positions computed, for performance checks

    def longitude(self, body: str, djd: float) -> float:
        """Apparent geocentric ecliptic longitude of date, degrees in [0, 360)."""
        b = self._bodies[body]
        b.compute(djd)
        self.evaluations += 1
        # g_ra/g_dec: apparent geocentric place (light-time, aberration, nutation), the
        # convention of the USNO phase definition; the Moon has no topocentric parallax here.
        if _eq_ecl is not None:
            lon = _eq_ecl(djd, b.g_ra, b.g_dec)[0]
        else:  # pragma: no cover - only if ephem drops its private module
            lon = float(ephem.Ecliptic(ephem.Equatorial(b.g_ra, b.g_dec, epoch=djd)).lon)
        return (lon * _DEG) % 360.0

    def speed(self, body: str, djd: float, h: float = 0.25) -> float:
        """Longitude speed in degrees/day by a central difference over +-h days (6 h).

        PyEphem's longitudes carry step discontinuities of ~1e-5 deg; a short h would turn
        them into speed noise of 1e-5/(2h) and move a slow planet's station by hours. With
        6 h the noise is 2e-5 deg/day and the truncation error (h^2/6 * third derivative,
        < 1e-4 deg/day) shifts a station by well under a minute (Mercury) to minutes
        (Saturn, whose speed stays near zero for days anyway).
        """
        ahead = self.longitude(body, djd + h)
        behind = self.longitude(body, djd - h)
        return wrap180(ahead - behind) / (2.0 * h)

    def sample(self, body: str, times: Iterable[float]) -> np.ndarray:
        """Longitudes (degrees) at each time, as a float64 array."""
        return np.fromiter((self.longitude(body, t) for t in times), dtype=np.float64)

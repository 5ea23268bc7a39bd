"""Astronomical timing: lunar phases, aspects, stations and ingresses, with timing windows.

    from aurum.astro import AstroEngine, AstroWindows
    events = AstroEngine(orb=1.0).events_between("2026-01-01", "2027-01-01")
    AstroWindows().active_windows(datetime(2026, 1, 3, 9, tzinfo=timezone.utc))

Positions come from PyEphem (offline, MIT); see ``ephemeris`` for why not Swiss Ephemeris.
``python -m aurum.astro.cli --from 2026-01-01 --to 2027-01-01 --json`` prints the events.
"""

from aurum.astro.ephemeris import BODIES, SIGNS, Ephemeris
from aurum.astro.events import (
                                ASPECT_TYPES,
                                EVENT_TYPES,
                                PHASE_TYPES,
                                STATION_TYPES,
                                AstroEngine,
                                AstroEvent,
                                events_between,
)
from aurum.astro.windows import AstroWindows, TimingWindow, WindowConfig

__all__ = ["ASPECT_TYPES", "BODIES", "EVENT_TYPES", "PHASE_TYPES", "SIGNS", "STATION_TYPES",
           "AstroEngine", "AstroEvent", "AstroWindows", "Ephemeris", "TimingWindow",
           "WindowConfig", "events_between"]

"""``aurum.astro``: lunar phases against published almanac times, aspect/station/ingress
geometry checked on the ephemeris itself, ordering, JSON schema, window cache, CLI exit codes,
and no network use.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, date, datetime, timedelta

import pytest
from aurum.astro import (
    ASPECT_TYPES,
    EVENT_TYPES,
    AstroEngine,
    AstroEvent,
    AstroWindows,
    WindowConfig,
    events_between,
)
from aurum.astro.cli import main as cli_main
from aurum.astro.ephemeris import SIGNS, from_djd, to_djd, wrap180

# Published UTC times (USNO / timeanddate.com), minute precision.
FULL_MOONS_2026 = ["2026-01-03T10:03", "2026-02-01T22:09", "2026-03-03T11:38", "2026-04-02T02:12",
                   "2026-05-01T17:23", "2026-05-31T08:45", "2026-06-29T23:57"]
NEW_MOONS_2026 = ["2026-01-18T19:52", "2026-02-17T12:01", "2026-03-19T01:23", "2026-04-17T11:52",
                  "2026-05-16T20:01", "2026-06-15T02:54"]
# Published UTC minute of the 2026 equinoxes and solstices (USNO): Sun ingresses.
SUN_INGRESSES_2026 = {"Aries": "2026-03-20T14:46", "Cancer": "2026-06-21T08:24",
                      "Libra": "2026-09-23T00:05", "Capricorn": "2026-12-21T20:50"}


@pytest.fixture(scope="module")
def engine() -> AstroEngine:
    return AstroEngine()


@pytest.fixture(scope="module")
def year(engine: AstroEngine) -> list[AstroEvent]:
    return engine.events_between("2026-01-01", "2027-01-01")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _nearest(events: list[AstroEvent], kind: str, when: datetime) -> AstroEvent:
    return min((e for e in events if e.type == kind), key=lambda e: abs(e.time - when))


@pytest.mark.parametrize(("kind", "published"),
                         [("full_moon", t) for t in FULL_MOONS_2026]
                         + [("new_moon", t) for t in NEW_MOONS_2026])
def test_lunar_phase_matches_almanac(year: list[AstroEvent], kind: str, published: str) -> None:
    """Within 60 s of the true moment. The references are rounded to the minute, so the true
    moment is within 30 s of them: |computed - published| <= 60 + 30 = 90 s."""
    ref = _utc(published)
    ev = _nearest(year, kind, ref)
    assert abs((ev.time - ref).total_seconds()) <= 90.0, (ev.time, ref)


def test_sun_ingresses_match_equinoxes_and_solstices(year: list[AstroEvent]) -> None:
    """Same tolerance argument as the phases: minute references, 60 s + 30 s rounding."""
    for sign, published in SUN_INGRESSES_2026.items():
        ev = next(e for e in year if e.type == "ingress" and e.bodies == ("sun",) and e.sign == sign)
        assert abs((ev.time - _utc(published)).total_seconds()) <= 90.0, (sign, ev.time)


def test_year_counts_sorted_and_fast() -> None:
    t0 = time.perf_counter()
    events = AstroEngine().events_between("2026-01-01", "2027-01-01")
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0  # ~1.5 s here; generous for slow CI machines
    assert [e.time for e in events] == sorted(e.time for e in events)
    counts = {k: sum(e.type == k for e in events) for k in EVENT_TYPES}
    assert counts["new_moon"] == 12 and counts["full_moon"] == 13  # two in May 2026 (1st and 31st)
    assert 12 <= counts["first_quarter"] <= 13 and 12 <= counts["last_quarter"] <= 13
    # Mercury retrogrades three times; Venus, Jupiter and Saturn once each in 2026.
    assert counts["station_retrograde"] == counts["station_direct"] == 6
    moon_ingresses = sum(e.type == "ingress" and e.bodies == ("moon",) for e in events)
    assert 160 <= moon_ingresses <= 170  # 365.25 / 27.32 * 12


def test_phase_elongation_is_exact(engine: AstroEngine, year: list[AstroEvent]) -> None:
    for ev in (e for e in year if e.type in ("new_moon", "first_quarter", "full_moon",
                                             "last_quarter")):
        elong = engine.longitude("moon", ev.time) - engine.longitude("sun", ev.time)
        assert abs(wrap180(elong - ev.angle)) < 1e-3  # 1e-3 deg ~ 7 s of elongation


def test_aspects_exact_separation(engine: AstroEngine, year: list[AstroEvent]) -> None:
    aspects = [e for e in year if e.type in ASPECT_TYPES]
    assert {e.type for e in aspects} == set(ASPECT_TYPES)
    for ev in aspects:
        a, b = ev.bodies
        sep = abs(wrap180(engine.longitude(a, ev.time) - engine.longitude(b, ev.time)))
        assert abs(sep - ev.angle) < 1e-3, ev
        assert not ({a, b} == {"sun", "moon"} and ev.angle in (0.0, 90.0, 180.0))  # phases


def test_known_conjunction_and_orb_window(engine: AstroEngine) -> None:
    """Venus-Jupiter conjunction of 9 June 2026 (widely published for that evening sky)."""
    events = engine.events_between("2026-06-05", "2026-06-15", orb=1.0, types=["conjunction"])
    vj = [e for e in events if e.bodies == ("venus", "jupiter")]
    assert len(vj) == 1
    ev = vj[0]
    assert datetime(2026, 6, 9, tzinfo=UTC) <= ev.time < datetime(2026, 6, 10, 12, tzinfo=UTC)
    assert ev.orb_start is not None and ev.orb_end is not None
    assert ev.orb_start < ev.time < ev.orb_end
    for edge in (ev.orb_start, ev.orb_end):
        sep = abs(wrap180(engine.longitude("venus", edge) - engine.longitude("jupiter", edge)))
        assert sep == pytest.approx(1.0, abs=1e-3)
    inside = ev.time + (ev.orb_end - ev.time) / 2
    assert abs(wrap180(engine.longitude("venus", inside) - engine.longitude("jupiter", inside))) < 1.0
    wider = engine.events_between("2026-06-05", "2026-06-15", orb=3.0, types=["conjunction"])
    ev3 = next(e for e in wider if e.bodies == ("venus", "jupiter"))
    assert ev3.time == ev.time and ev3.orb_start < ev.orb_start and ev3.orb_end > ev.orb_end


def test_stations_speed_changes_sign(engine: AstroEngine, year: list[AstroEvent]) -> None:
    stations = [e for e in year if e.type.startswith("station_")]
    assert {e.bodies[0] for e in stations} == {"mercury", "venus", "jupiter", "saturn"}
    mercury_rx = [e.time.date() for e in stations
                  if e.bodies == ("mercury",) and e.type == "station_retrograde"]
    assert mercury_rx[0] == date(2026, 2, 26)  # published Mercury retrograde: 26 Feb - 20 Mar
    for ev in stations:
        body = ev.bodies[0]
        before = engine.speed(body, ev.time - timedelta(days=2))
        after = engine.speed(body, ev.time + timedelta(days=2))
        if ev.type == "station_retrograde":
            assert before > 0 > after, ev
        else:
            assert before < 0 < after, ev
        assert ev.sign == SIGNS[int(ev.angle // 30)]


def test_ingress_sign_boundaries(engine: AstroEngine, year: list[AstroEvent]) -> None:
    ingresses = [e for e in year if e.type == "ingress"]
    assert any("(retrograde)" in e.detail for e in ingresses)  # Venus re-enters Libra in Oct
    for ev in ingresses:
        body = ev.bodies[0]
        assert ev.angle % 30.0 == 0.0
        assert abs(wrap180(engine.longitude(body, ev.time) - ev.angle)) < 1e-3
        eps = timedelta(hours=1)
        later = engine.longitude(body, ev.time + eps)
        assert SIGNS[int(later // 30)] == ev.sign, ev


def test_range_split_gives_identical_events(engine: AstroEngine) -> None:
    whole = engine.events_between("2026-03-01", "2026-03-05")
    parts = [e for d in range(4) for e in engine.events_between(
        datetime(2026, 3, 1 + d, tzinfo=UTC), datetime(2026, 3, 2 + d, tzinfo=UTC))]
    assert [(e.type, e.bodies, e.time) for e in whole] == [(e.type, e.bodies, e.time) for e in parts]
    assert all(datetime(2026, 3, 1, tzinfo=UTC) <= e.time < datetime(2026, 3, 5, tzinfo=UTC)
               for e in whole)


def test_module_function_types_filter_and_inputs() -> None:
    events = events_between(date(2026, 1, 1), "2026-02-02T00:00:00Z", types=["full_moon"])
    assert [e.type for e in events] == ["full_moon", "full_moon"]
    assert events_between("2026-02-01", "2026-01-01") == []
    with pytest.raises(ValueError):
        events_between("2026-01-01", "2026-02-01", types=["eclipse"])
    with pytest.raises(ValueError):
        events_between("2026-01-01", "2026-02-01", orb=0.0)
    with pytest.raises(ValueError):
        events_between("not a date", "2026-02-01")


def test_time_conversion_round_trip() -> None:
    t = datetime(2026, 1, 3, 10, 2, 50, 576000, tzinfo=UTC)
    assert abs((from_djd(to_djd(t)) - t).total_seconds()) < 1e-5
    assert to_djd(datetime(1970, 1, 1)) == 25567.5  # naive means UTC


def test_json_schema(year: list[AstroEvent]) -> None:
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    for ev in year:
        d = json.loads(json.dumps(ev.to_dict()))
        assert d["type"] in EVENT_TYPES and iso.match(d["time"])
        assert isinstance(d["bodies"], list) and d["bodies"]
        assert set(d) >= {"type", "time", "bodies", "angle", "sign", "detail"}
        if d["type"] in ASPECT_TYPES:
            assert d["orb"] == 1.0 and d["angle"] in (0.0, 60.0, 90.0, 120.0, 180.0)
        if d["type"] == "ingress":
            assert d["sign"] in SIGNS


class _Stdout(io.StringIO):
    """Text stdout that also offers ``.buffer``: the JSON path writes bytes there."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = _Stdout(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = cli_main(argv)
    return rc, out.getvalue() + out.buffer.getvalue().decode(), err.getvalue()


def test_cli_json_and_table() -> None:
    rc, out, err = _cli(["astro", "--from", "2026-01-01", "--to", "2026-03-01", "--json",
                         "--types", "new_moon,full_moon"])
    assert rc == 0 and err == ""
    rows = json.loads(out)
    assert [r["type"] for r in rows][:3] == ["full_moon", "new_moon", "full_moon"]
    assert rows[0]["time"] == "2026-01-03T10:02:51Z"
    rc, out, _ = _cli(["--from", "2026-01-01", "--to", "2026-01-03", "--orb", "2"])  # no "astro"
    assert rc == 0 and "time (UTC)" in out and out.rstrip().endswith("events")


@pytest.mark.parametrize("argv", [["--from", "2026-13-01", "--to", "2027-01-01"],
                                  ["--from", "yesterday"],
                                  ["--from", "2026-01-01", "--to", "2025-01-01"],
                                  ["--from", "2026-01-01", "--to", "2026-02-01", "--types", "eclipse"],
                                  ["--from", "2026-01-01", "--to", "2026-02-01", "--orb", "0"],
                                  ["--from", "2026-01-01", "--to", "2026-02-01", "--orb", "wide"]])
def test_cli_bad_arguments_exit_2(argv: list[str]) -> None:
    rc, out, err = _cli(["astro", *argv])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("aurum astro: ")


def test_windows_cache_and_scores() -> None:
    w = AstroWindows(config=WindowConfig(types=frozenset({"full_moon", "new_moon"})), cache_days=8)
    full = datetime(2026, 1, 3, 10, 2, 51, tzinfo=UTC)
    active = w.active_windows(full)
    assert [x.event.type for x in active] == ["full_moon"]
    assert active[0].start == active[0].event.time - timedelta(hours=24)
    assert active[0].weight(active[0].event.time) == 1.0
    assert w.active_windows(full + timedelta(hours=25)) == []
    info = w.cache_info()
    assert info["hits"] == 0 and info["misses"] == 2
    w.active_windows(full + timedelta(hours=1))
    assert w.cache_info()["hits"] == 1
    # A window reaching across midnight is listed on both days.
    assert any(x.event.type == "full_moon" for x in w.windows_on(date(2026, 1, 2)))
    for d in range(20):
        w.windows_on(date(2026, 2, 1) + timedelta(days=d))
    assert w.cache_info()["days"] <= 8 and w.cache_info()["event_days"] <= 8
    scores = w.score_inputs(full - timedelta(hours=6))
    assert scores["active"] == 1 and scores["types"] == ["full_moon"]
    assert scores["proximity"] == pytest.approx(0.75, abs=1e-3)
    assert scores["nearest_type"] == "full_moon"
    assert scores["nearest_hours"] == pytest.approx(6.0, abs=1e-3)
    nearest = w.nearest_event(datetime(2026, 1, 10, tzinfo=UTC), types=["new_moon"])
    assert nearest is not None and nearest[0].time.date() == date(2026, 1, 18)


def test_aspect_windows_use_orb() -> None:
    w = AstroWindows(config=WindowConfig(orb=2.0, types=frozenset({"conjunction"})))
    ev = next(e for e in w.events_on(date(2026, 6, 9)) if e.bodies == ("venus", "jupiter"))
    win = next(x for x in w.windows_on(date(2026, 6, 9)) if x.event == ev)
    assert ev.orb_start is not None and ev.orb_end is not None
    assert win.start == max(ev.orb_start, ev.time - timedelta(hours=72))
    assert win.end == min(ev.orb_end, ev.time + timedelta(hours=72))


def test_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("aurum.astro must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    events = AstroEngine().events_between("2026-04-01", "2026-05-01")
    assert any(e.type == "full_moon" for e in events)
    assert AstroWindows().active_windows("2026-04-02T02:00:00Z")
    rc, _, _ = _cli(["--from", "2026-04-01", "--to", "2026-04-03", "--json"])
    assert rc == 0

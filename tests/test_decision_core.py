"""The compiled per-bar decision path (aurum.kernels.decision_core and the pillar kernels) gives
the same bits as the plain-Python reference (aurum.testing.reference_decision): whole replays
compared batch by batch, and each piece (QMO/IMO, combine, the scorer, the bar window, the
bar-level providers, the builder's state machine) on generated inputs. Floats are compared through repr, so even the sign
of a zero must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurum import _native
from aurum.decision import pillars as ref_pillars
from aurum.decision.engine import DecisionEngine
from aurum.decision.providers import default_providers
from aurum.decision.scorer import PILLARS, ConfidenceScorer, Pillar
from aurum.decision.signal import BUY, FLAT, RISK_VETOES, SELL, SignalBuilder, SignalConfig
from aurum.engines import FLOW_DTYPE, ICEBERG_DTYPE, SWEEP_DTYPE, ZONE_DTYPE, table_array
from aurum.kernels import decision_core, flow_pillars
from aurum.kernels.barwindow import BarWindow
from aurum.rings import BAR_DTYPE, RingReader
from aurum.testing import reference_decision as ref

TICK = 100_000_000
PX0 = 4_000_000_000_000


def same(a: object, b: object) -> bool:
    return repr(a) == repr(b)


def same_pillar(a: Pillar | None, b: Pillar | None) -> bool:
    # The reference sometimes carries numpy float64s (its astro trend); values must match exactly.
    norm = lambda p: None if p is None else (p.name, repr(float(p.direction)), repr(float(p.confidence)), p.reasons)  # noqa: E731
    return norm(a) == norm(b)


def dump(x: object) -> bytes:
    return orjson.dumps(x, option=orjson.OPT_SORT_KEYS)


# ---- whole replays ----

SESSIONS = {  # (sim parameters, bar seconds, bars the first instrument must reach)
    # Past 2 x 512 bars: the window slides, then its storage shifts back.
    "mixed-1s": (dict(scenario="mixed", seed=5, records=500_000), 1.0, 1025),
    "two-instruments-2s": (dict(scenario="mixed", seed=9, records=300_000, symbols=("GCZ6", "GCG7")), 2.0, 150),
    "icebergs-1s": (dict(scenario="icebergs", seed=3, records=300_000), 1.0, 513),
}


@pytest.fixture(scope="module", params=sorted(SESSIONS))
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, int]:
    from aurum.sim import run_to_files

    sim, bar_s, min_bars = SESSIONS[request.param]
    sim = dict(sim)
    _, summary = run_to_files(sim.pop("scenario"), tmp_path_factory.mktemp("core") / "s.dbn.zst", **sim)
    return Path(summary["paths"]["mbo"]), bar_s, min_bars


def _active_zones_numpy(z: np.ndarray, iid: int, limit: int) -> list[dict]:
    z = z[(z["instrument_id"] == iid) & (z["state"] != 3)]
    if len(z) > limit:
        z = z[(-z["strength"]).argsort(kind="stable")[:limit]]
    cols = zip((z["price"] * 1e-9).tolist(), np.minimum(z["volume"], 0xFFFFFFFF).tolist(), z["strength"].tolist(),
               z["side"].tolist(), z["kind"].tolist(), z["state"].tolist())
    return [{"price": px, "volume": vol, "strength": st, "side": chr(sd), "kind": k, "state": zs}
            for px, vol, st, sd, k, zs in cols]


def test_replay_matches_reference_batch_by_batch(session: tuple[Path, float, int]) -> None:
    path, bar_s, min_bars = session
    pl = _native.Pipeline(bar_interval_ns=int(bar_s * 1e9))
    new = DecisionEngine(pl, providers=default_providers())
    old = ref.ReferenceDecisionEngine(pl, providers=ref.reference_providers())
    bars = RingReader(pl, "bars")
    f = _native.DbnFile(str(path))
    batches = 0
    more = True
    while more:
        more = bool(pl.feed_file(f, 1 << 14))
        if not more:
            pl.flush_bars()
        batch = bars.poll().records.copy()
        # Now and then a wall clock far enough past the data to be stale, or a degraded feed:
        # the veto paths (and the builder's lazy risk lookup) run too.
        now_ns = int(batch["ts_close"].max()) + 6_000_000_000 if len(batch) and batches % 7 == 3 else 0
        degraded = "yahoo fallback" if batches % 11 == 5 else None
        a = old.on_bars(batch, now_ns=now_ns, feed_degraded=degraded)
        b = new.on_bars(batch, now_ns=now_ns, feed_degraded=degraded)
        assert dump([s.as_dict() for s in b]) == dump([s.as_dict() for s in a])
        if len(batch):
            batches += 1
            assert dump(new.pillars_report()) == dump(old.pillars_report())
    assert batches > 100 and len(old.signals) >= 4
    assert dump([s.as_dict() for s in new.force_flat("end", 1)]) == dump([s.as_dict() for s in old.force_flat("end", 1)])
    assert new.provider_errors == old.provider_errors
    for iid in old.last_score:
        w_new, w_old = new._core.window(iid), old._windows[iid]
        assert w_new.count == w_old.count and np.array_equal(w_new.bars, w_old.bars)
    assert new._core.window(next(iter(new.last_score))).count >= min_bars
    # The signal's inputs read in place (zone levels, the last ATR) against the reference's
    # numpy versions, at prices across the session's zones and for every ATR period up to
    # the window (None at and below the bar count, as the reference).
    zones = table_array(pl, "zones")
    for iid in old.last_score:
        mine = zones[zones["instrument_id"] == iid]
        prices = [int(p) for p in mine["price"][:: max(1, len(mine) // 8)]] + [0, 2**62]
        for price in prices:
            for span in (0, 3, 200):
                assert new._core.zone_levels(iid, price, 100_000_000, span) == \
                    old._levels(mine, price, 100_000_000, span)
        assert any(new._core.zone_levels(iid, p, 100_000_000, 200) for p in prices)
        win = old._windows[iid]
        n = len(win.close)
        for period in (1, 2, 14, n - 1, n, n + 1):
            old.config.atr_period = period
            assert new._core.atr(iid, period) == old._atr(win)
        # The daemon's state-block zone list, against the numpy version it replaced.
        for limit in (0, 1, 5, 32, len(mine) - 1, len(mine), 10_000):
            assert new._core.active_zones(iid, max(limit, 0)) == _active_zones_numpy(zones, iid, max(limit, 0))
    assert new._core.zone_levels(2**40, 0, 1) == [] and new._core.atr(2**40, 14) is None
    assert new._core.active_zones(2**40, 32) == []
    with pytest.raises(ValueError, match="period"):
        new._core.atr(next(iter(old.last_score)), 0)


def test_last_score_is_a_read_only_mapping_built_on_read() -> None:
    from aurum.sim import run_to_files

    pl = _native.Pipeline(bar_interval_ns=1_000_000_000)
    eng = DecisionEngine(pl, providers=default_providers())
    assert isinstance(eng.last_score, Mapping) and len(eng.last_score) == 0 and eng.last_score.get(1) is None
    with pytest.raises(KeyError):
        eng.last_score[1]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, summary = run_to_files("mixed", Path(tmp) / "s.dbn.zst", seed=2, records=60_000)
        f = _native.DbnFile(summary["paths"]["mbo"])
        bars = RingReader(pl, "bars")
        while pl.feed_file(f, 1 << 16):
            eng.on_bars(bars.poll().records.copy())
    (iid,) = list(eng.last_score)
    score = eng.last_score[iid]
    assert score is eng.last_score.get(iid) and iid in eng.last_score  # one object per bar
    assert dict(eng.last_score.items()) == {iid: score} and set(score.pillars) <= set(PILLARS)
    assert "qmo" in score.pillars and all(p.reasons for p in score.pillars.values())


def test_python_providers_and_provider_errors() -> None:
    """Any callable is still a provider; one that raises ValueError drops out and is logged."""

    def fixed(win: BarWindow, ts: int, price: float) -> Pillar:
        assert isinstance(win, BarWindow) and win.count >= 1 and price > 0
        return Pillar("gann", 0.5, 0.25, ("fixed",))

    def broken(win: BarWindow, ts: int, price: float) -> Pillar:
        raise ValueError("bad bar")

    pl = _native.Pipeline(bar_interval_ns=1_000_000_000)
    eng = DecisionEngine(pl, providers={"gann": fixed, "cycle": broken})
    bars = np.zeros(2, BAR_DTYPE)
    bars["kind"] = _native.BAR_KIND_TIME
    bars["instrument_id"] = 7
    bars["high"], bars["low"], bars["close"] = PX0 + TICK, PX0 - TICK, PX0
    bars["ts_close"] = [1_789_000_000_000_000_000, 1_789_000_001_000_000_000]
    assert eng.on_bars(bars) == []
    score = eng.last_score[7]
    assert score.pillars["gann"] == Pillar("gann", 0.5, 0.25, ("fixed",))
    assert "cycle" in score.missing and eng.provider_errors == {"cycle": "ValueError: bad bar"}
    assert eng._core.window(7).count == 2

    # An arithmetic failure (a time or price that does not fit C) drops the pillar the same
    # way; it used to abort the whole batch, every instrument's later bars with it.
    def overflowing(win: BarWindow, ts: int, price: float) -> Pillar:
        raise OverflowError("Python int too large to convert to C long")

    eng = DecisionEngine(_native.Pipeline(bar_interval_ns=1_000_000_000), providers={"astro": overflowing})
    two = np.concatenate([bars, bars])
    two["instrument_id"][2:] = 8
    assert eng.on_bars(two) == []
    assert set(eng.last_score) == {7, 8} and "astro" in eng.last_score[8].missing
    assert eng.provider_errors == {"astro": "OverflowError: Python int too large to convert to C long"}


# ---- QMO, IMO, combine, the scorer ----


@st.composite
def flow_inputs(draw: st.DrawFn) -> tuple:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    price = PX0 + draw(st.integers(-20, 20)) * TICK
    nf = draw(st.integers(0, 16))
    flow = np.zeros(nf, FLOW_DTYPE)
    flow["buy_volume"], flow["sell_volume"] = rng.integers(0, 60, nf), rng.integers(0, 60, nf)
    flow["delta"] = flow["buy_volume"].astype(np.int64) - flow["sell_volume"].astype(np.int64)
    flow["cvd"] = np.cumsum(flow["delta"]) + draw(st.integers(-1000, 1000))
    flow["flags"] = rng.integers(0, 16, nf)
    flow["ts_open"] = np.arange(nf) * 10
    flow["ts_close"] = flow["ts_open"] + 10
    ns = draw(st.integers(0, 8))
    sweeps = np.zeros(ns, SWEEP_DTYPE)
    sweeps["ts_event"] = rng.integers(0, nf * 10 + 5, ns)
    sweeps["side"], sweeps["kind"] = rng.choice([65, 66], ns), rng.integers(1, 3, ns)
    nz = draw(st.integers(0, 150))  # past 8 and 128 near zones: every branch of numpy's pairwise sum
    zones = np.zeros(nz, ZONE_DTYPE)
    zones["price"] = price + rng.integers(-35, 35, nz) * TICK
    zones["kind"], zones["state"], zones["side"] = rng.integers(1, 3, nz), rng.integers(1, 4, nz), rng.choice([65, 66], nz)
    zones["strength"] = rng.uniform(0, 1, nz) * draw(st.sampled_from([1.0, 1e-12, 3.0]))
    ni = draw(st.integers(0, 20))
    ice = np.zeros(ni, ICEBERG_DTYPE)
    ice["price"] = price + rng.integers(-35, 35, ni) * TICK
    ice["state"], ice["side"], ice["kind"] = rng.integers(1, 3, ni), rng.choice([65, 66], ni), rng.integers(1, 3, ni)
    ice["hidden_qty"], ice["filled_qty"] = rng.integers(0, 400, ni), rng.integers(0, 400, ni)
    pressure = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "updates": st.integers(0, 3), "depth_imbalance": st.floats(-1, 1) | st.just(float("nan")),
        "ofi_decayed": st.floats(-500, 500) | st.just(float("inf")),
        "bid_depth": st.integers(0, 400), "ask_depth": st.integers(0, 400)})))
    return flow, pressure, sweeps, zones, ice, price


@settings(max_examples=400, deadline=None)
@given(flow_inputs())
def test_qmo_and_imo_match_the_reference(inputs: tuple) -> None:
    flow, pressure, sweeps, zones, ice, price = inputs
    want = ref_pillars.qmo_pillar(flow, pressure, sweeps, zones, price, TICK)
    assert same(flow_pillars.qmo(flow, pressure, sweeps, zones, price, TICK), want)
    for mbo in (True, False):
        assert same(flow_pillars.imo(ice, zones, price, TICK, mbo), ref_pillars.imo_pillar(ice, zones, price, TICK, mbo))


unit = st.floats(-1, 1) | st.sampled_from([0.0, -0.0, 1e-10, -1e-10, float("nan"), float("inf")])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(unit, st.floats(-0.5, 2) | st.just(0.0)), max_size=12))
def test_combine_matches_the_reference(comps: list[tuple[float, float]]) -> None:
    triples = [(v, w, "r") for v, w in comps]
    want = ref_pillars.combine("qmo", triples)
    assert same(flow_pillars.combine("qmo", triples), None if want is None else (want.direction, want.confidence))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), max_size=600))
def test_absorption_sum_is_numpys(values: list[float]) -> None:
    assert same(flow_pillars.np_sum(values), float(np.asarray(values, dtype=np.float64).sum()))


pillar = st.builds(lambda d, c: (d, c), st.floats(-1, 1) | st.just(-0.0), st.floats(0, 1))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(PILLARS), st.floats(0, 2) | st.just(0.0), min_size=1),
       st.dictionaries(st.sampled_from(PILLARS), st.one_of(st.none(), pillar)))
def test_scorer_matches_confidence_scorer(weights: dict[str, float], given_: dict) -> None:
    if sum(weights.values()) <= 0:
        weights = {**weights, "qmo": 1.0}
    # In PILLARS order, as the engine builds them (the Score's dicts keep that order).
    pills = {k: None if given_[k] is None else Pillar(k, *given_[k], (f"{k} reason",)) for k in PILLARS if k in given_}
    want = ConfidenceScorer(weights).score(pills)
    got = decision_core.score_pillars(ConfidenceScorer(weights).weights, pills)
    assert same((got.direction, got.confidence, got.weights, got.missing), (want.direction, want.confidence,
                                                                             want.weights, want.missing))
    assert dump(got.as_dict()) == dump(want.as_dict())


# ---- bar window and bar-level providers ----


def walk_bars(n: int, seed: int, step_ns: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = PX0 + np.cumsum(rng.normal(0, 3, n)).round().astype(np.int64) * TICK
    bars = np.zeros(n, ref.PACKED_BAR)
    bars["close"] = close
    bars["high"] = close + rng.integers(0, 8, n) * TICK
    bars["low"] = close - rng.integers(0, 8, n) * TICK
    bars["ts_close"] = 1_789_000_000_000_000_000 + np.arange(n, dtype=np.uint64) * np.uint64(step_ns)
    return bars


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=12), st.integers(0, 10**6))
def test_bar_window_matches_reference(chunks: list[int], seed: int) -> None:
    bars = walk_bars(sum(chunks), seed, 60_000_000_000)
    new, old = BarWindow(), ref.BarWindow()
    at = 0
    for k in chunks:
        new.extend(bars[at:at + k])
        old.extend(bars[at:at + k])
        at += k
        assert new.count == old.count and len(new) == len(old.close)
        for name in ("bars", "close", "high_fx", "low_fx", "close_fx", "ts", "high", "low"):
            assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name


@pytest.mark.parametrize("seed,step_ns", [(1, 60_000_000_000), (2, 3_600_000_000_000), (3, 5_000_000_000)])
def test_providers_match_reference_bar_by_bar(seed: int, step_ns: int) -> None:
    """Hourly bars cross days (astro windows), 1200 bars slide the window past its shift."""
    bars = walk_bars(1200, seed, step_ns)
    new, old = default_providers(), ref.reference_providers()
    assert sorted(new) == sorted(old)
    w_new, w_old = BarWindow(), ref.BarWindow()
    seen = {name: 0 for name in new}
    for j in range(len(bars)):
        w_new.extend(bars[j:j + 1])
        w_old.extend(bars[j:j + 1])
        ts, price = int(bars["ts_close"][j]), float(w_old.close[-1])
        for name in ("gann", "astro", "cycle"):
            a, b = old[name](w_old, ts, price), new[name](w_new, ts, price)
            assert same_pillar(b, a), (name, j)
            seen[name] += a is not None and a.confidence > 0
        assert new["gann"].levels_for(w_new) == old["gann"].levels_for(w_old)
    assert all(seen.values()), seen
    assert np.array_equal(new["gann"].feed.pivots(w_new), old["gann"].feed.pivots(w_old))


# ---- the builder's state machine ----


class ReferenceStateMachine:
    """SignalBuilder.on_bar's state machine as first written in Python (risk always looked up)."""

    def __init__(self, cfg: SignalConfig) -> None:
        self.config, self.position, self._bars_since_change = cfg, FLAT, 10**9

    def step(self, d: float, c: float, risk: dict | None, feed_degraded: str | None) -> tuple | None:
        cfg = self.config
        self._bars_since_change += 1
        veto = f"degraded feed ({feed_degraded})" if feed_degraded else next(
            (text for key, text in RISK_VETOES if risk and risk.get(key)), None)
        if veto is not None:
            return (FLAT, (f"veto: {veto}",), veto) if self.position != FLAT else None
        want, why = self.position, []
        if self.position == FLAT:
            if c >= cfg.min_confidence and abs(d) >= cfg.enter:
                want = BUY if d > 0 else SELL
                why.append(f"score {d:+.2f} beyond entry threshold {cfg.enter:.2f}, confidence {c:.2f}")
        else:
            sign = 1 if self.position == BUY else -1
            if sign * d <= cfg.exit or c < cfg.min_confidence / 2:
                want = FLAT
                why.append(f"score {d:+.2f} back inside exit threshold {cfg.exit:.2f}" if sign * d <= cfg.exit
                           else f"confidence {c:.2f} fell below {cfg.min_confidence / 2:.2f}")
        if want == self.position or self._bars_since_change <= cfg.cooldown_bars:
            return None
        return want, tuple(why), None


bar_input = st.tuples(st.floats(-1, 1), st.floats(0, 1),
                      st.one_of(st.none(), st.dictionaries(st.sampled_from([k for k, _ in RISK_VETOES]), st.booleans())),
                      st.sampled_from([None, None, None, "", "yahoo"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(bar_input, max_size=60), st.sampled_from([SignalConfig(), SignalConfig(enter=0.2, exit=0.05,
       min_confidence=0.1, cooldown_bars=0), SignalConfig(enter=1, exit=0, min_confidence=0, cooldown_bars=5)]))
def test_builder_step_matches_the_original_state_machine(bars: list[tuple], cfg: SignalConfig) -> None:
    new, old = SignalBuilder(cfg), ReferenceStateMachine(cfg)
    asked = []
    for d, c, risk, degraded in bars:
        want = old.step(d, c, risk, degraded)
        got = new.step(d, c, lambda risk=risk: asked.append(1) or risk, degraded)
        assert got == want
        if new.position == FLAT and not (c >= cfg.min_confidence and abs(d) >= cfg.enter):
            assert not asked  # flat and idle: the risk inputs are never looked up
        asked.clear()
        if got is not None:  # what _emit does to the state
            new.position = old.position = got[0]
            new._bars_since_change = old._bars_since_change = 0
        assert (new.position, new._bars_since_change) == (old.position, old._bars_since_change)


def test_bars_of_the_wrong_shape_and_oversized_gann_settings_are_refused() -> None:
    """A 0-d bar array was read through a shape it does not have (a segfault); Gann sizes
    its C buffers in int, so n_steps = 2^29 wrapped to a 4-slot buffer and wrote past it."""
    import subprocess
    import sys

    code = ("import numpy as np\nfrom aurum import _native\nfrom aurum.decision.engine import DecisionEngine\n"
            "from aurum.rings import BAR_DTYPE\n"
            "e = DecisionEngine(_native.Pipeline())\n"
            "for bad in (np.zeros((), BAR_DTYPE), np.zeros((2, 2), BAR_DTYPE)):\n"
            "    try:\n        e.on_bars(bad)\n    except ValueError as x:\n        print(x)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr  # a crash would be a negative return code
    assert out.stdout.splitlines() == ["bars must be a 1-d array of bar rows, got 0 dimensions",
                                       "bars must be a 1-d array of bar rows, got 2 dimensions"]
    from aurum.kernels.gann import GannEngine

    for kw in ({"n_steps": 2**29}, {"n_pivots": 2**20}):
        with pytest.raises(ValueError, match="out of range"):
            GannEngine(1.0, **kw)
    GannEngine(1.0, n_steps=10_000, n_pivots=4)  # the bound itself is fine
    # A window of None was read as one (from the memory next to Py_None).
    for name, prov in default_providers().items():
        with pytest.raises(TypeError, match="expected aurum.kernels.barwindow.BarWindow, got NoneType"):
            prov(None, 0, 4100.0)
    with pytest.raises(TypeError, match="got NoneType"):
        default_providers()["gann"].levels_for(None)

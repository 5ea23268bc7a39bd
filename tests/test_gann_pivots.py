"""Swing pivots (causal zigzag) and the Gann tools built on them.

The zigzag is checked against its specification bar by bar (each pivot is the extreme of its
leg and is confirmed at the first bar that reverses by the threshold), and the incremental
tracker against the batch function. Gann values are computed by hand from the formulas in
``microstructure.md`` section 6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurum.kernels.bar_stats import wilder_atr
from aurum.kernels.gann import (
    ANGLE_NAMES,
    WINDOW_SQUARE,
    GannEngine,
    gann_angles,
    square_of_nine,
    square_price_time,
    time_windows,
)
from aurum.kernels.pivots import PIVOT_DTYPE, PivotTracker, atr_threshold, ring_columns, to_price, zigzag
from aurum.rings import BAR_DTYPE

FP = 1_000_000_000  # fixed point per USD
TICK_FP = FP // 10  # GC tick 0.10
MINUTE = 60_000_000_000


# ---------------------------------------------------------------------------------------------
# zigzag


@st.composite
def bar_series(draw, max_bars: int = 80):
    """A random walk in ticks; returns fixed-point (high, low)."""
    n = draw(st.integers(1, max_bars))
    steps = draw(st.lists(st.integers(-8, 8), min_size=n, max_size=n))
    spans = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    low = 20_000 + np.cumsum(steps)
    high = low + np.array(spans)
    return high.astype(np.int64) * TICK_FP, low.astype(np.int64) * TICK_FP


@st.composite
def atr_series(draw, n: int):
    """Per-bar ATR-like values (price units), NaN for a warm-up and now and then."""
    vals = draw(st.lists(st.one_of(st.floats(0.05, 2.0), st.just(math.nan)), min_size=n, max_size=n))
    warm = draw(st.integers(0, min(n, 5)))
    return np.array([math.nan] * warm + vals[warm:], dtype=np.float64)


def threshold_fp(thr: float) -> int | None:
    t = thr * 1e9
    if not math.isfinite(t) or t <= 0:
        return None
    return math.floor(t + 0.5)  # half up, as the kernel rounds


def check_spec(high: np.ndarray, low: np.ndarray, thr: np.ndarray, piv: np.ndarray) -> None:
    """Each pivot is the earliest extreme of its leg, confirmed at the first bar reversing by the
    threshold in force there; kinds alternate; confirmation after the extreme."""
    prev_idx, prev_conf = -1, -1
    for k, p in enumerate(piv):
        i, j, kind = int(p["index"]), int(p["confirm_index"]), int(p["kind"])
        assert j > i > prev_idx
        assert p["price"] == p["price_fp"] * 1e-9
        if k:
            assert kind == -piv[k - 1]["kind"]
        leg = slice(prev_idx + 1, j)  # bars of this leg before the confirming one
        t = threshold_fp(thr[j])
        assert t is not None
        if kind == 1:
            assert p["price_fp"] == high[i] == high[leg].max()
            assert i == prev_idx + 1 + int(np.argmax(high[leg]))
            assert low[j] <= p["price_fp"] - t
        else:
            assert p["price_fp"] == low[i] == low[leg].min()
            assert i == prev_idx + 1 + int(np.argmin(low[leg]))
            assert high[j] >= p["price_fp"] + t
        # First such bar: none between the pivot becoming the candidate and j reversed enough.
        for q in range(max(i, prev_conf) + 1, j):
            tq = threshold_fp(thr[q])
            if tq is None:
                continue
            if kind == 1:
                assert not low[q] <= p["price_fp"] - tq, (k, q)
            else:
                assert not high[q] >= p["price_fp"] + tq, (k, q)
        prev_idx, prev_conf = i, j


def test_zigzag_hand_example() -> None:
    high = np.array([100, 102, 105, 103, 99, 97, 98, 101, 104, 106, 102], dtype=np.int64) * FP
    low = high - FP
    piv = zigzag(high, low, 3.0)
    assert piv.dtype == PIVOT_DTYPE
    assert piv["index"].tolist() == [0, 2, 5, 9]
    assert piv["confirm_index"].tolist() == [1, 3, 7, 10]
    assert piv["kind"].tolist() == [-1, 1, -1, 1]
    assert piv["price"].tolist() == [99.0, 105.0, 96.0, 106.0]
    t = PivotTracker(threshold_ticks=30)
    assert [t.update(h, l) for h, l in zip(high, low)] == [0, -1, 0, 1, 0, 0, 0, -1, 0, 0, 1]
    assert t.direction == -1 and t.candidate == (10, 101 * FP)


def test_zigzag_atr_extreme_before_confirming_bar() -> None:
    # Bar 1 confirms the low of bar 0. Then the ATR shrinks: bar 3 dips to 92 without confirming
    # the high of bar 1 (threshold 10), bar 4 confirms it at 94.5 (threshold 5). The next low
    # candidate must be bar 3's 92, not the confirming bar's low.
    high = (np.array([90, 100, 99, 95, 95.5]) * FP).astype(np.int64)
    low = (np.array([89, 98, 96, 92, 94.5]) * FP).astype(np.int64)
    thr = np.array([5.0, 5.0, 10.0, 10.0, 5.0])
    piv = zigzag(high, low, thr)
    assert piv["index"].tolist() == [0, 1] and piv["confirm_index"].tolist() == [1, 4]
    t = PivotTracker(atr_mult=1.0)
    for h, l, a in zip(high, low, thr):
        t.update(h, l, a)
    assert t.candidate == (3, 92 * FP)


@settings(max_examples=300, deadline=None)
@given(data=bar_series(), ticks=st.integers(1, 25))
def test_zigzag_tick_threshold_spec_and_tracker(data, ticks) -> None:
    high, low = data
    thr = ticks * 0.10
    piv = zigzag(high, low, thr)
    check_spec(high, low, np.full(len(high), thr), piv)
    t = PivotTracker(threshold_ticks=ticks)
    kinds = [t.update(h, l) for h, l in zip(high, low)]
    np.testing.assert_array_equal(t.pivots, piv)
    assert [k for k in kinds if k] == piv["kind"].tolist()
    assert t.n_bars == len(high) and t.n_pivots == len(piv)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_zigzag_atr_threshold_spec_tracker_and_no_lookahead(data) -> None:
    high, low = data.draw(bar_series())
    atr = data.draw(atr_series(len(high)))
    mult = data.draw(st.sampled_from([0.5, 1.0, 1.5, 2.5]))
    thr = mult * atr
    piv = zigzag(high, low, thr)
    check_spec(high, low, thr, piv)
    assert (piv["confirm_index"] > piv["index"]).all()
    t = PivotTracker(atr_mult=mult)
    for h, l, a in zip(high, low, atr):
        t.update(h, l, a)
    np.testing.assert_array_equal(t.pivots, piv)
    t2 = PivotTracker(atr_mult=mult)
    np.testing.assert_array_equal(t2.update_many(high, low, atr), piv)
    # Truncating at bar n never changes what was confirmed by bar n.
    for n in range(len(high)):
        cut = zigzag(high[: n + 1], low[: n + 1], thr[: n + 1])
        np.testing.assert_array_equal(cut, piv[piv["confirm_index"] <= n])


def test_zigzag_reads_ring_views_and_real_atr() -> None:
    rng = np.random.default_rng(7)
    n = 600
    c = 2000 + np.cumsum(rng.normal(0, 0.4, n))
    bars = np.zeros(n, BAR_DTYPE)
    bars["close"] = np.round(c * 10) * TICK_FP
    bars["high"] = bars["close"] + rng.integers(0, 6, n) * TICK_FP
    bars["low"] = bars["close"] - rng.integers(0, 6, n) * TICK_FP
    bars["ts_close"] = np.arange(n, dtype=np.uint64) * MINUTE
    high, low, close, ts = ring_columns(bars)
    for col in (high, low, close, ts):
        assert np.shares_memory(col, bars)  # views into the ring records, not copies
    np.testing.assert_allclose(to_price(close), c.round(1), atol=1e-9)
    thr = atr_threshold(high, low, close, 2.0, 14)
    atr = wilder_atr(high, low, close, 14)
    np.testing.assert_array_equal(thr, 2.0 * atr)
    piv = zigzag(high, low, thr)
    assert len(piv) > 10
    np.testing.assert_array_equal(piv, zigzag(high.copy(), low.copy(), thr))
    check_spec(high, low, thr, piv)
    t = PivotTracker(atr_mult=2.0)
    for j in range(n):
        t.update(int(high[j]), int(low[j]), float(atr[j]))
    np.testing.assert_array_equal(t.pivots, piv)
    np.testing.assert_array_equal(t.last_pivots(3), piv[-3:])


def test_zigzag_argument_errors() -> None:
    h = np.arange(5, dtype=np.int64)
    with pytest.raises(ValueError, match="low"):
        zigzag(h, h[:-1], 1.0)
    with pytest.raises(ValueError, match="threshold"):
        zigzag(h, h, np.ones(4))
    with pytest.raises(ValueError, match="threshold"):
        zigzag(h, h, 0.0)
    with pytest.raises(ValueError, match="threshold_ticks and atr_mult"):
        PivotTracker()
    with pytest.raises(ValueError, match="threshold_ticks and atr_mult"):
        PivotTracker(threshold_ticks=3, atr_mult=1.0)
    with pytest.raises(ValueError, match="atr_mult"):
        PivotTracker(atr_mult=-1.0)
    with pytest.raises(ValueError, match="atr"):
        PivotTracker(atr_mult=1.0).update_many(h, h)
    with pytest.raises(ValueError, match="bars has no field 'close'"):
        ring_columns(np.zeros(3, dtype=[("high", "<i8"), ("low", "<i8")]))
    assert len(zigzag(h[:0], h[:0], 1.0)) == 0


# ---------------------------------------------------------------------------------------------
# Gann


def test_square_of_nine_hand_values() -> None:
    sup, res = square_of_nine(2000.0, 4)
    r = math.sqrt(2000.0)
    assert r == pytest.approx(44.7213595, abs=1e-7)
    assert res[0] == pytest.approx(44.9713595**2, abs=1e-5) and round(res[0], 2) == 2022.42
    np.testing.assert_allclose(res, [(r + 0.25 * k) ** 2 for k in range(1, 5)], rtol=1e-15)
    np.testing.assert_allclose(sup, [(r - 0.25 * k) ** 2 for k in range(1, 5)], rtol=1e-15)
    assert sup[0] == pytest.approx(1977.7018, abs=1e-4)
    # The reference's worked example: +45, +90, +180, +360 degrees from 5000.
    _, res = square_of_nine(5000.0, 8)
    assert [round(res[k], 2) for k in (0, 1, 3, 7)] == [5035.42, 5070.96, 5142.42, 5286.84]
    # 90-degree steps and a shifted decimal point (formula applied to 20000, scaled back).
    _, res = square_of_nine(2000.0, 2, 90.0)
    assert res[0] == pytest.approx((r + 0.5) ** 2)
    _, res = square_of_nine(2000.0, 1, 45.0, 1)
    assert res[0] == pytest.approx((math.sqrt(20000) + 0.25) ** 2 / 10)
    sup, _ = square_of_nine(1.0, 8)  # roots below zero are dropped, not folded back
    assert sup.tolist() == [0.5625, 0.25, 0.0625]
    with pytest.raises(ValueError, match="^p was"):
        square_of_nine(-1.0)
    with pytest.raises(ValueError, match="n_steps"):
        square_of_nine(2000.0, 0)


def test_gann_angles_exact() -> None:
    assert ANGLE_NAMES[4] == "1x1"
    up = gann_angles(2000.0, 10, 20, 0.5, 1)
    assert up.tolist() == [2040.0, 2020.0, 2015.0, 2010.0, 2005.0, 2002.5, 2000.0 + 5 / 3, 2001.25, 2000.625]
    down = gann_angles(2000.0, 10, 20, 0.5, -1)
    np.testing.assert_array_equal(down, 4000.0 - up)
    assert (gann_angles(2000.0, 10, 10, 0.5, 1) == 2000.0).all()
    with pytest.raises(ValueError, match="scale"):
        gann_angles(2000.0, 0, 1, 0.0, 1)
    with pytest.raises(ValueError, match="direction"):
        gann_angles(2000.0, 0, 1, 1.0, 0)


def test_time_windows_and_squaring() -> None:
    w = time_windows(100, 100, 360, 2)
    assert (w["center"] - 100).tolist() == [45, 90, 120, 135, 180, 225, 240, 270, 315, 360]
    assert (w["end"] - w["start"]).tolist() == [4] * 10 and not w["active"].any()
    w = time_windows(0, 89, 360, 2)  # 45 is over, 90 +/- 2 is open
    assert w["center"][0] == 90 and w["active"].tolist()[:2] == [True, False]
    day = 86_400_000_000_000
    w = time_windows(7, 7, 360 * day, day, kind=1)
    assert (w["center"] - 7).tolist() == [d * day for d in (45, 90, 120, 135, 180, 225, 240, 270, 315, 360)]
    with pytest.raises(ValueError, match="cycle"):
        time_windows(0, 0, 0, 1)
    # A 30-USD swing at 0.25 USD per bar is 120 bars of time.
    assert square_price_time(2000.0, 10, 2030.0, 50, 0.25) == (130.0, 170.0)


def make_bars(n: int, price: float, last_low: float, last_close: float) -> np.ndarray:
    bars = np.zeros(n, BAR_DTYPE)
    bars["high"] = bars["low"] = bars["close"] = round(price * FP)
    bars["low"][-1] = round(last_low * FP)
    bars["close"][-1] = round(last_close * FP)
    bars["high"][-1] = max(bars["close"][-1], bars["high"][-1])
    bars["ts_close"] = 1_700_000_000 * FP + np.arange(n, dtype=np.uint64) * MINUTE
    return bars


def two_pivots() -> np.ndarray:
    piv = np.zeros(2, PIVOT_DTYPE)
    piv["index"], piv["confirm_index"], piv["kind"] = [10, 50], [12, 52], [-1, 1]
    piv["price"] = [2000.0, 2030.0]
    piv["price_fp"] = np.round(piv["price"] * FP).astype(np.int64)
    return piv


def test_gann_engine_bounce_with_time_window_is_bullish() -> None:
    s9 = square_of_nine(2000.0, 1)[1][0]  # 2022.42, first resistance of the low pivot
    eng = GannEngine(0.25)
    # 56 bars: now = 55, inside the 45-bar window (1/8 of 360) of the low at bar 10.
    bars = make_bars(56, 2023.0, last_low=2022.0, last_close=2022.8)
    st = eng.update(bars, two_pivots(), 2022.8)
    assert st.nearest_support == pytest.approx(s9) and st.nearest_resistance == 2030.0
    assert st.active_windows >= 1
    assert any(w["kind"] == 0 and w["center"] == 55 and w["active"] for w in st.windows)
    assert any(w["kind"] == WINDOW_SQUARE and w["center"] == 130 for w in st.windows)
    assert f"bounced off support {s9:.2f} (x1)" in st.reasons
    # Below the 1x1 down from the high (2030 - 0.25*5 = 2028.75): angle votes -1.
    assert st.angles[4] == 2028.75 and st.squared_ratio == pytest.approx(7.2 / 0.25 / 5)
    assert st.direction == pytest.approx(1.0 * 0.75 * 0.8 - 0.2)
    assert st.confidence == pytest.approx(0.75)
    # Same bounce after the window closed (now = 60): same side, less confidence.
    late = eng.update(make_bars(61, 2023.0, 2022.0, 2022.8), two_pivots(), 2022.8)
    assert late.active_windows == 0 and late.direction > 0
    assert late.confidence == pytest.approx(0.375) and late.confidence < st.confidence
    # Deterministic.
    again = eng.update(bars, two_pivots(), 2022.8)
    assert (again.direction, again.confidence, again.reasons) == (st.direction, st.confidence, st.reasons)
    np.testing.assert_array_equal(again.windows, st.windows)


def test_gann_engine_rejection_and_merging() -> None:
    piv = two_pivots()
    eng = GannEngine(0.25, near_ticks=10)
    bars = make_bars(61, 2029.5, last_low=2029.5, last_close=2029.6)
    bars["high"][-1] = round(2030.2 * FP)
    st = eng.update(bars, piv, 2029.6)
    assert st.nearest_resistance == 2030.0
    assert "rejected at resistance 2030.00 (x1)" in st.reasons
    assert st.direction < 0
    # Pivots 0.05 apart give levels within a tick: merged into one level counted twice.
    piv["price"] = [2000.0, 2000.05]
    piv["kind"] = [-1, 1]
    st = eng.update(make_bars(61, 2001.0, 2001.0, 2001.0), piv, 2001.0)
    assert st.support_counts[0] == 2 and st.nearest_support == pytest.approx(2000.025)
    assert (np.diff(st.supports) < 0).all() and (np.diff(st.resistances) > 0).all()
    assert (st.resistance_counts == 2).all()


def test_gann_engine_sliding_window_and_errors() -> None:
    eng = GannEngine(0.25)
    bars = make_bars(56, 2023.0, 2022.0, 2022.8)
    full = eng.update(bars, two_pivots(), 2022.8)
    # The same bars as a window starting at absolute bar 5.
    win = eng.update(bars[5:], two_pivots(), 2022.8, first_index=5)
    np.testing.assert_array_equal(win.windows, full.windows)
    assert win.direction == full.direction
    none = eng.update(bars, np.zeros(0, PIVOT_DTYPE), 2022.8)
    assert none.direction == 0 and none.confidence == 0 and len(none.supports) == 0
    with pytest.raises(ValueError, match="last_price"):
        eng.update(bars, two_pivots(), 0.0)
    with pytest.raises(ValueError, match="pivots"):
        eng.update(bars[:40], two_pivots(), 2022.8)
    with pytest.raises(ValueError, match="bars is empty"):
        eng.update(bars[:0], two_pivots(), 2022.8)
    with pytest.raises(ValueError, match="price_per_bar"):
        GannEngine(0.0)

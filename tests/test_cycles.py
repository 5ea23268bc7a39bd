"""Cycle kernels (aurum.kernels.cycles) against TA-Lib where installed, and always against the
independent pure-Python references in aurum.testing.cycles_reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

cycles = pytest.importorskip("aurum.kernels.cycles", reason="Cython kernels not built")
from aurum.testing import cycles_reference as ref  # noqa: E402


def random_walk(n: int, seed: int, start: float = 2000.0) -> np.ndarray:
    return start + np.cumsum(np.random.default_rng(seed).normal(0.0, 1.0, n))


def sinusoid(n: int, period: float, amp: float = 5.0, phase: float = 0.0, trend: float = 0.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return 2000.0 + amp * np.sin(2 * np.pi * t / period + phase) + trend * t


SERIES = [
    random_walk(600, 1),
    random_walk(400, 2, start=10.0),
    sinusoid(400, 17.0),
    sinusoid(500, 33.3, trend=0.05),
    sinusoid(300, 21.0) + 0.3 * np.random.default_rng(3).normal(size=300),
]


# ---- Hilbert dominant cycle ----


@pytest.mark.parametrize("x", SERIES)
def test_ht_dcperiod_matches_reference(x):
    got, want = cycles.ht_dcperiod(x), ref.ht_dcperiod(x)
    assert np.isnan(got[:32]).all() and np.isfinite(got[32:]).all()
    np.testing.assert_allclose(got[32:], want[32:], rtol=1e-9, atol=0)


@pytest.mark.parametrize("x", SERIES)
def test_ht_dcperiod_matches_talib(x):
    talib = pytest.importorskip("talib")
    want = talib.HT_DCPERIOD(x)
    got = cycles.ht_dcperiod(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[32:], want[32:], rtol=1e-9, atol=0)


@pytest.mark.parametrize("period", [10, 14, 21, 30, 40])
def test_ht_dcperiod_settles_on_sinusoid_period(period):
    out = cycles.ht_dcperiod(sinusoid(600, period))
    assert abs(np.mean(out[-100:]) - period) <= 0.1 * period


def test_ht_short_inputs_are_all_nan():
    assert cycles.ht_dcperiod(np.empty(0)).shape == (0,)
    assert np.isnan(cycles.ht_dcperiod(random_walk(32, 5))).all()


def test_hilbert_streaming_equals_batch():
    x = random_walk(300, 7)
    h = cycles.HilbertDominantCycle()
    streamed = np.array([h.update(v) for v in x])
    np.testing.assert_array_equal(streamed, cycles.ht_dcperiod(x))


# ---- Autocorrelation periodogram ----


@pytest.mark.parametrize("x", SERIES[:4])
@pytest.mark.parametrize("avg_length", [3, 0])
def test_periodogram_matches_reference(x, avg_length):
    dom, power = cycles.autocorrelation_periodogram(x, avg_length=avg_length)
    rdom, rpower = ref.autocorrelation_periodogram(x, avg_length=avg_length)
    assert dom == pytest.approx(rdom, rel=1e-9)
    np.testing.assert_allclose(power, rpower, rtol=1e-9, atol=1e-12)
    assert power.shape == (39,) and power.max() <= 1.0 + 1e-12


@pytest.mark.parametrize("period", [12, 16, 21, 28, 35, 42])
def test_periodogram_finds_sinusoid_period(period):
    dom, power = cycles.autocorrelation_periodogram(sinusoid(500, period, trend=0.02))
    assert abs(dom - period) <= 0.15 * period
    assert abs((10 + int(np.argmax(power))) - period) <= 0.15 * period


def test_periodogram_streaming_equals_batch():
    x = random_walk(200, 11)
    acp = cycles.AutocorrPeriodogram()
    for v in x:
        acp.update(v)
    dom, power = cycles.autocorrelation_periodogram(x)
    assert acp.dominant == dom
    np.testing.assert_array_equal(acp.power, power)


def test_periodogram_argument_checks():
    with pytest.raises(ValueError, match="close"):
        cycles.autocorrelation_periodogram(np.empty(0))
    with pytest.raises(ValueError, match="max_period"):
        cycles.autocorrelation_periodogram(random_walk(50, 1), min_period=20, max_period=10)
    with pytest.raises(ValueError, match="min_period"):
        cycles.AutocorrPeriodogram(min_period=2)


# ---- Goertzel ----


@pytest.mark.parametrize("detrend", ["linear", "mean", "none"])
@pytest.mark.parametrize("period", [7.5, 21.0, 45.0, 90.0, 133.3])
def test_goertzel_matches_dft(detrend, period):
    x = random_walk(512, 4)
    pw, ph = cycles.goertzel_spectrum(x, [period], detrend)
    rpw, rph = ref.dft_power_phase(x, period, detrend)
    assert pw[0] == pytest.approx(rpw, rel=1e-6)
    assert np.angle(np.exp(1j * (ph[0] - rph))) == pytest.approx(0.0, abs=1e-6)
    assert cycles.goertzel_power(x, period, detrend) == pytest.approx(rpw, rel=1e-6)


def test_goertzel_vectorised_equals_scalar():
    x = random_walk(300, 9)
    periods = np.array([5.0, 10.5, 21.0, 33.0, 45.0, 60.0, 90.0])  # more than one 4-lane block
    got = cycles.goertzel_powers(x, periods)
    np.testing.assert_allclose(got, [cycles.goertzel_power(x, p) for p in periods], rtol=1e-12)


def test_goertzel_separates_21_from_45_and_90():
    x = sinusoid(540, 21.0, trend=0.1)
    p21, p45, p90 = cycles.goertzel_powers(x, (21.0, 45.0, 90.0))
    assert p21 > 100 * p45 and p21 > 100 * p90


@pytest.mark.parametrize("phase", np.linspace(-3.0, 3.0, 7))
def test_goertzel_phase_is_phase_at_last_bar(phase):
    n, period = 210, 21.0  # whole cycles: no leakage from the conjugate term
    t = np.arange(n) - (n - 1)
    x = 3.0 * np.cos(2 * np.pi * t / period + phase)
    _, ph = cycles.goertzel_spectrum(x, [period], "mean")
    assert np.angle(np.exp(1j * (ph[0] - phase))) == pytest.approx(0.0, abs=1e-9)


def test_goertzel_argument_checks():
    with pytest.raises(ValueError, match="period"):
        cycles.goertzel_power(random_walk(50, 1), 1.5)
    with pytest.raises(ValueError, match="periods"):
        cycles.goertzel_powers(random_walk(50, 1), [21.0, np.nan])
    with pytest.raises(ValueError, match="detrend"):
        cycles.goertzel_power(random_walk(50, 1), 21.0, "quadratic")
    with pytest.raises(ValueError, match="x"):
        cycles.goertzel_power(np.ones(1), 21.0)


# ---- Counts ----


def test_cycle_counts_example():
    # Low at 100, high at 121; pivot 150 is not known yet at bar 142. The high is 21 bars back
    # (its first 21-window), the low 42 (its second 21-window; one bar before its 45-window).
    out = cycles.cycle_counts([100, 121, 150], [-1, 1, -1], 142, periods=(21, 45), tolerance=2)
    assert [tuple(c) for c in out] == [
        (21, 121, 1, 21, 1, True, 140, 144),
        (21, 100, -1, 42, 2, True, 140, 144),
        (45, 121, 1, 21, 1, False, 164, 168),
        (45, 100, -1, 42, 1, False, 143, 147),
    ]
    # A window just missed points at the next one.
    (c,) = cycles.cycle_counts([0], [1], 22, periods=(21,), tolerance=0)
    assert (c.cycle, c.in_window, c.window_start, c.window_end) == (2, False, 42, 42)


def test_cycle_counts_empty_and_checks():
    assert cycles.cycle_counts([], [], 10) == []
    assert cycles.cycle_counts([50], [1], 10) == []
    with pytest.raises(ValueError, match="pivot_kinds"):
        cycles.cycle_counts([1, 2], [1], 10)
    with pytest.raises(ValueError, match="pivot_bar_indices"):
        cycles.cycle_counts([5, 2], [1, -1], 10)
    with pytest.raises(ValueError, match="pivot_kinds"):
        cycles.cycle_counts([1, 2], [1, 0], 10)
    with pytest.raises(ValueError, match="tolerance"):
        cycles.cycle_counts([1], [1], 10, periods=(4,), tolerance=2)
    with pytest.raises(ValueError, match="current_bar"):
        cycles.cycle_counts([1], [1], -1)


@settings(max_examples=200, deadline=None)
@given(
    bars=st.lists(st.integers(0, 400), max_size=8),
    current=st.integers(0, 500),
    tol=st.integers(0, 3),
    anchors=st.integers(1, 4),
)
def test_cycle_counts_match_brute_force(bars, current, tol, anchors):
    bars = sorted(bars)
    kinds = [1 if i % 2 else -1 for i in range(len(bars))]
    got = cycles.cycle_counts(bars, kinds, current, (21, 45, 90), tol, anchors)
    want = ref.cycle_counts(bars, kinds, current, (21, 45, 90), tol, anchors)
    assert [tuple(c) for c in got] == want


# ---- Engine ----


def test_engine_streaming_equals_batch_and_restart():
    x = random_walk(900, 12)
    piv = (np.array([100, 300, 700, 850]), np.array([1, -1, 1, -1]))
    eng = cycles.CycleEngine()
    for bar in range(511, 900):
        state = eng.update(x[bar - 511 : bar + 1], piv, bar)
    # Streamed from bar 0..511 onwards: the same as the batch kernels over x[:900].
    assert state.hilbert_period == cycles.ht_dcperiod(x)[-1]
    dom, power = cycles.autocorrelation_periodogram(x)
    assert state.acp_period == dom
    np.testing.assert_array_equal(state.acp_power, power)
    # A fresh engine on the last window restarts over that window only.
    cold = cycles.CycleEngine().update(x[-512:], piv, 899)
    assert cold.hilbert_period == cycles.ht_dcperiod(x[-512:])[-1]
    assert cold.acp_period == cycles.autocorrelation_periodogram(x[-512:])[0]


def test_engine_state_fields():
    x = sinusoid(512, 30.0, trend=0.01)
    piv = (np.array([400, 444, 467]), np.array([-1, 1, -1]))
    s = cycles.CycleEngine().update(x, piv, 511)
    assert s.periods == (21, 45, 90)
    assert s.goertzel_share.sum() == pytest.approx(1.0)
    assert abs(s.acp_period - 30) < 4.5 and abs(s.hilbert_period - 30) < 3
    assert -1.0 <= s.direction <= 1.0 and 0.0 <= s.confidence <= 1.0
    assert len(s.counts) == 9 and s.counts[0].anchor_bar == 467
    assert s.window_periods == (21, 45)  # 44 bars since 467: within 2 of 2*21 and of 45
    assert s.window_periods == tuple(c.period for c in s.counts[::3] if c.in_window)
    assert all(isinstance(r, str) for r in s.reasons) and s.reasons


@pytest.mark.parametrize("period", [20.0, 30.0])
def test_engine_direction_follows_sinusoid_slope(period):
    agree = total = 0
    x = sinusoid(900, period, amp=5.0, trend=0.005)
    eng = cycles.CycleEngine()
    for bar in range(400, 900):
        s = eng.update(x[bar - 399 : bar + 1], None, bar)
        slope = np.cos(2 * np.pi * bar / period)  # derivative of sin, up to a positive factor
        if abs(slope) > 0.5:  # away from the turns, where the sign is clear
            total += 1
            agree += np.sign(s.direction) == np.sign(slope)
    assert agree / total > 0.9


def test_engine_is_deterministic_and_checks_input():
    x = random_walk(600, 13)
    a = [cycles.CycleEngine().update(x[:k], None, k - 1) for k in (100, 300, 600)]
    b = [cycles.CycleEngine().update(x[:k], None, k - 1) for k in (100, 300, 600)]
    for s, t in zip(a, b):
        assert (s.direction, s.confidence, s.reasons) == (t.direction, t.confidence, t.reasons)
    with pytest.raises(ValueError, match="closes"):
        cycles.CycleEngine().update(np.ones(1), None, 0)
    with pytest.raises(ValueError, match="tolerance"):
        cycles.CycleEngine(periods=(21, 4))

"""Independent references for the cycle kernels (``aurum.kernels.cycles``), for tests.

Written from microstructure.md section 7 and the published algorithms, not from the Cython:
whole-history arrays instead of ring buffers, "k bars ago" read by index (0 before the series
starts), the WMA by its formula rather than running sums, the DFT with numpy. Slow, plain.
"""

from __future__ import annotations

import math

import numpy as np


def _ago(series: list[float], i: int, k: int, first: int = 0) -> float:
    """series[i - k], or 0 when that bar precedes ``first`` (the filter had no state yet)."""
    j = i - k
    return series[j] if j >= first else 0.0


def ht_dcperiod(close: np.ndarray) -> np.ndarray:
    """Ehlers' Hilbert dominant cycle as TA-Lib computes it (Rocket Science for Traders,
    2001). TA-Lib smooths from bar 3, feeds the Hilbert stages from bar 12 with zero history,
    and reports from bar 32."""
    p = [float(v) for v in close]
    n = len(p)
    out = np.full(n, np.nan)
    start = 12
    smooth = [0.0] * n
    det = [0.0] * n
    q1 = [0.0] * n
    i1 = [0.0] * n
    i2_prev = q2_prev = re = im = period = smooth_period = 0.0

    def hilbert(series: list[float], i: int, adj: float) -> float:
        return (
            0.0962 * _ago(series, i, 0, start)
            + 0.5769 * _ago(series, i, 2, start)
            - 0.5769 * _ago(series, i, 4, start)
            - 0.0962 * _ago(series, i, 6, start)
        ) * adj

    for i in range(start, n):
        adj = 0.075 * period + 0.54
        smooth[i] = (4 * p[i] + 3 * p[i - 1] + 2 * p[i - 2] + p[i - 3]) / 10.0
        det[i] = hilbert(smooth, i, adj)
        q1[i] = hilbert(det, i, adj)
        i1[i] = _ago(det, i, 3, start)
        ji = hilbert(i1, i, adj)
        jq = hilbert(q1, i, adj)
        i2 = 0.2 * (i1[i] - jq) + 0.8 * i2_prev
        q2 = 0.2 * (q1[i] + ji) + 0.8 * q2_prev
        re = 0.2 * (i2 * i2_prev + q2 * q2_prev) + 0.8 * re
        im = 0.2 * (i2 * q2_prev - q2 * i2_prev) + 0.8 * im
        i2_prev, q2_prev = i2, q2
        new = period
        if im != 0.0 and re != 0.0:
            new = 360.0 / math.degrees(math.atan(im / re))
        new = min(new, 1.5 * period)
        new = max(new, 0.67 * period)
        new = min(max(new, 6.0), 50.0)
        period = 0.2 * new + 0.8 * period
        smooth_period = 0.33 * period + 0.67 * smooth_period
        if i >= 32:
            out[i] = smooth_period
    return out


def autocorrelation_periodogram(
    close: np.ndarray, min_period: int = 10, max_period: int = 48, avg_length: int = 3
) -> tuple[float, np.ndarray]:
    """Ehlers' autocorrelation periodogram, Cycle Analytics for Traders (2013), transcribed
    from the EasyLanguage: roofing filter (high-pass at max_period, SuperSmoother at
    min_period), Pearson correlations, DFT over lags 3..max_period, R smoothed 0.2/0.8, MaxPwr
    decayed by 0.995, centre of gravity of normalised power >= 0.5."""
    c = [float(v) for v in close]
    n = len(c)
    w = 0.707 * 2 * math.pi / max_period
    alpha = (math.cos(w) + math.sin(w) - 1) / math.cos(w)
    a1 = math.exp(-1.414 * math.pi / min_period)
    b1 = 2 * a1 * math.cos(1.414 * math.pi / min_period)
    c2, c3 = b1, -a1 * a1
    c1 = 1 - c2 - c3
    hp = [0.0] * n
    filt = [0.0] * n
    periods = np.arange(min_period, max_period + 1)
    lags = np.arange(3, max_period + 1)
    cos_m = np.cos(2 * np.pi * lags[None, :] / periods[:, None])
    sin_m = np.sin(2 * np.pi * lags[None, :] / periods[:, None])
    corr = np.zeros(max_period + 1)
    r = np.zeros(len(periods))
    max_pwr = 0.0
    pwr = np.zeros(len(periods))
    dominant = math.nan
    for i in range(n):
        if i >= 2:
            hp[i] = (
                (1 - alpha / 2) ** 2 * (c[i] - 2 * c[i - 1] + c[i - 2])
                + 2 * (1 - alpha) * hp[i - 1]
                - (1 - alpha) ** 2 * hp[i - 2]
            )
        filt[i] = c1 * (hp[i] + _ago(hp, i, 1)) / 2 + c2 * _ago(filt, i, 1) + c3 * _ago(filt, i, 2)
        for lag in range(max_period + 1):
            m = avg_length if avg_length > 0 else lag
            xs = [_ago(filt, i, k) for k in range(m)]
            ys = [_ago(filt, i, lag + k) for k in range(m)]
            sx, sy = sum(xs), sum(ys)
            sxx = sum(x * x for x in xs)
            syy = sum(y * y for y in ys)
            sxy = sum(x * y for x, y in zip(xs, ys))
            den = (m * sxx - sx * sx) * (m * syy - sy * sy)
            if den > 0:
                corr[lag] = (m * sxy - sx * sy) / math.sqrt(den)
        cpart = cos_m @ corr[3:]
        spart = sin_m @ corr[3:]
        sq = cpart**2 + spart**2
        r = 0.2 * sq**2 + 0.8 * r
        max_pwr = max(0.995 * max_pwr, float(r.max()))
        pwr = r / max_pwr if max_pwr > 0 else np.zeros_like(r)
        sel = pwr >= 0.5
        if pwr[sel].sum() != 0:
            dominant = float((periods[sel] * pwr[sel]).sum() / pwr[sel].sum())
    return dominant, pwr


def dft_power_phase(x: np.ndarray, period: float, detrend: str = "linear") -> tuple[float, float]:
    """|sum r_n e^{-i 2 pi n / P}|^2 of the detrended window, and the phase of the cycle at
    the last bar (the same sum with its time origin moved to the last bar)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.arange(len(x))
    if detrend == "linear":
        slope, icept = np.polyfit(n, x, 1)
        r = x - (icept + slope * n)
    elif detrend == "mean":
        r = x - x.mean()
    else:
        r = x
    z = np.sum(r * np.exp(-2j * np.pi * (n - (len(x) - 1)) / period))
    return float(abs(z) ** 2), float(np.angle(z))


def cycle_counts(pivot_bar_indices, pivot_kinds, current_bar, periods=(21, 45, 90), tolerance=2, anchors=3):
    """Brute force: for each of the last ``anchors`` pivots at or before ``current_bar`` (most
    recent first), walk k = 1, 2, ... to the first window [a + kL - tol, a + kL + tol] that has
    not ended. Tuples match ``PeriodCount``'s fields."""
    known = [(int(b), int(k)) for b, k in zip(pivot_bar_indices, pivot_kinds) if b <= current_bar]
    recent = known[-anchors:][::-1]
    out = []
    for L in periods:
        for a, kind in recent:
            k = 1
            while a + k * L + tolerance < current_bar:
                k += 1
            lo, hi = a + k * L - tolerance, a + k * L + tolerance
            out.append((L, a, kind, current_bar - a, k, lo <= current_bar <= hi, lo, hi))
    return out

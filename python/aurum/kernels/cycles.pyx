# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cycle estimators over a window of closes (microstructure.md section 7): Ehlers' Hilbert
dominant cycle exactly as TA-Lib ``HT_DCPERIOD``, Ehlers' autocorrelation periodogram (2013),
Goertzel power/phase at arbitrary periods, heuristic 21/45/90-bar counts from pivots, and
``CycleEngine`` combining them per bar close.

Both Ehlers estimators are IIR: their value depends on every bar since they started.
``HilbertDominantCycle`` / ``AutocorrPeriodogram`` stream them one bar at a time; the batch
functions run the same C step over a whole array, so the two agree bit for bit.
"""

from collections import namedtuple

import numpy as np
cimport numpy as cnp
from libc.math cimport atan, cos, sin, sqrt, exp, floor, fabs, atan2, fmin, fmax, NAN, M_PI, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from aurum.kernels.cycle_counts import PeriodCount, cycle_counts  # re-exported: this module's API
from aurum.kernels.cycle_counts cimport _counts, _periods_arr, check_pivots, window_k

cnp.import_array()

# ---- Hilbert dominant cycle (TA-Lib HT_DCPERIOD) ----

# HT_RING, HT_LOOKBACK and HTState are declared in cycles.pxd.
cdef double HT_A = 0.0962
cdef double HT_B = 0.5769
cdef double RAD2DEG = 180.0 / (4.0 * atan(1.0))  # TA-Lib's own constant, for identical rounding

cdef inline void ht_reset(HTState* s) noexcept nogil:
    memset(s, 0, sizeof(HTState))   # all-zero state is TA-Lib's initial state


cdef inline double ht_of(const double* ring, long long h, double adj) noexcept nogil:
    # a*x + b*x[2] - b*x[4] - a*x[6], accumulated in TA-Lib's order so rounding matches.
    # Before the Hilbert stages started the ring holds zeros, as TA-Lib's zero-initialised state.
    cdef double v = -(HT_A * ring[(h - 6) & (HT_RING - 1)])
    v += HT_A * ring[h & (HT_RING - 1)]
    v -= HT_B * ring[(h - 4) & (HT_RING - 1)]
    v += HT_B * ring[(h - 2) & (HT_RING - 1)]
    return v * adj


cdef double ht_push(HTState* s, double p) noexcept nogil:
    """One bar. Returns SmoothPeriod from bar 32 on (TA-Lib's first output), NaN before."""
    cdef long long t = s.n
    cdef double smooth, adj, det, q1, i1, ji, jq, i2, q2, prev
    cdef long long h
    s.n += 1
    s.price[t & 3] = p
    # TA-Lib's running 4-bar WMA (4,3,2,1)/10: the same sums, in the same order.
    if t < 3:
        s.wma_sub += p
        s.wma_sum += p * (t + 1)
        return NAN
    s.wma_sub += p
    s.wma_sub -= s.trailing   # (p + ...) - trailing, as TA-Lib rounds it
    s.wma_sum += p * 4.0
    s.trailing = s.price[(t - 3) & 3]
    smooth = s.wma_sum * 0.1
    s.wma_sum -= s.wma_sub
    if t < 12:
        return NAN   # TA-Lib's warm-up: the WMA runs but the Hilbert stages are not fed yet
    h = s.h
    s.h += 1
    adj = 0.075 * s.period + 0.54
    s.sm[h & (HT_RING - 1)] = smooth
    det = ht_of(s.sm, h, adj)
    s.det[h & (HT_RING - 1)] = det
    q1 = ht_of(s.det, h, adj)
    s.q1[h & (HT_RING - 1)] = q1
    i1 = s.det[(h - 3) & (HT_RING - 1)]
    ji = ht_of(s.det, h - 3, adj)   # HT(I1), I1 being the detrender 3 bars back
    jq = ht_of(s.q1, h, adj)
    q2 = (0.2 * (q1 + ji)) + (0.8 * s.prev_q2)
    i2 = (0.2 * (i1 - jq)) + (0.8 * s.prev_i2)
    # Homodyne discriminator: the phase advance per bar of the smoothed analytic signal.
    s.re = (0.2 * ((i2 * s.prev_i2) + (q2 * s.prev_q2))) + (0.8 * s.re)
    s.im = (0.2 * ((i2 * s.prev_q2) - (q2 * s.prev_i2))) + (0.8 * s.im)
    s.prev_q2, s.prev_i2 = q2, i2
    prev = s.period
    if s.im != 0.0 and s.re != 0.0:
        s.period = 360.0 / (atan(s.im / s.re) * RAD2DEG)
    # At most +50% / -33% per bar, then 6..50 bars (TA-Lib's order of the two clamps).
    s.period = fmin(fmax(fmax(fmin(s.period, 1.5 * prev), 0.67 * prev), 6.0), 50.0)
    s.period = (0.2 * s.period) + (0.8 * prev)
    s.smooth_period = (0.33 * s.period) + (0.67 * s.smooth_period)
    return s.smooth_period if t >= HT_LOOKBACK else NAN


def ht_dcperiod(const double[:] close):
    """TA-Lib ``HT_DCPERIOD``: Ehlers' Hilbert dominant cycle period per bar, NaN for the
    first 32 bars (TA-Lib's lookback). NaN inputs poison every later value, as in any IIR."""
    cdef Py_ssize_t n = close.shape[0], i
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef HTState s
    ht_reset(&s)
    with nogil:
        for i in range(n):
            o[i] = ht_push(&s, close[i])
    return out


cdef class HilbertDominantCycle:
    """Streaming ``ht_dcperiod``: ``update(price)`` returns what ``ht_dcperiod`` returns for
    that bar, given every price pushed since construction or ``reset``."""
    cdef HTState s

    def __cinit__(self):
        ht_reset(&self.s)

    def reset(self):
        ht_reset(&self.s)

    cpdef double update(self, double price):
        return ht_push(&self.s, price)


# ---- Autocorrelation periodogram ----

cdef class AutocorrPeriodogram:
    """Streaming Ehlers autocorrelation periodogram (2013 book version).

    Per bar: roofing filter (2-pole high-pass at ``max_period``, SuperSmoother at
    ``min_period``; Ehlers' 48/10 with the defaults), Pearson correlation of the filtered series
    with itself at lags 0..max_period over ``avg_length`` bars (the lag itself if 0), a DFT of
    the correlations for lags 3..max_period at each integer period, R = 0.2*(C^2+S^2)^2 +
    0.8*R[1], normalisation by a running max that decays by 0.995 per bar, and the dominant
    cycle as the centre of gravity of the periods whose normalised power is >= 0.5.

    Before bar 2 the high-pass is 0; history before the first bar reads as 0. A lag whose
    correlation is undefined (zero variance) keeps its previous value, as the EasyLanguage
    array does. The dominant cycle is NaN until some power is positive.
    """
    def __cinit__(self, int min_period=10, int max_period=48, int avg_length=3):
        cdef int size, need, p, k
        if min_period < 3:
            raise ValueError(f"min_period was {min_period}, expected >= 3")
        if max_period < min_period or max_period > 1024:
            raise ValueError(f"max_period was {max_period}, expected min_period..1024")
        if avg_length < 0:
            raise ValueError(f"avg_length was {avg_length}, expected >= 0 (0 = lag)")
        self.min_period, self.max_period, self.avg_length = min_period, max_period, avg_length
        self.n_per = max_period - min_period + 1
        # The correlation at lag L reads the filter L + M - 1 bars back.
        need = max_period + (avg_length if avg_length > 0 else max_period)
        size = 1
        while size < need:
            size <<= 1
        self.ring_mask = size - 1
        cdef Py_ssize_t stride = max_period + 1, total = size + stride + 2 * self.n_per * (stride + 2)
        self.ring = <double*>calloc(total, sizeof(double))   # one block for every array
        if not self.ring:
            raise MemoryError()
        self.corr = self.ring + size
        self.cos_tab, self.sin_tab = self.corr + stride, self.corr + stride + self.n_per * stride
        self.r = self.sin_tab + self.n_per * stride
        self.pwr = self.r + self.n_per
        self.cp, self.sp = self.pwr + self.n_per, self.pwr + 2 * self.n_per
        # The DFT basis depends only on (period, lag): computed once, not per bar. Lag-major, so
        # one lag's terms for every period are adjacent (see _push).
        for p in range(self.n_per):
            for k in range(max_period + 1):
                self.cos_tab[k * self.n_per + p] = cos(2.0 * M_PI * k / (min_period + p))
                self.sin_tab[k * self.n_per + p] = sin(2.0 * M_PI * k / (min_period + p))
        cdef double w = 0.707 * 2.0 * M_PI / max_period
        cdef double alpha = (cos(w) + sin(w) - 1.0) / cos(w)
        self.a_hp1 = (1.0 - alpha / 2.0) * (1.0 - alpha / 2.0)
        self.a_hp2 = 2.0 * (1.0 - alpha)
        self.a_hp3 = (1.0 - alpha) * (1.0 - alpha)
        cdef double a1 = exp(-1.414 * M_PI / min_period)
        self.c2, self.c3 = 2.0 * a1 * cos(1.414 * M_PI / min_period), -a1 * a1
        self.c1 = 1.0 - self.c2 - self.c3
        self._clear()

    def __dealloc__(self):
        free(self.ring)

    cdef void _clear(self) noexcept nogil:
        self.n = 0
        self.c_1 = self.c_2 = self.hp_1 = self.hp_2 = self.f_1 = self.f_2 = self.max_pwr = 0.0
        self.dominant = NAN
        memset(self.ring, 0, (self.ring_mask + 1) * sizeof(double))
        memset(self.corr, 0, (self.max_period + 1) * sizeof(double))
        memset(self.r, 0, self.n_per * sizeof(double))
        memset(self.pwr, 0, self.n_per * sizeof(double))

    def reset(self):
        self._clear()

    cdef double _push(self, double price) noexcept nogil:
        cdef long long t = self.n
        cdef int lag, m, c, p, k
        cdef double hp, filt, x, y, sx, sy, sxx, syy, sxy, den, cp, sp, sq, spx, spw
        cdef const double* ct
        cdef const double* st
        hp = 0.0
        if t >= 2:
            hp = (self.a_hp1 * (price - 2.0 * self.c_1 + self.c_2)
                  + self.a_hp2 * self.hp_1 - self.a_hp3 * self.hp_2)
        filt = self.c1 * (hp + self.hp_1) / 2.0 + self.c2 * self.f_1 + self.c3 * self.f_2
        self.c_2, self.c_1 = self.c_1, price
        self.hp_2, self.hp_1 = self.hp_1, hp
        self.f_2, self.f_1 = self.f_1, filt
        self.ring[t & self.ring_mask] = filt
        self.n += 1
        for lag in range(self.max_period + 1):
            m = self.avg_length if self.avg_length > 0 else lag
            sx = sy = sxx = syy = sxy = 0.0
            for c in range(m):
                x = self.ring[(t - c) & self.ring_mask]
                y = self.ring[(t - lag - c) & self.ring_mask]
                sx += x
                sy += y
                sxx += x * x
                syy += y * y
                sxy += x * y
            den = (m * sxx - sx * sx) * (m * syy - sy * sy)
            if den > 0.0:
                self.corr[lag] = (m * sxy - sx * sy) / sqrt(den)
        self.max_pwr *= 0.995
        # Each period's sums run over the lags in order, as written per period; with the periods
        # innermost the compiler vectorises across them (same operations, same bits).
        for p in range(self.n_per):
            self.cp[p] = self.sp[p] = 0.0
        for k in range(3, self.max_period + 1):
            ct = self.cos_tab + k * self.n_per
            st = self.sin_tab + k * self.n_per
            for p in range(self.n_per):
                self.cp[p] += self.corr[k] * ct[p]
                self.sp[p] += self.corr[k] * st[p]
        for p in range(self.n_per):
            cp, sp = self.cp[p], self.sp[p]
            sq = cp * cp + sp * sp
            self.r[p] = 0.2 * sq * sq + 0.8 * self.r[p]
            if self.r[p] > self.max_pwr:
                self.max_pwr = self.r[p]
        spx = spw = 0.0
        for p in range(self.n_per):
            self.pwr[p] = self.r[p] / self.max_pwr if self.max_pwr > 0.0 else 0.0
            if self.pwr[p] >= 0.5:
                spx += (self.min_period + p) * self.pwr[p]
                spw += self.pwr[p]
        if spw != 0.0:
            self.dominant = spx / spw
        return self.dominant

    cpdef double update(self, double price):
        """Push one bar; returns the dominant cycle (NaN until defined)."""
        return self._push(price)

    def update_many(self, const double[:] prices):
        """Push every price; returns the dominant cycle after the last."""
        cdef Py_ssize_t i
        with nogil:
            for i in range(prices.shape[0]):
                self._push(prices[i])
        return self.dominant

    @property
    def power(self):
        """Normalised power for periods min_period..max_period (a copy)."""
        return np.array(<double[:self.n_per]>self.pwr, dtype=np.float64)

    @property
    def periods(self):
        return np.arange(self.min_period, self.max_period + 1, dtype=np.float64)

def autocorrelation_periodogram(const double[:] close, int min_period=10, int max_period=48,
                                int avg_length=3):
    """Ehlers' autocorrelation periodogram run over all of ``close``; returns
    ``(dominant_period, power)`` at the last bar, ``power[i]`` being the normalised power at
    period ``min_period + i``. See ``AutocorrPeriodogram`` for the exact steps."""
    if close.shape[0] < 1:
        raise ValueError("close is empty")
    acp = AutocorrPeriodogram(min_period, max_period, avg_length)
    dom = acp.update_many(close)
    return dom, acp.power


# ---- Goertzel ----

cdef dict _DETREND = {"none": 0, "mean": 1, "linear": 2}


cdef int _detrend_mode(str detrend) except -1:
    if detrend not in _DETREND:
        raise ValueError(f"detrend was {detrend!r}, expected 'linear', 'mean' or 'none'")
    return _DETREND[detrend]


cdef inline double _at(const char* x, Py_ssize_t stride, Py_ssize_t i) noexcept nogil:
    return (<const double*>(x + i * stride))[0]


cdef void _fit(const char* x, Py_ssize_t stride, Py_ssize_t n_all, Py_ssize_t lo, int mode, double* a,
               double* b) noexcept nogil:
    # Least-squares line a + b*j over x[lo:n_all], j = 0..n-1 (mode 2), the mean (1) or nothing (0).
    # x holds doubles ``stride`` bytes apart (a memoryview's data and stride, or a C array).
    cdef Py_ssize_t n = n_all - lo, j
    cdef double sx = 0.0, sjx = 0.0, jm
    a[0] = b[0] = 0.0
    if mode == 0 or n <= 0:
        return
    for j in range(n):
        sx += _at(x, stride, lo + j)
    a[0] = sx / n
    if mode == 1 or n < 2:
        return
    jm = (n - 1) / 2.0
    for j in range(n):
        sjx += (j - jm) * (_at(x, stride, lo + j) - a[0])
    b[0] = sjx / (n * (n * <double>n - 1.0) / 12.0)   # / sum of (j - jm)^2
    a[0] -= b[0] * jm


cdef void _goertzel(const char* x, Py_ssize_t stride, Py_ssize_t n, Py_ssize_t lo, double a, double b,
                    const double* per, Py_ssize_t m, double* power, double* phase) noexcept nogil:
    # s_n = r_n + 2cos(w) s_{n-1} - s_{n-2} on the residual r_n = x_n - a - b n (never stored).
    # y = s_{N-1} - e^{-iw} s_{N-2} = sum_n r_n e^{-iw(n - (N-1))}: the DFT with its time origin
    # on the last bar, so arg(y) is the phase of the cycle there (r ~ cos(w n' + phase)).
    # The recurrence is latency-bound, so four periods share each pass as independent lanes.
    # ``phase`` may be NULL.
    cdef double c[4]
    cdef double s1[4]
    cdef double s2[4]
    cdef double s0, r, w, cw
    cdef Py_ssize_t j, q, base
    for base in range(0, m, 4):
        for q in range(4):
            w = 2.0 * M_PI / (per[base + q] if base + q < m else 4.0)  # spare lanes: dummies
            c[q] = 2.0 * cos(w)
            s1[q] = s2[q] = 0.0
        for j in range(lo, n):
            r = _at(x, stride, j) - a - b * (j - lo)
            for q in range(4):
                s0 = r + c[q] * s1[q] - s2[q]
                s2[q], s1[q] = s1[q], s0
        for q in range(4):
            if base + q < m:
                w = 2.0 * M_PI / per[base + q]
                cw = cos(w)
                power[base + q] = s1[q] * s1[q] + s2[q] * s2[q] - c[q] * s1[q] * s2[q]
                if phase != NULL:
                    phase[base + q] = atan2(sin(w) * s2[q], s1[q] - cw * s2[q])


def goertzel_spectrum(const double[:] x, periods, str detrend="linear"):
    """Goertzel power and phase at each of ``periods`` (bars, any real > 2) over all of ``x``.

    ``x`` is detrended first: ``"linear"`` (default) removes the least-squares line, because a
    price trend otherwise leaks into every low-frequency bin; ``"mean"`` removes the mean;
    ``"none"`` nothing. Power is |sum_n r_n e^{-i 2 pi n / P}|^2 of the residual r (not
    normalised by length). Phase (radians) is that of the cycle at the last bar: near the end
    r ~ A cos(2 pi (n - last)/P + phase), so 0 is a crest, +-pi a trough, and the cycle is
    rising where sin(phase) < 0."""
    cdef int mode = _detrend_mode(detrend)
    cdef const double[::1] per = np.ascontiguousarray(periods, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t k, m = per.shape[0]
    if x.shape[0] < 2:
        raise ValueError(f"x has {x.shape[0]} values, expected >= 2")
    for k in range(m):
        if not (per[k] > 2.0 and isfinite(per[k])):
            raise ValueError(f"periods[{k}] was {per[k]}, expected a finite value > 2")
    pw = np.empty(m, dtype=np.float64)
    ph = np.empty(m, dtype=np.float64)
    cdef double[::1] pwv = pw, phv = ph
    cdef double a, b
    if m:
        with nogil:
            _fit(<const char*>&x[0], x.strides[0], x.shape[0], 0, mode, &a, &b)
            _goertzel(<const char*>&x[0], x.strides[0], x.shape[0], 0, a, b, &per[0], m, &pwv[0], &phv[0])
    return pw, ph


def goertzel_powers(const double[:] x, periods, str detrend="linear"):
    """Goertzel power at each of ``periods`` over ``x`` (see ``goertzel_spectrum``)."""
    return goertzel_spectrum(x, periods, detrend)[0]


def goertzel_power(const double[:] x, double period, str detrend="linear"):
    """Goertzel power at one ``period`` over ``x`` (see ``goertzel_spectrum``)."""
    cdef int mode = _detrend_mode(detrend)
    if x.shape[0] < 2:
        raise ValueError(f"x has {x.shape[0]} values, expected >= 2")
    if not (period > 2.0 and isfinite(period)):
        raise ValueError(f"period was {period}, expected a finite value > 2")
    cdef double a, b, pw, ph
    with nogil:
        _fit(<const char*>&x[0], x.strides[0], x.shape[0], 0, mode, &a, &b)
        _goertzel(<const char*>&x[0], x.strides[0], x.shape[0], 0, a, b, &period, 1, &pw, &ph)
    return pw


# ---- Engine ----

CycleState = namedtuple(
    "CycleState", "bar hilbert_period acp_period acp_power periods goertzel_share counts "
    "window_periods direction confidence reasons")
CycleState.__doc__ = """Cycle read-out at one bar close. ``goertzel_share[i]``: share of the
Goertzel power at ``periods[i]`` (sums to 1); ``window_periods``: tracked periods whose
inflection window, counted from the most recent pivot, contains the bar."""


cdef class CycleEngine:
    """Cycle estimators per bar close.

    ``update(closes, pivots, current_bar)``: ``closes`` (float64) is the window of closes
    ending at ``current_bar``; ``pivots`` is ``(bar_indices, kinds)`` of confirmed pivots, or
    None. The Hilbert and autocorrelation estimators are recursive, so they are streamed: when
    ``current_bar`` advances by k <= len(closes) only the last k closes are pushed; on the
    first call, a gap or a rewind both restart over the whole window (and then equal
    ``ht_dcperiod(closes)[-1]`` and ``autocorrelation_periodogram(closes)``). Re-querying the
    same bar reuses them (a closed bar is final). Goertzel shares and counts come from the
    arguments alone.

    Direction and confidence are a heuristic, not calibrated:

    * ``direction = -sin(phase)``: the Goertzel phase at the last bar at the dominant period
      (Hilbert, which tracks bar by bar; the periodogram's before bar 32) over the last 1-2
      whole cycles, linear trend removed. +1 half-way up from a trough, -1 half-way down, 0 at
      a turn. Few cycles keep the phase bias of a slightly wrong period small.
    * ``confidence = 0.45*concentration + 0.35*agreement + 0.20*timing``. concentration = 1 -
      (periods with normalised periodogram power >= 0.5, less one) / (periods - 1): one sharp
      peak scores 1, a flat spectrum 0. agreement = 1 - |Hilbert - periodogram| /
      (0.5*periodogram), floored at 0. timing = share of tracked periods in an inflection
      window from the most recent pivot (confluence of counts).
    """
    def __init__(self, periods=(21, 45, 90), int tolerance=2, int anchors=3, int min_period=10,
                 int max_period=48, int avg_length=3, str detrend="linear"):
        self.per_i = _periods_arr(periods, tolerance)
        if self.per_i.shape[0] > 64:  # in-window periods travel as a 64-bit mask
            raise ValueError(f"{self.per_i.shape[0]} periods, expected at most 64")
        self.per_d = np.asarray(self.per_i, dtype=np.float64)
        self.share = np.empty(self.per_i.shape[0], dtype=np.float64)
        self.periods = tuple(int(p) for p in self.per_i)
        if anchors < 1:
            raise ValueError(f"anchors was {anchors}, expected >= 1")
        self.mode = _detrend_mode(detrend)
        self.tolerance, self.anchors, self.detrend = tolerance, anchors, detrend
        self.acp = AutocorrPeriodogram(min_period, max_period, avg_length)
        self.reset()

    def reset(self):
        ht_reset(&self.ht)
        self.acp._clear()
        self.started = False

    cdef int step(self, const double* closes, Py_ssize_t n, const int64_t* piv_idx, const int64_t* piv_kind,
                  Py_ssize_t npiv, bint has_pivots, long long current_bar, CycleOut* o) except -1:
        """``update`` without the Python objects: ``n`` contiguous closes, ``npiv`` contiguous pivot
        indices and kinds (ignored unless ``has_pivots``); the numbers go to ``o`` and the Goertzel
        shares to ``share``."""
        cdef Py_ssize_t m = self.per_d.shape[0], i, q, lo, n_half = 0, end
        cdef long long step, d, k, L
        cdef double a, b, total = 0.0, cycles, ph, direction = 0.0, conc, agree = 0.0
        cdef const char* x = <const char*>closes
        cdef double* sh = &self.share[0]
        if n < 2:
            raise ValueError(f"closes has {n} values, expected >= 2")
        step = current_bar - self.last_bar
        if not self.started or step < 0 or step > n:
            ht_reset(&self.ht)
            self.acp._clear()
            step = n
        with nogil:
            for i in range(n - step, n):
                ht_push(&self.ht, closes[i])
                self.acp._push(closes[i])
        self.started = True
        self.last_bar = current_bar
        o.bar = current_bar
        o.hilbert = self.ht.smooth_period if self.ht.n > HT_LOOKBACK else NAN
        o.acp = self.acp.dominant
        with nogil:
            _fit(x, sizeof(double), n, 0, self.mode, &a, &b)
            _goertzel(x, sizeof(double), n, 0, a, b, &self.per_d[0], m, sh, NULL)
            for i in range(m):
                total += sh[i]
            for i in range(m):   # a flat (all-zero) window shares equally
                sh[i] = sh[i] / total if total > 0.0 else 1.0 / m
        # np.argmax: the first maximum, or the first NaN.
        o.top = 0
        for i in range(1, m):
            if sh[o.top] != sh[o.top]:
                break
            if not (sh[i] <= sh[o.top]):
                o.top = i
        o.top_share = sh[o.top]
        # Counts: only the most recent anchor's window of each period enters the score.
        o.window_mask = 0
        o.n_window = 0
        if has_pivots:
            check_pivots(<const char*>piv_idx, npiv, sizeof(int64_t), <const char*>piv_kind, npiv, sizeof(int64_t),
                         current_bar, self.anchors)
            end = npiv
            while end > 0 and piv_idx[end - 1] > current_bar:   # not yet confirmed at this bar
                end -= 1
            if end > 0:
                o.anchor_bar, o.anchor_kind = piv_idx[end - 1], piv_kind[end - 1]
                d = o.bars_since = current_bar - o.anchor_bar
                for q in range(m):
                    L = self.per_i[q]
                    k = window_k(d, L, self.tolerance)
                    if k * L - self.tolerance <= d <= k * L + self.tolerance:
                        o.window_mask |= 1ULL << q
                        o.n_window += 1
        o.dom = o.hilbert if isfinite(o.hilbert) else o.acp
        o.dom_state = 0
        if isfinite(o.dom):
            o.dom_state = 1
            cycles = min(2.0, floor(n / o.dom))
            if cycles >= 1.0:
                o.dom_state = 2
                lo = n - min(n, <Py_ssize_t>(cycles * o.dom + 0.5))
                with nogil:
                    _fit(x, sizeof(double), n, lo, 2, &a, &b)
                    _goertzel(x, sizeof(double), n, lo, a, b, &o.dom, 1, &total, &ph)
                direction = -sin(ph)
                o.phase = ph
        o.direction = direction
        for i in range(self.acp.n_per):
            n_half += self.acp.pwr[i] >= 0.5
        conc = 0.0 if n_half == 0 else 1.0 - (n_half - 1) / <double>max(1, self.acp.n_per - 1)
        o.has_agree = isfinite(o.hilbert) and isfinite(o.acp) and o.acp > 0
        if o.has_agree:
            agree = max(0.0, 1.0 - fabs(o.hilbert - o.acp) / (0.5 * o.acp))
        o.conc, o.agree = conc, agree
        o.confidence = min(1.0, max(0.0, 0.45 * conc + 0.35 * agree + 0.20 * o.n_window / m))
        return 0

    cdef tuple window_of(self, const CycleOut* o):
        return tuple([p for q, p in enumerate(self.periods) if o.window_mask >> q & 1])

    cdef list reasons_of(self, const CycleOut* o):
        """The reasons of an evaluation, from its numbers alone."""
        reasons = [f"Goertzel strongest at {self.per_i[o.top]} bars (share {o.top_share:.2f})"]
        if o.n_window:
            reasons.append(f"in the {'/'.join(map(str, self.window_of(o)))}-bar window(s): {o.bars_since} "
                           f"bars since the {'high' if o.anchor_kind > 0 else 'low'} at {o.anchor_bar}")
        if o.dom_state == 0:
            reasons.append("no dominant cycle yet: direction 0")
        elif o.dom_state == 1:
            reasons.append(f"window shorter than the {o.dom:.1f}-bar cycle: direction 0")
        else:
            reasons.append(f"phase {o.phase * 180.0 / M_PI:.0f} deg of the {o.dom:.1f}-bar cycle: "
                           f"{'rising' if o.direction > 0 else 'falling'}")
        if o.has_agree:
            reasons.append(f"Hilbert {o.hilbert:.1f} vs periodogram {o.acp:.1f} bars (agreement {o.agree:.2f})")
        reasons.append(f"spectrum concentration {o.conc:.2f}")
        return reasons

    def update(self, const double[:] closes, pivots, long long current_bar):
        if closes.shape[0] < 2:
            raise ValueError(f"closes has {closes.shape[0]} values, expected >= 2")
        cdef const double[::1] c = closes if closes.strides[0] == sizeof(double) else np.ascontiguousarray(closes)
        cdef const int64_t[::1] idx = None
        cdef const int64_t[::1] kinds = None
        if pivots is not None:
            idx = np.ascontiguousarray(pivots[0], dtype=np.int64).reshape(-1)
            kinds = np.ascontiguousarray(pivots[1], dtype=np.int64).reshape(-1)
            if kinds.shape[0] != idx.shape[0]:
                raise ValueError(f"pivot_kinds has {kinds.shape[0]} values, pivot_bar_indices {idx.shape[0]}")
        cdef CycleOut o
        self.step(&c[0], c.shape[0], &idx[0] if idx is not None and idx.shape[0] else NULL,
                  &kinds[0] if kinds is not None and kinds.shape[0] else NULL,
                  idx.shape[0] if idx is not None else 0, pivots is not None, current_bar, &o)
        counts = [] if pivots is None else _counts(idx, kinds, current_bar, self.per_i, self.tolerance, self.anchors)
        return tuple.__new__(CycleState, (current_bar, o.hilbert, o.acp, self.acp.power, self.periods,
                                           np.array(self.share), counts, self.window_of(&o), o.direction,
                                           o.confidence, self.reasons_of(&o)))

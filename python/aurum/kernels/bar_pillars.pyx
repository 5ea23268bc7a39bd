# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The bar-level pillars (Gann, Cycle, Astro) as providers for the decision engine.

Each provider maps the instrument's bar window to a pillar, or None while it lacks data. A
missing provider is a missing pillar, which the scorer reports as degraded rather than
guessing. ``aurum.decision.providers`` documents the rules; the plain-Python version they
were first written in is ``aurum.testing.reference_decision``, and these give the same bits.

Per bar close the decision core calls ``eval``, which runs the kernels in place on the
window (``GannEngine.step``, ``CycleEngine.step``) and keeps the numbers in a ``PillarOut``;
the reasons are formatted from them only when the Pillar is read. Calling a provider
(``provider(win, ts, price)``) returns that Pillar, like any plain-Python provider.
"""

import datetime as dt

import numpy as np
from libc.math cimport fabs, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from aurum.kernels.barwindow cimport BarWindow, PackedBar
from aurum.kernels.cycles cimport CycleEngine, CycleOut
from aurum.kernels.gann cimport GannEngine, GannOut, PivotRec
from aurum.kernels.pillar_out cimport PillarOut, int_div, py_max, py_min
from aurum.kernels.pivots cimport Pivot, PivotTracker

from aurum.kernels.cycles import CycleEngine as _CycleEngine

cdef enum:
    TREND_BARS = 10
    FEED_PIVOTS = 8     # the engines look at the last few pivots only (Gann 4, cycle counts 3)
    CYCLE_MIN_BARS = 40 # the cycle estimators need about 32 bars to settle
cdef int64_t NS_PER_DAY = 86_400 * 1_000_000_000



cdef inline double np_clip(double x, double lo, double hi) noexcept nogil:
    # float(np.clip(x, lo, hi)) for a finite x (a bound wins ties, as numpy's clip).
    x = x if x > lo else lo
    return x if x < hi else hi


cdef double recent_trend(BarWindow win) noexcept:
    """Sign and size of the move over the last bars, in [-1, 1] (relative to the range)."""
    cdef Py_ssize_t i, n = win.hi - win.lo
    cdef int64_t hmax, lmin
    cdef double move, rng
    if n <= TREND_BARS:
        return 0.0
    move = win.closes[win.hi - 1] - win.closes[win.hi - 1 - TREND_BARS]
    hmax = win.rows[win.hi - TREND_BARS].high
    lmin = win.rows[win.hi - TREND_BARS].low
    for i in range(win.hi - TREND_BARS + 1, win.hi):
        if win.rows[i].high > hmax:
            hmax = win.rows[i].high
        if win.rows[i].low < lmin:
            lmin = win.rows[i].low
    rng = <double>(hmax - lmin) * 1e-9
    return py_max(-1.0, py_min(1.0, move / rng)) if rng > 0 else 0.0


cdef class BarPillar(Reasons):
    """A provider with a C entry point: ``eval`` fills a PillarOut (absent = no opinion)."""

    cdef int eval(self, BarWindow win, int64_t ts, double price, PillarOut out) except -1:
        raise NotImplementedError

    def __call__(self, BarWindow win not None, int64_t ts, double price):
        out = PillarOut(self.name)
        self.eval(win, ts, price, out)
        return out.materialise()


cdef class _Track:
    cdef PivotTracker tracker
    cdef long long seen


cdef class PivotFeed:
    """Causal swing pivots per instrument window, shared by the Gann and Cycle pillars: each
    bar goes into the instrument's ``PivotTracker`` once, however many providers ask."""

    def __init__(self, double threshold_ticks=20.0, double tick_size=0.10):
        self.threshold_ticks = threshold_ticks
        self.tick_size = tick_size
        self._tracks = {}

    cdef PivotTracker sync(self, BarWindow win):
        cdef _Track t = self._tracks.get(win)
        cdef Py_ssize_t i, k
        if t is None:
            t = _Track()
            t.tracker = PivotTracker(threshold_ticks=self.threshold_ticks, tick_size=self.tick_size)
            t.seen = 0
            self._tracks[win] = t
        k = min(win.count - t.seen, win.hi - win.lo)  # bars the tracker has not seen yet
        for i in range(win.hi - k, win.hi):
            t.tracker.update(win.rows[i].high, win.rows[i].low)
        t.seen = win.count
        return t.tracker

    def pivots(self, BarWindow win not None):
        """The last few confirmed pivots (``PIVOT_DTYPE``) after feeding the window's new bars."""
        return self.sync(win).last_pivots(FEED_PIVOTS)


cdef class _Levels:
    cdef double* sup
    cdef double* res
    cdef Py_ssize_t ns, nr

    def __dealloc__(self):
        free(self.sup)
        free(self.res)


cdef class GannProvider(BarPillar):
    """Square of Nine levels, Gann angles and time windows from the recent pivots.
    ``price_per_bar`` is the 1x1 scale: 0.50 USD per bar suits GC one-minute bars (about a
    third of their ATR); ``decimal_shift=1`` keeps Square-of-Nine steps near 7 USD at 4,000."""
    cdef readonly PivotFeed feed
    cdef readonly GannEngine engine
    cdef dict _levels

    def __init__(self, PivotFeed feed, double price_per_bar=0.50, int decimal_shift=1):
        self.name = "gann"
        self.feed = feed
        self.engine = GannEngine(price_per_bar, tick_size=feed.tick_size, decimal_shift=decimal_shift)
        self._levels = {}

    cdef int eval(self, BarWindow win, int64_t ts, double price, PillarOut out) except -1:
        cdef PivotTracker tr = self.feed.sync(win)
        cdef Py_ssize_t npv = min(FEED_PIVOTS, tr.s.npiv), n = win.hi - win.lo, i
        cdef GannOut o
        cdef _Levels lv
        out.clear()
        if npv < 2 or not price > 0:
            return 0
        self.engine.step(<const char*>(win.rows + win.lo), n, sizeof(PackedBar), 0, 8, 16, 24,
                         <const PivotRec*>(tr.s.piv + tr.s.npiv - npv), npv, price, win.count - n, &o)
        # The levels of this update, for levels_for (the engine's buffers move on with the next).
        lv = self._levels.get(win)
        if lv is None:
            lv = _Levels()
            lv.sup = <double*>malloc(self.engine.n_levels * sizeof(double))
            lv.res = <double*>malloc(self.engine.n_levels * sizeof(double))
            if lv.sup == NULL or lv.res == NULL:
                raise MemoryError()
            self._levels[win] = lv
        lv.ns, lv.nr = o.ns, o.nr
        for i in range(o.ns):
            lv.sup[i] = self.engine.merged[o.split - 1 - i]
        for i in range(o.nr):
            lv.res[i] = self.engine.merged[o.split + i]
        if not (isfinite(o.direction) and isfinite(o.confidence)):
            return 0  # flat or too-short history: no opinion rather than a wrong one
        out.set(np_clip(o.direction, -1.0, 1.0), np_clip(o.confidence, 0.0, 1.0), self)
        memcpy(out.raw, &o, sizeof(GannOut))
        return 0

    cdef tuple reasons(self, PillarOut out):
        return tuple(self.engine.reasons_of(<const GannOut*>out.raw)[:4])

    def levels_for(self, BarWindow win not None):
        """The last update's Square-of-Nine supports ("B") and resistances ("A"), for the
        signal builder's stops and targets."""
        cdef _Levels lv = self._levels.get(win)
        if lv is None:
            return []
        return ([(lv.sup[i], "B") for i in range(lv.ns) if isfinite(lv.sup[i])]
                + [(lv.res[i], "A") for i in range(lv.nr) if isfinite(lv.res[i])])


cdef class CycleProvider(BarPillar):
    """Hilbert and autocorrelation dominant cycles, Goertzel power at 21/45/90 and the
    21/45/90-bar counts from the pivots (``aurum.kernels.cycles``)."""
    cdef readonly PivotFeed feed
    cdef dict _engines

    def __init__(self, PivotFeed feed):
        self.name = "cycle"
        self.feed = feed
        self._engines = {}

    cdef int eval(self, BarWindow win, int64_t ts, double price, PillarOut out) except -1:
        cdef Py_ssize_t n = win.hi - win.lo, npv, i
        cdef CycleEngine eng
        cdef PivotTracker tr
        cdef const Pivot* pv
        cdef int64_t idx[FEED_PIVOTS]
        cdef int64_t kind[FEED_PIVOTS]
        cdef CycleOut o
        out.clear()
        if n < CYCLE_MIN_BARS:
            return 0
        eng = self._engines.get(win)
        if eng is None:
            eng = self._engines[win] = _CycleEngine()
        tr = self.feed.sync(win)
        npv = min(FEED_PIVOTS, tr.s.npiv)
        pv = tr.s.piv + tr.s.npiv - npv
        for i in range(npv):
            idx[i], kind[i] = pv[i].index, pv[i].kind
        eng.step(win.closes + win.lo, n, idx, kind, npv, npv > 0, win.count - 1, &o)
        if not (isfinite(o.direction) and isfinite(o.confidence)):
            return 0
        out.set(np_clip(o.direction, -1.0, 1.0), np_clip(o.confidence, 0.0, 1.0), self)
        memcpy(out.raw, &o, sizeof(CycleOut))
        out.obj = eng
        return 0

    cdef tuple reasons(self, PillarOut out):
        return tuple((<CycleEngine>out.obj).reasons_of(<const CycleOut*>out.raw)[:4])


cdef struct AstroOut:
    double w, trend
    unsigned long long mask   # which of the day's windows contain the bar (when they fit in 64)


if max(sizeof(GannOut), sizeof(CycleOut), sizeof(AstroOut)) > 32 * sizeof(double):
    raise ImportError("PillarOut.raw is too small for the providers' outputs")


cdef class AstroProvider(BarPillar):
    """Lunar phases, aspects, stations and ingresses as timing windows (``aurum.astro``).

    Timing pillars say *when*, not *which way*: inside a window, expect the move that led into
    it to turn, so the direction opposes the recent trend, weighted by how deep into the
    window the bar is. Windows are fetched once per UTC day (the astro package caches the
    ephemeris work) and kept as integer nanoseconds, so a bar close costs a few comparisons,
    not datetime math."""
    cdef readonly object windows
    cdef long long _day
    cdef long long _prefetched  # the day prefetch() last computed
    cdef int64_t* _spans        # (start, event, end) ns per window of the day
    cdef Py_ssize_t _n
    cdef tuple _types           # the windows' event types

    def __cinit__(self):
        self._spans = NULL
        self._n = 0

    def __init__(self):
        from aurum.astro import AstroWindows

        self.name = "astro"
        self.windows = AstroWindows()
        self._day = -1
        self._prefetched = -1
        self._types = ()

    def __dealloc__(self):
        free(self._spans)

    def prefetch(self, int64_t ts):
        """Computes the windows of the UTC day after ``ts`` now, between bars (the daemon's
        tick), so the first bar of that day finds them cached: otherwise that bar pays for the
        ephemeris work, 10-60 ms, on its signal's latency path. Returns True if it did."""
        cdef long long day = ts // NS_PER_DAY
        if ts < 0 and ts % NS_PER_DAY:
            day -= 1  # floor division, as Python's
        day += 1
        if day == self._prefetched:
            return False
        self.windows.windows_on(dt.datetime.fromtimestamp(day * 86_400, tz=dt.timezone.utc).date())
        self._prefetched = day
        return True

    def _load(self, long long day):
        d = dt.datetime.fromtimestamp(day * 86_400, tz=dt.timezone.utc).date()
        ns = lambda t: int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000  # noqa: E731
        spans = [(ns(w.start), ns(w.event.time), ns(w.end), w.event.type) for w in self.windows.windows_on(d)]
        cdef int64_t* grown = <int64_t*>malloc(3 * len(spans) * sizeof(int64_t) + 1)
        if grown == NULL:
            raise MemoryError()
        try:
            for i, (start, at, end, _) in enumerate(spans):
                grown[3 * i], grown[3 * i + 1], grown[3 * i + 2] = start, at, end
        except BaseException:
            free(grown)  # a time that does not fit int64 (OverflowError): nothing leaks
            raise
        free(self._spans)
        self._spans, self._n = grown, len(spans)
        self._types = tuple(kind for *_, kind in spans)
        self._day = day

    cdef int eval(self, BarWindow win, int64_t ts, double price, PillarOut out) except -1:
        cdef long long day = ts // NS_PER_DAY
        cdef Py_ssize_t i
        cdef int64_t start, at, end, span
        cdef AstroOut o
        cdef bint inside = False
        out.clear()
        if ts < 0 and ts % NS_PER_DAY:
            day -= 1  # floor division, as Python's
        if day != self._day:
            self._load(day)
        o.w, o.mask = 0.0, 0
        matched = None if self._n <= 64 else []
        for i in range(self._n):
            start, at, end = self._spans[3 * i], self._spans[3 * i + 1], self._spans[3 * i + 2]
            if start <= ts <= end:
                span = abs((end if ts >= at else start) - at)
                o.w = py_max(o.w, 1.0 if span == 0 else py_max(0.0, 1.0 - int_div(abs(ts - at), span)))
                inside = True
                if matched is None:
                    o.mask |= 1ULL << i
                else:
                    matched.append(self._types[i])
        if not inside:
            out.set(0.0, 0.0, self)
            return 0
        o.trend = recent_trend(win)
        out.set(py_max(-1.0, py_min(1.0, -o.trend * o.w)), py_min(1.0, o.w * fabs(o.trend)), self)
        memcpy(out.raw, &o, sizeof(AstroOut))
        out.obj = self._types if matched is None else matched
        return 0

    cdef tuple reasons(self, PillarOut out):
        cdef const AstroOut* o = <const AstroOut*>out.raw
        if out.obj is None:
            return ("no astro window",)
        types = out.obj if isinstance(out.obj, list) else [k for i, k in enumerate(out.obj) if o.mask >> i & 1]
        return (f"inside {', '.join(sorted(set(types)))} window (weight {o.w:.2f}); recent trend {o.trend:+.2f} may turn",)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Gann tools from swing pivots: Square of Nine levels, angles, time cycles, price/time squaring.

Formulas follow docs/reference ``microstructure.md`` section 6. Units: prices are float64 price
units (USD; the ring's fixed point / 1e9), time is bar indices (int64) or, for calendar cycles,
the ring's ``ts_close`` nanoseconds. Pivots are ``aurum.kernels.pivots.PIVOT_DTYPE`` arrays.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport sqrt, fabs, floor, llround, isfinite, NAN, INFINITY
from libc.stdlib cimport malloc, free, qsort
from libc.string cimport memcpy

from aurum.kernels.pivots import PIVOT_DTYPE

cnp.import_array()

cdef double NS_PER_DAY = 86400e9

# Angles as (price units, time units) per the reference's advice to store both explicitly;
# Achelis naming: "1x8" is the steep one (8 price units per bar at scale 1).
ANGLE_NAMES = ("1x8", "1x4", "1x3", "1x2", "1x1", "2x1", "3x1", "4x1", "8x1")
ANGLE_PRICE_UNITS = np.array([8, 4, 3, 2, 1, 1, 1, 1, 1], dtype=np.int64)
ANGLE_TIME_UNITS = np.array([1, 1, 1, 1, 1, 2, 3, 4, 8], dtype=np.int64)
cdef double[9] ANGLE_K = [8.0, 4.0, 3.0, 2.0, 1.0, 0.5, 1.0 / 3.0, 0.25, 0.125]

# Fractions of the master cycle (1/8 ... 7/8, and the full turn). Kept as integer pairs so a
# 360-day cycle in nanoseconds (3.1e16, past 2**53) is divided exactly.
CYCLE_FRACTIONS = (1 / 8, 1 / 4, 1 / 3, 3 / 8, 1 / 2, 5 / 8, 2 / 3, 3 / 4, 7 / 8, 1.0)
cdef enum:
    N_FRAC = 10
cdef int64_t[N_FRAC] FRAC_NUM = [1, 1, 1, 3, 1, 5, 2, 3, 7, 1]
cdef int64_t[N_FRAC] FRAC_DEN = [8, 4, 3, 8, 2, 8, 3, 4, 8, 1]

WINDOW_BAR_CYCLE = 0      # start/end in bar indices
WINDOW_CALENDAR_CYCLE = 1  # start/end in ns (ts_close clock)
WINDOW_SQUARE = 2         # price range squared by time, in bar indices
WINDOW_DTYPE = np.dtype({
    "names": ["kind", "pivot_index", "fraction", "center", "start", "end", "active"],
    "formats": ["<i8", "<i8", "<f8", "<i8", "<i8", "<i8", "?"],
    "offsets": [0, 8, 16, 24, 32, 40, 48],
    "itemsize": 56,
})


def square_of_nine(double p, int n_steps=8, double step_deg=45.0, int decimal_shift=0):
    """Square-of-Nine levels ``(sqrt(p) -/+ k*step_deg/180)**2`` for k = 1..n_steps.

    ``decimal_shift`` s applies the formula to ``p * 10**s`` and scales the levels back: the
    common practice of moving the decimal point to tighten (s > 0) or widen the grid. At
    GC ~2000, 45 degrees is ~22 USD with s = 0 and ~7 USD with s = 1.

    Returns ``(supports, resistances)``, each nearest first. A full 360-degree turn adds 2 to
    the square root (odd squares lie on one diagonal of the spiral). Supports stop where the
    root would turn negative: squaring it again would fold back above zero, which is no level.
    """
    if not (p > 0.0) or not isfinite(p):
        raise ValueError(f"p was {p}, expected a finite price > 0")
    if n_steps < 1:
        raise ValueError(f"n_steps was {n_steps}, expected >= 1")
    if not (step_deg > 0.0):
        raise ValueError(f"step_deg was {step_deg}, expected > 0")
    if decimal_shift < -12 or decimal_shift > 12:
        raise ValueError(f"decimal_shift was {decimal_shift}, expected -12..12")
    cdef double m = 10.0 ** decimal_shift
    cdef double r = sqrt(p * m), d = step_deg / 180.0, x
    cdef int k, ns = 0
    sup = np.empty(n_steps, dtype=np.float64)
    res = np.empty(n_steps, dtype=np.float64)
    cdef double[:] s = sup, q = res
    for k in range(1, n_steps + 1):
        x = r + k * d
        q[k - 1] = x * x / m
        x = r - k * d
        if x > 0.0:
            s[ns] = x * x / m
            ns += 1
    return sup[:ns], res


def gann_angles(double p0, double b0, double bar, double scale, int direction):
    """The nine Gann angle lines from pivot (b0, p0) evaluated at ``bar``.

    ``p0 + direction * k * scale * (bar - b0)`` with k = 8, 4, 3, 2, 1, 1/2, 1/3, 1/4, 1/8 (order
    of ``ANGLE_NAMES``); ``scale`` is the price per bar of the 1x1 line and must be chosen
    explicitly (degrees mean nothing without it). ``direction`` +1 fans up from a low, -1 down
    from a high.
    """
    if not (scale > 0.0) or not isfinite(scale):
        raise ValueError(f"scale was {scale}, expected a finite value > 0")
    if direction != 1 and direction != -1:
        raise ValueError(f"direction was {direction}, expected +1 or -1")
    out = np.empty(9, dtype=np.float64)
    fill_angles(<double*>cnp.PyArray_DATA(out), p0, b0, bar, scale, direction)
    return out


cdef void fill_angles(double* o, double p0, double b0, double bar, double scale, int direction) noexcept nogil:
    cdef int i
    for i in range(9):
        o[i] = p0 + direction * ANGLE_K[i] * scale * (bar - b0)


def time_windows(int64_t t0, int64_t now, int64_t cycle, int64_t tolerance, int kind=0, int64_t pivot_index=-1):
    """Cycle windows ``t0 + f*cycle +/- tolerance`` for the fractions in ``CYCLE_FRACTIONS``
    that have not ended by ``now`` (``WINDOW_DTYPE``, in time order). Any int64 clock works:
    bar indices (cycle 360 bars) or ns (cycle 360 days = 360 * 86400e9)."""
    if cycle <= 0:
        raise ValueError(f"cycle was {cycle}, expected > 0")
    if tolerance < 0:
        raise ValueError(f"tolerance was {tolerance}, expected >= 0")
    cdef Win buf[N_FRAC]
    cdef Py_ssize_t n = add_cycle(buf, 0, kind, pivot_index, t0, now, cycle, tolerance)
    return windows_array(buf, n)


def square_price_time(double p_from, double b_from, double p_to, double b_to, double scale):
    """Bars at which the swing (b_from, p_from) -> (b_to, p_to) is squared in time.

    The range R = |p_to - p_from| expressed in bars is R / scale; returns
    ``(b_from + R/scale, b_to + R/scale)``: where the 1x1 from the swing start meets the range
    edge, and the point one range-in-time after the swing end (the next anticipated turn).
    """
    if not (scale > 0.0) or not isfinite(scale):
        raise ValueError(f"scale was {scale}, expected a finite value > 0")
    cdef double t = fabs(p_to - p_from) / scale
    return (b_from + t, b_to + t)


# ---------------------------------------------------------------------------------------------
# C internals shared by the functions above and the engine

# Win and PivotRec (the layouts of WINDOW_DTYPE and PIVOT_DTYPE) are declared in gann.pxd.
if sizeof(Win) != WINDOW_DTYPE.itemsize or sizeof(PivotRec) != PIVOT_DTYPE.itemsize:
    raise ImportError("WINDOW_DTYPE / PIVOT_DTYPE do not match their C structs")

cdef object BAR_FIELDS = (("high", np.dtype("<i8")), ("low", np.dtype("<i8")), ("close", np.dtype("<i8")),
                          ("ts_close", np.dtype("<u8")))
cdef object PACKED_BARS = np.dtype([(n, t) for n, t in BAR_FIELDS])


cdef Py_ssize_t add_cycle(Win* buf, Py_ssize_t n, int kind, int64_t pivot_index, int64_t t0, int64_t now,
                          int64_t cycle, int64_t tol) noexcept nogil:
    cdef int f
    cdef int64_t c
    for f in range(N_FRAC):
        c = t0 + cycle * FRAC_NUM[f] // FRAC_DEN[f]
        if c + tol < now:
            continue  # already over: only active or upcoming windows are useful
        buf[n].kind = kind
        buf[n].pivot_index = pivot_index
        buf[n].fraction = <double>FRAC_NUM[f] / FRAC_DEN[f]
        buf[n].center = c
        buf[n].start = c - tol
        buf[n].end = c + tol
        buf[n].active = buf[n].start <= now
        n += 1
    return n


cdef int cmp_win(const void* pa, const void* pb) noexcept nogil:
    # A total order (start, kind, pivot, center), so the unstable qsort is still deterministic.
    cdef const Win* a = <const Win*>pa
    cdef const Win* b = <const Win*>pb
    if a.start != b.start:
        return -1 if a.start < b.start else 1
    if a.kind != b.kind:
        return -1 if a.kind < b.kind else 1
    if a.pivot_index != b.pivot_index:
        return -1 if a.pivot_index < b.pivot_index else 1
    return (a.center > b.center) - (a.center < b.center)


cdef object windows_array(Win* w, Py_ssize_t n):
    qsort(w, n, sizeof(Win), cmp_win)
    cdef cnp.ndarray out = np.empty(n, dtype=WINDOW_DTYPE)
    if n > 0:
        memcpy(cnp.PyArray_DATA(out), w, n * sizeof(Win))
    return out


cdef int cmp_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*>a)[0], y = (<const double*>b)[0]
    return (x > y) - (x < y)


cdef Py_ssize_t merge_levels(double* lv, Py_ssize_t n, double tick, double* out, int64_t* cnt) noexcept nogil:
    """Sort, then fold levels closer than one tick to the first of their run into one (their
    mean); ``cnt`` counts the folded levels (confluence). Measuring from the run's first level,
    not the previous one, keeps a chain of near levels from growing into a wide band."""
    qsort(lv, n, sizeof(double), cmp_double)
    cdef Py_ssize_t i, m = 0
    cdef double first = 0.0, acc = 0.0
    for i in range(n):
        if m > 0 and lv[i] - first < tick:
            acc += lv[i]
            cnt[m - 1] += 1
            out[m - 1] = acc / cnt[m - 1]
        else:
            first = lv[i]
            acc = lv[i]
            out[m] = lv[i]
            cnt[m] = 1
            m += 1
    return m


cdef class GannState:
    """One engine update. Levels are nearest first; windows are active or upcoming only."""
    cdef readonly object supports, support_counts, resistances, resistance_counts
    cdef readonly double nearest_support, nearest_resistance
    cdef readonly object windows
    cdef readonly int active_windows
    cdef readonly object angles          # nine lines from the last pivot at the last bar (NaN if none)
    cdef readonly double squared_ratio   # (move since last pivot / scale) / bars since it; 1 = squared
    cdef readonly double direction, confidence
    cdef readonly list reasons

    def __repr__(self):
        return (f"GannState(direction={self.direction:+.3f}, confidence={self.confidence:.3f}, "
                f"support={self.nearest_support:.2f}, resistance={self.nearest_resistance:.2f}, "
                f"active_windows={self.active_windows}, reasons={self.reasons!r})")


cdef class GannEngine:
    """Gann pillar over the last few confirmed pivots.

    Rule (why: Gann levels only matter where price reacts, and time windows say when a reaction
    is due):

    * Levels: pivot price (0 degrees) and ``n_steps`` Square-of-Nine steps either side of each
      of the last ``n_pivots`` pivots (``decimal_shift`` as in ``square_of_nine``), merged
      within one tick; the merge count is confluence.
    * Level vote L: +1 if price is within ``near_ticks`` of the nearest support (at or below
      price), -1 if within reach of the nearest resistance (the nearer wins; a tie votes 0).
      Strength s = 1 - distance/near, or 1 when the last bar pierced the level and closed back
      on the right side (a bounce/rejection). Confluence factor cf = min(1, 0.5 + 0.25*count).
    * Time T = 1 when a cycle or squaring window is active at the last bar, or price and time
      are squared from the last pivot (``|squared_ratio - 1| <= square_tolerance``).
    * Angle vote a: +1 above the 1x1 rising from the last low / above the 1x1 falling from the
      last high, -1 below it, 0 without pivots.
    * ``direction = L*s*cf*(0.5 + 0.3*T) + 0.2*a``; ``confidence = s*cf*(0.5 + 0.5*T)`` plus 0.1
      when the angle agrees (capped at 1), or ``0.1*(1 + T)*|a|`` without a level.
    """
    def __cinit__(self, *args, **kwargs):
        self.lv = NULL
        self.merged = NULL
        self.cnt = NULL
        self.win = NULL
        self.key = NULL
        self.nkey = -1

    def __init__(self, double price_per_bar, *, double tick_size=0.10, int n_steps=8, double step_deg=45.0,
                 int decimal_shift=0, int n_pivots=4, int n_levels=8, double near_ticks=10.0, int cycle_bars=360, int tol_bars=2,
                 double cycle_days=360.0, double tol_days=1.0, double square_tolerance=0.05):
        # n_steps and n_pivots size C buffers (n_pivots * (2 * n_steps + 1) doubles, in C int):
        # bounded so the products cannot overflow into a small allocation.
        for name, v, ok in (("price_per_bar", price_per_bar, price_per_bar > 0 and isfinite(price_per_bar)),
                            ("tick_size", tick_size, tick_size > 0), ("n_steps", n_steps, 1 <= n_steps <= 10_000),
                            ("step_deg", step_deg, step_deg > 0),
                            ("decimal_shift", decimal_shift, -12 <= decimal_shift <= 12), ("n_pivots", n_pivots, 1 <= n_pivots <= 10_000),
                            ("n_levels", n_levels, n_levels >= 1), ("near_ticks", near_ticks, near_ticks > 0),
                            ("cycle_bars", cycle_bars, cycle_bars >= 1), ("tol_bars", tol_bars, tol_bars >= 0),
                            ("cycle_days", cycle_days, cycle_days >= 0), ("tol_days", tol_days, tol_days >= 0),
                            ("square_tolerance", square_tolerance, square_tolerance >= 0)):
            if not ok:
                raise ValueError(f"{name} was {v}, out of range")
        self.scale = price_per_bar
        self.tick_size = tick_size
        self.n_steps = n_steps
        self.step_deg = step_deg
        self.decimal_shift = decimal_shift
        self.shift_mult = 10.0 ** decimal_shift
        self.n_pivots = n_pivots
        self.n_levels = n_levels
        self.near_ticks = near_ticks
        self.cycle_bars = cycle_bars
        self.tol_bars = tol_bars
        self.cycle_days = cycle_days
        self.tol_days = tol_days
        self.square_tolerance = square_tolerance
        self.lv_cap = n_pivots * (2 * n_steps + 1)
        self.win_cap = n_pivots * 2 * N_FRAC + 2 * n_pivots
        self.lv = <double*>malloc(self.lv_cap * sizeof(double))
        self.merged = <double*>malloc(self.lv_cap * sizeof(double))
        self.cnt = <int64_t*>malloc(self.lv_cap * sizeof(int64_t))
        self.win = <Win*>malloc(self.win_cap * sizeof(Win))
        self.key = <double*>malloc(n_pivots * sizeof(double))
        if self.lv == NULL or self.merged == NULL or self.cnt == NULL or self.win == NULL or self.key == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.lv)
        free(self.merged)
        free(self.cnt)
        free(self.win)
        free(self.key)

    cdef cache_bar_offsets(self, dt):
        if dt.names is None:
            raise ValueError("bars must be a structured array or a mapping of columns")
        offs = []
        for name, want in BAR_FIELDS:
            f = dt.fields.get(name)
            if f is None:
                raise ValueError(f"bars has no field {name!r}")
            if f[0] != want:
                raise ValueError(f"bars field {name!r} is {f[0]}, expected {want}")
            offs.append(f[1])
        self.off_hi, self.off_lo, self.off_cl, self.off_ts = offs
        self.bars_dtype = dt

    cdef bint levels_cached(self, const PivotRec* pv, Py_ssize_t k) noexcept:
        cdef Py_ssize_t i
        if k != self.nkey:
            return False
        for i in range(k):
            if pv[i].price != self.key[i]:
                return False
        return True

    cdef int step(self, const char* bp, Py_ssize_t nb, Py_ssize_t bstride, Py_ssize_t off_hi, Py_ssize_t off_lo,
                  Py_ssize_t off_cl, Py_ssize_t off_ts, const PivotRec* pv, Py_ssize_t npv, double last_price,
                  int64_t first_index, GannOut* o) except -1:
        """``update`` without the Python objects: the numbers go to ``o``; the merged levels stay in
        ``merged``/``cnt`` and the windows, unsorted, in ``win[:nw]`` until the next call. Bars are
        ``nb`` records ``bstride`` bytes apart with int64 fields at the given byte offsets."""
        if self.lv == NULL:
            raise RuntimeError("GannEngine.__init__ was not called")
        if not isfinite(last_price) or not (last_price > 0.0):
            raise ValueError(f"last_price was {last_price}, expected a finite price > 0")
        if nb <= 0:
            raise ValueError("bars is empty")
        cdef const char* last = bp + (nb - 1) * bstride
        cdef int64_t now = first_index + nb - 1
        cdef int64_t now_ts = (<const int64_t*>(last + off_ts))[0]
        cdef double bar_low = (<const int64_t*>(last + off_lo))[0] * 1e-9
        cdef double bar_high = (<const int64_t*>(last + off_hi))[0] * 1e-9
        cdef double bar_close = (<const int64_t*>(last + off_cl))[0] * 1e-9
        cdef Py_ssize_t p0 = npv - self.n_pivots if npv > self.n_pivots else 0, i, k, nl = 0, nw = 0
        cdef double r, x, d = self.step_deg / 180.0, R
        cdef int64_t b, tol_ns = llround(self.tol_days * NS_PER_DAY), cyc_ns = llround(self.cycle_days * NS_PER_DAY)
        cdef int64_t c
        for i in range(p0, npv):
            if pv[i].index > now or not (pv[i].price > 0.0):
                raise ValueError(f"pivots[{i}] (index {pv[i].index}, price {pv[i].price}) is after the last bar "
                                 f"{now} or not a positive price")

        # Square-of-Nine levels of each recent pivot, then merged into confluence clusters.
        if not self.levels_cached(pv + p0, npv - p0):
            for i in range(p0, npv):
                r = sqrt(pv[i].price * self.shift_mult)
                self.lv[nl] = pv[i].price
                nl += 1
                for k in range(1, self.n_steps + 1):
                    x = r + k * d
                    self.lv[nl] = x * x / self.shift_mult
                    nl += 1
                    x = r - k * d
                    if x > 0.0:
                        self.lv[nl] = x * x / self.shift_mult
                        nl += 1
            self.nm = merge_levels(self.lv, nl, self.tick_size, self.merged, self.cnt)
            for i in range(p0, npv):
                self.key[i - p0] = pv[i].price
            self.nkey = npv - p0
        cdef Py_ssize_t split = 0  # first merged level above price
        while split < self.nm and self.merged[split] <= last_price:
            split += 1
        cdef Py_ssize_t ns = min(split, self.n_levels), nr = min(self.nm - split, self.n_levels)
        o.split, o.ns, o.nr = split, ns, nr
        o.nearest_support = self.merged[split - 1] if ns > 0 else NAN
        o.nearest_resistance = self.merged[split] if nr > 0 else NAN

        # Time: cycle fractions in bars and calendar days, and range squaring of each swing.
        for i in range(p0, npv):
            nw = add_cycle(self.win, nw, 0, pv[i].index, pv[i].index, now, self.cycle_bars, self.tol_bars)
            b = pv[i].index - first_index
            if cyc_ns > 0 and b >= 0:  # the pivot's timestamp is only known inside the window
                nw = add_cycle(self.win, nw, 1, pv[i].index, (<const int64_t*>(bp + b * bstride + off_ts))[0],
                               now_ts, cyc_ns, tol_ns)
            R = fabs(pv[i].price - pv[i - 1].price) / self.scale if i > 0 else INFINITY
            if R < 1e15:  # a swing needing more bars than that is no window, and would overflow
                for k in range(2):
                    c = pv[i - 1 + k].index + <int64_t>floor(R + 0.5)
                    if c + self.tol_bars >= now:
                        self.win[nw].kind = 2
                        self.win[nw].pivot_index = pv[i].index
                        self.win[nw].fraction = 1.0
                        self.win[nw].center = c
                        self.win[nw].start = c - self.tol_bars
                        self.win[nw].end = c + self.tol_bars
                        self.win[nw].active = c - self.tol_bars <= now
                        nw += 1
        self.nw = nw
        cdef int n_active = 0
        for i in range(nw):
            n_active += self.win[i].active
        o.n_active = n_active

        cdef int a = 0, L = 0, T = 1 if n_active > 0 else 0
        cdef double s = 0.0, cf = 0.0, near = self.near_ticks * self.tick_size, ds, dr, one, elapsed
        cdef double angles[9]
        o.squared_ratio = NAN
        o.has_pivot = npv > 0
        o.squared = False
        o.bounce = False
        o.level_count = 0
        if npv > 0:
            i = npv - 1
            elapsed = <double>(now - pv[i].index)
            fill_angles(angles, pv[i].price, <double>pv[i].index, <double>now, self.scale, 1 if pv[i].kind < 0 else -1)
            one = angles[4]
            o.one, o.pivot_price, o.pivot_index, o.pivot_kind = one, pv[i].price, pv[i].index, pv[i].kind
            if pv[i].kind < 0:
                a = 1 if last_price >= one else -1
            else:
                a = -1 if last_price <= one else 1
            if elapsed > 0:
                o.squared_ratio = fabs(last_price - pv[i].price) / self.scale / elapsed
                if fabs(o.squared_ratio - 1.0) <= self.square_tolerance:
                    T = 1
                    o.squared = True

        ds = last_price - o.nearest_support if ns > 0 else INFINITY
        dr = o.nearest_resistance - last_price if nr > 0 else INFINITY
        if ds <= near and ds < dr:
            L = 1
            o.level_count = self.cnt[split - 1]
            cf = min(1.0, 0.5 + 0.25 * o.level_count)
            if bar_low <= o.nearest_support and bar_close >= o.nearest_support:
                s = 1.0
                o.bounce = True
            else:
                s = 1.0 - ds / near
        elif dr <= near and dr < ds:
            L = -1
            o.level_count = self.cnt[split]
            cf = min(1.0, 0.5 + 0.25 * o.level_count)
            if bar_high >= o.nearest_resistance and bar_close <= o.nearest_resistance:
                s = 1.0
                o.bounce = True
            else:
                s = 1.0 - dr / near
        if L != 0:
            o.direction = L * s * cf * (0.5 + 0.3 * T) + 0.2 * a
            o.confidence = min(1.0, s * cf * (0.5 + 0.5 * T) + (0.1 if a == L else 0.0))
        else:
            o.direction = 0.2 * a
            o.confidence = 0.1 * (1 + T) * abs(a)
        o.a, o.L, o.T = a, L, T
        return 0

    cdef list reasons_of(self, const GannOut* o):
        """The reasons of an evaluation, from its numbers alone."""
        reasons = []
        if o.has_pivot:
            if o.pivot_kind < 0:
                reasons.append(f"{'above' if o.a > 0 else 'below'} the 1x1 up from low {o.pivot_price:.2f} ({o.one:.2f})")
            else:
                reasons.append(f"{'below' if o.a < 0 else 'above'} the 1x1 down from high {o.pivot_price:.2f} ({o.one:.2f})")
            if o.squared:
                reasons.append(f"price and time squared from pivot at bar {o.pivot_index}")
        if o.n_active > 0:
            reasons.append(f"{o.n_active} time window(s) active")
        if o.L == 1:
            if o.bounce:
                reasons.append(f"bounced off support {o.nearest_support:.2f} (x{o.level_count})")
            else:
                reasons.append(f"near support {o.nearest_support:.2f} (x{o.level_count})")
        elif o.L == -1:
            if o.bounce:
                reasons.append(f"rejected at resistance {o.nearest_resistance:.2f} (x{o.level_count})")
            else:
                reasons.append(f"near resistance {o.nearest_resistance:.2f} (x{o.level_count})")
        return reasons

    def update(self, bars, pivots, double last_price, int64_t first_index=0):
        """Evaluate at the last bar of ``bars`` (a bar-ring structured array or any mapping with
        int64 ``high``, ``low``, ``close`` and uint64 ``ts_close`` columns). Bar ``i`` of ``bars``
        has absolute index ``first_index + i``, the index space of ``pivots`` (so a tracker's
        absolute pivots work with a sliding window). ``last_price`` is in price units."""
        if self.lv == NULL:
            raise RuntimeError("GannEngine.__init__ was not called")
        if not isfinite(last_price) or not (last_price > 0.0):
            raise ValueError(f"last_price was {last_price}, expected a finite price > 0")
        # Bars: read the ring records in place through cached field offsets (no column views).
        cdef cnp.ndarray barr
        if type(bars) is np.ndarray and (<cnp.ndarray>bars).ndim == 1:
            barr = <cnp.ndarray>bars
        else:  # a mapping of columns: pack the four used ones once
            cols = [np.asarray(bars[name]) for name, _ in BAR_FIELDS]
            if len({len(c_) for c_ in cols}) != 1:
                raise ValueError("bars columns differ in length")
            barr = np.empty(len(cols[0]), dtype=PACKED_BARS)
            for (name, _), c_ in zip(BAR_FIELDS, cols):
                barr[name] = c_
        if barr.dtype is not self.bars_dtype:
            self.cache_bar_offsets(barr.dtype)
        cdef Py_ssize_t nb = barr.shape[0], i
        if nb == 0:
            raise ValueError("bars is empty")
        # Pivots: a contiguous PIVOT_DTYPE array is read in place; anything else is packed.
        cdef cnp.ndarray parr
        if (type(pivots) is np.ndarray and (pivots.dtype is PIVOT_DTYPE or pivots.dtype == PIVOT_DTYPE)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>pivots)):
            parr = <cnp.ndarray>pivots
        else:
            idx_, price_, kind_ = pivots["index"], pivots["price"], pivots["kind"]
            parr = np.zeros(len(idx_), dtype=PIVOT_DTYPE)
            parr["index"], parr["price"], parr["kind"] = idx_, price_, kind_
        cdef const PivotRec* pv = <const PivotRec*>cnp.PyArray_DATA(parr)
        cdef Py_ssize_t npv = parr.shape[0]
        cdef GannOut o
        self.step(<const char*>cnp.PyArray_DATA(barr), nb, barr.strides[0], self.off_hi, self.off_lo, self.off_cl,
                  self.off_ts, pv, npv, last_price, first_index, &o)

        sup = np.empty(o.ns, dtype=np.float64)
        supc = np.empty(o.ns, dtype=np.int64)
        res = np.empty(o.nr, dtype=np.float64)
        resc = np.empty(o.nr, dtype=np.int64)
        cdef double[:] vs = sup, vr = res
        cdef int64_t[:] cs = supc, cr = resc
        for i in range(o.ns):
            vs[i] = self.merged[o.split - 1 - i]
            cs[i] = self.cnt[o.split - 1 - i]
        for i in range(o.nr):
            vr[i] = self.merged[o.split + i]
            cr[i] = self.cnt[o.split + i]
        cdef GannState st = GannState.__new__(GannState)
        st.supports, st.support_counts, st.resistances, st.resistance_counts = sup, supc, res, resc
        st.nearest_support = o.nearest_support
        st.nearest_resistance = o.nearest_resistance
        st.windows = windows_array(self.win, self.nw)
        st.active_windows = o.n_active
        if npv > 0:
            angles = np.empty(9, dtype=np.float64)
            fill_angles(<double*>cnp.PyArray_DATA(angles), pv[npv - 1].price, <double>pv[npv - 1].index,
                        <double>(first_index + nb - 1), self.scale, 1 if pv[npv - 1].kind < 0 else -1)
            st.angles = angles
        else:
            st.angles = np.full(9, NAN)
        st.squared_ratio = o.squared_ratio
        st.direction = o.direction
        st.confidence = o.confidence
        st.reasons = self.reasons_of(&o)
        return st

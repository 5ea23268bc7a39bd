# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Causal swing pivots (zigzag) over columns of the native bar ring.

Units: ``high``/``low`` are the ring's int64 fixed-point columns (1e-9 USD), passed as they
are (strided views of the structured ring array are accepted, so nothing is copied).
Thresholds are in price units (USD, float); they are rounded once to fixed point so that
every comparison is exact integer arithmetic. Output prices are float64 price units, with the
exact fixed-point value alongside.

Rule (one state machine, shared by ``zigzag`` and ``PivotTracker``, so the two cannot drift):

* While seeking a high, the candidate is the highest high since the last low pivot (earliest
  bar on ties). Bar ``j`` confirms it when ``low[j] <= candidate - threshold[j]``: the
  candidate comes from bars before ``j`` only, so ``confirm_index > index`` always.
* On confirmation the opposite candidate is the lowest low after the new pivot, up to and
  including bar ``j``; symmetric for lows (``high[j] >= candidate + threshold[j]``).
* Before the first pivot both candidates are tracked; if one bar confirms both, the swing whose
  extreme is older wins (ties: the larger excursion, then the high). At most one pivot per bar.
* A NaN, infinite or non-positive threshold confirms nothing at that bar (e.g. ATR warm-up),
  but candidates keep updating.
* An outside bar that confirms the pending high is not itself a high candidate: its high and
  low order inside the bar is unknown, and we assume the confirming move came second.

Highs and lows alternate by construction. Pivots confirmed at or before bar ``n`` depend only
on bars ``0..n`` (the machine never looks ahead), so truncating the input never changes them.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport isfinite, NAN
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memmove, memcpy

cnp.import_array()

cdef double PRICE_SCALE = 1e-9
cdef double FIXED_PER_PRICE = 1e9
# Thresholds beyond this would overflow candidate +/- threshold on int64; no real swing is that big.
cdef double MAX_THRESHOLD_FP = 4.0e18

PIVOT_DTYPE = np.dtype(
    [("index", "<i8"), ("confirm_index", "<i8"), ("price_fp", "<i8"), ("price", "<f8"), ("kind", "<i8")]
)


# Pivot (same layout as PIVOT_DTYPE) and the ZZ state are declared in pivots.pxd.
if PIVOT_DTYPE.itemsize != sizeof(Pivot) or not PIVOT_DTYPE.isnative:
    raise ImportError("PIVOT_DTYPE does not match the C Pivot struct")


cdef int zz_init(ZZ* s) except -1:
    s.dir = 0
    s.n = 0
    s.hi = 0
    s.hi_idx = -1
    s.lo = 0
    s.lo_idx = -1
    s.buf_first = 0
    s.blen = 0
    s.bcap = 64
    s.npiv = 0
    s.pcap = 16
    s.bh = <int64_t*>malloc(s.bcap * sizeof(int64_t))
    s.bl = <int64_t*>malloc(s.bcap * sizeof(int64_t))
    s.piv = <Pivot*>malloc(s.pcap * sizeof(Pivot))
    if s.bh == NULL or s.bl == NULL or s.piv == NULL:
        zz_free(s)
        raise MemoryError()
    return 0


cdef void zz_free(ZZ* s) noexcept:
    free(s.bh)
    free(s.bl)
    free(s.piv)
    s.bh = NULL
    s.bl = NULL
    s.piv = NULL


cdef int buf_grow(ZZ* s) except -1:
    cdef int64_t* nh = <int64_t*>realloc(s.bh, 2 * s.bcap * sizeof(int64_t))
    if nh == NULL:
        raise MemoryError()
    s.bh = nh
    cdef int64_t* nl = <int64_t*>realloc(s.bl, 2 * s.bcap * sizeof(int64_t))
    if nl == NULL:
        raise MemoryError()
    s.bl = nl
    s.bcap *= 2
    return 0


cdef inline int buf_push(ZZ* s, int64_t h, int64_t l) except -1:
    if s.blen == s.bcap:
        buf_grow(s)
    s.bh[s.blen] = h
    s.bl[s.blen] = l
    s.blen += 1
    return 0


cdef void buf_drop_through(ZZ* s, int64_t idx) noexcept:
    """Forget bars with absolute index <= idx (they can no longer become a candidate)."""
    cdef Py_ssize_t k = <Py_ssize_t>(idx + 1 - s.buf_first)
    if k <= 0:
        return
    if k >= s.blen:
        s.buf_first += s.blen
        s.blen = 0
        return
    memmove(s.bh, s.bh + k, (s.blen - k) * sizeof(int64_t))
    memmove(s.bl, s.bl + k, (s.blen - k) * sizeof(int64_t))
    s.blen -= k
    s.buf_first += k


cdef int emit(ZZ* s, int64_t index, int64_t price, int64_t kind) except -1:
    cdef Pivot* np_
    if s.npiv == s.pcap:
        np_ = <Pivot*>realloc(s.piv, 2 * s.pcap * sizeof(Pivot))
        if np_ == NULL:
            raise MemoryError()
        s.piv = np_
        s.pcap *= 2
    s.piv[s.npiv].index = index
    s.piv[s.npiv].confirm = s.n
    s.piv[s.npiv].price_fp = price
    s.piv[s.npiv].price = price * PRICE_SCALE
    s.piv[s.npiv].kind = kind
    s.npiv += 1
    return 0


cdef inline bint threshold_fp(double thr, int64_t* out) noexcept nogil:
    # Round half up by hand: llround is an out-of-line libm call on the per-bar path.
    cdef double t = thr * FIXED_PER_PRICE
    if not (t > 0.0):  # also NaN
        return False
    if t > MAX_THRESHOLD_FP:  # also +inf
        if not isfinite(t):
            return False
        t = MAX_THRESHOLD_FP
    out[0] = <int64_t>(t + 0.5)
    return out[0] > 0


cdef int zz_step(ZZ* s, int64_t h, int64_t l, double thr) except -2:
    """Feed one bar. Returns the kind of the pivot it confirmed (+1, -1) or 0."""
    cdef int64_t j = s.n, t = 0, best, best_idx
    cdef int kind = 0
    cdef bint up, dn
    cdef Py_ssize_t k, start
    if j == 0:
        s.hi = h
        s.hi_idx = 0
        s.lo = l
        s.lo_idx = 0
        buf_push(s, h, l)
        s.n = 1
        return 0
    if threshold_fp(thr, &t):
        # Candidates come from bars < j: the comparison happens before bar j is absorbed.
        if s.dir == 1:
            if l <= s.hi - t:
                kind = 1
        elif s.dir == -1:
            if h >= s.lo + t:
                kind = -1
        else:
            up = l <= s.hi - t
            dn = h >= s.lo + t
            if up and dn:
                if s.hi_idx != s.lo_idx:
                    kind = 1 if s.hi_idx < s.lo_idx else -1
                else:
                    kind = 1 if (s.hi - l) >= (h - s.lo) else -1
            elif up:
                kind = 1
            elif dn:
                kind = -1
    buf_push(s, h, l)
    if kind == 1:
        emit(s, s.hi_idx, s.hi, 1)
        # New low candidate: the earliest lowest low strictly after the pivot, through bar j.
        start = <Py_ssize_t>(s.hi_idx + 1 - s.buf_first)
        if start < 0:
            start = 0
        best = s.bl[start]
        best_idx = start
        for k in range(start + 1, s.blen):
            if s.bl[k] < best:
                best = s.bl[k]
                best_idx = k
        s.lo = best
        s.lo_idx = best_idx + s.buf_first
        s.dir = -1
        buf_drop_through(s, s.lo_idx)
    elif kind == -1:
        emit(s, s.lo_idx, s.lo, -1)
        start = <Py_ssize_t>(s.lo_idx + 1 - s.buf_first)
        if start < 0:
            start = 0
        best = s.bh[start]
        best_idx = start
        for k in range(start + 1, s.blen):
            if s.bh[k] > best:
                best = s.bh[k]
                best_idx = k
        s.hi = best
        s.hi_idx = best_idx + s.buf_first
        s.dir = 1
        buf_drop_through(s, s.hi_idx)
    else:
        if s.dir >= 0 and h > s.hi:
            s.hi = h
            s.hi_idx = j
        if s.dir <= 0 and l < s.lo:
            s.lo = l
            s.lo_idx = j
        if s.dir == 1:
            buf_drop_through(s, s.hi_idx)
        elif s.dir == -1:
            buf_drop_through(s, s.lo_idx)
        else:
            buf_drop_through(s, s.hi_idx if s.hi_idx < s.lo_idx else s.lo_idx)
    s.n = j + 1
    return kind


cdef object pivots_array(ZZ* s, Py_ssize_t first):
    cdef Py_ssize_t n = s.npiv - first
    cdef cnp.ndarray out = np.empty(n if n > 0 else 0, dtype=PIVOT_DTYPE)
    if n > 0:
        memcpy(cnp.PyArray_DATA(out), s.piv + first, n * sizeof(Pivot))
    return out


def zigzag(const int64_t[:] high, const int64_t[:] low, threshold):
    """Confirmed swing pivots of the whole input, as a ``PIVOT_DTYPE`` array in confirmation order.

    ``threshold`` (price units) is a scalar, or a float64 array with one value per bar (e.g.
    ``atr_mult * wilder_atr(...)``; ``threshold[j]`` is the one in force at bar ``j``).
    """
    cdef Py_ssize_t n = high.shape[0], j
    if low.shape[0] != n:
        raise ValueError(f"low has {low.shape[0]} bars, high has {n}")
    cdef const double[:] thr_arr
    cdef double thr_scalar = NAN
    # isinstance, not np.isscalar: the latter costs a microsecond per call.
    cdef bint per_bar = not isinstance(threshold, (float, int, np.floating, np.integer))
    if per_bar:
        thr_np = np.asarray(threshold, dtype=np.float64)
        if thr_np.shape != (n,):
            raise ValueError(f"threshold has shape {thr_np.shape}, expected a scalar or ({n},)")
        thr_arr = thr_np
    else:
        thr_scalar = float(threshold)
        if not (thr_scalar > 0.0):
            raise ValueError(f"threshold was {threshold}, expected > 0")
    cdef ZZ s
    zz_init(&s)
    try:
        for j in range(n):
            zz_step(&s, high[j], low[j], thr_arr[j] if per_bar else thr_scalar)
        return pivots_array(&s, 0)
    finally:
        zz_free(&s)


def atr_threshold(const int64_t[:] high, const int64_t[:] low, const int64_t[:] close,
                  double atr_mult, int atr_period=14):
    """Per-bar reversal threshold ``atr_mult * wilder_atr`` (price units; NaN during warm-up).
    Wilder's ATR at bar j uses bars 0..j only, so the threshold stays causal."""
    if not (atr_mult > 0.0):
        raise ValueError(f"atr_mult was {atr_mult}, expected > 0")
    from aurum.kernels.bar_stats import wilder_atr
    return atr_mult * wilder_atr(high, low, close, atr_period)


def ring_columns(bars):
    """``(high, low, close, ts_close)`` of a bar-ring structured array, as views (no copies).

    Field access on a structured array is a strided view, which every kernel here accepts.
    Only a dtype mismatch (e.g. a float column from a test fixture) forces a conversion copy.
    """
    names = bars.dtype.names
    if names is None:
        raise ValueError("bars must be a structured array with high, low, close, ts_close fields")
    cols = []
    for name, dt in (("high", np.int64), ("low", np.int64), ("close", np.int64), ("ts_close", np.uint64)):
        if name not in names:
            raise ValueError(f"bars has no field {name!r}")
        col = bars[name]
        cols.append(col if col.dtype == dt else col.astype(dt))
    return tuple(cols)


def to_price(fixed):
    """Fixed-point (1e-9 USD) to float64 price units. Always a new array: the types differ."""
    return np.asarray(fixed, dtype=np.int64) * PRICE_SCALE


cdef class PivotTracker:
    """Incremental zigzag: feed one closed bar at a time; gives exactly ``zigzag``'s pivots.

    Exactly one of ``threshold_ticks`` (fixed threshold ``threshold_ticks * tick_size``) or
    ``atr_mult`` (threshold ``atr_mult * atr`` with the ``atr`` passed to ``update``) is set.
    """
    def __cinit__(self, threshold_ticks=None, atr_mult=None, double tick_size=0.10):
        zz_init(&self.s)

    def __init__(self, threshold_ticks=None, atr_mult=None, double tick_size=0.10):
        if (threshold_ticks is None) == (atr_mult is None):
            raise ValueError("set exactly one of threshold_ticks and atr_mult")
        if not (tick_size > 0.0):
            raise ValueError(f"tick_size was {tick_size}, expected > 0")
        self.tick_size = tick_size
        self.use_atr = atr_mult is not None
        self.atr_mult = NAN
        self.fixed_thr = NAN
        if self.use_atr:
            if not (float(atr_mult) > 0.0):
                raise ValueError(f"atr_mult was {atr_mult}, expected > 0")
            self.atr_mult = float(atr_mult)
        else:
            if not (float(threshold_ticks) > 0.0):
                raise ValueError(f"threshold_ticks was {threshold_ticks}, expected > 0")
            self.fixed_thr = float(threshold_ticks) * tick_size

    def __dealloc__(self):
        zz_free(&self.s)

    cpdef int update(self, int64_t high, int64_t low, double atr=NAN) except -2:
        """Feed the bar that just closed (fixed-point high/low; ATR in price units, ignored in
        tick mode). Returns +1/-1 if this bar confirmed a high/low pivot, else 0."""
        return zz_step(&self.s, high, low, self.atr_mult * atr if self.use_atr else self.fixed_thr)

    def update_many(self, const int64_t[:] high, const int64_t[:] low, atr=None):
        """Feed several bars in order (catch-up after a restart). Returns the pivots they confirmed."""
        cdef Py_ssize_t n = high.shape[0], j, first = self.s.npiv
        if low.shape[0] != n:
            raise ValueError(f"low has {low.shape[0]} bars, high has {n}")
        cdef const double[:] a
        if self.use_atr:
            if atr is None:
                raise ValueError("atr is required in atr_mult mode")
            a = np.asarray(atr, dtype=np.float64)
            if a.shape[0] != n:
                raise ValueError(f"atr has {a.shape[0]} bars, high has {n}")
            for j in range(n):
                zz_step(&self.s, high[j], low[j], self.atr_mult * a[j])
        else:
            for j in range(n):
                zz_step(&self.s, high[j], low[j], self.fixed_thr)
        return pivots_array(&self.s, first)

    @property
    def pivots(self):
        """All confirmed pivots so far (a fresh ``PIVOT_DTYPE`` array)."""
        return pivots_array(&self.s, 0)

    def last_pivots(self, Py_ssize_t count):
        """The ``count`` most recent confirmed pivots (cheap: only those are copied)."""
        if count < 0:
            raise ValueError(f"count was {count}, expected >= 0")
        return pivots_array(&self.s, self.s.npiv - count if count < self.s.npiv else 0)

    @property
    def n_pivots(self):
        return self.s.npiv

    @property
    def n_bars(self):
        return self.s.n

    @property
    def direction(self):
        """+1 seeking a high (last pivot a low), -1 seeking a low, 0 before the first pivot."""
        return self.s.dir

    @property
    def candidate(self):
        """``(index, price_fp)`` of the unconfirmed extreme being tracked (None before any bar or
        before the first pivot, when there are two)."""
        if self.s.n == 0 or self.s.dir == 0:
            return None
        if self.s.dir == 1:
            return (self.s.hi_idx, self.s.hi)
        return (self.s.lo_idx, self.s.lo)

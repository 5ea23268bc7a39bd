# cython: language_level=3
"""Per-bar statistics over columns of the native bar ring (views, no copies)."""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.math cimport fabs, fmax, NAN

cnp.import_array()

cdef double PRICE_SCALE = 1e-9


def true_range(const int64_t[:] high, const int64_t[:] low, const int64_t[:] close):
    """True range per bar, in price units. Bar 0 has no previous close: high - low."""
    cdef Py_ssize_t n = high.shape[0], i
    if low.shape[0] != n or close.shape[0] != n:
        raise ValueError(f"column lengths differ: high {n}, low {low.shape[0]}, close {close.shape[0]}")
    out = np.empty(n, dtype=np.float64)
    cdef double[:] o = out
    cdef double h, l, pc
    for i in range(n):
        h = high[i] * PRICE_SCALE
        l = low[i] * PRICE_SCALE
        if i == 0:
            o[i] = h - l
        else:
            pc = close[i - 1] * PRICE_SCALE
            o[i] = fmax(h - l, fmax(fabs(h - pc), fabs(l - pc)))
    return out


def wilder_atr(const int64_t[:] high, const int64_t[:] low, const int64_t[:] close, int period=14):
    """Wilder's average true range: the mean of the first ``period`` true ranges, then
    ``atr = (atr * (period - 1) + tr) / period``. NaN until ``period`` bars exist."""
    if period < 1:
        raise ValueError(f"period was {period}, expected >= 1")
    tr = true_range(high, low, close)
    cdef double[:] t = tr
    cdef Py_ssize_t n = t.shape[0], i
    out = np.full(n, NAN, dtype=np.float64)
    cdef double[:] o = out
    cdef double acc = 0.0
    for i in range(n):
        if i < period:
            acc += t[i]
            if i == period - 1:
                acc /= period
                o[i] = acc
        else:
            acc = (acc * (period - 1) + t[i]) / period
            o[i] = acc
    return out

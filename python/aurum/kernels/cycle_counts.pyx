# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Heuristic 21/45/90-bar counts from swing pivots (microstructure.md 7.5 found no authoritative
definition): for each period and each of the last few confirmed pivots, how many bars have
passed and whether the bar sits in an inflection window ``anchor + k*period +- tolerance``.
``aurum.kernels.cycles`` re-exports ``cycle_counts`` and ``PeriodCount`` and its ``CycleEngine``
uses the same window rule (``window_k``) for its per-bar read-out.
"""

from collections import namedtuple

import numpy as np
from libc.stdint cimport int64_t

PeriodCount = namedtuple(
    "PeriodCount", "period anchor_bar anchor_kind bars_since cycle in_window window_start window_end")
PeriodCount.__doc__ = """One (period, anchor pivot) count. ``bars_since = current_bar - anchor_bar``;
the inflection windows are the bars ``anchor_bar + k*period +- tolerance``, k >= 1. ``cycle``
is the k of the window containing the bar, else of the next one; ``window_start`` and
``window_end`` are that window's absolute bars (inclusive)."""


cdef object _periods_arr(periods, int tolerance):
    p = np.asarray(periods, dtype=np.int64).reshape(-1)
    if p.shape[0] == 0:
        raise ValueError("periods is empty")
    # Windows of 2*tolerance+1 bars must not touch, or "which k" stops being well defined.
    if tolerance < 0 or np.any(p <= 2 * tolerance + 1):
        raise ValueError(f"periods {tuple(p)} with tolerance {tolerance}: expected "
                         f"tolerance >= 0 and every period > 2*tolerance + 1")
    return p


cdef int check_pivots(const char* idx, Py_ssize_t n, Py_ssize_t idx_stride, const char* kinds,
                      Py_ssize_t n_kinds, Py_ssize_t kind_stride, long long cur, int anchors) except -1:
    """The arguments' checks; pivots are int64 values ``*_stride`` bytes apart."""
    cdef Py_ssize_t j
    cdef int64_t v, prev = 0, kd
    if n_kinds != n:
        raise ValueError(f"pivot_kinds has {n_kinds} values, pivot_bar_indices {n}")
    for j in range(n):
        v = (<const int64_t*>(idx + j * idx_stride))[0]
        if j and v < prev:
            raise ValueError(f"pivot_bar_indices must be ascending (index {j})")
        prev = v
        kd = (<const int64_t*>(kinds + j * kind_stride))[0]
        if kd != 1 and kd != -1:
            raise ValueError(f"pivot_kinds[{j}] was {kd}, expected +1 (high) or -1 (low)")
    if cur < 0:
        raise ValueError(f"current_bar was {cur}, expected >= 0")
    if anchors < 1:
        raise ValueError(f"anchors was {anchors}, expected >= 1")
    return 0


cdef list _counts(pivot_bar_indices, pivot_kinds, long long cur, const int64_t[::1] per,
                  int tol, int anchors):
    cdef const int64_t[:] idx = np.asarray(pivot_bar_indices, dtype=np.int64)
    cdef const int64_t[:] kinds = np.asarray(pivot_kinds, dtype=np.int64)
    cdef Py_ssize_t n = idx.shape[0], end, j, q
    cdef long long a, d, k, L
    if n and kinds.shape[0]:
        check_pivots(<const char*>&idx[0], n, idx.strides[0], <const char*>&kinds[0], kinds.shape[0],
                     kinds.strides[0], cur, anchors)
    else:  # nothing to read: only the length check can fail
        check_pivots(NULL, n, 0, NULL, kinds.shape[0], 0, cur, anchors)
    end = n
    while end > 0 and idx[end - 1] > cur:   # not yet confirmed at this bar: unknown
        end -= 1
    out = []
    for q in range(per.shape[0]):
        L = per[q]
        for j in range(end - 1, max(0, end - anchors) - 1, -1):
            a = idx[j]
            d = cur - a
            k = window_k(d, L, tol)
            out.append(tuple.__new__(PeriodCount, (  # skips namedtuple's slow Python __new__
                L, a, kinds[j], d, k, k * L - tol <= d <= k * L + tol, a + k * L - tol, a + k * L + tol)))
    return out


def cycle_counts(pivot_bar_indices, pivot_kinds, long long current_bar, periods=(21, 45, 90),
                 int tolerance=2, int anchors=3):
    """Bar counts from the last ``anchors`` confirmed pivots, for each of ``periods``.

    ``pivot_bar_indices`` (ascending bar numbers) and ``pivot_kinds`` (+1 swing high, -1 swing
    low) are pivots already confirmed; those after ``current_bar`` are ignored (not known yet
    at that bar). Returns ``PeriodCount`` tuples by period (as given), then by anchor, most
    recent first; empty if no pivot is at or before ``current_bar``. Pure and deterministic."""
    return _counts(pivot_bar_indices, pivot_kinds, current_bar,
                   _periods_arr(periods, tolerance), tolerance, anchors)

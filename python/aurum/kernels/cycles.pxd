# Declarations shared with the decision kernels (aurum.kernels.bar_pillars calls
# CycleEngine.step on the bar window's closes in place). Definitions are in cycles.pyx.
from libc.stdint cimport int64_t

ctypedef double* dptr

cdef enum:
    HT_RING = 16      # >= 10: the I1 Hilbert reads the detrender 3 + 6 bars back
    HT_LOOKBACK = 32  # TA-Lib's lookback; the Hilbert stages start at bar 12

cdef struct HTState:
    long long n                # bars pushed
    double price[4]            # last four prices, for the WMA's trailing value
    double wma_sub, wma_sum, trailing
    long long h                # Hilbert steps taken (bars pushed - 12)
    double sm[HT_RING]         # Hilbert inputs and outputs, ring-indexed by h
    double det[HT_RING]
    double q1[HT_RING]
    double prev_i2, prev_q2, re, im, period, smooth_period


cdef class AutocorrPeriodogram:
    cdef readonly int min_period, max_period, avg_length
    cdef int n_per, ring_mask
    cdef long long n
    cdef double a_hp1, a_hp2, a_hp3, c1, c2, c3
    cdef double c_1, c_2, hp_1, hp_2, f_1, f_2, max_pwr
    cdef readonly double dominant  # dominant cycle at the last bar (NaN until defined)
    cdef dptr ring, corr, cos_tab, sin_tab, r, pwr, cp, sp  # views into one calloc'd block

    cdef void _clear(self) noexcept nogil
    cdef double _push(self, double price) noexcept nogil
    cpdef double update(self, double price)


# One CycleEngine evaluation as numbers: enough to rebuild the reasons later.
cdef struct CycleOut:
    long long bar
    double hilbert, acp, dom, phase, direction, confidence, conc, agree
    Py_ssize_t top                 # index of the period with the largest Goertzel share
    double top_share
    unsigned long long window_mask # tracked periods in an inflection window (bit i: periods[i])
    int n_window
    long long bars_since, anchor_bar, anchor_kind   # the most recent anchor's count (if any)
    int dom_state                  # 0: no dominant cycle, 1: window shorter than it, 2: phase read
    bint has_agree


cdef class CycleEngine:
    cdef readonly tuple periods
    cdef readonly int tolerance, anchors
    cdef readonly str detrend
    cdef int mode
    cdef int64_t[::1] per_i
    cdef double[::1] per_d
    cdef double[::1] share        # the last step's Goertzel shares
    cdef HTState ht
    cdef AutocorrPeriodogram acp
    cdef long long last_bar
    cdef bint started

    cdef int step(self, const double* closes, Py_ssize_t n, const int64_t* piv_idx, const int64_t* piv_kind,
                  Py_ssize_t npiv, bint has_pivots, long long current_bar, CycleOut* o) except -1
    cdef tuple window_of(self, const CycleOut* o)
    cdef list reasons_of(self, const CycleOut* o)

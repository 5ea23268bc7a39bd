# Declarations shared with the decision kernels (aurum.kernels.bar_pillars calls
# GannEngine.step on the bar window in place). Definitions and the rule are in gann.pyx.
from libc.stdint cimport int64_t

# Same layout as WINDOW_DTYPE / PIVOT_DTYPE (checked at import), so arrays move by memcpy and
# pointer reads instead of one strided field view per column.
cdef struct Win:
    int64_t kind
    int64_t pivot_index
    double fraction
    int64_t center
    int64_t start
    int64_t end
    unsigned char active


cdef struct PivotRec:
    int64_t index
    int64_t confirm
    int64_t price_fp
    double price
    int64_t kind


# One evaluation, as numbers: enough to rebuild the reasons later without the engine's buffers
# (they belong to the next update by then).
cdef struct GannOut:
    double direction, confidence
    double nearest_support, nearest_resistance, squared_ratio
    double pivot_price, one           # the last pivot and its 1x1 line at the last bar
    int64_t pivot_index, pivot_kind
    int64_t level_count               # confluence of the level that voted (0 without one)
    Py_ssize_t split, ns, nr          # merged levels: first above price, supports, resistances
    int n_active, a, L, T
    bint has_pivot, squared, bounce


cdef class GannEngine:
    cdef readonly double scale, tick_size, step_deg, near_ticks, cycle_days, tol_days, square_tolerance
    cdef readonly int n_steps, n_pivots, cycle_bars, tol_bars, n_levels, decimal_shift
    cdef double shift_mult
    cdef double* lv
    cdef double* merged
    cdef int64_t* cnt
    cdef Win* win
    cdef Py_ssize_t lv_cap, win_cap
    cdef object bars_dtype
    cdef Py_ssize_t off_hi, off_lo, off_cl, off_ts
    # Levels depend on the recent pivots' prices only: kept until those change.
    cdef double* key
    cdef Py_ssize_t nkey, nm, nw

    cdef cache_bar_offsets(self, dt)
    cdef bint levels_cached(self, const PivotRec* pv, Py_ssize_t k) noexcept
    cdef int step(self, const char* bp, Py_ssize_t nb, Py_ssize_t bstride, Py_ssize_t off_hi, Py_ssize_t off_lo,
                  Py_ssize_t off_cl, Py_ssize_t off_ts, const PivotRec* pv, Py_ssize_t npv, double last_price,
                  int64_t first_index, GannOut* o) except -1
    cdef list reasons_of(self, const GannOut* o)

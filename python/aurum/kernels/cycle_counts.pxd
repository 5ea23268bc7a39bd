# The 21/45/90-bar counts, shared with CycleEngine (cycles.pyx). Definitions in cycle_counts.pyx.
from libc.stdint cimport int64_t

cdef object _periods_arr(periods, int tolerance)
cdef int check_pivots(const char* idx, Py_ssize_t n, Py_ssize_t idx_stride, const char* kinds,
                      Py_ssize_t n_kinds, Py_ssize_t kind_stride, long long cur, int anchors) except -1
cdef list _counts(pivot_bar_indices, pivot_kinds, long long cur, const int64_t[::1] per, int tol, int anchors)


cdef inline long long window_k(long long d, long long L, int tol) noexcept nogil:
    # The first window not yet over, ``d`` bars after the anchor: k = ceil((d - tol) / L) >= 1
    # (C division truncates; the numerator is positive on that branch).
    return 1 if d - tol <= L else (d - tol + L - 1) // L

# The per-instrument bar history the bar-level pillars read in place; definitions in barwindow.pyx.
from libc.stdint cimport int64_t, uint64_t

cdef enum:
    HISTORY_BARS = 512   # bars kept per instrument for the bar-level kernels

# Same layout as PACKED_BAR (checked at import).
cdef struct PackedBar:
    int64_t high, low, close
    uint64_t ts_close

cdef class BarWindow:
    cdef object _rows, _closes     # numpy arrays owning the storage (the properties are views)
    cdef PackedBar* rows
    cdef double* closes            # close in price units, alongside
    cdef Py_ssize_t lo, hi         # the window is rows[lo:hi]
    cdef readonly long long count  # bars seen in total (the index of the next bar)

    cdef void push(self, int64_t high, int64_t low, int64_t close, uint64_t ts_close) noexcept

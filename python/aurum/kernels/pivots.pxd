# Declarations shared with the decision kernels (aurum.kernels.bar_pillars reads a tracker's
# pivots in place). Definitions and the rule are in pivots.pyx.
from libc.stdint cimport int64_t

# Same layout as PIVOT_DTYPE (checked at import), so results leave by one memcpy.
cdef struct Pivot:
    int64_t index
    int64_t confirm
    int64_t price_fp
    double price
    int64_t kind


cdef struct ZZ:
    int dir                 # 0 before the first pivot, +1 seeking a high, -1 seeking a low
    int64_t n               # bars seen
    int64_t hi, hi_idx      # high candidate (dir 0 / +1)
    int64_t lo, lo_idx      # low candidate (dir 0 / -1)
    # Bars after the candidate extreme, needed to pick the opposite candidate on a switch: with a
    # per-bar threshold (ATR) that extreme may sit before the confirming bar.
    int64_t* bh
    int64_t* bl
    int64_t buf_first       # absolute index of bh[0]
    Py_ssize_t blen, bcap
    Pivot* piv
    Py_ssize_t npiv, pcap


cdef class PivotTracker:
    cdef ZZ s
    cdef bint use_atr
    cdef double fixed_thr
    cdef readonly double atr_mult
    cdef readonly double tick_size

    cpdef int update(self, int64_t high, int64_t low, double atr=*) except -2

# Bar-level pillar providers with a C entry point; definitions in bar_pillars.pyx.
from libc.stdint cimport int64_t

from aurum.kernels.barwindow cimport BarWindow
from aurum.kernels.pillar_out cimport PillarOut, Reasons
from aurum.kernels.pivots cimport PivotTracker


cdef class BarPillar(Reasons):
    cdef readonly str name
    cdef int eval(self, BarWindow win, int64_t ts, double price, PillarOut out) except -1


cdef class PivotFeed:
    cdef readonly double threshold_ticks, tick_size
    cdef dict _tracks
    cdef PivotTracker sync(self, BarWindow win)

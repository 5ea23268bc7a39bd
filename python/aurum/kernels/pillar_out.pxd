# One pillar's result at one bar close, as numbers; the reasons (strings) are only built when
# someone reads the Pillar. Definitions in pillar_out.pyx.
from libc.stdint cimport int64_t


cdef struct Comp:
    double v, w           # value in [-1, 1] and weight (pillars.combine's components)
    double x              # a float the reason prints
    int64_t a, b          # integers the reason prints
    int code, flag        # which reason (the formatter's own numbering), and a variant bit


cdef class Reasons:
    cdef tuple reasons(self, PillarOut out)


cdef class PillarOut:
    cdef readonly str name
    cdef bint present
    cdef double direction, confidence
    cdef object pillar           # the materialised Pillar (cached), or a Python provider's own
    cdef Reasons src             # builds the reasons from the numbers below
    cdef object obj              # anything else the reasons need (astro: the day's event types)
    cdef double raw[32]          # the provider's numbers (a GannOut, CycleOut, ...; 256 aligned bytes)
    cdef Comp* comps
    cdef Py_ssize_t ncomp, cap

    cdef void clear(self) noexcept
    cdef void set(self, double direction, double confidence, Reasons src) noexcept
    cdef int set_pillar(self, object pillar) except -1
    cdef int add(self, double v, double w, int code, int flag, int64_t a, int64_t b, double x) except -1
    cdef bint combine(self, Reasons src) noexcept
    cpdef object materialise(self)


cdef double int_div(int64_t a, int64_t b) except? -1.0


# Python's min(a, b) / max(a, b) on floats (the first argument wins ties; NaN handling as
# Python's), so clamps written as max(-1.0, min(1.0, x)) in the reference give the same bits.
cdef inline double py_min(double a, double b) noexcept nogil:
    return b if b < a else a

cdef inline double py_max(double a, double b) noexcept nogil:
    return b if b > a else a

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A pillar's result at one bar close kept as numbers, with its reasons built on demand.

The per-bar path (``aurum.kernels.decision_core``) fills one ``PillarOut`` per pillar and
instrument and reuses it every bar; a ``Pillar`` (``aurum.decision.scorer``) with its reason
strings is only built when a signal is emitted or a score is read, which is rare next to bar
closes, and the strings are most of a pillar's cost.

``combine`` is ``aurum.decision.pillars.combine`` on the components, in the same order and
with the same operations, so it gives the same bits.
"""

from libc.math cimport fabs, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc

from aurum.decision.scorer import Pillar

cdef double EXACT = 9007199254740992.0  # 2**53: integers up to here convert to double exactly


cdef double int_div(int64_t a, int64_t b) except? -1.0:
    """Python's ``a / b`` on ints: one rounding of the exact quotient (a plain double division
    while both convert exactly, else Python's own)."""
    if fabs(<double>a) <= EXACT and fabs(<double>b) <= EXACT:
        return <double>a / <double>b
    return float(int(a) / int(b))


cdef class Reasons:
    """Builds a pillar's reasons from a ``PillarOut``'s numbers (subclassed per pillar)."""

    cdef tuple reasons(self, PillarOut out):
        raise NotImplementedError


cdef class PillarOut:
    def __cinit__(self, str name):
        self.name = name
        self.comps = NULL
        self.ncomp = self.cap = 0
        self.clear()

    def __dealloc__(self):
        free(self.comps)

    cdef void clear(self) noexcept:
        self.present = False
        self.direction = self.confidence = 0.0
        self.pillar = None
        self.src = None
        self.obj = None
        self.ncomp = 0

    cdef void set(self, double direction, double confidence, Reasons src) noexcept:
        self.present = True
        self.direction, self.confidence = direction, confidence
        self.src = src
        self.pillar = None

    cdef int set_pillar(self, object pillar) except -1:
        """A Pillar (or None) from a plain-Python provider: kept as it is."""
        self.clear()
        if pillar is not None:
            self.present = True
            self.direction, self.confidence = float(pillar.direction), float(pillar.confidence)
            self.pillar = pillar
        return 0

    cdef int add(self, double v, double w, int code, int flag, int64_t a, int64_t b, double x) except -1:
        cdef Comp* grown
        if self.ncomp == self.cap:
            grown = <Comp*>realloc(self.comps, (2 * self.cap + 8) * sizeof(Comp))
            if grown == NULL:
                raise MemoryError()
            self.comps, self.cap = grown, 2 * self.cap + 8
        self.comps[self.ncomp] = Comp(v=v, w=w, x=x, a=a, b=b, code=code, flag=flag)
        self.ncomp += 1
        return 0

    cdef bint combine(self, Reasons src) noexcept:
        """``pillars.combine`` over the components: sets direction and confidence (present), or
        leaves the pillar absent when no component counts."""
        cdef double wsum = 0.0, num = 0.0, mag = 0.0, v, w, agreement
        cdef Py_ssize_t i, live = 0
        for i in range(self.ncomp):  # three running sums, each in the reference's order
            v, w = self.comps[i].v, self.comps[i].w
            if w > 0 and isfinite(v):
                live += 1
                wsum += w
                num += v * w
                mag += fabs(v) * w
        if live == 0 or wsum <= 0:
            self.present = False
            return False
        agreement = fabs(num) / mag if mag > 0 else 0.0
        self.set(py_max(-1.0, py_min(1.0, num / wsum)), py_max(0.0, py_min(1.0, (mag / wsum) * agreement)), src)
        return True

    cpdef object materialise(self):
        """The ``Pillar`` (None when absent), built once per bar."""
        if not self.present:
            return None
        if self.pillar is None:
            self.pillar = Pillar(self.name, self.direction, self.confidence, self.src.reasons(self))
        return self.pillar

    def components(self):
        """``(value, weight)`` of each component, in order (for tests)."""
        return [(self.comps[i].v, self.comps[i].w) for i in range(self.ncomp)]

    @property
    def numbers(self):
        """``(direction, confidence)``, or None when absent (no Pillar built)."""
        return (self.direction, self.confidence) if self.present else None


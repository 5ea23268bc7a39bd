# SignalBuilder's state machine (the Python class subclasses this); definitions in signal_step.pyx.
cdef class BuilderCore:
    cdef public object config
    cdef public object position
    cdef public long long seq
    cdef public long long _bars_since_change

    cpdef object step(self, double direction, double confidence, object risk=*, object feed_degraded=*)
    cpdef object _veto(self, object risk, object feed_degraded)

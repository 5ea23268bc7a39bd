# QMO and IMO over native records in place; definitions in flow_pillars.pyx.
from libc.stdint cimport int64_t, uint32_t

from aurum.kernels.pillar_out cimport PillarOut
from aurum.kernels.records cimport FlowRec, IcebergRec, SweepRec, ZoneRec

cdef int qmo_eval(PillarOut out, const FlowRec** flow, Py_ssize_t nflow, object pressure,
                  const SweepRec** sweeps, Py_ssize_t nsw, const ZoneRec* zones, Py_ssize_t nz, bint by_iid,
                  uint32_t iid, int64_t price, int64_t tick, int near_ticks=*) except -1
cdef int imo_eval(PillarOut out, const IcebergRec* ice, Py_ssize_t nice, const ZoneRec* zones, Py_ssize_t nz,
                  bint by_iid, uint32_t iid, int64_t price, int64_t tick, bint mbo, int near_ticks=*) except -1

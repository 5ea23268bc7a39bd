# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""QMO and IMO pillars over the native engines' records in place (no numpy per bar).

The same rules as ``aurum.decision.pillars.qmo_pillar`` / ``imo_pillar`` (the reference, and
the documentation of what each component means), written so every float comes out with the
same bits: the same operations in the same order, integer divisions rounded as Python rounds
them, and the absorption sum in numpy's pairwise order. Reasons are only formatted when the
Pillar is read (``PillarOut.materialise``).

``qmo`` and ``imo`` take numpy arrays like the reference and return a Pillar: they are the
entry points the tests compare against it.
"""

import numpy as np
cimport numpy as cnp
from libc.math cimport fabs, isfinite, tanh
from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.stdlib cimport free, malloc, realloc

from aurum.kernels.pillar_out cimport Comp, PillarOut, Reasons, int_div, py_max, py_min
from aurum.kernels.records cimport FlowRec, IcebergRec, SweepRec, ZoneRec

cnp.import_array()

cdef double SCALE = 1e-9
cdef enum:
    ZONE_ICEBERG = 1
    ZONE_ABSORPTION = 2
    ZONE_BROKEN = 3
    ICEBERG_ACTIVE = 1
    SIDE_B = 66   # ord("B")
    SIDE_A = 65   # ord("A")
    FLAG_BEAR = 1
    FLAG_BULL = 2
    FLAG_STACKED_BUY = 4
    FLAG_STACKED_SELL = 8
    SWEEP_STOP_RUN = 2

# Reason codes of the components (see QmoReasons / ImoReasons).
cdef enum:
    Q_DELTA, Q_CVD, Q_STACKED, Q_DIV, Q_DEPTH, Q_OFI, Q_SWEEP, Q_ABSORB, I_ICEBERG, I_ZONE

# numpy's float64 add.reduce (pairwise summation), so the absorption sum matches the reference's
# ``array.sum()`` bit for bit.
cdef double pairwise(const double* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j, n2
    cdef double res
    cdef double r[8]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise(a, n2) + pairwise(a + n2, n - n2)


cdef double* scratch = NULL
cdef Py_ssize_t scratch_cap = 0


cdef double* terms(Py_ssize_t n) except NULL:
    """Scratch room for ``n`` >= 1 doubles (kept between calls: one bar at a time, under the GIL)."""
    global scratch, scratch_cap
    cdef double* grown
    if n > scratch_cap:
        grown = <double*>realloc(scratch, n * sizeof(double))
        if grown == NULL:
            raise MemoryError()
        scratch, scratch_cap = grown, n
    return scratch


cdef class QmoReasons(Reasons):
    cdef tuple reasons(self, PillarOut out):
        from aurum.decision.pillars import top_reasons
        cdef Comp c
        cdef Py_ssize_t i
        comps = []
        for i in range(out.ncomp):
            c = out.comps[i]
            if c.code == Q_DELTA:
                r = f"bar delta {c.a:+d} of {c.b} lots"
            elif c.code == Q_CVD:
                r = f"CVD {c.a:+d} over 5 bars"
            elif c.code == Q_STACKED:
                r = "stacked buy imbalance" if c.v > 0 else "stacked sell imbalance" if c.v < 0 else "stacked both ways"
            elif c.code == Q_DIV:
                r = "bullish delta divergence" if c.v > 0 else "bearish delta divergence"
            elif c.code == Q_DEPTH:
                r = f"depth imbalance {c.x:+.2f}"
            elif c.code == Q_OFI:
                r = f"OFI {c.x:+.0f}"
            elif c.code == Q_SWEEP:
                r = f"{abs(c.a)} net {'buy' if c.a > 0 else 'sell'} sweep weight"
            else:
                r = f"absorption {'at the bid' if c.x > 0 else 'at the ask'} near {c.a * SCALE:.2f}"
            comps.append((c.v, c.w, r))
        return top_reasons(comps)


cdef class ImoReasons(Reasons):
    cdef tuple reasons(self, PillarOut out):
        from aurum.decision.pillars import top_reasons
        cdef Comp c
        cdef Py_ssize_t i
        if out.ncomp == 0:
            return ("no icebergs or memory zones near the price",)
        comps = []
        for i in range(out.ncomp):
            c = out.comps[i]
            side = "support" if c.flag & 1 else "resistance"
            if c.code == I_ICEBERG:
                r = f"{'native' if c.flag & 2 else 'synthetic'} iceberg {side} at {c.a * SCALE:.2f} (hidden {c.b})"
            else:
                r = f"iceberg memory {side} {c.a * SCALE:.2f}"
            comps.append((c.v, c.w, r))
        return top_reasons(comps)


cdef QmoReasons QMO_REASONS = QmoReasons()
cdef ImoReasons IMO_REASONS = ImoReasons()


cdef int qmo_eval(PillarOut out, const FlowRec** flow, Py_ssize_t nflow, object pressure,
                  const SweepRec** sweeps, Py_ssize_t nsw, const ZoneRec* zones, Py_ssize_t nz, bint by_iid,
                  uint32_t iid, int64_t price, int64_t tick, int near_ticks=10) except -1:
    """``qmo_pillar``: ``flow`` this instrument's flow bars, oldest first (the last just closed);
    ``sweeps`` this instrument's; ``zones`` the whole table, rows of other instruments skipped
    when ``by_iid``."""
    out.clear()
    if nflow == 0:
        return 0
    cdef const FlowRec* bar = flow[nflow - 1]
    cdef uint64_t span = 0
    cdef int64_t vol = <int64_t>(bar.buy_volume + bar.sell_volume), d_cvd, net = 0
    cdef Py_ssize_t i, k, nnear = 0
    cdef double v, di, ofi, depth, dist, absorb
    cdef uint32_t flags = bar.flags
    cdef double* t
    if vol > 0:
        out.add(int_div(bar.delta, vol), 0.30, Q_DELTA, 0, bar.delta, vol, 0.0)
    if nflow >= 5:
        for i in range(nflow - 5, nflow):
            span += flow[i].buy_volume
        for i in range(nflow - 5, nflow):
            span += flow[i].sell_volume
        if span == 0:
            span = 1
        d_cvd = bar.cvd - flow[nflow - 5].cvd
        out.add(tanh(int_div(3 * d_cvd, <int64_t>span)), 0.20, Q_CVD, 0, d_cvd, 0, 0.0)
    if flags & (FLAG_STACKED_BUY | FLAG_STACKED_SELL):
        v = (1.0 if flags & FLAG_STACKED_BUY else 0.0) - (1.0 if flags & FLAG_STACKED_SELL else 0.0)
        out.add(v, 0.15, Q_STACKED, 0, 0, 0, 0.0)
    if flags & (FLAG_BULL | FLAG_BEAR):
        v = (1.0 if flags & FLAG_BULL else 0.0) - (1.0 if flags & FLAG_BEAR else 0.0)
        out.add(v, 0.15, Q_DIV, 0, 0, 0, 0.0)
    if pressure is not None and pressure.get("updates", 0) > 0:
        di = float(pressure["depth_imbalance"])
        if isfinite(di):
            out.add(di, 0.10, Q_DEPTH, 0, 0, 0, di)
        ofi = float(pressure["ofi_decayed"])
        half = (pressure["bid_depth"] + pressure["ask_depth"]) / 20  # Python numbers, as the reference
        depth = half if half > 1.0 else 1.0  # max(1.0, half)
        if isfinite(ofi):
            out.add(tanh(ofi / depth), 0.10, Q_OFI, 0, 0, 0, ofi)
    if nsw:
        k = 0
        for i in range(nsw):
            if sweeps[i].ts_event >= bar.ts_open and sweeps[i].ts_event < bar.ts_close:
                k += 1
                net += (1 if sweeps[i].side == SIDE_B else -1) * (2 if sweeps[i].kind == SWEEP_STOP_RUN else 1)
        if k and net:
            out.add(py_max(-1.0, py_min(1.0, net / 2.0)), 0.10, Q_SWEEP, 0, net, 0, 0.0)
    if nz and tick > 0:
        t = terms(nz)
        for i in range(nz):
            if (by_iid and zones[i].instrument_id != iid) or zones[i].kind != ZONE_ABSORPTION \
                    or zones[i].state == ZONE_BROKEN:
                continue
            dist = <double>abs(zones[i].price - price) / <double>tick
            if dist <= near_ticks:
                # Sellers absorbed at a bid: support (bullish). Buyers absorbed at an ask: bearish.
                t[nnear] = ((1.0 if zones[i].side == SIDE_B else -1.0) * zones[i].strength) \
                    * (1.0 - dist / <double>(near_ticks + 1))
                nnear += 1
        if nnear:
            absorb = 0.0 + pairwise(t, nnear)
            if absorb != 0.0:
                out.add(py_max(-1.0, py_min(1.0, absorb)), 0.15, Q_ABSORB, 0, price, 0, absorb)
    out.combine(QMO_REASONS)
    return 0


cdef int imo_eval(PillarOut out, const IcebergRec* ice, Py_ssize_t nice, const ZoneRec* zones, Py_ssize_t nz,
                  bint by_iid, uint32_t iid, int64_t price, int64_t tick, bint mbo, int near_ticks=30) except -1:
    """``imo_pillar`` over whole tables (rows of other instruments skipped when ``by_iid``)."""
    out.clear()
    if not mbo:
        return 0
    cdef Py_ssize_t i
    cdef double dist, size
    cdef bint up, down
    if tick > 0:
        for i in range(nice):
            if (by_iid and ice[i].instrument_id != iid) or ice[i].state != ICEBERG_ACTIVE:
                continue
            dist = <double>abs(ice[i].price - price) / <double>tick
            up = ice[i].side == SIDE_B and ice[i].price <= price
            down = ice[i].side == SIDE_A and ice[i].price >= price
            if dist <= near_ticks and (up or down):
                size = tanh(int_div(<int64_t>(ice[i].hidden_qty + ice[i].filled_qty), 100))
                out.add(size if up else -size, 1 - dist / <double>(near_ticks + 1), I_ICEBERG,
                        (1 if up else 0) | (2 if ice[i].kind == 1 else 0), ice[i].price, <int64_t>ice[i].hidden_qty, 0.0)
        for i in range(nz):
            if (by_iid and zones[i].instrument_id != iid) or zones[i].kind != ZONE_ICEBERG:
                continue
            dist = <double>abs(zones[i].price - price) / <double>tick
            up = zones[i].side == SIDE_B and zones[i].price <= price
            down = zones[i].side == SIDE_A and zones[i].price >= price
            if dist <= near_ticks and (up or down):
                out.add(zones[i].strength if up else -zones[i].strength, 0.5 * (1 - dist / <double>(near_ticks + 1)),
                        I_ZONE, 1 if up else 0, zones[i].price, 0, 0.0)
    if out.ncomp == 0:
        out.set(0.0, 0.0, IMO_REASONS)
    else:
        out.combine(IMO_REASONS)
    return 0


# ---- numpy entry points (the reference's signatures; for tests) ----

cdef const char* rows_of(cnp.ndarray a, object dtype) except NULL:
    if a.dtype != dtype or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"expected a contiguous {dtype} array")
    return <const char*>cnp.PyArray_DATA(a) if a.shape[0] else <const char*>""


def qmo(flow, pressure, sweeps, zones, long long price, long long tick, int near_ticks=10):
    """``qmo_pillar(flow, pressure, sweeps, zones, price, tick, near_ticks)`` on this path."""
    from aurum.engines import FLOW_DTYPE, SWEEP_DTYPE, ZONE_DTYPE
    cdef cnp.ndarray f = np.ascontiguousarray(flow), s = np.ascontiguousarray(sweeps)
    cdef cnp.ndarray z = np.ascontiguousarray(zones)
    cdef const char* fb = rows_of(f, FLOW_DTYPE)
    cdef const char* sb = rows_of(s, SWEEP_DTYPE)
    cdef const char* zb = rows_of(z, ZONE_DTYPE)
    cdef Py_ssize_t nf = f.shape[0], ns = s.shape[0], i
    cdef const FlowRec** fp = <const FlowRec**>malloc((nf + 1) * sizeof(void*))
    cdef const SweepRec** sp = <const SweepRec**>malloc((ns + 1) * sizeof(void*))
    out = PillarOut("qmo")
    try:
        for i in range(nf):
            fp[i] = <const FlowRec*>(fb + i * sizeof(FlowRec))
        for i in range(ns):
            sp[i] = <const SweepRec*>(sb + i * sizeof(SweepRec))
        qmo_eval(out, fp, nf, pressure, sp, ns, <const ZoneRec*>zb, z.shape[0], False, 0, price, tick, near_ticks)
    finally:
        free(fp)
        free(sp)
    return out.materialise()


def imo(icebergs, zones, long long price, long long tick, bint mbo, int near_ticks=30):
    """``imo_pillar(icebergs, zones, price, tick, mbo, near_ticks)`` on this path."""
    from aurum.engines import ICEBERG_DTYPE, ZONE_DTYPE
    cdef cnp.ndarray i_ = np.ascontiguousarray(icebergs), z = np.ascontiguousarray(zones)
    out = PillarOut("imo")
    imo_eval(out, <const IcebergRec*>rows_of(i_, ICEBERG_DTYPE), i_.shape[0],
             <const ZoneRec*>rows_of(z, ZONE_DTYPE), z.shape[0], False, 0, price, tick, mbo, near_ticks)
    return out.materialise()


def np_sum(values):
    """``float(np.asarray(values, float).sum())`` as the absorption component computes it."""
    cdef const double[::1] v = np.ascontiguousarray(values, dtype=np.float64)
    return 0.0 + pairwise(&v[0], v.shape[0]) if v.shape[0] else 0.0


def combine(str name, comps):
    """``pillars.combine(name, comps)`` on this path (components ``(value, weight, reason)``;
    reasons are not kept: the result is ``(direction, confidence)`` or None)."""
    out = PillarOut(name)
    for v, w, _ in comps:
        out.add(v, w, 0, 0, 0, 0, 0.0)
    return out.numbers if out.combine(QMO_REASONS) else None

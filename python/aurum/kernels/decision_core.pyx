# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The decision engine's per-bar path: everything a time-bar close costs, in C.

For each closed time bar: append it to the instrument's bar window, read the order-flow and
sweep ring tails and the iceberg and zone tables in place, evaluate the QMO and IMO pillars
(``flow_pillars``) and the bar-level providers (``bar_pillars``), score the five pillars and
ask the signal builder whether the decision changes. Python objects are only built when they
are needed: a ``Signal`` when the builder emits (``DecisionEngine._emit``), a ``Score`` with
its ``Pillar``s and reasons when someone reads ``last_score``.

Every number is computed with the same operations in the same order as the plain-Python
reference (``aurum.testing.reference_decision``), so scores and signals are bit-identical;
``tests/test_decision_core.py`` replays sessions through both.
"""

from collections.abc import Mapping

import numpy as np
cimport numpy as cnp
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.math cimport fabs, fmax, isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from aurum import _native
from aurum.decision.scorer import PILLARS, Score
from aurum.decision.signal import Level, SignalBuilder
from aurum.engines import FLOW_DTYPE, ICEBERG_DTYPE, SWEEP_DTYPE, ZONE_DTYPE
from aurum.rings import BAR_DTYPE, ring_array

from aurum.kernels.bar_pillars cimport BarPillar
from aurum.kernels.barwindow cimport BarWindow, PackedBar
from aurum.kernels.flow_pillars cimport imo_eval, qmo_eval
from aurum.kernels.pillar_out cimport PillarOut, py_max, py_min
from aurum.kernels.records cimport BarRec, FlowRec, IcebergRec, SweepRec, ZoneRec
from aurum.kernels.signal_step cimport BuilderCore

cnp.import_array()

cdef enum:
    FLOW_KEEP = 16        # flow bars QMO looks at
    FLOW_TAIL = 2048      # flow records kept across instruments: FLOW_KEEP for each of 128 (a parent
                          # subscription's months and spreads; at 128 with 8 kept, 26 instruments
                          # already pushed an instrument's CVD bars out)
    SWEEP_TAIL = 256      # sweep records kept across instruments
    NP = 5                # pillars, in PILLARS order
cdef enum:
    P_QMO = 0
    P_IMO = 1
    P_GANN = 2

cdef uint64_t BAR_KIND_TIME = _native.BAR_KIND_TIME
cdef uint8_t ZONE_BROKEN = 3  # aurum.engines.ZONE_STATES: a broken zone defends nothing
cdef dict ZONE_SOURCES = {1: "iceberg zone", 2: "absorption zone"}  # by ZoneRec.kind
cdef double SCALE = 1e-9


def _check_layouts():
    # The C structs must read the numpy records the native side writes.
    cdef BarRec b
    cdef FlowRec f
    cdef SweepRec s
    cdef ZoneRec z
    cdef IcebergRec i
    for dtype, size, fields in (
        (BAR_DTYPE, sizeof(BarRec), {"ts_open": <char*>&b.ts_open - <char*>&b, "ts_close": <char*>&b.ts_close - <char*>&b,
                                     "high": <char*>&b.high - <char*>&b, "low": <char*>&b.low - <char*>&b,
                                     "close": <char*>&b.close - <char*>&b,
                                     "instrument_id": <char*>&b.instrument_id - <char*>&b, "kind": <char*>&b.kind - <char*>&b}),
        (FLOW_DTYPE, sizeof(FlowRec), {"ts_open": <char*>&f.ts_open - <char*>&f, "ts_close": <char*>&f.ts_close - <char*>&f,
                                       "delta": <char*>&f.delta - <char*>&f, "cvd": <char*>&f.cvd - <char*>&f,
                                       "buy_volume": <char*>&f.buy_volume - <char*>&f,
                                       "sell_volume": <char*>&f.sell_volume - <char*>&f,
                                       "instrument_id": <char*>&f.instrument_id - <char*>&f,
                                       "flags": <char*>&f.flags - <char*>&f}),
        (SWEEP_DTYPE, sizeof(SweepRec), {"ts_event": <char*>&s.ts_event - <char*>&s,
                                         "instrument_id": <char*>&s.instrument_id - <char*>&s,
                                         "side": <char*>&s.side - <char*>&s, "kind": <char*>&s.kind - <char*>&s}),
        (ZONE_DTYPE, sizeof(ZoneRec), {"price": <char*>&z.price - <char*>&z, "strength": <char*>&z.strength - <char*>&z,
                                       "instrument_id": <char*>&z.instrument_id - <char*>&z,
                                       "side": <char*>&z.side - <char*>&z, "kind": <char*>&z.kind - <char*>&z,
                                       "state": <char*>&z.state - <char*>&z}),
        (ICEBERG_DTYPE, sizeof(IcebergRec), {"price": <char*>&i.price - <char*>&i,
                                             "hidden_qty": <char*>&i.hidden_qty - <char*>&i,
                                             "filled_qty": <char*>&i.filled_qty - <char*>&i,
                                             "instrument_id": <char*>&i.instrument_id - <char*>&i,
                                             "side": <char*>&i.side - <char*>&i, "kind": <char*>&i.kind - <char*>&i,
                                             "state": <char*>&i.state - <char*>&i})):
        if dtype.itemsize != size or any(dtype.fields[k][1] != v for k, v in fields.items()):
            raise ImportError(f"the C record layouts in records.pxd do not match {dtype}")


_check_layouts()


cdef class RingTail:
    """The newest ``keep`` records of a native ring, as a ``RingReader`` polled at the same
    moments and concatenated would hold them (records lapped before a poll are lost alike)."""
    cdef object pipeline, name, arr
    cdef const char* base
    cdef Py_ssize_t cap, size, keep, held, head
    cdef long long cursor
    cdef char* buf

    def __cinit__(self, pipeline, str name, Py_ssize_t keep):
        self.buf = NULL
        self.pipeline, self.name = pipeline, name
        self.arr = ring_array(pipeline, name)  # checks the record size
        self.base = <const char*>cnp.PyArray_DATA(self.arr)
        self.cap, self.size, self.keep = len(self.arr), self.arr.dtype.itemsize, keep
        self.held = self.head = self.cursor = 0
        self.buf = <char*>malloc(keep * self.size)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)

    cdef int poll(self) except -1:
        cdef long long written = self.pipeline.ring_written(self.name), seq
        if written - self.cursor > self.cap:
            self.cursor = written - self.cap
        seq = max(self.cursor, written - self.keep)  # older ones would be pushed out anyway
        while seq < written:
            memcpy(self.buf + self.head * self.size, self.base + (seq % self.cap) * self.size, self.size)
            self.head = (self.head + 1) % self.keep
            self.held = min(self.held + 1, self.keep)
            seq += 1
        self.cursor = written
        return 0

    cdef inline const char* newest(self, Py_ssize_t i) noexcept:
        """The ``i``-th newest record held (0: the newest), ``i < held``."""
        return self.buf + ((self.head - 1 - i + self.keep) % self.keep) * self.size


cdef struct Table:
    Py_buffer view
    const char* rows
    Py_ssize_t n
    bint open


cdef int table_open(Table* t, object pipeline, str name, Py_ssize_t record_size) except -1:
    view = pipeline.table(name)
    if view.record_size != record_size:
        raise RuntimeError(f"table {name!r}: native record size {view.record_size} != {record_size}; "
                           "the extension and the Python package are from different builds")
    PyObject_GetBuffer(view, &t.view, PyBUF_SIMPLE)
    t.open = True
    t.rows = <const char*>t.view.buf
    t.n = t.view.len // record_size
    return 0


cdef void table_close(Table* t) noexcept:
    if t.open:
        PyBuffer_Release(&t.view)
        t.open = False


cdef class InstrState:
    """One instrument: its bar window, its pillars at the last bar close and their score."""
    cdef readonly BarWindow window
    cdef list outs                  # PillarOut per pillar, PILLARS order
    cdef bint mbo, scored, empty
    cdef double direction, confidence
    cdef double w[NP]               # weights used, renormalised over the pillars with data
    cdef bint have[NP]
    cdef bint miss[NP]
    cdef object score               # the Score, once read
    cdef int64_t ts, price_fx
    cdef object top

    def __cinit__(self):
        self.window = BarWindow()
        self.outs = [PillarOut(name) for name in PILLARS]
        self.mbo = self.scored = False
        self.score = None

    cdef object to_score(self):
        """The Score of the last bar close (built once per bar)."""
        cdef Py_ssize_t k
        if self.score is None:
            missing = tuple([PILLARS[k] for k in range(NP) if self.miss[k]])
            if self.empty:
                self.score = Score(0.0, 0.0, {}, {}, missing)
            else:
                have = {PILLARS[k]: (<PillarOut>self.outs[k]).materialise() for k in range(NP) if self.have[k]}
                w = {PILLARS[k]: self.w[k] for k in range(NP) if self.have[k]}
                self.score = Score(self.direction, self.confidence, have, w, missing)
        return self.score


cdef int score_bar(InstrState st, const double* weights) except -1:
    """``ConfidenceScorer.score`` on the pillars' numbers (same operations, same order)."""
    cdef Py_ssize_t k
    cdef PillarOut p
    cdef double total = 0.0, num = 0.0, den = 0.0, sure = 0.0, direction, agree
    cdef bint any_ = False
    for k in range(NP):
        p = <PillarOut>st.outs[k]
        st.have[k] = p.present and weights[k] > 0
        st.miss[k] = weights[k] > 0 and not st.have[k]
        if st.have[k]:
            any_ = True
            total += weights[k]
    st.score = None
    st.empty = not any_ or total <= 0
    if st.empty:
        st.direction = st.confidence = 0.0
        return 0
    for k in range(NP):
        if st.have[k]:
            p = <PillarOut>st.outs[k]
            st.w[k] = weights[k] / total
            # Direction: confidence-weighted mean, so an unsure pillar pulls less.
            num += st.w[k] * p.confidence * p.direction
            den += st.w[k] * p.confidence
            sure += st.w[k] * p.confidence
    direction = num / den if den > 0 else 0.0
    agree = abs(num) / den if den > 0 else 0.0
    st.direction = py_max(-1.0, py_min(1.0, direction))
    st.confidence = py_max(0.0, py_min(1.0, sure * agree))
    return 0


def score_pillars(weights, pillars):
    """The core's scorer on Pillars (or None) by name, with ``weights`` as
    ``ConfidenceScorer.weights``: the entry point the tests compare against the scorer."""
    cdef InstrState st = InstrState()
    cdef double w[NP]
    cdef Py_ssize_t k
    for k in range(NP):
        w[k] = weights.get(PILLARS[k], 0)
        (<PillarOut>st.outs[k]).set_pillar(pillars.get(PILLARS[k]))
    score_bar(st, w)
    return st.to_score()


cdef class RiskLookup:
    """``Pipeline.risk(iid, now_ns)`` as a zero-argument callable, for ``SignalBuilder.step``."""
    cdef object risk, iid, now_ns

    def __cinit__(self, pipeline):
        self.risk = pipeline.risk

    def __call__(self):
        return self.risk(self.iid, self.now_ns)


cdef class DecisionCore:
    """The per-bar path of one ``DecisionEngine`` (its config, scorer weights, providers and
    builders are read from it, so changes there take effect at the next batch of bars)."""
    cdef object engine, pipeline
    cdef RingTail flow, sweeps
    cdef readonly dict states       # instrument id -> InstrState, in first-bar order
    cdef dict scored                # the same, for instruments with a score (last_score's keys)
    cdef readonly object scores
    cdef RiskLookup risk
    cdef double weights[NP]
    cdef object weights_src         # the scorer's weights dict the above were read from
    cdef list provs                 # providers by pillar index (None: absent), read per batch
    cdef const FlowRec* fl[FLOW_KEEP]
    cdef const SweepRec* sw[SWEEP_TAIL]

    def __cinit__(self, engine):
        self.engine, self.pipeline = engine, engine.pipeline
        self.flow = RingTail(self.pipeline, "flow", FLOW_TAIL)
        self.sweeps = RingTail(self.pipeline, "sweeps", SWEEP_TAIL)
        self.states, self.scored = {}, {}
        self.scores = Scores(self)
        self.risk = RiskLookup(self.pipeline)
        self.weights_src = None
        self.provs = [None] * NP

    def on_bars(self, bars, now_ns=0, feed_degraded=None):
        """New closed bars (BAR_DTYPE rows, any kinds). Returns the signals they produced."""
        cdef cnp.ndarray arr = _bar_rows(bars)
        cdef const BarRec* rows = <const BarRec*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t n = arr.shape[0], i, k, n_time = 0
        cdef Table ice, zones
        for i in range(n):
            n_time += rows[i].kind == BAR_KIND_TIME
        if n_time == 0:
            return []
        self.flow.poll()
        self.sweeps.poll()
        eng = self.engine
        wd = eng.scorer.weights
        if wd is not self.weights_src:  # set_weights() installs a new dict
            for k in range(NP):
                self.weights[k] = wd.get(PILLARS[k], 0)
            self.weights_src = wd
        provs = eng.providers
        for k in range(P_GANN, NP):
            self.provs[k] = provs.get(PILLARS[k])
        cdef int64_t tick = eng.config.tick
        out = []
        ice.open = zones.open = False
        try:
            table_open(&ice, self.pipeline, "icebergs", sizeof(IcebergRec))
            table_open(&zones, self.pipeline, "zones", sizeof(ZoneRec))
            for i in range(n):
                if rows[i].kind == BAR_KIND_TIME:
                    sig = self.bar(&rows[i], &ice, &zones, tick, now_ns, feed_degraded)
                    if sig is not None:
                        out.append(sig)
        finally:
            table_close(&ice)
            table_close(&zones)
        if out:
            eng.signals.extend(out)
        return out

    cdef object bar(self, const BarRec* r, const Table* ice, const Table* zones, int64_t tick, now_ns, feed_degraded):
        cdef uint32_t iid = r.instrument_id
        cdef InstrState st = self.states.get(iid)
        cdef int64_t price_fx = r.close, ts = r.ts_close
        cdef double price = price_fx * SCALE
        cdef Py_ssize_t nfl = 0, nsw = 0, i, k
        cdef const FlowRec* f
        cdef const SweepRec* s
        if st is None:
            st = self.states[iid] = InstrState()
        st.window.push(r.high, r.low, r.close, r.ts_close)
        if not st.mbo:
            # Once an instrument has MBO it keeps it for the session: ask until it does.
            rows = self.pipeline.engine_status().get(iid, [])
            st.mbo = any(name == "iceberg" and active for name, active, _ in rows)
        # This instrument's newest flow bars closed by this bar, oldest first, and its sweeps.
        for i in range(self.flow.held):
            f = <const FlowRec*>self.flow.newest(i)
            if f.instrument_id == iid and f.ts_close <= <uint64_t>ts:
                nfl += 1
                self.fl[FLOW_KEEP - nfl] = f
                if nfl == FLOW_KEEP:
                    break
        for i in range(self.sweeps.held):
            s = <const SweepRec*>self.sweeps.newest(i)
            if s.instrument_id == iid:
                self.sw[nsw] = s
                nsw += 1
        outs = st.outs
        qmo_eval(<PillarOut>outs[P_QMO], &self.fl[FLOW_KEEP - nfl], nfl, self.pipeline.pressure(iid), self.sw, nsw,
                 <const ZoneRec*>zones.rows, zones.n, True, iid, price_fx, tick)
        imo_eval(<PillarOut>outs[P_IMO], <const IcebergRec*>ice.rows, ice.n, <const ZoneRec*>zones.rows, zones.n,
                 True, iid, price_fx, tick, st.mbo)
        for k in range(P_GANN, NP):
            self.provide(k, <PillarOut>outs[k], st.window, ts, price)
        score_bar(st, self.weights)
        if not st.scored:
            st.scored = True
            self.scored[iid] = st
        st.ts, st.price_fx, st.top = ts, price_fx, self.pipeline.last_top(iid)
        eng = self.engine
        builder = eng._builders.get(iid)
        if builder is None:
            builder = eng._builders[iid] = SignalBuilder(eng.config.signal)
        # The builder asks for the risk inputs only when a veto can matter (Pipeline.risk is a
        # pure read, so not asking changes nothing).
        self.risk.iid, self.risk.now_ns = iid, now_ns
        if isinstance(builder, BuilderCore):
            step = (<BuilderCore>builder).step(st.direction, st.confidence, self.risk, feed_degraded)
        else:
            step = builder.step(st.direction, st.confidence, self.risk, feed_degraded)
        return None if step is None else eng._emit(iid, step)

    cdef int provide(self, Py_ssize_t k, PillarOut out, BarWindow win, int64_t ts, double price) except -1:
        prov = self.provs[k]
        if prov is None:
            out.clear()
            return 0
        try:
            if isinstance(prov, BarPillar):
                (<BarPillar>prov).eval(win, ts, price, out)
            else:
                out.set_pillar(prov(win, ts, price))
        except (ValueError, ArithmeticError) as e:  # ArithmeticError: FloatingPoint, Overflow, ZeroDivision
            # One pillar's bad bar (e.g. a NaN from a kernel) must not stop the decision:
            # it drops out, and the score reports it as missing.
            out.clear()
            self.engine.provider_errors[PILLARS[k]] = f"{type(e).__name__}: {e}"
        return 0

    cpdef object score(self, iid):
        """The Score of the instrument's last bar close, built on the first read (KeyError if none)."""
        return (<InstrState>self.scored[iid]).to_score()

    def window(self, iid):
        """The instrument's BarWindow, or None before its first bar."""
        st = self.states.get(iid)
        return None if st is None else (<InstrState>st).window

    def atr(self, iid, int period):
        """The last value of ``bar_stats.wilder_atr`` over the instrument's bar window (the
        same operations in the same order, so the same bits), or None with ``period`` bars or
        fewer, or if it is not finite. A signal needs only that value: the full column cost
        ~100 us at a signal in the daemon (cold caches), this a loop over the window."""
        if period < 1:
            raise ValueError(f"period was {period}, expected >= 1")
        st = self.states.get(iid)
        if st is None:
            return None
        cdef BarWindow win = (<InstrState>st).window
        cdef Py_ssize_t n = win.hi - win.lo, i
        if n <= period:
            return None
        cdef const PackedBar* b = win.rows + win.lo
        cdef double acc = 0.0, t, h, l, pc
        for i in range(n):
            h = b[i].high * SCALE
            l = b[i].low * SCALE
            if i == 0:
                t = h - l
            else:
                pc = b[i - 1].close * SCALE
                t = fmax(h - l, fmax(fabs(h - pc), fabs(l - pc)))
            if i < period:
                acc += t
                if i == period - 1:
                    acc /= period
            else:
                acc = (acc * (period - 1) + t) / period
        return acc if isfinite(acc) else None

    def zone_levels(self, iid, int64_t price, int64_t tick, int64_t span_ticks=200):
        """``DecisionEngine._levels`` read from the zone table in place: the instrument's
        unbroken zones within ``span_ticks`` ticks of ``price`` (DBN fixed point), as Levels
        in table order. No numpy: at a signal this was ~100 us of column copies (cold)."""
        out = []
        reach = (<object>span_ticks) * (<object>tick)  # Python ints: no wrap-around, as in the reference
        if iid < 0 or iid > 0xFFFFFFFF or reach < 0:
            return out
        cdef uint32_t want = iid
        cdef uint64_t lim = min(reach, 0xFFFFFFFFFFFFFFFF), dist
        cdef Table zones
        cdef const ZoneRec* z
        cdef Py_ssize_t i
        zones.open = False
        try:
            table_open(&zones, self.pipeline, "zones", sizeof(ZoneRec))
            for i in range(zones.n):
                z = (<const ZoneRec*>zones.rows) + i
                if z.instrument_id != want or z.state == ZONE_BROKEN:
                    continue
                # |price - z.price| without overflow: the unsigned difference of the larger
                # and the smaller is exact.
                dist = <uint64_t>z.price - <uint64_t>price if z.price >= price else <uint64_t>price - <uint64_t>z.price
                if dist <= lim:
                    out.append(Level(<double>z.price * SCALE, chr(z.side), ZONE_SOURCES.get(z.kind, "zone"), z.strength))
        finally:
            table_close(&zones)
        return out

    def active_zones(self, iid, Py_ssize_t limit):
        """The instrument's unbroken zones as the daemon's state block lists them: in table
        order, or, when there are more than ``limit``, the ``limit`` strongest (ties in table
        order). Read in place: numpy masks, a sort and column copies cost ~140 us (cold) at
        every signal's state refresh."""
        if iid < 0 or iid > 0xFFFFFFFF or limit < 0:
            return []
        cdef uint32_t want = iid
        cdef Table zones
        cdef const ZoneRec* z
        cdef Py_ssize_t i
        rows = []
        zones.open = False
        try:
            table_open(&zones, self.pipeline, "zones", sizeof(ZoneRec))
            for i in range(zones.n):
                z = (<const ZoneRec*>zones.rows) + i
                if z.instrument_id == want and z.state != ZONE_BROKEN:
                    rows.append((z.strength, <double>z.price * SCALE, min(z.volume, 0xFFFFFFFF), chr(z.side),
                                 z.kind, z.state))
        finally:
            table_close(&zones)
        if len(rows) > limit:
            rows = sorted(rows, key=_neg_strength)[:limit]  # stable, as numpy's argsort(kind="stable")
        return [{"price": px, "volume": vol, "strength": st, "side": sd, "kind": k, "state": zs}
                for st, px, vol, sd, k, zs in rows]

    def market(self, iid):
        """``(ts, price_fx, top)`` at the instrument's last bar close, or None."""
        st = self.scored.get(iid)
        return None if st is None else ((<InstrState>st).ts, (<InstrState>st).price_fx, (<InstrState>st).top)


def _neg_strength(row):
    return -row[0]


cdef class Scores:
    """``DecisionEngine.last_score``: instrument id -> Score of its last bar close. A read-only
    mapping; each Score (with its pillars' reasons) is built when first read after a bar."""
    cdef DecisionCore core

    def __cinit__(self, DecisionCore core):
        self.core = core

    def __getitem__(self, iid):
        return self.core.score(iid)

    def __iter__(self):
        return iter(list(self.core.scored))

    def __len__(self):
        return len(self.core.scored)

    def __contains__(self, iid):
        return iid in self.core.scored

    def get(self, iid, default=None):
        return self.core.score(iid) if iid in self.core.scored else default

    def keys(self):
        return list(self.core.scored)

    def items(self):
        return [(iid, self.core.score(iid)) for iid in self.core.scored]

    def values(self):
        return [self.core.score(iid) for iid in self.core.scored]

    def __repr__(self):
        return f"Scores({dict(self.items())!r})"


Mapping.register(Scores)


cdef object BAR_DESCR = BAR_DTYPE


cdef cnp.ndarray _bar_rows(bars):
    # Copies of the bar ring pass as they are; anything else becomes a contiguous BAR_DTYPE copy.
    # Rows are read through shape[0]: anything but one dimension is refused (a 0-d array has no
    # shape[0]; reading it crashed the process).
    cdef int ndim = cnp.PyArray_NDIM(<cnp.ndarray>bars) if type(bars) is np.ndarray else np.ndim(bars)
    if ndim != 1:
        raise ValueError(f"bars must be a 1-d array of bar rows, got {ndim} dimensions")
    if type(bars) is np.ndarray and (<object>cnp.PyArray_DESCR(<cnp.ndarray>bars) is BAR_DESCR
                                     or bars.dtype == BAR_DESCR):
        if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bars):
            return <cnp.ndarray>bars
        return np.ascontiguousarray(bars)
    src = np.asarray(bars)
    out = np.zeros(len(src), BAR_DTYPE)
    for name in src.dtype.names or ():
        if name in BAR_DTYPE.names:
            out[name] = src[name]
    return out

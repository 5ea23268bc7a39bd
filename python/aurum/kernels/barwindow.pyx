# cython: language_level=3, boundscheck=False, wraparound=False
"""The last ``HISTORY`` time bars of one instrument, for the bar-level pillars.

Storage is preallocated at twice the history and shifted back once full, so appending a bar
costs a few stores, not a copy of the window. Kernels read ``rows``/``closes`` in place; the
Python properties are numpy views (no copies) of the bars in the window.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memmove

cnp.import_array()

HISTORY = HISTORY_BARS
SCALE = 1e-9
PACKED_BAR = np.dtype([("high", "<i8"), ("low", "<i8"), ("close", "<i8"), ("ts_close", "<u8")])
if PACKED_BAR.itemsize != sizeof(PackedBar):
    raise ImportError("PACKED_BAR does not match the C PackedBar struct")


cdef class BarWindow:
    def __cinit__(self):
        self._rows = np.zeros(2 * HISTORY_BARS, PACKED_BAR)
        self._closes = np.zeros(2 * HISTORY_BARS)
        self.rows = <PackedBar*>cnp.PyArray_DATA(self._rows)
        self.closes = <double*>cnp.PyArray_DATA(self._closes)
        self.lo = self.hi = 0
        self.count = 0

    cdef void push(self, int64_t high, int64_t low, int64_t close, uint64_t ts_close) noexcept:
        cdef Py_ssize_t keep = HISTORY_BARS - 1
        if self.hi == 2 * HISTORY_BARS:
            memmove(self.rows, self.rows + self.hi - keep, keep * sizeof(PackedBar))
            memmove(self.closes, self.closes + self.hi - keep, keep * sizeof(double))
            self.lo, self.hi = 0, keep
        self.rows[self.hi] = PackedBar(high=high, low=low, close=close, ts_close=ts_close)
        self.closes[self.hi] = close * 1e-9
        self.hi += 1
        if self.hi - self.lo > HISTORY_BARS:
            self.lo = self.hi - HISTORY_BARS
        self.count += 1

    def extend(self, bars):
        """Append bars (a structured array with ``high``, ``low``, ``close``, ``ts_close``)."""
        cdef const int64_t[:] h = np.asarray(bars["high"], dtype=np.int64)
        cdef const int64_t[:] l = np.asarray(bars["low"], dtype=np.int64)
        cdef const int64_t[:] c = np.asarray(bars["close"], dtype=np.int64)
        cdef const uint64_t[:] t = np.asarray(bars["ts_close"], dtype=np.uint64)
        cdef Py_ssize_t i
        for i in range(h.shape[0]):
            self.push(h[i], l[i], c[i], t[i])

    def __len__(self):
        return self.hi - self.lo

    @property
    def bars(self):
        """Packed rows (high, low, close in DBN fixed point; ts_close ns)."""
        return self._rows[self.lo:self.hi]

    @property
    def close(self):
        return self._closes[self.lo:self.hi]

    @property
    def high_fx(self):
        return self._rows["high"][self.lo:self.hi]

    @property
    def low_fx(self):
        return self._rows["low"][self.lo:self.hi]

    @property
    def close_fx(self):
        return self._rows["close"][self.lo:self.hi]

    @property
    def ts(self):
        return self._rows["ts_close"][self.lo:self.hi]

    @property
    def high(self):
        return self.high_fx * SCALE

    @property
    def low(self):
        return self.low_fx * SCALE

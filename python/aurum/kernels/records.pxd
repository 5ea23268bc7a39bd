# C views of the native records (numpy layouts in aurum.rings and aurum.engines). Modules that
# cimport these check them against the dtypes at import (decision_core.check_layouts).
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t

cdef struct BarRec:
    uint64_t ts_open, ts_close
    int64_t open, high, low, close
    uint64_t volume, buy_volume, sell_volume
    double vwap
    uint32_t trade_count, instrument_id
    uint8_t kind

cdef struct FlowRec:
    uint64_t ts_open, ts_close
    int64_t delta, cvd
    uint64_t buy_volume, sell_volume, none_volume
    int64_t ofi, high, low, close, poc
    uint64_t fp_start
    uint32_t fp_len, fp_overflow, instrument_id, flags
    uint16_t buy_imbalances, sell_imbalances, stacked_buy, stacked_sell

cdef struct SweepRec:
    uint64_t ts_event, ts_recv
    int64_t first_px, last_px
    uint64_t volume, order_id
    uint32_t instrument_id
    uint16_t levels, stops
    uint8_t side, kind, source

cdef struct ZoneRec:
    int64_t price
    uint64_t first_ts, last_ts, volume, hidden_qty
    double strength
    uint32_t instrument_id, count
    uint8_t side, kind, state

cdef struct IcebergRec:
    uint64_t order_id, first_order_id
    int64_t price
    uint64_t hidden_qty, filled_qty, first_ts, last_ts
    uint32_t instrument_id, clip, refills, events
    uint8_t side, kind, state

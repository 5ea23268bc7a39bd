//! Latency histograms aggregated in native code, read by the Prometheus collector at scrape
//! time. Recording is an array increment: no allocation, no lock (the pipeline owns them and
//! is only touched under the GIL), no Python call.
//!
//! Two are kept per pipeline:
//! - `socket_to_processed`: from the socket read that delivered a chunk (the caller passes
//!   its wall-clock time to `feed`) to the end of processing that chunk;
//! - `gateway_to_signal`: from the gateway's send time (`ts_out`) of the record that closed
//!   a bar to the signal decided on that bar being published (the daemon reports it).
//!
//! Both use the wall clock (UNIX ns), because `ts_out` is the gateway's wall clock; a clock
//! step could produce a negative span, which is counted in the lowest bucket.

/// Bucket upper bounds in ns (Prometheus `le`, inclusive): 1-2-5 steps from 1 µs to 10 s,
/// fine where the targets are (≤ 50 µs p99) and wide enough for a stalled consumer.
pub const BOUNDS_NS: [u64; 22] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000,
    200_000_000, 500_000_000, 1_000_000_000, 2_000_000_000, 5_000_000_000, 10_000_000_000,
];
const N: usize = BOUNDS_NS.len() + 1;

#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: [u64; N],
    sum_ns: u64,
    max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: [0; N], sum_ns: 0, max_ns: 0 }
    }
}

impl LatencyHistogram {
    #[inline]
    pub fn record(&mut self, ns: i64) {
        let ns = ns.max(0) as u64;
        // 22 bounds: a branch-predictable linear scan beats a binary search at this size.
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(N - 1);
        self.counts[i] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Record the span from `start_ns` to `end_ns` (both UNIX ns); 0 starts are unknown.
    #[inline]
    pub fn record_span(&mut self, start_ns: u64, end_ns: u64) {
        if start_ns != 0 {
            self.record(end_ns as i64 - start_ns as i64);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// Cumulative counts, one per bound and a final +Inf total (Prometheus buckets).
    pub fn cumulative(&self) -> [u64; N] {
        let mut out = [0; N];
        let mut acc = 0;
        for (o, c) in out.iter_mut().zip(self.counts.iter()) {
            acc += c;
            *o = acc;
        }
        out
    }

    /// The upper bound of the bucket holding quantile `q` (what `histogram_quantile` would
    /// interpolate inside); `None` when empty. Coarse by design: exact percentiles come
    /// from the benchmark's own samples.
    pub fn quantile_bound_ns(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let cum = self.cumulative();
        let i = cum.iter().position(|&c| c >= rank).unwrap_or(N - 1);
        Some(if i < BOUNDS_NS.len() { BOUNDS_NS[i] } else { self.max_ns })
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub socket_to_processed: LatencyHistogram,
    pub gateway_to_signal: LatencyHistogram,
}

/// Wall clock, UNIX ns.
#[inline]
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_inclusive_and_cumulative() {
        let mut h = LatencyHistogram::default();
        for ns in [0, 1_000, 1_001, 49_000, 50_000, 20_000_000_000, -5] {
            h.record(ns);
        }
        let c = h.cumulative();
        assert_eq!(c[0], 3, "0, 1000 and the negative span are <= 1 us");
        assert_eq!(c[1], 4, "1001 ns is in the 2 us bucket");
        assert_eq!(c[5], 6, "49 us and 50 us are <= 50 us");
        assert_eq!(c[N - 2], 6);
        assert_eq!(c[N - 1], 7, "20 s only in +Inf");
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum_ns(), 1_000 + 1_001 + 49_000 + 50_000 + 20_000_000_000);
        assert_eq!(h.max_ns(), 20_000_000_000);
    }

    #[test]
    fn latency_quantile_bound() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_bound_ns(0.99), None);
        for _ in 0..99 {
            h.record(3_000);
        }
        h.record(300_000);
        assert_eq!(h.quantile_bound_ns(0.5), Some(5_000));
        assert_eq!(h.quantile_bound_ns(0.99), Some(5_000));
        assert_eq!(h.quantile_bound_ns(1.0), Some(500_000));
        h.record_span(0, 10);
        assert_eq!(h.count(), 100, "an unknown start is not a sample");
        h.reset();
        assert_eq!(h.count(), 0);
    }
}

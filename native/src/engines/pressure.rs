//! Book pressure from the top of book and 10 levels of depth: L1 queue imbalance, the
//! Cont–Kukanov–Stoikov order-flow imbalance (running and exponentially decayed), weighted
//! mid (order-1 microprice), mid, spread, and a depth-weighted imbalance
//! (microstructure.md section 4).
//!
//! Undefined values, when a side of the book is empty: `imbalance` 0, `microprice` and `mid`
//! NaN, `spread` UNDEF_PRICE. Sizes are lots; products and sums of sizes run in i128/f64 so
//! no input can overflow.

use crate::book::{LevelView, Top, UNDEF_PRICE};

#[derive(Clone, Copy, Debug)]
pub struct PressureConfig {
    /// Half-life of `ofi_decayed`, in ts_event nanoseconds; 0 keeps only the latest e_n.
    /// 1 s: OFI predicts only a price change or two ahead, so older flow should fade fast.
    pub ofi_half_life_ns: u64,
    /// Weight ratio between consecutive depth levels (w_i = decay^i), clamped to [0, 1].
    pub depth_decay: f64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        Self { ofi_half_life_ns: 1_000_000_000, depth_decay: 0.5 }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PressureState {
    /// (qb − qa)/(qb + qa) at the best prices, in [−1, 1].
    pub imbalance: f64,
    /// Σ w_i (Qb_i − Qa_i) / Σ w_i (Qb_i + Qa_i) over 10 levels, at the last depth sample.
    pub depth_imbalance: f64,
    /// Σ e_n since start, in lots.
    pub ofi_total: i64,
    /// Σ e_n · 2^(−age / half-life), as of `last_ts`.
    pub ofi_decayed: f64,
    /// Pb·(1 − ρ) + Pa·ρ, ρ = qb/(qb + qa), in price units.
    pub microprice: f64,
    /// In price units.
    pub mid: f64,
    /// Ask − bid, fixed point 1e-9 (negative when crossed).
    pub spread: i64,
    pub bid_depth: u64,
    pub ask_depth: u64,
    /// Top-of-book updates seen.
    pub updates: u64,
    /// ts_event of the last top update.
    pub last_ts: u64,
}

pub struct BookPressure {
    instrument_id: u32,
    prev: Option<Top>,
    state: PressureState,
    /// Sizes per level (bids, asks) at the last depth sample and the level weight ratio
    /// then in force: `state` weighs them when read, which is far rarer than a sample.
    depth_sizes: [[u64; 10]; 2],
    depth_decay: f64,
    depth_sampled: bool,
}

fn two_sided(t: &Top) -> bool {
    t.bid.price != UNDEF_PRICE && t.ask.price != UNDEF_PRICE
}

/// The CKS increment's four terms summed in the integer type given: i64 on the common path,
/// i128 when a size could overflow it (one definition, so both paths stay the same formula).
macro_rules! cks_terms {
    ($t:ty, $p:expr, $n:expr) => {{
        let (p, n) = ($p, $n);
        let mut e: $t = 0;
        if n.bid.price >= p.bid.price {
            e += n.bid.size as $t;
        }
        if n.bid.price <= p.bid.price {
            e -= p.bid.size as $t;
        }
        if n.ask.price <= p.ask.price {
            e -= n.ask.size as $t;
        }
        if n.ask.price >= p.ask.price {
            e += p.ask.size as $t;
        }
        e
    }};
}

/// Cont–Kukanov–Stoikov e_n from `p` to `n`; both tops must be two-sided.
#[inline]
pub fn cks_increment(p: &Top, n: &Top) -> i64 {
    if (n.bid.size | p.bid.size | n.ask.size | p.ask.size) < 1 << 61 {
        // Two sizes below 2^61 added, two subtracted: |e| < 2^62, no clamp needed.
        return cks_terms!(i64, p, n);
    }
    cks_increment_wide(p, n)
}

#[cold]
fn cks_increment_wide(p: &Top, n: &Top) -> i64 {
    cks_terms!(i128, p, n).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn px(p: i64) -> f64 {
    p as f64 / 1e9
}

impl BookPressure {
    pub fn new(instrument_id: u32, _cfg: &PressureConfig) -> Self {
        Self {
            instrument_id,
            prev: None,
            state: PressureState { mid: f64::NAN, microprice: f64::NAN, spread: UNDEF_PRICE, ..PressureState::default() },
            depth_sizes: [[0; 10]; 2],
            depth_decay: 0.5,
            depth_sampled: false,
        }
    }

    pub fn instrument_id(&self) -> u32 {
        self.instrument_id
    }

    /// A book rebuilt from a snapshot: its first top is not order flow since the last one
    /// (the reference excludes F_SNAPSHOT records from activity counts), so no e_n for it.
    pub fn forget_prev(&mut self) {
        self.prev = None;
    }

    /// The top changed: updates the L1 measures and returns e_n (0 for the first top or
    /// when either top has an empty side: no queue to compare against).
    pub fn on_top(&mut self, cfg: &PressureConfig, ts_event: u64, top: &Top) -> i64 {
        let e = match self.prev {
            Some(p) if two_sided(&p) && two_sided(top) => cks_increment(&p, top),
            _ => 0,
        };
        let s = &mut self.state;
        // The decay is applied from the last update; a ts_event running backwards (GLBX orders
        // by ts_recv) is taken as no elapsed time.
        let dt = if s.updates == 0 { 0 } else { ts_event.saturating_sub(s.last_ts) };
        s.ofi_decayed = decay(s.ofi_decayed, dt, cfg.ofi_half_life_ns) + e as f64;
        s.ofi_total = s.ofi_total.saturating_add(e);
        s.updates = s.updates.saturating_add(1);
        s.last_ts = if s.updates == 1 { ts_event } else { s.last_ts.max(ts_event) };
        // The L1 measures depend on this top alone: `state` derives them when read, which
        // is far rarer than a top change.
        self.prev = Some(*top);
        e
    }

    /// Imbalance, mid, spread and microprice of `top` into `s`.
    fn l1_measures(s: &mut PressureState, top: &Top) {
        if two_sided(top) {
            let (qb, qa) = (top.bid.size as f64, top.ask.size as f64);
            let (pb, pa) = (px(top.bid.price), px(top.ask.price));
            s.mid = (pb + pa) / 2.0;
            s.spread = top.ask.price.saturating_sub(top.bid.price);
            if qb + qa > 0.0 {
                let rho = qb / (qb + qa);
                s.imbalance = (qb - qa) / (qb + qa);
                s.microprice = pb * (1.0 - rho) + pa * rho;
            } else {
                s.imbalance = 0.0;
                s.microprice = s.mid;
            }
        } else {
            s.imbalance = 0.0;
            s.mid = f64::NAN;
            s.microprice = f64::NAN;
            s.spread = UNDEF_PRICE;
        }
    }

    /// 10 levels per side, best first; empty levels (UNDEF_PRICE) count as size 0.
    pub fn on_depth(&mut self, cfg: &PressureConfig, bids: &[LevelView; 10], asks: &[LevelView; 10]) {
        let size = |l: &LevelView| if l.price == UNDEF_PRICE { 0 } else { l.size };
        let (bid_sizes, ask_sizes) = self.depth_sizes_mut();
        for (((b, a), qb), qa) in bids.iter().zip(asks.iter()).zip(bid_sizes.iter_mut()).zip(ask_sizes.iter_mut()) {
            (*qb, *qa) = (size(b), size(a));
        }
        self.on_depth_sizes(cfg);
    }

    /// Where a depth sample writes its level sizes (bids, asks; best first, 0 for a missing
    /// level) before `on_depth_sizes`.
    #[inline]
    pub fn depth_sizes_mut(&mut self) -> (&mut [u64; 10], &mut [u64; 10]) {
        let [bids, asks] = &mut self.depth_sizes;
        (bids, asks)
    }

    /// A depth sample was written into `depth_sizes_mut`.
    #[inline]
    pub fn on_depth_sizes(&mut self, cfg: &PressureConfig) {
        let decay = if cfg.depth_decay.is_finite() { cfg.depth_decay.clamp(0.0, 1.0) } else { 0.5 };
        let (mut bd, mut ad) = (0u64, 0u64);
        for (&qb, &qa) in self.depth_sizes[0].iter().zip(self.depth_sizes[1].iter()) {
            bd = bd.saturating_add(qb);
            ad = ad.saturating_add(qa);
        }
        self.depth_decay = decay;
        self.depth_sampled = true;
        let s = &mut self.state;
        s.bid_depth = bd;
        s.ask_depth = ad;
    }

    /// Σ w_i (Qb_i − Qa_i) / Σ w_i (Qb_i + Qa_i) over the last depth sample.
    fn depth_imbalance(&self) -> f64 {
        let (mut w, mut num, mut den) = (1.0f64, 0.0f64, 0.0f64);
        for (&qb, &qa) in self.depth_sizes[0].iter().zip(self.depth_sizes[1].iter()) {
            num += w * (qb as f64 - qa as f64);
            den += w * (qb as f64 + qa as f64);
            w *= self.depth_decay;
        }
        if den > 0.0 { num / den } else { 0.0 }
    }

    pub fn state(&self) -> PressureState {
        let mut s = self.state;
        if let Some(top) = &self.prev {
            Self::l1_measures(&mut s, top);
        }
        if self.depth_sampled {
            s.depth_imbalance = self.depth_imbalance();
        }
        s
    }

    /// Bid and ask lots over 10 levels at the last depth sample.
    #[inline]
    pub fn depth(&self) -> (u64, u64) {
        (self.state.bid_depth, self.state.ask_depth)
    }

    /// `ofi_decayed` carried forward to `now` with no new flow.
    pub fn ofi_decayed_at(&self, cfg: &PressureConfig, now: u64) -> f64 {
        decay(self.state.ofi_decayed, now.saturating_sub(self.state.last_ts), cfg.ofi_half_life_ns)
    }
}

fn decay(v: f64, dt: u64, half_life: u64) -> f64 {
    if dt == 0 {
        v
    } else if half_life == 0 {
        0.0
    } else {
        v * (-(dt as f64) / half_life as f64 * std::f64::consts::LN_2).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::EMPTY_LEVEL;

    const T: i64 = 100_000_000;
    const PB: i64 = 2_400_000_000_000;

    fn top(bp: i64, bq: u64, ap: i64, aq: u64) -> Top {
        Top { bid: LevelView { price: bp, size: bq, count: 1 }, ask: LevelView { price: ap, size: aq, count: 1 } }
    }

    #[test]
    fn cks_cases() {
        let p = top(PB, 10, PB + T, 8);
        // Bid up: +qb_n (new queue), ask unchanged: −qa_n + qa_{n−1} = 0.
        assert_eq!(cks_increment(&p, &top(PB + T / 2, 3, PB + T, 8)), 3);
        // Bid same price, size 10 → 14: +14 − 10.
        assert_eq!(cks_increment(&p, &top(PB, 14, PB + T, 8)), 4);
        // Bid same price, size 10 → 6.
        assert_eq!(cks_increment(&p, &top(PB, 6, PB + T, 8)), -4);
        // Bid down: −qb_{n−1} (old queue gone).
        assert_eq!(cks_increment(&p, &top(PB - T, 20, PB + T, 8)), -10);
        // Ask down: −qa_n.
        assert_eq!(cks_increment(&p, &top(PB, 10, PB + T / 2, 5)), -5);
        // Ask same price, 8 → 11: −11 + 8.
        assert_eq!(cks_increment(&p, &top(PB, 10, PB + T, 11)), -3);
        // Ask up: +qa_{n−1}.
        assert_eq!(cks_increment(&p, &top(PB, 10, PB + 2 * T, 30)), 8);
        // Both: bid up (+7), ask up (+8).
        assert_eq!(cks_increment(&p, &top(PB + T, 7, PB + 2 * T, 1)), 15);
        // Extreme sizes do not overflow.
        let big = top(PB, u64::MAX, PB + T, 0);
        assert_eq!(cks_increment(&top(PB - T, 0, PB + T, 0), &big), i64::MAX);
    }

    #[test]
    fn on_top_running_and_decayed_ofi() {
        let cfg = PressureConfig::default();
        let mut bp = BookPressure::new(1, &cfg);
        let s = 1_000_000_000u64;
        assert_eq!(bp.on_top(&cfg, 10 * s, &top(PB, 10, PB + T, 8)), 0);
        assert_eq!(bp.on_top(&cfg, 10 * s, &top(PB, 14, PB + T, 8)), 4);
        // One half-life later: 4 → 2, plus −14 (bid down: the old queue of 14 is gone).
        assert_eq!(bp.on_top(&cfg, 11 * s, &top(PB - T, 20, PB + T, 8)), -14);
        let st = bp.state();
        assert_eq!((st.ofi_total, st.updates, st.last_ts), (-10, 3, 11 * s));
        assert!((st.ofi_decayed - (-12.0)).abs() < 1e-9);
        assert!((bp.ofi_decayed_at(&cfg, 13 * s) - (-3.0)).abs() < 1e-9);
        // One-sided: no increment, undefined L1 measures; and the next two-sided top too.
        let one = Top { bid: top(PB, 5, 0, 0).bid, ask: EMPTY_LEVEL };
        assert_eq!(bp.on_top(&cfg, 12 * s, &one), 0);
        let st = bp.state();
        assert!(st.mid.is_nan() && st.microprice.is_nan());
        assert_eq!((st.spread, st.imbalance), (UNDEF_PRICE, 0.0));
        assert_eq!(bp.on_top(&cfg, 12 * s, &top(PB, 5, PB + T, 5)), 0);
    }

    #[test]
    fn microprice_mid_spread_imbalance() {
        let cfg = PressureConfig::default();
        let mut bp = BookPressure::new(1, &cfg);
        bp.on_top(&cfg, 1, &top(PB, 30, PB + T, 10));
        let st = bp.state();
        assert!((st.imbalance - 0.5).abs() < 1e-12);
        // ρ = 0.75: 2400.0·0.25 + 2400.1·0.75 = 2400.075.
        assert!((st.microprice - 2400.075).abs() < 1e-9);
        assert!((st.mid - 2400.05).abs() < 1e-9);
        assert_eq!(st.spread, T);
    }

    #[test]
    fn depth_weighted_imbalance() {
        let cfg = PressureConfig::default();
        let mut bp = BookPressure::new(1, &cfg);
        let mut bids = [EMPTY_LEVEL; 10];
        let mut asks = [EMPTY_LEVEL; 10];
        bids[0] = LevelView { price: PB, size: 10, count: 1 };
        bids[1] = LevelView { price: PB - T, size: 20, count: 1 };
        asks[0] = LevelView { price: PB + T, size: 2, count: 1 };
        asks[2] = LevelView { price: PB + 3 * T, size: 40, count: 1 };
        bp.on_depth(&cfg, &bids, &asks);
        // num = (10−2) + 0.5·20 − 0.25·40 = 8; den = 12 + 10 + 10 = 32.
        let st = bp.state();
        assert!((st.depth_imbalance - 0.25).abs() < 1e-12);
        assert_eq!((st.bid_depth, st.ask_depth), (30, 42));
        bp.on_depth(&cfg, &[EMPTY_LEVEL; 10], &[EMPTY_LEVEL; 10]);
        assert_eq!(bp.state().depth_imbalance, 0.0);
    }
}

use super::*;

const PX: i64 = 2_400_000_000_000;
const TICK: i64 = 100_000_000;

#[test]
fn fifo_priority_and_queue_position() {
    let mut b = L3Book::new();
    b.add(1, b'B', PX, 5);
    b.add(2, b'B', PX, 3);
    b.add(3, b'B', PX, 7);
    let q = b.queue_position(3).unwrap();
    assert_eq!((q.orders_ahead, q.size_ahead), (2, 8));
    // Size decrease keeps priority.
    b.modify(1, b'B', PX, 4);
    assert_eq!(b.queue_position(2).unwrap().orders_ahead, 1);
    // Size increase loses it.
    b.modify(1, b'B', PX, 10);
    assert_eq!(b.queue_position(1).unwrap().orders_ahead, 2);
    assert_eq!(b.top().bid, LevelView { price: PX, size: 20, count: 3 });
}

#[test]
fn orders_come_out_in_snapshot_order() {
    let mut b = L3Book::new();
    b.add(1, b'B', PX - TICK, 1);
    b.add(2, b'B', PX, 2);
    b.add(3, b'B', PX, 3);
    b.add(4, b'A', PX + TICK, 4);
    b.modify(2, b'B', PX, 5); // size up: behind order 3
    let ids: Vec<u64> = b.orders_in_queue_order().iter().map(|o| o.0).collect();
    assert_eq!(ids, vec![3, 2, 1, 4]);
}

#[test]
fn cancel_partial_full_and_unknown() {
    let mut b = L3Book::new();
    b.add(1, b'A', PX + TICK, 5);
    b.cancel(1, 2);
    assert_eq!(b.top().ask.size, 3);
    b.cancel(1, 3);
    assert_eq!(b.top().ask, EMPTY_LEVEL);
    b.cancel(99, 1);
    assert_eq!(b.anomalies.cancel_unknown, 1);
    assert_eq!(b.order_count(), 0);
}

#[test]
fn modify_price_moves_level_and_best_is_sorted() {
    let mut b = L3Book::new();
    for (i, d) in [3i64, 1, 2, 5, 4].iter().enumerate() {
        b.add(i as u64 + 1, b'B', PX - d * TICK, 1);
        b.add(i as u64 + 100, b'A', PX + d * TICK, 1);
    }
    let (bids, asks) = b.levels(10);
    let bp: Vec<i64> = bids.iter().map(|l| (PX - l.price) / TICK).collect();
    let ap: Vec<i64> = asks.iter().map(|l| (l.price - PX) / TICK).collect();
    assert_eq!(bp, vec![1, 2, 3, 4, 5]);
    assert_eq!(ap, vec![1, 2, 3, 4, 5]);
    b.modify(5, b'B', PX, 2); // order 5 was at -4 ticks; moves to PX
    assert_eq!(b.top().bid, LevelView { price: PX, size: 2, count: 1 });
    assert_eq!(b.levels(10).0.len(), 5);
}

#[test]
fn modify_of_unknown_order_to_zero_rests_nothing() {
    let mut b = L3Book::new();
    b.add(1, b'B', PX, 3);
    b.modify(17, b'B', PX + TICK, 0);
    assert_eq!(b.top().bid, LevelView { price: PX, size: 3, count: 1 });
    assert_eq!(b.queue_position(17), None);
    assert_eq!(b.anomalies.modify_unknown, 1);
}

#[test]
fn clear_keeps_working() {
    let mut b = L3Book::new();
    b.add(1, b'B', PX, 1);
    b.clear();
    assert_eq!(b.top().bid, EMPTY_LEVEL);
    b.add(1, b'B', PX, 2);
    assert_eq!(b.top().bid.size, 2);
}

/// Property check against a naive model: a Vec of live orders in arrival order.
#[test]
fn matches_naive_model_on_random_operations() {
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut b = L3Book::new();
    let mut model: Vec<(u64, u8, i64, u32)> = Vec::new();
    let mut last_top = b.top();
    for step in 0..20_000u64 {
        let r = next();
        let side = if r & 1 == 0 { b'B' } else { b'A' };
        let price = PX + ((r >> 8) % 8) as i64 * TICK;
        let size = ((r >> 16) % 9 + 1) as u32;
        match (r >> 32) % 4 {
            0 | 1 => {
                b.add(step + 1, side, price, size);
                model.push((step + 1, side, price, size));
            }
            2 if !model.is_empty() => {
                let i = (r >> 40) as usize % model.len();
                let (id, _, _, sz) = model[i];
                let c = size.min(sz);
                b.cancel(id, c);
                if c == sz {
                    model.remove(i);
                } else {
                    model[i].3 -= c;
                }
            }
            3 if !model.is_empty() => {
                let i = (r >> 40) as usize % model.len();
                let (id, s, p, sz) = model[i];
                let np = if r & 2 == 0 { p } else { price };
                b.modify(id, s, np, size);
                if np != p || size > sz {
                    model.remove(i);
                    model.push((id, s, np, size));
                } else {
                    model[i].3 = size;
                }
            }
            _ => {}
        }
        // A clean flag promises an unchanged top.
        let dirty = b.take_top_dirty();
        assert!(dirty || b.top() == last_top, "step {step}: top changed without the flag");
        last_top = b.top();
    }
    for (id, s, p, _) in model.iter().take(200) {
        let ahead: Vec<_> = model
            .iter()
            .take_while(|o| o.0 != *id)
            .filter(|o| o.1 == *s && o.2 == *p)
            .collect();
        let q = b.queue_position(*id).unwrap();
        assert_eq!(q.orders_ahead as usize, ahead.len());
        assert_eq!(q.size_ahead, ahead.iter().map(|o| o.3 as u64).sum::<u64>());
    }
    for (side, is_bid) in [(b'B', true), (b'A', false)] {
        let mut want: std::collections::BTreeMap<i64, (u64, u32)> = Default::default();
        for o in model.iter().filter(|o| o.1 == side) {
            let e = want.entry(o.2).or_default();
            e.0 += o.3 as u64;
            e.1 += 1;
        }
        let mut want: Vec<LevelView> = want.into_iter().map(|(price, (size, count))| LevelView { price, size, count }).collect();
        if is_bid {
            want.reverse();
        }
        let mut got = Vec::new();
        b.for_each_level(is_bid, 100, |l| got.push(l));
        assert_eq!(got, want);
    }
    let best_bid = model.iter().filter(|o| o.1 == b'B').map(|o| o.2).max();
    assert_eq!(best_bid.unwrap_or(UNDEF_PRICE), b.top().bid.price);
    assert_eq!(b.order_count(), model.len());
}

/// `fill_levels` agrees with `levels` on ladders with gaps, a side shorter than the
/// output, and the sorted fallback; `fill_sizes` with `fill_levels`.
#[test]
fn fill_levels_matches_levels() {
    let check = |b: &L3Book| {
        for depth in [0usize, 1, 3, 10] {
            let (bids, asks) = b.levels(depth);
            let mut bo = vec![LevelView::default(); depth];
            let mut ao = vec![LevelView::default(); depth];
            let (nb, na) = b.fill_levels(&mut bo, &mut ao);
            assert_eq!((nb, na), (bids.len(), asks.len()));
            assert_eq!(&bo[..nb], &bids[..]);
            assert_eq!(&ao[..na], &asks[..]);
            assert!(bo[nb..].iter().chain(&ao[na..]).all(|l| *l == EMPTY_LEVEL));
            // `fill_sizes`: the same levels' sizes, 0 where `fill_levels` leaves a level empty.
            let (mut bs, mut as_) = (vec![9u64; depth], vec![9u64; depth]);
            b.fill_sizes(&mut bs, &mut as_);
            assert_eq!(bs, bo.iter().map(|l| l.size).collect::<Vec<_>>());
            assert_eq!(as_, ao.iter().map(|l| l.size).collect::<Vec<_>>());
        }
    };
    let mut b = L3Book::new();
    check(&b);
    for (i, d) in [1i64, 2, 5, 9, 12, 13, 30].iter().enumerate() {
        b.add(i as u64 + 1, b'B', PX - d * TICK, 2);
        b.add(i as u64 + 100, b'A', PX + d * TICK, 3);
        check(&b);
    }
    b.cancel(1, 2);
    b.cancel(100, 3);
    check(&b);
    // Prices no ladder can span: the sorted fallback.
    b.add(500, b'B', 1, 1);
    b.add(501, b'A', i64::MAX - 1, 1);
    assert!(!b.uses_ladder());
    check(&b);
}

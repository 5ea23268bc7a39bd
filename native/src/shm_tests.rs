use super::*;

/// A unique segment name, removed on drop even if the test fails.
struct Seg(String);
impl Seg {
    fn new(tag: &str) -> Self {
        Self(format!("aurum-rs-test-{}-{tag}", std::process::id()))
    }
}
impl Drop for Seg {
    fn drop(&mut self) {
        let _ = fs::remove_file(segment_path(&self.0).unwrap());
    }
}

fn rec_for(seq: u64) -> SignalRecord {
    let mut r = SignalRecord { ts_ns: seq * 3 + 1, instrument_id: seq as u32 ^ 0x55, action: (seq % 3) as u8, entry: seq as i64 * 7, direction: seq as f64 * 0.5, ..Default::default() };
    r.pillar_conf = [seq as f32; 5];
    r.set_reason(&format!("r{seq}"));
    r
}

fn check(r: &SignalRecord) -> bool {
    let want = rec_for(r.seq);
    r.crc32 == r.compute_crc() && r.ts_ns == want.ts_ns && r.instrument_id == want.instrument_id && r.entry == want.entry && r.direction == want.direction && r.pillar_conf == want.pillar_conf && r.reason == want.reason
}

#[test]
fn shm_hashes_are_stable() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_ne!(LAYOUT_HASH, 0);
}

#[test]
fn shm_round_trip_state_and_mode() {
    let seg = Seg::new("rt");
    let mut w = ShmSignalWriter::create(&seg.0, 16, 0o640).unwrap();
    let mode = fs::metadata(w.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let mut rd = ShmSignalReader::open(&seg.0).unwrap();
    assert!(rd.state(10).is_none(), "never written");
    for s in 0..3 {
        assert_eq!(w.publish(&rec_for(s)), s);
    }
    let mut st = StateBlock { last: 4100 * PRICE_SCALE, feed_state: FEED_LIVE, zone_count: 1, ..Default::default() };
    st.zones[0] = Zone { price: 4099 * PRICE_SCALE, side: b'B', strength: 0.5, ..Default::default() };
    w.update_state(&st);
    let mut out = Vec::new();
    assert_eq!(rd.poll(&mut out, usize::MAX), 0);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(check));
    assert_eq!(out[2].reason_str(), "r2");
    let (got, version) = rd.state(10).unwrap();
    assert_eq!((got.last, got.zones[0].side, got.zone_count, version), (st.last, b'B', 1, 1));
    assert_eq!(got.crc32, got.compute_crc());
}

#[test]
fn shm_lapped_reader_counts_exactly() {
    let seg = Seg::new("lap");
    let mut w = ShmSignalWriter::create(&seg.0, 8, DEFAULT_MODE).unwrap();
    let mut rd = ShmSignalReader::open(&seg.0).unwrap();
    for s in 0..21 {
        w.publish(&rec_for(s));
    }
    let mut out = Vec::new();
    assert_eq!(rd.poll(&mut out, usize::MAX), 13);
    assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), (13..21).collect::<Vec<_>>());
}

#[test]
fn shm_single_writer_and_takeover() {
    let seg = Seg::new("own");
    let mut w = ShmSignalWriter::create(&seg.0, 8, DEFAULT_MODE).unwrap();
    let err = ShmSignalWriter::create(&seg.0, 8, DEFAULT_MODE).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let mut rd = ShmSignalReader::open(&seg.0).unwrap();
    for s in 0..5 {
        w.publish(&rec_for(s));
    }
    let mut out = Vec::new();
    rd.poll(&mut out, usize::MAX);
    assert_eq!(out.len(), 5);
    drop(w); // the "dead" writer: its flock is gone, the file stays
    let mut w2 = ShmSignalWriter::create(&seg.0, 8, DEFAULT_MODE).unwrap();
    w2.publish(&rec_for(0));
    out.clear();
    assert_eq!(rd.poll(&mut out, usize::MAX), 0);
    assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0], "resynced to the new writer");
    assert!(ShmSignalWriter::create("a/b", 8, 0o600).is_err());
    assert!(ShmSignalWriter::create(&seg.0, 12, 0o600).is_err());
}

#[test]
fn shm_threaded_stress_never_accepts_torn() {
    let seg = Seg::new("stress");
    const N: u64 = 200_000;
    let mut w = ShmSignalWriter::create(&seg.0, 64, DEFAULT_MODE).unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut rd = ShmSignalReader::open(&seg.0).unwrap();
            std::thread::spawn(move || {
                let (mut seen, mut last, mut out, mut bad) = (0u64, None, Vec::new(), 0u64);
                while seen + rd.lost < N {
                    out.clear();
                    rd.poll(&mut out, 256);
                    for r in &out {
                        bad += u64::from(!check(r) || last.is_some_and(|l| r.seq <= l));
                        last = Some(r.seq);
                    }
                    seen += out.len() as u64;
                    let _ = rd.state(100).map(|(s, _)| bad += u64::from(s.crc32 != s.compute_crc()));
                }
                (seen, rd.lost, bad)
            })
        })
        .collect();
    let mut st = StateBlock::default();
    for s in 0..N {
        w.publish(&rec_for(s));
        if s % 16 == 0 {
            st.volume = s;
            st.last = s as i64;
            w.update_state(&st);
        }
    }
    for h in readers {
        let (seen, lost, bad) = h.join().unwrap();
        assert_eq!(bad, 0);
        assert_eq!(seen + lost, N);
    }
}

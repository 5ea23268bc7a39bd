//! The fuzz script of `support/hostile.rs` on stable, in `cargo test`: thousands of seeded
//! pseudo-random inputs through the whole record path, with debug assertions (so integer
//! overflow panics too). Not coverage-guided like `fuzz/` (see `fuzz/README.md`), but it
//! runs on every `make test` and keeps what the fuzzer proved from regressing.
//! `AURUM_FUZZ_CORPUS=DIR` also replays every file of a fuzzer's corpus.

#[path = "support/hostile.rs"]
mod hostile;
#[allow(dead_code)] // only its metadata header is used here
#[path = "support/synthetic.rs"]
mod synthetic;

fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

#[test]
fn seeded_hostile_scripts_never_panic() {
    let mut rnd = xorshift(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        let len = (rnd() % 4096) as usize;
        buf.clear();
        buf.extend((0..len.div_ceil(8)).flat_map(|_| rnd().to_le_bytes()).take(len));
        let _ = hostile::run(&buf);
    }
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let Ok(dir) = std::env::var("AURUM_FUZZ_CORPUS") else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("AURUM_FUZZ_CORPUS is a directory") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        let _ = hostile::run(&data);
        n += 1;
    }
    eprintln!("replayed {n} corpus inputs from {dir}");
}

/*
 * aurum_shm.h - layout of Aurum's shared-memory signal segment (/dev/shm/<name>), v3.
 *
 * One writer (the Aurum daemon), any number of read-only readers. Mirrors
 * native/src/shm.rs; tests check that AURUM_SHM_LAYOUT_DESC here is byte-identical to the
 * Rust and Python copies. See native/include/README.md for the protocol in prose and
 * aurum_shm_reader.c for a complete reader.
 *
 *   [0, 256)      struct aurum_shm_header
 *   [256, 1280)   struct aurum_shm_state    (seqlock: lock odd while being written)
 *   [1280, ...)   capacity x struct aurum_shm_signal (per-slot seqlock; lossy ring)
 *
 * All integers little-endian. Prices are int64 fixed point in 1e-9 USD, INT64_MAX = none.
 * Timestamps are CLOCK_REALTIME nanoseconds. Needs GCC or Clang (__atomic builtins); on glibc,
 * define _DEFAULT_SOURCE (or _GNU_SOURCE) before including it, for syscall() (futex wait).
 */
#ifndef AURUM_SHM_H
#define AURUM_SHM_H

#include <stddef.h>
#include <stdint.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#define AURUM_SHM_DEFAULT_NAME "aurum-signals"
#define AURUM_SHM_MAGIC "AURUMSHM"
#define AURUM_SHM_VERSION 3u
#define AURUM_SHM_HEADER_SIZE 256u
#define AURUM_SHM_STATE_OFFSET 256u
#define AURUM_SHM_STATE_SIZE 1024u
#define AURUM_SHM_RING_OFFSET 1280u
#define AURUM_SHM_RECORD_SIZE 256u
#define AURUM_SHM_MAX_ZONES 32
#define AURUM_SHM_REASON_LEN 112
#define AURUM_SHM_PRICE_SCALE 1000000000LL
#define AURUM_SHM_UNDEF_PRICE INT64_MAX

enum { AURUM_ACTION_FLAT = 0, AURUM_ACTION_BUY = 1, AURUM_ACTION_SELL = 2 };
enum { AURUM_SOURCE_DATABENTO = 0, AURUM_SOURCE_YAHOO = 1, AURUM_SOURCE_REPLAY = 2 };
enum { AURUM_FEED_DOWN = 0, AURUM_FEED_LIVE = 1, AURUM_FEED_STALE = 2, AURUM_FEED_RECOVERING = 3 };

/* FNV-1a 64 of this string is the header's layout_hash: refuse a segment whose hash differs. */
#define AURUM_SHM_LAYOUT_DESC \
    "aurum-shm/3;" \
    "header=256{magic:u8[8]@0,version:u32@8,header_size:u32@12,layout_hash:u64@16,capacity:u32@24," \
    "record_size:u32@28,state_offset:u32@32,state_size:u32@36,ring_offset:u32@40,writer_pid:u32@44," \
    "total_size:u64@48,epoch:u64@56,write_seq:u64@64,notify:u64@72,heartbeat_ns:u64@128};" \
    "state=1024@256{lock:u64@0,update_ts:u64@8,last:i64@16,bid:i64@24,ask:i64@32,volume:u64@40," \
    "market_ts:u64@48,instrument_id:u32@56,source:u8@60,feed_state:u8@61,zone_count:u16@62," \
    "pillar_dir:f32[5]@64,pillar_conf:f32[5]@84,ts_out:u64@104,zones:zone[32]@128,crc32:u32@1020};" \
    "zone=24{price:i64@0,volume:u32@8,strength:f32@12,side:u8@16,kind:u8@17,state:u8@18};" \
    "signal=256@1280{lock:u64@0,seq:u64@8,ts:u64@16,instrument_id:u32@24,action:u8@28,flags:u8@29," \
    "veto:u16@30,entry:i64@32,stop:i64@40,targets:i64[3]@48,direction:f64@72,confidence:f64@80," \
    "pillar_dir:f32[5]@88,pillar_conf:f32[5]@108,reason:char[112]@128,ts_out:u64@240,crc32:u32@252};" \
    "price=i64e-9;lock=seqlock(2*seq+1 writing,2*seq+2 done);crc32=ieee(bytes[8,size-4))"

struct aurum_shm_header {
    char magic[8];          /* "AURUMSHM"; 0 while the writer (re)initialises */
    uint32_t version;
    uint32_t header_size;
    uint64_t layout_hash;
    uint32_t capacity;      /* signal slots, a power of two */
    uint32_t record_size;
    uint32_t state_offset;
    uint32_t state_size;
    uint32_t ring_offset;
    uint32_t writer_pid;
    uint64_t total_size;
    uint64_t epoch;         /* changes on every (re)initialisation: resync when it does */
    uint64_t write_seq;     /* @64 atomic: signals published; next signal's seq */
    uint64_t notify;        /* @72 atomic: publications (signals and state updates) so far;
                               the writer FUTEX_WAKEs its low 32 bits after each, so readers
                               may block in FUTEX_WAIT on them instead of polling */
    uint8_t _pad0[48];
    uint64_t heartbeat_ns;  /* @128 atomic: writer alive if recent; 0 after a clean stop */
    uint8_t _pad1[120];
};

struct aurum_shm_zone {
    int64_t price;
    uint32_t volume;
    float strength;
    uint8_t side;           /* 'B' or 'A' */
    uint8_t kind;
    uint8_t state;
    uint8_t _pad[5];
};

struct aurum_shm_state {
    uint64_t lock;          /* seqlock: odd while being written; lock/2 = updates so far */
    uint64_t update_ts;
    int64_t last, bid, ask;
    uint64_t volume;
    uint64_t market_ts;
    uint32_t instrument_id;
    uint8_t source;
    uint8_t feed_state;
    uint16_t zone_count;
    float pillar_dir[5];
    float pillar_conf[5];
    uint64_t ts_out;        /* gateway send time (UNIX ns) of the newest record processed; 0 = unknown */
    uint8_t _pad[16];
    struct aurum_shm_zone zones[AURUM_SHM_MAX_ZONES];
    uint8_t _pad2[124];
    uint32_t crc32;         /* CRC-32 (zlib) of bytes [8, 1020) */
};

struct aurum_shm_signal {
    uint64_t lock;          /* 2*seq+1 while being written, 2*seq+2 once complete */
    uint64_t seq;
    uint64_t ts_ns;
    uint32_t instrument_id;
    uint8_t action;
    uint8_t flags;
    uint16_t veto;
    int64_t entry, stop;
    int64_t targets[3];
    double direction, confidence;
    float pillar_dir[5];
    float pillar_conf[5];
    char reason[AURUM_SHM_REASON_LEN]; /* UTF-8, NUL-padded, always NUL-terminated */
    uint64_t ts_out;        /* gateway send time (UNIX ns) of the record that closed the bar; 0 = unknown */
    uint32_t _pad;
    uint32_t crc32;         /* CRC-32 (zlib) of bytes [8, 252) */
};

_Static_assert(sizeof(struct aurum_shm_header) == 256, "header size");
_Static_assert(offsetof(struct aurum_shm_header, write_seq) == 64, "write_seq offset");
_Static_assert(offsetof(struct aurum_shm_header, notify) == 72, "notify offset");
_Static_assert(offsetof(struct aurum_shm_header, heartbeat_ns) == 128, "heartbeat offset");
_Static_assert(sizeof(struct aurum_shm_zone) == 24, "zone size");
_Static_assert(sizeof(struct aurum_shm_state) == 1024, "state size");
_Static_assert(offsetof(struct aurum_shm_state, ts_out) == 104, "state ts_out offset");
_Static_assert(offsetof(struct aurum_shm_state, zones) == 128, "zones offset");
_Static_assert(offsetof(struct aurum_shm_state, crc32) == 1020, "state crc offset");
_Static_assert(sizeof(struct aurum_shm_signal) == 256, "signal size");
_Static_assert(offsetof(struct aurum_shm_signal, reason) == 128, "reason offset");
_Static_assert(offsetof(struct aurum_shm_signal, ts_out) == 240, "ts_out offset");
_Static_assert(offsetof(struct aurum_shm_signal, crc32) == 252, "signal crc offset");

static inline uint64_t aurum_shm_fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

static inline uint32_t aurum_shm_crc32(const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static inline uint64_t aurum_shm_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/* 1 once the writer has published the header (magic is stored last, with release); 0 while
 * it (re)initialises the segment, when nothing in it is meaningful yet. */
static inline int aurum_shm_ready(const struct aurum_shm_header *h) {
    typedef uint64_t __attribute__((may_alias)) aurum_shm_word; /* magic is a char[8] */
    uint64_t m = __atomic_load_n((const aurum_shm_word *)(const void *)h->magic, __ATOMIC_ACQUIRE);
    return __builtin_memcmp(&m, AURUM_SHM_MAGIC, 8) == 0;
}

/* Copies signal `seq` out of the ring. Returns 1 on success, 0 if it is not published yet,
 * -1 if it is gone (overwritten by a later lap, possibly while we copied it). */
static inline int aurum_shm_read_signal(const uint8_t *base, uint32_t capacity, uint64_t seq,
                                        struct aurum_shm_signal *out) {
    const struct aurum_shm_signal *slot = (const struct aurum_shm_signal *)
        (base + AURUM_SHM_RING_OFFSET + (size_t)(seq & (capacity - 1)) * AURUM_SHM_RECORD_SIZE);
    uint64_t want = 2 * seq + 2, l1 = aurum_shm_load(&slot->lock);
    if (l1 < want) return 0;
    if (l1 != want) return -1;
    __builtin_memcpy(out, (const void *)slot, sizeof *out);
    /* The copy must complete before the lock is re-read (seqlock rule, performance.md 5.4). */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&slot->lock, __ATOMIC_RELAXED) == l1 ? 1 : -1;
}

/* A consistent copy of the state block: 1 on success, 0 if never written or still changing. */
static inline int aurum_shm_read_state(const uint8_t *base, struct aurum_shm_state *out, int tries) {
    const struct aurum_shm_state *st = (const struct aurum_shm_state *)(base + AURUM_SHM_STATE_OFFSET);
    for (int i = 0; i < tries; i++) {
        uint64_t l1 = aurum_shm_load(&st->lock);
        if (l1 == 0) return 0;
        if (l1 & 1) continue;
        __builtin_memcpy(out, (const void *)st, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&st->lock, __ATOMIC_RELAXED) == l1) return 1;
    }
    return 0;
}

/* The futex word readers wait on: notify's low 32 bits. */
static inline uint32_t aurum_shm_notify_word(const struct aurum_shm_header *h) {
    return (uint32_t)aurum_shm_load(&h->notify);
}

/* Blocks until the writer publishes again after `seen` (a value of aurum_shm_notify_word read
 * before the reader last found nothing new), or `timeout_ns` passes. Returns at once if it
 * already has. Without Linux futexes it naps 200 us instead. */
static inline void aurum_shm_wait(const struct aurum_shm_header *h, uint32_t seen, long timeout_ns) {
#ifdef __linux__
    struct timespec ts = {timeout_ns / 1000000000L, timeout_ns % 1000000000L};
    const uint32_t *word = (const uint32_t *)&h->notify; /* the low half on little-endian */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word += 1;
#endif
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
#else
    (void)h; (void)seen;
    struct timespec nap = {0, timeout_ns < 200000 ? timeout_ns : 200000};
    nanosleep(&nap, NULL);
#endif
}

#endif /* AURUM_SHM_H */

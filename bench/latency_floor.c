/* latency_floor.c - the floor of the live path on this machine, with none of Aurum's work.
 *
 * Three processes, shaped like bench_latency.py, but each does nothing beyond moving bytes:
 *   sender    TCP client on 127.0.0.1; 64-byte records at --rate, one write() per batch every
 *             --batch-us; all records of a batch are stamped (CLOCK_MONOTONIC ns) just before it;
 *   receiver  ("daemon") reads the socket (blocking read() or a busy non-blocking loop), checks
 *             framing and sequence, and for one record in every --every publishes that record's
 *             send stamp into a seqlocked shared-memory slot, then FUTEX_WAKEs the consumer;
 *   consumer  FUTEX_WAITs on the futex word (or --spin polls it), reads the slot and keeps
 *             now - ts_send; at the end it prints percentiles and the receiver's counts.
 * CLOCK_MONOTONIC is one clock for all three processes and is never stepped by NTP.
 * Output: "floor key=value ..." lines (parsed by bench_latency_floor.py). Any error: one line
 * on stderr and exit 1. Build: gcc -O2 -Wall -Wextra -o latency_floor latency_floor.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REC 64
#define MAGIC 0x9e3779b97f4a7c15ULL

/* One record on the wire. `check` = seq ^ MAGIC catches misframing (a read boundary handled
 * wrongly shifts the 64-byte grid and the check fails); `seq` catches loss or reordering. */
typedef struct { uint64_t seq, ts, check; uint8_t pad[REC - 24]; } rec_t;
_Static_assert(sizeof(rec_t) == REC, "record must be 64 bytes");

/* A published signal. sl is its seqlock: 2c+1 while publication c is written, 2c+2 once done.
 * Slots form a ring, not one latest-value slot: a consumer stalled past the next signal would
 * otherwise lose exactly its worst samples; here it reads them late, and only a lap loses one. */
typedef struct { _Atomic uint64_t sl, ts_send, ts_read, ts_pub; } slot_t;
#define RING 64

/* Shared state: one anonymous MAP_SHARED mapping made before fork, so all three see it.
 * Hot words sit on their own cache lines so the receiver's counters do not bounce the line
 * the consumer polls. */
typedef struct {
    alignas(64) _Atomic uint32_t futex;       /* bumped after every publish; the wait word */
    alignas(64) _Atomic uint64_t count;       /* publications so far */
    alignas(64) slot_t ring[RING];
    alignas(64) _Atomic uint64_t sent, batches, max_batch, late_ns_max;  /* sender's counts */
    alignas(64) _Atomic uint64_t received, reads, t_first, t_last, done; /* receiver's */
    int64_t t_start;
} shm_t;

typedef unsigned long long ull; /* for printf */
static struct { double rate, duration, warmup; long batch_us, every; int busy_recv, spin, pace_spin, nodelay; }
    O = {1e6, 30, 1, 1000, 10000, 0, 0, 0, 1};
static const char *role = "main";
static shm_t *S;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "latency_floor: %s: ", role), vfprintf(stderr, fmt, ap), fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static inline int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Not FUTEX_*_PRIVATE: the processes have different mms after fork, and private futexes are
 * keyed by mm, so a private wake would never reach the consumer. */
static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
    return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* Which records are "signals": one in each window of --every records. seq % every == 0 would,
 * with 1000-record batches, always be the first record of a batch (the first to arrive); a bar
 * close falls anywhere in a chunk, so the offset in the window is a hash of the window number,
 * within its first half: uniform over the position in a batch, yet signals are >= every/2
 * records apart (never two in one batch, as bar closes ~100 ms apart are not). */
static inline int is_signal(uint64_t seq) {
    uint64_t z = seq / (uint64_t)O.every + MAGIC, half = (uint64_t)(O.every + 1) / 2;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL, z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return seq % (uint64_t)O.every == (z ^ (z >> 31)) % half; /* splitmix64's finaliser */
}

static void sender(uint16_t port) {
    role = "sender";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    /* Nagle would hold a sub-MSS write (64 KB < loopback's ~64 KB MSS) while the previous one
     * is unacked; the floor is the chain without that. --nagle measures with it. */
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &O.nodelay, sizeof O.nodelay) < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect: %s", strerror(errno));
    /* Room for 16 nominal batches, so a late wake-up sends all that is due in one write
     * (the rate holds) instead of dropping behind for good. */
    size_t per = (size_t)(O.rate * O.batch_us / 1e6) + 1, cap = per * 16 + 64;
    rec_t *buf = aligned_alloc(64, cap * REC);
    if (!buf) die("out of memory");
    memset(buf, 0, cap * REC); /* fault the pages in now, not on the first batches */
    const int64_t t0 = S->t_start, end = t0 + (int64_t)(O.duration * 1e9);
    const int64_t step = O.batch_us * 1000;
    uint64_t sent = 0, batches = 0, maxb = 0, late_max = 0;
    for (int64_t k = 1;; k++) {
        int64_t due_t = t0 + k * step;
        if (due_t > end) due_t = end;
        struct timespec ts = {due_t / 1000000000LL, due_t % 1000000000LL};
        while (O.pace_spin && now_ns() < due_t) cpu_relax();
        while (!O.pace_spin && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
        int64_t now = now_ns();
        if (now > due_t && (uint64_t)(now - due_t) > late_max) late_max = (uint64_t)(now - due_t);
        /* Woken past later deadlines too: skip them (this batch takes what they were due). */
        if (t0 + (k + 1) * step <= now) k = (now - t0) / step;
        /* Send what the clock says is due (not a fixed count), so lateness is caught up. */
        int64_t upto = now < end ? now : end;
        uint64_t due = (uint64_t)((double)(upto - t0) * O.rate / 1e9);
        size_t n = due > sent ? (size_t)(due - sent) : 0;
        if (n > cap) n = cap;
        if (n) {
            for (size_t i = 0; i < n; i++) { buf[i].seq = sent + i; buf[i].check = (sent + i) ^ MAGIC; }
            uint64_t ts = (uint64_t)now_ns(); /* stamped right before the write */
            for (size_t i = 0; i < n; i++) buf[i].ts = ts;
            const char *p = (const char *)buf;
            size_t left = n * REC;
            while (left) { /* one write() per batch; loops only if the kernel takes less */
                ssize_t w = write(fd, p, left);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) die("write: %s", w < 0 ? strerror(errno) : "wrote 0");
                p += w, left -= (size_t)w;
            }
            sent += n, batches++;
            if (n > maxb) maxb = n;
        }
        if (now >= end && sent >= due) break;
    }
    atomic_store(&S->batches, batches), atomic_store(&S->max_batch, maxb);
    atomic_store(&S->late_ns_max, late_max), atomic_store(&S->sent, sent);
    if (shutdown(fd, SHUT_WR) < 0) die("shutdown: %s", strerror(errno)); /* receiver sees EOF */
    char c;
    while (read(fd, &c, 1) > 0) {} /* wait for the receiver to close: all bytes were read */
    exit(0);
}

static void publish(uint64_t ts_send, int64_t ts_read, uint64_t c) {
    /* Seqlock write (odd, data, even), then the count, then bump the futex word and wake: a
     * consumer that saw the old word either sleeps and is woken, or FUTEX_WAIT says EAGAIN. */
    slot_t *sl = &S->ring[c % RING];
    atomic_store_explicit(&sl->sl, 2 * c + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&sl->ts_send, ts_send, memory_order_relaxed);
    atomic_store_explicit(&sl->ts_read, (uint64_t)ts_read, memory_order_relaxed);
    atomic_store_explicit(&sl->ts_pub, (uint64_t)now_ns(), memory_order_relaxed);
    atomic_store_explicit(&sl->sl, 2 * c + 2, memory_order_release);
    atomic_store_explicit(&S->count, c + 1, memory_order_release);
    atomic_fetch_add_explicit(&S->futex, 1, memory_order_release);
    if (futex(&S->futex, FUTEX_WAKE, 1) < 0) die("FUTEX_WAKE: %s", strerror(errno));
}

static void receiver(int lfd) {
    role = "receiver";
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept: %s", strerror(errno));
    if (O.busy_recv && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        die("O_NONBLOCK: %s", strerror(errno));
    enum { CAP = 256 * 1024 };
    static alignas(64) unsigned char buf[CAP];
    memset(buf, 0, CAP);
    size_t have = 0;
    uint64_t expect = 0, published = 0, reads = 0;
    int64_t t_first = 0, t_last = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, CAP - have);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { cpu_relax(); continue; }
        if (n < 0 && errno != EINTR) die("read: %s", strerror(errno));
        if (n < 0) continue;
        if (n == 0) break;
        int64_t t = now_ns();
        if (!t_first) t_first = t;
        t_last = t, reads++;
        have += (size_t)n;
        size_t whole = have / REC;
        for (size_t i = 0; i < whole; i++) {
            const rec_t *r = (const rec_t *)(buf + i * REC); /* grid stays 64-aligned: see below */
            if (r->seq != expect || r->check != (r->seq ^ MAGIC))
                die("record %llu: got seq %llu check %s (lost or misframed)", (ull)expect,
                    (ull)r->seq, r->check == (r->seq ^ MAGIC) ? "ok" : "bad");
            if (is_signal(expect)) publish(r->ts, t, published++);
            expect++;
        }
        /* A partial record stays: moved to the front so the next read completes it. */
        size_t rest = have - whole * REC;
        if (rest) memmove(buf, buf + whole * REC, rest);
        have = rest;
    }
    if (have) die("%zu stray bytes at EOF (partial record)", have);
    uint64_t sent = atomic_load(&S->sent);
    if (expect != sent) die("received %llu records, sender sent %llu", (ull)expect, (ull)sent);
    atomic_store(&S->received, expect), atomic_store(&S->reads, reads);
    atomic_store(&S->t_first, (uint64_t)t_first), atomic_store(&S->t_last, (uint64_t)t_last);
    atomic_store(&S->done, 1);
    atomic_fetch_add(&S->futex, 1); /* wake the consumer one last time so it sees done */
    futex(&S->futex, FUTEX_WAKE, 1);
    exit(0); /* closing the socket lets the sender, waiting for EOF, finish */
}

static int cmp_i64(const void *a, const void *b) {
    return (*(const int64_t *)a > *(const int64_t *)b) - (*(const int64_t *)a < *(const int64_t *)b);
}

/* Sort, then p50/p99/p99.9 by nearest rank, and max; in us. */
static void pcts(const char *name, int64_t *v, size_t n) {
    static const double q[3] = {.5, .99, .999};
    static const char *qn[3] = {"p50", "p99", "p999"};
    qsort(v, n, sizeof *v, cmp_i64);
    for (int j = 0; j < 3; j++) {
        size_t i = (size_t)(q[j] * (double)n + 0.999999);
        printf(" %s_%s=%.1f", name, qn[j], v[(i ? i : 1) - 1] / 1e3);
    }
    printf(" %s_max=%.1f", name, v[n - 1] / 1e3);
}

static void consumer(void) {
    role = "consumer";
    size_t cap = (size_t)(O.duration * O.rate / (double)O.every * 2) + 4096;
    int64_t *lat = calloc(3 * cap, sizeof *lat), *rd = lat + cap, *pub = rd + cap;
    if (!lat) die("out of memory");
    memset(lat, 0, 3 * cap * sizeof *lat); /* preallocated and faulted in before the run */
    const int64_t skip_before = S->t_start + (int64_t)(O.warmup * 1e9);
    size_t n = 0;
    uint64_t next = 0, missed = 0; /* next publication to read */
    for (;;) {
        /* Futex word first, then done and count: a publish after these loads bumps the word,
         * so FUTEX_WAIT on the old value returns at once instead of sleeping through it. */
        uint32_t w = atomic_load_explicit(&S->futex, memory_order_acquire);
        int done = (int)atomic_load_explicit(&S->done, memory_order_acquire);
        uint64_t c = atomic_load_explicit(&S->count, memory_order_acquire);
        if (next == c && !done) {
            if (O.spin) cpu_relax();
            else if (futex(&S->futex, FUTEX_WAIT, w) < 0 && errno != EAGAIN && errno != EINTR)
                die("FUTEX_WAIT: %s", strerror(errno));
            continue;
        }
        for (; next < c; next++) { /* seqlock read; anything but 2*next+2 twice means lapped */
            slot_t *sl = &S->ring[next % RING];
            uint64_t s1 = atomic_load_explicit(&sl->sl, memory_order_acquire);
            uint64_t ts = atomic_load_explicit(&sl->ts_send, memory_order_relaxed);
            uint64_t tr = atomic_load_explicit(&sl->ts_read, memory_order_relaxed);
            uint64_t tp = atomic_load_explicit(&sl->ts_pub, memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            uint64_t s2 = atomic_load_explicit(&sl->sl, memory_order_relaxed);
            int64_t t = now_ns();
            if (s1 != 2 * next + 2 || s2 != s1) { missed++; continue; }
            if ((int64_t)ts >= skip_before && n < cap)
                lat[n] = t - (int64_t)ts, rd[n] = (int64_t)(tr - ts), pub[n] = t - (int64_t)tp, n++;
        }
        if (done) break;
    }
    uint64_t rx = atomic_load(&S->received);
    double span = (double)(atomic_load(&S->t_last) - atomic_load(&S->t_first)) / 1e9;
    if (!n) die("no samples (received %llu records)", (ull)rx);
    printf("floor samples=%zu published=%llu missed=%llu", n, (ull)next, (ull)missed);
    /* lat: send -> consumer read; read: send -> the receiver's read() returning the record;
     * pub: receiver's publish -> consumer read (futex wake or spin, plus scheduling). */
    pcts("lat", lat, n), pcts("read", rd, n), pcts("pub", pub, n), printf("\n");
    printf("floor sent=%llu received=%llu reads=%llu rate=%.0f batches=%llu max_batch=%llu"
           " sender_late_max_us=%.1f\n", (ull)S->sent, (ull)rx, (ull)S->reads,
           span > 0 ? (double)rx / span : 0.0, (ull)S->batches, (ull)S->max_batch,
           (double)S->late_ns_max / 1e3);
    fflush(stdout);
    exit(0);
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"rate", 1, 0, 'r'}, {"batch-us", 1, 0, 'b'}, {"duration", 1, 0, 'd'},
        {"every", 1, 0, 'n'}, {"warmup", 1, 0, 'w'}, {"recv-mode", 1, 0, 'm'},
        {"spin", 0, 0, 's'}, {"pace", 1, 0, 'p'}, {"nagle", 0, 0, 'g'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        switch (c) {
        case 'r': O.rate = atof(optarg); break;       case 'b': O.batch_us = atol(optarg); break;
        case 'd': O.duration = atof(optarg); break;   case 'n': O.every = atol(optarg); break;
        case 'w': O.warmup = atof(optarg); break;     case 's': O.spin = 1; break;
        case 'g': O.nodelay = 0; break;
        case 'm': O.busy_recv = !strcmp(optarg, "busy") ? 1 : !strcmp(optarg, "block") ? 0 : -1; break;
        case 'p': O.pace_spin = !strcmp(optarg, "spin") ? 1 : !strcmp(optarg, "sleep") ? 0 : -1; break;
        default:
            die("usage: %s [--rate R] [--batch-us US] [--duration S] [--every N] [--warmup S]"
                " [--recv-mode block|busy] [--spin] [--pace sleep|spin] [--nagle]", argv[0]);
        }
    }
    if (O.rate <= 0 || O.batch_us <= 0 || O.duration <= 0 || O.every <= 0 || O.warmup < 0)
        die("rate, batch-us, duration and every must be > 0");
    if (O.busy_recv < 0 || O.pace_spin < 0) die("--recv-mode block|busy, --pace sleep|spin");
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) die("mmap: %s", strerror(errno)); /* zero-filled */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        die("listen on 127.0.0.1: %s", strerror(errno));
    /* Start 200 ms from now so all three are up before the first batch is due. */
    S->t_start = now_ns() + 200000000LL;
    fflush(stdout);
    pid_t pid[3];
    const char *names[3] = {"consumer", "receiver", "sender"};
    for (int i = 0; i < 3; i++) { /* consumer, receiver (accepts), sender (connects) */
        if ((pid[i] = fork()) < 0) die("fork: %s", strerror(errno));
        if (pid[i] == 0 && i == 1) receiver(lfd);
        if (pid[i] == 0) close(lfd), i ? sender(ntohs(a.sin_port)) : consumer();
    }
    close(lfd);
    /* Reap all three; if one fails or the run overstays, end the other two (our own pids). */
    const int64_t deadline = S->t_start + (int64_t)((O.duration + 30) * 1e9);
    double cpu[3] = {0};
    int left = 3, failed = 0;
    while (left) {
        int st;
        struct rusage ru;
        pid_t p = wait4(-1, &st, WNOHANG, &ru);
        if (p < 0) die("wait4: %s", strerror(errno));
        int bad = 0;
        if (p == 0) {
            if (now_ns() > deadline && !failed) bad = 1, fprintf(stderr, "latency_floor: main: run overstayed\n");
            else usleep(20000);
        }
        for (int i = 0; i < 3 && p > 0; i++) {
            if (pid[i] != p) continue;
            pid[i] = -1, left--;
            cpu[i] = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
            if (WIFSIGNALED(st) && !failed)
                fprintf(stderr, "latency_floor: main: %s killed by signal %d\n", names[i], WTERMSIG(st));
            bad = !WIFEXITED(st) || WEXITSTATUS(st);
        }
        if (bad && !failed) /* the child said why; end the other two */
            for (int j = (failed = 1, 0); j < 3; j++) if (pid[j] > 0) kill(pid[j], SIGKILL);
    }
    if (failed) return 1;
    printf("floor cpu_sender=%.1f cpu_receiver=%.1f cpu_consumer=%.1f\n", 100 * cpu[2] / O.duration,
           100 * cpu[1] / O.duration, 100 * cpu[0] / O.duration);
    return 0;
}

/*
 * aurum_shm_reader.c - a minimal C consumer of Aurum's shared-memory signals.
 *
 *   cc -O2 -std=c11 -o aurum_shm_reader aurum_shm_reader.c
 *   ./aurum_shm_reader [NAME] [--count N] [--from-start] [--state] [--timeout-ms MS]
 *
 * One line per signal ("seq=... crc=ok ..."), then "lost=N". Exit 0 on success, 2 if the
 * segment is missing or has another layout, 3 on timeout before N signals. A writer restart
 * that re-initialises the segment in place (same size: a new epoch) is followed from the new
 * writer's signal 0, with "resync epoch=E" on stderr; one that needs another size replaces
 * the file, which this reader does not reopen (aurum.consumer does).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* syscall(), for the futex wait in aurum_shm.h */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aurum_shm.h"

static double ms_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void print_signal(const struct aurum_shm_signal *s) {
    uint32_t crc = aurum_shm_crc32((const uint8_t *)s + 8, 244);
    printf("seq=%" PRIu64 " ts=%" PRIu64 " inst=%" PRIu32 " action=%u entry=%" PRId64 " stop=%" PRId64
           " t0=%" PRId64 " dir=%.6f conf=%.6f veto=%u flags=%u p0=%.3f crc=%s reason=%s\n",
           s->seq, s->ts_ns, s->instrument_id, s->action, s->entry, s->stop, s->targets[0], s->direction,
           s->confidence, s->veto, s->flags, s->pillar_dir[0], crc == s->crc32 ? "ok" : "bad", s->reason);
}

static void print_state(const struct aurum_shm_state *st) {
    uint32_t crc = aurum_shm_crc32((const uint8_t *)st + 8, 1012);
    printf("state update=%" PRIu64 " last=%" PRId64 " bid=%" PRId64 " ask=%" PRId64 " volume=%" PRIu64
           " source=%u feed=%u zones=%u crc=%s\n", st->lock / 2, st->last, st->bid, st->ask, st->volume,
           st->source, st->feed_state, st->zone_count, crc == st->crc32 ? "ok" : "bad");
    for (unsigned i = 0; i < st->zone_count && i < AURUM_SHM_MAX_ZONES; i++)
        printf("zone price=%" PRId64 " side=%c strength=%.3f volume=%" PRIu32 "\n", st->zones[i].price,
               st->zones[i].side ? st->zones[i].side : '?', st->zones[i].strength, st->zones[i].volume);
}

int main(int argc, char **argv) {
    /* Each signal as it arrives, even into a pipe: a consumer reading our stdout must not
     * wait for a full stdio buffer (or our exit) to see one. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *name = AURUM_SHM_DEFAULT_NAME;
    long count = -1, timeout_ms = 5000;
    int from_start = 0, want_state = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) timeout_ms = atol(argv[++i]);
        else if (!strcmp(argv[i], "--from-start")) from_start = 1;
        else if (!strcmp(argv[i], "--state")) want_state = 1;
        else name = argv[i];
    }
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "aurum_shm_reader: segment %s not found (%s)\n", name, path);
        return 2;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < AURUM_SHM_RING_OFFSET) {
        fprintf(stderr, "aurum_shm_reader: %s is too small\n", path);
        return 2;
    }
    const uint8_t *base = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    const struct aurum_shm_header *h = (const struct aurum_shm_header *)base;
    uint64_t want_hash = aurum_shm_fnv1a64(AURUM_SHM_LAYOUT_DESC);
    if (memcmp(h->magic, AURUM_SHM_MAGIC, 8) != 0 || h->version != AURUM_SHM_VERSION || h->layout_hash != want_hash) {
        fprintf(stderr, "aurum_shm_reader: %s: layout hash %016" PRIx64 ", expected %016" PRIx64 "\n", name,
                h->layout_hash, want_hash);
        return 2;
    }
    uint32_t cap = h->capacity;
    if (cap < 2 || (cap & (cap - 1)) || AURUM_SHM_RING_OFFSET + (uint64_t)cap * AURUM_SHM_RECORD_SIZE > (uint64_t)sb.st_size) {
        fprintf(stderr, "aurum_shm_reader: %s: bad capacity %u\n", name, cap);
        return 2;
    }
    if (want_state) {
        struct aurum_shm_state st;
        if (!aurum_shm_read_state(base, &st, 1000000)) {
            fprintf(stderr, "aurum_shm_reader: no state block\n");
            return 1;
        }
        print_state(&st);
        return 0;
    }
    uint64_t epoch = aurum_shm_load(&h->epoch);
    uint64_t w = aurum_shm_load(&h->write_seq);
    uint64_t next = from_start ? (w > cap ? w - cap : 0) : w, lost = 0;
    long seen = 0;
    double deadline = ms_now() + timeout_ms;
    while (count < 0 || seen < count) {
        uint32_t word = aurum_shm_notify_word(h); /* before the check: no publish can slip by */
        int ready = aurum_shm_ready(h);
        if (ready) {
            uint64_t e = aurum_shm_load(&h->epoch);
            w = aurum_shm_load(&h->write_seq);
            if (e != epoch || w < next) {
                /* A new writer took the segment over: everything it wrote is new to us. Its
                 * epoch changes even when its write_seq has already passed our position. */
                epoch = e;
                next = 0;
                fprintf(stderr, "aurum_shm_reader: writer restarted (pid %" PRIu32 "); resync epoch=%" PRIu64 "\n",
                        h->writer_pid, epoch);
            }
        }
        if (!ready || next >= w) {
            double left = deadline - ms_now();
            if (left <= 0) break;
            aurum_shm_wait(h, word, (long)((left < 100 ? left : 100) * 1e6));
            continue;
        }
        if (w - next > cap) { /* lapped: the older signals are gone */
            lost += w - cap - next;
            next = w - cap;
        }
        struct aurum_shm_signal s;
        int r = aurum_shm_read_signal(base, cap, next, &s);
        if (r == 0) continue;
        /* A re-initialisation since the epoch check zeroes the ring: what we copied may be
         * the old writer's. The next round resyncs instead. */
        if (!aurum_shm_ready(h) || aurum_shm_load(&h->epoch) != epoch) continue;
        next++;
        if (r < 0) { lost++; continue; }
        print_signal(&s);
        seen++;
    }
    printf("lost=%" PRIu64 "\n", lost);
    return (count >= 0 && seen < count) ? 3 : 0;
}

/* fuzz_spool.c — spool recovery (firmware/spool/spool.c) on whatever a
 * crash, a failing card or a hand can leave in the spool directory. The
 * input is laid out as files in a fresh directory under /dev/shm, then
 * dcem_spool_open recovers it. Corrupt data is never fatal, so the open must
 * succeed and leave a spool that works: every held record can be read, a new
 * batch can be appended, read back and acked, and the spool reopens with the
 * same epoch. Input layout:
 *   byte 0    bit 0: recompute the CRCs of records and metadata (so the
 *             fuzzer gets past them to the interesting checks);
 *             bit 1: the next 44 bytes are spool.meta;
 *             bits 2-3: segments - 1 (1 to 4); bits 4-6: id of the first;
 *             bit 7: leave a stray spool.meta.tmp behind too
 *   rest      the segment files' bytes, one after the other, separated by
 *             the 4 bytes "SEG|" (a missing part is an empty file). */
#include "fuzz.h"

#include "../unit/tmpdir.h"
#include "errors.h"
#include "spool.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define META_BYTES 44u
#define NOW_S 1700000000 /* wall clock given to open: labels a new epoch */
#define WIRE_MAX_ID 9007199254740991ULL /* 2^53 - 1: largest epoch/seq the wire carries */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc(uint32_t c, const uint8_t *p, size_t n)
{
    return (uint32_t)crc32(c, p, (uInt)n);
}

/* Gives every whole record its right CRC (recovery's CRC check is what a
 * random mutation never gets past). */
static void fix_records(uint8_t *b, size_t n)
{
    size_t off = 0;
    while (off + DCEM_SPOOL_HEADER_BYTES <= n) {
        uint8_t *h = b + off;
        uint32_t len = le32(h + 8);
        if (memcmp(h, "DCSP", 4) || len > DCEM_SPOOL_MAX_PAYLOAD ||
            len > n - off - DCEM_SPOOL_HEADER_BYTES) {
            off++;
            continue;
        }
        put_le32(h + 28, crc(crc(0, h, 28), h + DCEM_SPOOL_HEADER_BYTES, len));
        off += DCEM_SPOOL_HEADER_BYTES + len;
    }
}

/* The next "SEG|" in [p, end), or NULL (memmem is not POSIX). */
static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
    for (; end - p >= 4; p++)
        if (!memcmp(p, "SEG|", 4)) return p;
    return NULL;
}

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(n == 0 || write(fd, b, n) == (ssize_t)n);
    close(fd);
}

/* Reads every held record from the oldest on; returns how many. */
static uint64_t read_all(dcem_spool *sp, uint8_t *buf)
{
    uint64_t epoch = 0, seq = 0, n = 0;
    dcem_spool_rec rec;
    int rc;
    while ((rc = dcem_spool_read(sp, epoch, seq, buf, DCEM_SPOOL_MAX_PAYLOAD, &rec)) == 0) {
        FUZZ_CHECK(rec.epoch > epoch || (rec.epoch == epoch && rec.seq >= seq));
        FUZZ_CHECK(rec.len <= DCEM_SPOOL_MAX_PAYLOAD);
        FUZZ_CHECK(rec.seq < UINT64_MAX); /* else there is no "next" to ask for */
        epoch = rec.epoch;
        seq = rec.seq + 1;
        FUZZ_CHECK(++n <= 1u << 20);
    }
    FUZZ_CHECK(rc == DCEM_ENOTFOUND);
    return n;
}

static dcem_spool *open_ok(const char *dir)
{
    static const dcem_spool_opts opts = {.max_bytes = 1u << 20, .segment_bytes = 4096,
                                         .fsync = DCEM_SPOOL_FSYNC_NEVER};
    dcem_spool *sp = NULL;
    char err[512];
    int rc = dcem_spool_open(dir, &opts, NOW_S, &sp, err, sizeof err);
    if (rc) fprintf(stderr, "fuzz_spool: open: %s\n", err);
    FUZZ_CHECK(rc == 0 && sp != NULL);
    return sp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static uint8_t *buf;
    if (!buf) FUZZ_CHECK((buf = malloc(DCEM_SPOOL_MAX_PAYLOAD)) != NULL);
    uint8_t flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;

    char dir[] = "/dev/shm/dcem-fuzz-spool-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != NULL);

    if ((flags & 2) && (size_t)(end - p) >= META_BYTES) {
        uint8_t meta[META_BYTES];
        memcpy(meta, p, META_BYTES);
        if (flags & 1) put_le32(meta + 40, crc(0, meta, 40));
        write_file(dir, "spool.meta", meta, META_BYTES);
        p += META_BYTES;
    }
    if (flags & 0x80) write_file(dir, "spool.meta.tmp", p, (size_t)(end - p) < 8 ? 0 : 8);
    unsigned nseg = ((flags >> 2) & 3u) + 1, first = (flags >> 4) & 7u;
    for (unsigned i = 0; i < nseg; i++) {
        const uint8_t *sep = find_sep(p, end);
        size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
        uint8_t *seg = malloc(n ? n : 1);
        FUZZ_CHECK(seg != NULL);
        memcpy(seg, p, n);
        if (flags & 1) fix_records(seg, n);
        char name[64];
        snprintf(name, sizeof name, "seg-%020u.log", first + i);
        write_file(dir, name, seg, n);
        free(seg);
        p = sep ? sep + 4 : end;
    }

    dcem_spool *sp = open_ok(dir);
    dcem_spool_stat st;
    dcem_spool_stats(sp, &st);
    /* The agent puts epoch and seq on the wire, which carries 1 .. 2^53-1. */
    FUZZ_CHECK(st.epoch >= 1 && st.epoch <= WIRE_MAX_ID);
    FUZZ_CHECK(st.next_seq >= 1 && st.next_seq <= WIRE_MAX_ID);
    FUZZ_CHECK(st.acked_seq < st.next_seq && st.bytes <= 1u << 20);
    uint64_t held = read_all(sp, buf);
    FUZZ_CHECK(held <= st.records);

    /* Usable: a new batch goes in, comes back out, and can be acked. */
    uint64_t epoch = dcem_spool_epoch(sp), seq = dcem_spool_next_seq(sp);
    static const char batch[] = "{\"v\":1}";
    FUZZ_CHECK(dcem_spool_append(sp, seq, batch, sizeof batch - 1) == 0);
    FUZZ_CHECK(dcem_spool_sync(sp) == 0);
    dcem_spool_rec rec;
    FUZZ_CHECK(dcem_spool_read(sp, epoch, seq, buf, DCEM_SPOOL_MAX_PAYLOAD, &rec) == 0);
    FUZZ_CHECK(rec.epoch == epoch && rec.seq == seq && rec.len == sizeof batch - 1);
    FUZZ_CHECK(!memcmp(buf, batch, rec.len));
    FUZZ_CHECK(dcem_spool_ack(sp, epoch, seq) == 0);
    dcem_spool_close(sp);

    /* What recovery left behind is a spool in good order: it reopens as it
     * was closed, with nothing more to repair. */
    sp = open_ok(dir);
    dcem_spool_stats(sp, &st);
    FUZZ_CHECK(st.epoch_reason == DCEM_SPOOL_EPOCH_RESUMED && st.epoch == epoch);
    FUZZ_CHECK(st.next_seq == seq + 1 && st.acked_seq == seq);
    FUZZ_CHECK(st.corrupt_segments == 0 && st.truncated_bytes == 0);
    (void)read_all(sp, buf);
    dcem_spool_close(sp);
    rm_rf(dir);
    return 0;
}

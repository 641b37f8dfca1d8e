/* fuzz_queue.c — the record scanner of the on-disk queue module
 * (common/queue/qrec.c), which both the agent's spool and the InfluxDB
 * backlog read their files with, on any bytes a crash, a failing medium or a
 * hand can leave in a file. Pure: the file is held in memory behind the
 * scanner's reader seam. Input layout:
 *   byte 0   bit 0: recompute the CRC of every whole record (so that the
 *            fuzzer gets past it to the scanner's other checks);
 *            bit 1: records must follow one another (the id at offset 12
 *            rises; by one for a torn tail to count as torn), as in the
 *            spool; clear: any valid record follows, as in the backlog;
 *            bits 4-7: the reader fails at that call (0: never)
 *   rest     the file's bytes: records of magic "FZQR", version 1, payloads
 *            of at most 256 bytes.
 * Checked: the counts add up and stay within the file; the valid records the
 * scan hands out, copied one after the other (a salvage), scan again as a
 * clean file with the same records; a file without damage in the middle and
 * a torn tail, cut at the end of its last valid record, scans clean; a
 * failing reader fails the scan, never silently. */
#include "fuzz.h"

#include "errors.h"
#include "qrec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define H DCEM_QREC_HEADER
#define MAX_PAYLOAD 256u

static int follows_rising(const uint8_t *prev, const uint8_t *h)
{
    if (!prev) return DCEM_QREC_NEXT;
    uint64_t a = dcem_le_get64(prev + 12), b = dcem_le_get64(h + 12);
    if (b <= a) return DCEM_QREC_APART;
    return b == a + 1 ? DCEM_QREC_NEXT : DCEM_QREC_LATER;
}

typedef struct mem {
    const uint8_t *b;
    size_t n;
    unsigned fail_at, calls;
} mem;

static int64_t mem_pread(void *ctx, void *buf, uint64_t n, uint64_t off)
{
    mem *m = ctx;
    if (++m->calls == m->fail_at) {
        errno = EIO;
        return -1;
    }
    if (off >= m->n) return 0;
    uint64_t k = m->n - off < n ? m->n - off : n;
    memcpy(buf, m->b + off, (size_t)k);
    return (int64_t)k;
}

/* The salvage: valid records appended to out, each checked once more. */
typedef struct copy {
    const dcem_qrec_fmt *f;
    uint8_t *out;
    size_t n;
    uint64_t records;
} copy;

static int copy_record(void *ctx, const uint8_t *h, const void *payload, uint32_t len)
{
    copy *c = ctx;
    FUZZ_CHECK(len <= MAX_PAYLOAD);
    uint32_t l2 = 0;
    FUZZ_CHECK(dcem_qrec_parse(c->f, h, &l2) == 0 && l2 == len);
    FUZZ_CHECK(dcem_qrec_crc_ok(h, payload, len));
    memcpy(c->out + c->n, h, H);
    memcpy(c->out + c->n + H, payload, len);
    c->n += H + len;
    c->records++;
    return 0;
}

static void fix_crcs(const dcem_qrec_fmt *f, uint8_t *b, size_t n)
{
    size_t off = 0;
    while (off + H <= n) {
        uint32_t len;
        if (dcem_qrec_parse(f, b + off, &len) || len > n - off - H) {
            off++;
            continue;
        }
        dcem_le_put32(b + off + 28, dcem_qrec_crc32(dcem_qrec_crc32(0, b + off, H - 4),
                                                    b + off + H, len));
        off += H + len;
    }
}

static dcem_qrec_scanned scan(const dcem_qrec_fmt *f, const uint8_t *b, size_t n, copy *c,
                              uint8_t *buf)
{
    mem m = {.b = b, .n = n};
    dcem_qrec_reader rd = {.pread = mem_pread, .ctx = &m};
    dcem_qrec_sink sink = {.record = copy_record, .ctx = c};
    dcem_qrec_scanned sc;
    FUZZ_CHECK(dcem_qrec_scan(f, &rd, n, buf, MAX_PAYLOAD, c ? &sink : NULL, &sc) == 0);
    return sc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    dcem_qrec_fmt f = {.magic = {'F', 'Z', 'Q', 'R'}, .version = 1, .max_payload = MAX_PAYLOAD};
    if (data[0] & 2) f.follows = follows_rising;
    size_t n = size - 1;
    uint8_t *file = malloc(n + 1), *out = malloc(n + 1), *buf = malloc(MAX_PAYLOAD);
    FUZZ_CHECK(file && out && buf);
    memcpy(file, data + 1, n);
    if (data[0] & 1) fix_crcs(&f, file, n);

    copy c = {.f = &f, .out = out};
    dcem_qrec_scanned sc = scan(&f, file, n, &c, buf);
    FUZZ_CHECK(sc.fsize == n);
    FUZZ_CHECK(sc.valid_end <= n && sc.valid_bytes <= sc.valid_end);
    FUZZ_CHECK(sc.nrec == c.records && sc.valid_bytes == c.n);
    FUZZ_CHECK(sc.valid_bytes >= sc.nrec * H);
    FUZZ_CHECK(sc.nrec || (sc.valid_bytes == 0 && sc.valid_end == 0 && !sc.bad_mid));
    FUZZ_CHECK(!sc.tail_torn || sc.bad_tail);
    FUZZ_CHECK(sc.bad_mid || sc.bad_tail || sc.valid_end == n);
    FUZZ_CHECK(sc.bad_mid || sc.valid_bytes == sc.valid_end);

    /* the salvage is a clean file of the same records */
    dcem_qrec_scanned s2 = scan(&f, out, c.n, NULL, buf);
    FUZZ_CHECK(s2.nrec == sc.nrec && s2.valid_end == c.n);
    FUZZ_CHECK(!s2.bad_mid && !s2.bad_tail);
    if (sc.nrec) {
        FUZZ_CHECK(!memcmp(s2.first, sc.first, H));
        FUZZ_CHECK(!memcmp(s2.last, sc.last, H));
    }
    /* a torn tail cut off leaves a clean file: what recovery truncates to */
    if (!sc.bad_mid && sc.tail_torn) {
        dcem_qrec_scanned s3 = scan(&f, file, (size_t)sc.valid_end, NULL, buf);
        FUZZ_CHECK(s3.nrec == sc.nrec && !s3.bad_tail && !s3.bad_mid);
    }
    /* a reader that fails is a failed scan */
    unsigned fail_at = (unsigned)(data[0] >> 4);
    if (fail_at) {
        mem m = {.b = file, .n = n, .fail_at = fail_at};
        dcem_qrec_reader rd = {.pread = mem_pread, .ctx = &m};
        dcem_qrec_scanned s4;
        int rc = dcem_qrec_scan(&f, &rd, n, buf, MAX_PAYLOAD, NULL, &s4);
        FUZZ_CHECK(rc == (m.calls >= fail_at ? DCEM_ESTORAGE : 0));
    }
    free(file);
    free(out);
    free(buf);
    return 0;
}

/* A spool directory and an InfluxDB backlog directory as the code before the
 * common queue module (common/queue) left them open and read with today's
 * code. The files are byte images built here from the layouts that spool.h
 * and backlog.h document, with zlib's crc32 — none of the module's code makes
 * them — including what the old code left behind: a torn tail, leftover temp
 * files of the old names, set-aside files of the old backlog name
 * (b-<seq>.corrupt) that still count towards the cap. What today's code
 * writes is checked against the same images, so the old code could read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backlog.h"
#include "errors.h"
#include "spool.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define E 1700000000ull /* the epoch of the old spool */

typedef struct fx {
    char tmp[64];
    char dir[128];
    char path[256];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/dcem-qcompat-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/q", f->tmp);
    if (mkdir(f->dir, 0700)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rm_rf(f->tmp);
    free(f);
    return 0;
}

static const char *in_dir(fx *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%.100s", f->dir, name);
    return f->path;
}

static int exists(fx *f, const char *name)
{
    struct stat st;
    return stat(in_dir(f, name), &st) == 0;
}

static void spit(fx *f, const char *name, const void *b, size_t n)
{
    FILE *fp = fopen(in_dir(f, name), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

static uint8_t *slurp(fx *f, const char *name, size_t *n)
{
    FILE *fp = fopen(in_dir(f, name), "rb");
    assert_non_null(fp);
    static uint8_t b[4096];
    *n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    return b;
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t crc(const uint8_t *h, size_t hn, const void *p, size_t n)
{
    uLong c = crc32(0L, h, (uInt)hn);
    return n ? (uint32_t)crc32(c, (const Bytef *)p, (uInt)n) : (uint32_t)c; /* NULL: zlib's init */
}

/* spool.h: "DCSP", version 1, flags 0, 2 reserved, length, epoch, seq, CRC. */
static size_t old_spool_record(uint8_t *b, uint64_t epoch, uint64_t seq, const char *payload)
{
    size_t n = strlen(payload);
    memset(b, 0, 32);
    memcpy(b, "DCSP", 4);
    b[4] = 1;
    le32(b + 8, (uint32_t)n);
    le64(b + 12, epoch);
    le64(b + 20, seq);
    le32(b + 28, crc(b, 28, payload, n));
    memcpy(b + 32, payload, n);
    return 32 + n;
}

/* spool.h: "DCSM", version 1, 3 zero bytes, epoch, acked, gone, next, CRC. */
static void old_spool_meta(uint8_t *b, uint64_t epoch, uint64_t acked, uint64_t gone,
                           uint64_t next)
{
    memset(b, 0, 44);
    memcpy(b, "DCSM", 4);
    b[4] = 1;
    le64(b + 8, epoch);
    le64(b + 16, acked);
    le64(b + 24, gone);
    le64(b + 32, next);
    le32(b + 40, crc(b, 40, NULL, 0));
}

static void read_expect(dcem_spool *sp, uint64_t *e, uint64_t *s, uint64_t seq, const char *want)
{
    char buf[64];
    dcem_spool_rec rec;
    assert_int_equal(dcem_spool_read(sp, *e, *s, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.epoch, E);
    assert_int_equal(rec.seq, seq);
    assert_int_equal(rec.len, strlen(want));
    assert_memory_equal(buf, want, rec.len);
    *e = rec.epoch;
    *s = rec.seq + 1;
}

static void test_old_spool_opens_and_reads(void **state)
{
    fx *f = *state;
    uint8_t seg[1024], meta[44];
    size_t n = 0;
    for (int i = 1; i <= 3; i++) {
        char p[16];
        snprintf(p, sizeof p, "batch-%d", i);
        n += old_spool_record(seg + n, E, (uint64_t)i, p);
    }
    spit(f, "seg-00000000000000000001.log", seg, n);
    n = old_spool_record(seg, E, 4, "batch-4");
    n += old_spool_record(seg + n, E, 5, "batch-5");
    size_t whole = n;
    n += old_spool_record(seg + n, E, 6, "batch-6 cut off by a crash") - 20;
    spit(f, "seg-00000000000000000002.log", seg, n);
    old_spool_meta(meta, E, 2, 2, 6); /* 1 and 2 acked; 6 never reported */
    spit(f, "spool.meta", meta, sizeof meta);
    spit(f, "spool.meta.tmp", meta, 10);                   /* interrupted writes */
    spit(f, "seg-00000000000000000002.log.tmp", seg, 40);  /* of the old code */
    spit(f, "seg-00000000000000000001.log.corrupt", seg, 7); /* a human's to look at */

    char err[256];
    dcem_spool *sp = NULL;
    dcem_spool_opts o = {.fsync = DCEM_SPOOL_FSYNC_ALWAYS};
    assert_int_equal(dcem_spool_open(f->dir, &o, (int64_t)E + 500, &sp, err, sizeof err), 0);
    dcem_spool_stat st;
    dcem_spool_stats(sp, &st);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.epoch, E);
    assert_int_equal(st.acked_seq, 2);
    assert_int_equal(st.next_seq, 6);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.first_seq, 3);
    assert_int_equal(st.truncated_bytes, n - whole);
    assert_int_equal(st.corrupt_segments, 0);
    assert_false(exists(f, "spool.meta.tmp"));
    assert_false(exists(f, "seg-00000000000000000002.log.tmp"));
    assert_true(exists(f, "seg-00000000000000000001.log.corrupt"));

    uint64_t e = 0, s = 0;
    read_expect(sp, &e, &s, 3, "batch-3");
    read_expect(sp, &e, &s, 4, "batch-4");
    read_expect(sp, &e, &s, 5, "batch-5");
    char buf[64];
    dcem_spool_rec rec;
    assert_int_equal(dcem_spool_read(sp, e, s, buf, sizeof buf, &rec), DCEM_ENOTFOUND);

    /* What is appended now is the old layout, byte for byte. */
    assert_int_equal(dcem_spool_append(sp, 6, "batch-6", 7), 0);
    size_t got;
    uint8_t *b = slurp(f, "seg-00000000000000000002.log", &got);
    uint8_t want[64];
    size_t wn = old_spool_record(want, E, 6, "batch-6");
    assert_int_equal(got, whole + wn);
    assert_memory_equal(b + whole, want, wn);
    assert_int_equal(dcem_spool_ack(sp, E, 4), 0);
    dcem_spool_close(sp);

    /* ... and so is the metadata. */
    uint8_t m2[44];
    old_spool_meta(m2, E, 4, 4, 7);
    b = slurp(f, "spool.meta", &got);
    assert_int_equal(got, sizeof m2);
    assert_memory_equal(b, m2, sizeof m2);

    assert_int_equal(dcem_spool_open(f->dir, &o, (int64_t)E + 900, &sp, err, sizeof err), 0);
    dcem_spool_stats(sp, &st);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.next_seq, 7);
    assert_int_equal(st.records, 2);
    e = s = 0;
    read_expect(sp, &e, &s, 5, "batch-5");
    read_expect(sp, &e, &s, 6, "batch-6");
    dcem_spool_close(sp);
}

/* backlog.h: "DCIB", version 1, 3 reserved, length, lines, seq, 4 reserved,
 * CRC, then the body. */
static size_t old_backlog_file(uint8_t *b, uint64_t seq, const char *body, uint32_t lines)
{
    size_t n = strlen(body);
    memset(b, 0, 32);
    memcpy(b, "DCIB", 4);
    b[4] = 1;
    le32(b + 8, (uint32_t)n);
    le32(b + 12, lines);
    le64(b + 16, seq);
    le32(b + 28, crc(b, 28, body, n));
    memcpy(b + 32, body, n);
    return 32 + n;
}

static void put_old_batch(fx *f, uint64_t seq, const char *body, uint32_t lines)
{
    uint8_t b[256];
    char name[64];
    snprintf(name, sizeof name, "b-%020llu.lp", (unsigned long long)seq);
    spit(f, name, b, old_backlog_file(b, seq, body, lines));
}

static void test_old_backlog_drains(void **state)
{
    fx *f = *state;
    put_old_batch(f, 3, "m v=3 3\n", 1);
    put_old_batch(f, 5, "m v=5 5\nm v=6 6\n", 2);
    spit(f, "b-00000000000000000008.tmp", "DCIB", 4); /* an old interrupted write */
    spit(f, "b-00000000000000000007.corrupt", "x", 1); /* set aside by the old code */

    char err[256];
    dcem_backlog *b = NULL;
    assert_int_equal(dcem_backlog_open(f->dir, 1 << 20, 100, &b, err, sizeof err), 0);
    assert_int_equal(dcem_backlog_count(b), 2);
    dcem_backlog_stat st;
    dcem_backlog_stats(b, &st);
    assert_int_equal(st.lines, 3);
    assert_int_equal(st.bytes, 2 * 32 + 8 + 16);
    assert_int_equal(st.corrupt, 0);
    assert_false(exists(f, "b-00000000000000000008.tmp"));
    assert_true(exists(f, "b-00000000000000000007.corrupt"));

    char buf[64];
    size_t len;
    uint32_t lines;
    assert_int_equal(dcem_backlog_read(b, 0, buf, sizeof buf, &len, &lines), 0);
    assert_int_equal(len, 8);
    assert_int_equal(lines, 1);
    assert_memory_equal(buf, "m v=3 3\n", 8);
    assert_int_equal(dcem_backlog_read(b, 1, buf, sizeof buf, &len, &lines), 0);
    assert_int_equal(lines, 2);
    assert_memory_equal(buf, "m v=5 5\nm v=6 6\n", 16);

    /* A new batch goes above every seq the old code used, in the old layout. */
    assert_int_equal(dcem_backlog_push(b, "m v=9 9\n", 8, 1), 0);
    uint8_t want[64];
    size_t wn = old_backlog_file(want, 9, "m v=9 9\n", 1), got;
    uint8_t *on_disk = slurp(f, "b-00000000000000000009.lp", &got);
    assert_int_equal(got, wn);
    assert_memory_equal(on_disk, want, wn);

    dcem_backlog_pop(b, 2);
    assert_false(exists(f, "b-00000000000000000003.lp"));
    assert_false(exists(f, "b-00000000000000000005.lp"));
    assert_int_equal(dcem_backlog_read(b, 0, buf, sizeof buf, &len, &lines), 0);
    assert_memory_equal(buf, "m v=9 9\n", 8);
    dcem_backlog_close(b);
}

/* Old set-aside files count towards the shared cap: with eight of them, a
 * bad batch is deleted rather than copied, and still counted. */
static void test_old_backlog_aside_cap(void **state)
{
    fx *f = *state;
    for (int i = 20; i < 28; i++) {
        char name[64];
        snprintf(name, sizeof name, "b-%020d.corrupt", i);
        spit(f, name, "x", 1);
    }
    put_old_batch(f, 4, "m v=4 4\n", 1);
    put_old_batch(f, 6, "m v=6 6\n", 1);
    uint8_t bad[64];
    size_t n = old_backlog_file(bad, 5, "m v=5 5\n", 1);
    bad[0] = 'X';
    spit(f, "b-00000000000000000005.lp", bad, n);

    char err[256];
    dcem_backlog *b = NULL;
    assert_int_equal(dcem_backlog_open(f->dir, 1 << 20, 100, &b, err, sizeof err), 0);
    dcem_backlog_stat st;
    dcem_backlog_stats(b, &st);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(dcem_backlog_count(b), 2);
    assert_false(exists(f, "b-00000000000000000005.lp"));
    assert_false(exists(f, "b-00000000000000000005.lp.corrupt"));
    assert_int_equal(dcem_backlog_push(b, "m v=7 7\n", 8, 1), 0);
    assert_true(exists(f, "b-00000000000000000028.lp"));
    dcem_backlog_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_old_spool_opens_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_backlog_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_backlog_aside_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The agent's spool on a fresh temp directory per test: round trip, acks
 * that delete segments and survive a reopen, replay after restart, drop-oldest
 * at the cap, a torn tail cut at every byte, corrupt records and metadata,
 * wrong-epoch acks, the interval fsync policy, and kill -9 mid-append. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "spool.h"
#include "tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define E0 1000 /* the epoch tests create their spool with */

typedef struct fx {
    char tmp[64];   /* mkdtemp, removed after the test */
    char dir[128];  /* the spool inside it (created by open) */
    char path[256]; /* scratch for file names */
} fx;

/* ---- fixture and file helpers ------------------------------------------------------------ */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/dcem-spool-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->tmp);
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
    snprintf(f->path, sizeof f->path, "%s/%.100s", f->dir, name); /* names are short */
    return f->path;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static void flip(const char *path, long off, uint8_t mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Segment files ("seg-*.log") in name order; returns how many (<= max). */
static int seg_files(fx *f, char names[][64], int max)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "seg-", 4) || l < 8 || strcmp(de->d_name + l - 4, ".log")) continue;
        assert_true(n < max && l < 64);
        memcpy(names[n++], de->d_name, l + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    return n;
}

static int count_segs(fx *f)
{
    char names[256][64];
    return seg_files(f, names, 256);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- payloads ---------------------------------------------------------------------------- */

static size_t var_len(uint64_t seq)
{
    return 1 + (size_t)((seq * 2654435761u) % 300);
}

static void fill(uint64_t seq, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(seq * 31 + i * 7);
}

static void append_n(dcem_spool *sp, uint64_t from, uint64_t to, size_t fixed)
{
    uint8_t buf[512];
    for (uint64_t s = from; s <= to; s++) {
        size_t len = fixed ? fixed : var_len(s);
        fill(s, buf, len);
        assert_int_equal(dcem_spool_next_seq(sp), s);
        int rc = dcem_spool_append(sp, s, buf, len);
        if (rc) fprintf(stderr, "append %llu: %s\n", (unsigned long long)s, dcem_spool_error(sp));
        assert_int_equal(rc, 0);
    }
}

/* Reads every held record from (epoch, seq) on; checks each payload against
 * fill() and fixed/var_len; stores the seqs in out. Returns the count. */
static int read_all(dcem_spool *sp, uint64_t epoch, uint64_t seq, size_t fixed, uint64_t *epochs,
                    uint64_t *out, int max)
{
    uint8_t buf[512], want[512];
    dcem_spool_rec rec;
    int n = 0;
    for (;;) {
        int rc = dcem_spool_read(sp, epoch, seq, buf, sizeof buf, &rec);
        if (rc == DCEM_ENOTFOUND) break;
        assert_int_equal(rc, 0);
        size_t len = fixed ? fixed : var_len(rec.seq);
        assert_int_equal(rec.len, len);
        fill(rec.seq, want, len);
        assert_memory_equal(buf, want, len);
        if (n < max) {
            out[n] = rec.seq;
            if (epochs) epochs[n] = rec.epoch;
        }
        n++;
        epoch = rec.epoch;
        seq = rec.seq + 1;
    }
    return n;
}

static dcem_spool *open_ok(fx *f, const dcem_spool_opts *o, int64_t now)
{
    dcem_spool *sp = NULL;
    char err[256];
    int rc = dcem_spool_open(f->dir, o, now, &sp, err, sizeof err);
    if (rc) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(sp);
    return sp;
}

static dcem_spool_stat stats(const dcem_spool *sp)
{
    dcem_spool_stat st;
    dcem_spool_stats(sp, &st);
    return st;
}

/* 68-byte payloads make 100-byte records. */
#define P68 68
static const dcem_spool_opts small_segs = {.max_bytes = 1 << 20, .segment_bytes = 256};

/* ---- tests ------------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    fx *f = *state;
    dcem_spool_close(NULL);
    dcem_spool *sp = open_ok(f, NULL, E0);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_CREATED);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.records, 0);
    uint8_t buf[512];
    dcem_spool_rec rec;
    assert_int_equal(dcem_spool_read(sp, 0, 0, buf, sizeof buf, &rec), DCEM_ENOTFOUND);

    append_n(sp, 1, 10, 0);
    uint64_t seqs[16], epochs[16];
    assert_int_equal(read_all(sp, 0, 0, 0, epochs, seqs, 16), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(seqs[i], (uint64_t)i + 1);
        assert_int_equal(epochs[i], E0);
    }
    /* random access, and a buffer too small */
    assert_int_equal(dcem_spool_read(sp, E0, 7, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, 7);
    assert_int_equal(dcem_spool_read(sp, E0, 1, buf, 0, &rec), DCEM_ERANGE);
    assert_int_equal(rec.seq, 1);
    assert_int_equal(rec.len, var_len(1));
    assert_int_equal(dcem_spool_read(sp, E0, 11, buf, sizeof buf, &rec), DCEM_ENOTFOUND);
    /* seq must be next_seq */
    assert_int_equal(dcem_spool_append(sp, 12, buf, 1), DCEM_EINVAL);
    assert_int_equal(dcem_spool_append(sp, 10, buf, 1), DCEM_EINVAL);

    assert_int_equal(dcem_spool_ack(sp, E0, 5), 0);
    st = stats(sp);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.acked_seq, 5);
    assert_int_equal(st.oldest_epoch, E0);
    assert_int_equal(st.oldest_seq, 6);
    assert_int_equal(dcem_spool_read(sp, 0, 0, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, 6);
    assert_int_equal(dcem_spool_read(sp, E0, 2, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, 6);
    assert_int_equal(dcem_spool_ack(sp, E0, 3), 0); /* stale: a no-op, not an error */
    assert_int_equal(stats(sp).rejected_acks, 0);
    assert_int_equal(stats(sp).records, 5);
    /* an empty payload is a record too */
    assert_int_equal(dcem_spool_append(sp, 11, NULL, 0), 0);
    assert_int_equal(dcem_spool_read(sp, E0, 11, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.len, 0);
    dcem_spool_close(sp);
}

static void test_ack_deletes_segments_and_survives_reopen(void **state)
{
    fx *f = *state;
    dcem_spool *sp = open_ok(f, &small_segs, E0);
    append_n(sp, 1, 50, P68); /* two records per 256-byte segment */
    assert_int_equal(count_segs(f), 25);
    assert_int_equal(stats(sp).segments, 25);
    assert_int_equal(dcem_spool_ack(sp, E0, 30), 0);
    assert_int_equal(count_segs(f), 10);
    assert_int_equal(dcem_spool_ack(sp, E0, 31), 0); /* half a segment: stays */
    assert_int_equal(count_segs(f), 10);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.records, 19);
    assert_int_equal(st.bytes, 1900);
    assert_int_equal(st.disk_bytes, 2000);
    assert_int_equal(st.oldest_seq, 32);
    dcem_spool_close(sp);

    sp = open_ok(f, &small_segs, E0 + 500);
    st = stats(sp);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.acked_seq, 31);
    assert_int_equal(st.next_seq, 51);
    assert_int_equal(st.records, 19);
    assert_int_equal(st.oldest_seq, 32);
    uint64_t seqs[64];
    assert_int_equal(read_all(sp, 0, 0, P68, NULL, seqs, 64), 19);
    assert_int_equal(seqs[0], 32);
    assert_int_equal(seqs[18], 50);

    assert_int_equal(dcem_spool_ack(sp, E0, 50), 0);
    assert_int_equal(count_segs(f), 0);
    assert_int_equal(stats(sp).records, 0);
    dcem_spool_close(sp);

    /* everything acked and deleted: next_seq comes from the metadata */
    sp = open_ok(f, &small_segs, E0 + 900);
    st = stats(sp);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.next_seq, 51);
    assert_int_equal(st.acked_seq, 50);
    assert_int_equal(st.records, 0);
    append_n(sp, 51, 51, P68);
    dcem_spool_close(sp);
}

static void test_restart_resumes_and_replays(void **state)
{
    fx *f = *state;
    /* A child appends and acks, then dies without closing. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dcem_spool *sp = NULL;
        char err[128];
        if (dcem_spool_open(f->dir, NULL, E0, &sp, err, sizeof err)) _exit(2);
        uint8_t buf[512];
        for (uint64_t s = 1; s <= 20; s++) {
            fill(s, buf, var_len(s));
            if (dcem_spool_append(sp, s, buf, var_len(s))) _exit(3);
        }
        if (dcem_spool_ack(sp, E0, 7)) _exit(4);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    dcem_spool *sp = open_ok(f, NULL, E0 + 1);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.next_seq, 21);
    assert_int_equal(st.durable_seq, 20);
    assert_int_equal(st.acked_seq, 7);
    assert_int_equal(st.truncated_bytes, 0);
    uint64_t seqs[32];
    assert_int_equal(read_all(sp, 0, 0, 0, NULL, seqs, 32), 13);
    for (int i = 0; i < 13; i++) assert_int_equal(seqs[i], (uint64_t)i + 8);
    append_n(sp, 21, 21, 0);
    assert_int_equal(read_all(sp, E0, 21, 0, NULL, seqs, 32), 1);
    dcem_spool_close(sp);

    sp = open_ok(f, NULL, E0 + 2);
    assert_int_equal(stats(sp).next_seq, 22);
    assert_int_equal(read_all(sp, 0, 0, 0, NULL, seqs, 32), 14);
    dcem_spool_close(sp);
}

static void test_capacity_drop_oldest(void **state)
{
    fx *f = *state;
    /* 100-byte records, three per segment, ten under the cap */
    const dcem_spool_opts o = {.max_bytes = 1000, .segment_bytes = 300};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 26, P68);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.dropped_records, 16);
    assert_int_equal(st.dropped_bytes, 1600);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.bytes, 1000);
    assert_int_equal(st.oldest_seq, 17);
    assert_int_equal(count_segs(f), 4); /* 16-18 (16 dropped), 19-21, 22-24, 25-26 */
    uint64_t seqs[32];
    assert_int_equal(read_all(sp, 0, 0, P68, NULL, seqs, 32), 10);
    assert_int_equal(seqs[0], 17);
    assert_int_equal(seqs[9], 26);
    /* a dropped record reads as a jump to the next held one */
    uint8_t buf[1 << 10];
    dcem_spool_rec rec;
    assert_int_equal(dcem_spool_read(sp, E0, 3, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, 17);
    dcem_spool_close(sp);

    /* the partial drop in the oldest segment survives a reopen */
    sp = open_ok(f, &o, E0);
    st = stats(sp);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.oldest_seq, 17);
    assert_int_equal(st.next_seq, 27);
    assert_int_equal(st.dropped_records, 0);
    /* a record larger than the cap never fits: rejected, nothing dropped */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(dcem_spool_append(sp, 27, buf, 1000 - 32 + 1), DCEM_ERANGE);
    st = stats(sp);
    assert_int_equal(st.next_seq, 27);
    assert_int_equal(st.records, 10);
    assert_int_equal(st.dropped_records, 0);
    /* exactly the cap: everything else goes */
    assert_int_equal(dcem_spool_append(sp, 27, buf, 1000 - 32), 0);
    st = stats(sp);
    assert_int_equal(st.dropped_records, 10);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.oldest_seq, 27);
    assert_int_equal(count_segs(f), 1);
    dcem_spool_close(sp);

    /* over the payload bound, whatever the cap */
    const dcem_spool_opts big = {.max_bytes = 8u << 20};
    sp = open_ok(f, &big, E0);
    uint8_t *huge = calloc(1, DCEM_SPOOL_MAX_PAYLOAD + 1);
    assert_non_null(huge);
    assert_int_equal(dcem_spool_append(sp, 28, huge, DCEM_SPOOL_MAX_PAYLOAD + 1), DCEM_ERANGE);
    assert_int_equal(dcem_spool_append(sp, 28, huge, DCEM_SPOOL_MAX_PAYLOAD), 0);
    free(huge);
    assert_int_equal(stats(sp).next_seq, 29);
    dcem_spool_close(sp);
}

static void torn_case(fx *f, const char *seg_name, const uint8_t *seg, size_t cut,
                      const uint8_t *meta, size_t metalen)
{
    rm_rf(f->dir);
    assert_int_equal(mkdir(f->dir, 0755), 0);
    spit(in_dir(f, seg_name), seg, cut);
    spit(in_dir(f, "spool.meta"), meta, metalen);
}

static void test_torn_tail_every_offset(void **state)
{
    fx *f = *state;
    dcem_spool *sp = open_ok(f, NULL, E0);
    append_n(sp, 1, 4, 0);
    dcem_spool_close(sp);
    size_t seglen, metalen, meta5len;
    uint8_t *meta = slurp(in_dir(f, "spool.meta"), &metalen); /* as when 5 was appended */
    sp = open_ok(f, NULL, E0);
    append_n(sp, 5, 5, 0);
    dcem_spool_close(sp);
    char names[4][64];
    assert_int_equal(seg_files(f, names, 4), 1);
    uint8_t *seg = slurp(in_dir(f, names[0]), &seglen);
    uint8_t *meta5 = slurp(in_dir(f, "spool.meta"), &meta5len);
    size_t start = seglen - (32 + var_len(5));
    for (size_t cut = start; cut < seglen; cut++) {
        torn_case(f, names[0], seg, cut, meta, metalen);
        sp = open_ok(f, NULL, E0 + 7);
        dcem_spool_stat st = stats(sp);
        assert_int_equal(st.epoch, E0);
        assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
        assert_int_equal(st.truncated_bytes, cut - start);
        assert_int_equal(st.corrupt_segments, 0);
        assert_int_equal(st.records, 4);
        assert_int_equal(st.next_seq, 5);
        append_n(sp, 5, 6, 0);
        uint64_t seqs[8];
        assert_int_equal(read_all(sp, 0, 0, 0, NULL, seqs, 8), 6);
        for (int i = 0; i < 6; i++) assert_int_equal(seqs[i], (uint64_t)i + 1);
        dcem_spool_close(sp);
    }
    /* Metadata that already counted seq 5 as handed out (written after the
     * append, then the record lost): 5 is skipped, never reused. */
    torn_case(f, names[0], seg, start + 20, meta5, meta5len);
    sp = open_ok(f, NULL, E0 + 7);
    assert_int_equal(stats(sp).records, 4);
    assert_int_equal(stats(sp).next_seq, 6);
    dcem_spool_close(sp);
    free(seg);
    free(meta);
    free(meta5);
}

/* Adversarial case 5 (docs/spool.md, "A lost seq is never reused"): the agent
 * stopped cleanly after appending 230, then 7 bytes of the tail were lost
 * (a disk that lied about a sync, a careless copy). Record 230 may have been
 * published, so its seq is not handed out again, and the figures a birth is
 * built from say what is really held: 1..229, next 231. */
static void test_torn_tail_after_clean_stop(void **state)
{
    fx *f = *state;
    dcem_spool *sp = open_ok(f, NULL, E0);
    append_n(sp, 1, 230, P68);
    dcem_spool_close(sp); /* the metadata now says 231 is next */
    char names[4][64];
    assert_int_equal(seg_files(f, names, 4), 1);
    size_t len;
    uint8_t *seg = slurp(in_dir(f, names[0]), &len);
    spit(in_dir(f, names[0]), seg, len - 7);
    free(seg);

    sp = open_ok(f, NULL, E0 + 9);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.truncated_bytes, 100 - 7);
    assert_int_equal(st.records, 229);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.next_seq, 231); /* not 230: that one may have been seen */
    uint64_t seqs[240];
    assert_int_equal(read_all(sp, 0, 0, P68, NULL, seqs, 240), 229);
    assert_int_equal(seqs[228], 229);
    /* the collector acks all it has: nothing below 231 is held any more */
    assert_int_equal(dcem_spool_ack(sp, E0, 229), 0);
    st = stats(sp);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.first_seq, 231);
    assert_int_equal(dcem_spool_ack(sp, E0, 230), 0); /* handed out once: an ack of it is fine */
    assert_int_equal(dcem_spool_ack(sp, E0, 231), DCEM_ERANGE); /* never handed out */
    append_n(sp, 231, 232, P68);
    assert_int_equal(stats(sp).first_seq, 231);
    dcem_spool_close(sp);

    /* After a crash instead, the metadata was last written before 230 was
     * appended: the cut append was never reported, so never published, and
     * 230 is handed out again — test_torn_tail_every_offset, at every byte. */
}

/* Nine 100-byte records in three segments; flips one byte at `off` of
 * segment `segi` and reopens: the segment is set aside with its other
 * records kept, the rest is served, nothing is fatal. */
static void corrupt_case(fx *f, int segi, long off, uint8_t mask, uint64_t lost_seq)
{
    rm_rf(f->dir);
    const dcem_spool_opts o = {.max_bytes = 1 << 20, .segment_bytes = 300};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 9, P68);
    dcem_spool_close(sp);
    char names[4][64];
    assert_int_equal(seg_files(f, names, 4), 3);
    flip(in_dir(f, names[segi]), off, mask);

    sp = open_ok(f, &o, E0 + 5);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch, E0);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.corrupt_segments, 1);
    assert_int_equal(st.corrupt_bytes, 100);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.next_seq, 10);
    char aside[96];
    snprintf(aside, sizeof aside, "%s.corrupt", names[segi]);
    assert_true(exists(in_dir(f, aside)));
    uint64_t seqs[16];
    assert_int_equal(read_all(sp, 0, 0, P68, NULL, seqs, 16), 8);
    for (int i = 0, s = 1; i < 8; i++, s++) {
        if ((uint64_t)s == lost_seq) s++;
        assert_int_equal(seqs[i], (uint64_t)s);
    }
    uint8_t buf[128];
    dcem_spool_rec rec;
    assert_int_equal(dcem_spool_read(sp, E0, lost_seq, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, lost_seq + 1);
    append_n(sp, 10, 10, P68);
    dcem_spool_close(sp);

    /* the rewritten segment is clean now */
    sp = open_ok(f, &o, E0 + 6);
    st = stats(sp);
    assert_int_equal(st.corrupt_segments, 0);
    assert_int_equal(st.records, 9);
    assert_int_equal(st.next_seq, 11);
    dcem_spool_close(sp);
}

static void test_corrupt_record_sets_segment_aside(void **state)
{
    fx *f = *state;
    corrupt_case(f, 0, 100 + 32 + 10, 0x01, 2); /* a payload byte of seq 2 */
    corrupt_case(f, 0, 100 + 28, 0x80, 2);      /* its CRC */
    corrupt_case(f, 0, 100 + 8, 0x01, 2);       /* its length: 68 -> 69 */
    corrupt_case(f, 0, 100 + 10, 0x40, 2);      /* its length: beyond the bound */
    corrupt_case(f, 0, 100 + 0, 0xff, 2);       /* its magic */
    corrupt_case(f, 1, 0 + 20, 0x02, 4);        /* the seq of a segment's first record */
    corrupt_case(f, 0, 200 + 40, 0x10, 3);      /* the last record of an older segment */
    corrupt_case(f, 2, 100 + 50, 0x04, 8);      /* the middle of the newest segment */
}

static int count_aside(fx *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, ".corrupt") != NULL;
    closedir(d);
    return n;
}

static void test_set_aside_copies_are_capped(void **state)
{
    fx *f = *state;
    const dcem_spool_opts o = {.max_bytes = 1 << 20, .segment_bytes = 300};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 30, P68);
    dcem_spool_close(sp);
    char names[16][64];
    assert_int_equal(seg_files(f, names, 16), 10);
    for (int i = 0; i < 10; i++) flip(in_dir(f, names[i]), 100 + 40, 0x01);
    sp = open_ok(f, &o, E0);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.corrupt_segments, 10);
    assert_int_equal(st.aside_discarded, 10 - DCEM_SPOOL_MAX_ASIDE);
    assert_int_equal(count_aside(f), DCEM_SPOOL_MAX_ASIDE);
    assert_int_equal(st.records, 20);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    dcem_spool_close(sp);
}

static void test_corrupt_newest_tail_starts_new_epoch(void **state)
{
    fx *f = *state;
    const dcem_spool_opts o = {.max_bytes = 1 << 20, .segment_bytes = 300};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 9, P68);
    dcem_spool_close(sp);
    char names[4][64];
    assert_int_equal(seg_files(f, names, 4), 3);
    /* the complete last record of the newest segment goes bad: its seq may
     * have been published, so reusing it would be silent loss */
    flip(in_dir(f, names[2]), 200 + 60, 0x08);
    sp = open_ok(f, &o, E0 + 50);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_UNCERTAIN);
    assert_int_equal(st.epoch, E0 + 50);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.old_epoch_records, 8);
    assert_int_equal(st.corrupt_segments, 1);
    uint64_t seqs[16], epochs[16];
    assert_int_equal(read_all(sp, 0, 0, P68, epochs, seqs, 16), 8);
    assert_int_equal(epochs[7], E0);
    assert_int_equal(seqs[7], 8);
    append_n(sp, 1, 2, P68);
    assert_int_equal(read_all(sp, 0, 0, P68, epochs, seqs, 16), 10);
    assert_int_equal(epochs[8], E0 + 50);
    assert_int_equal(seqs[8], 1);
    dcem_spool_close(sp);
}

static void meta_lost_case(fx *f, int how)
{
    rm_rf(f->dir);
    dcem_spool *sp = open_ok(f, &small_segs, E0);
    append_n(sp, 1, 6, P68);
    assert_int_equal(dcem_spool_ack(sp, E0, 2), 0);
    assert_int_equal(count_segs(f), 2);
    dcem_spool_close(sp);
    const char *meta = in_dir(f, "spool.meta");
    int64_t now = E0 + 1000;
    if (how == 0) {
        assert_int_equal(unlink(meta), 0);
    } else if (how == 1) {
        flip(meta, 17, 0x01);
        now = E0 - 500; /* and the clock went back: the epoch still moves up */
    } else {
        assert_int_equal(truncate(meta, 0), 0);
    }
    sp = open_ok(f, &small_segs, now);
    dcem_spool_stat st = stats(sp);
    uint64_t e = how == 1 ? E0 + 1 : (uint64_t)now;
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_META_LOST);
    assert_int_equal(st.epoch, e);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.acked_seq, 0);
    /* kept under their old label, acks unknown: 3..6 resent (the collector
     * stores on (epoch, seq) and re-acks), never taken as new data */
    assert_int_equal(st.records, 4);
    assert_int_equal(st.old_epoch_records, 4);
    if (how) assert_true(exists(in_dir(f, "spool.meta.corrupt")));
    append_n(sp, 1, 1, P68);
    uint64_t seqs[16], epochs[16];
    assert_int_equal(read_all(sp, 0, 0, P68, epochs, seqs, 16), 5);
    assert_int_equal(epochs[0], E0);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(epochs[3], E0);
    assert_int_equal(seqs[3], 6);
    assert_int_equal(epochs[4], e);
    assert_int_equal(seqs[4], 1);
    /* the old epoch is acked with its own label; unknown epochs are not */
    assert_int_equal(dcem_spool_ack(sp, E0 + 77, 1), DCEM_ERANGE);
    assert_int_equal(stats(sp).rejected_acks, 1);
    assert_int_equal(dcem_spool_ack(sp, E0, 4), 0);
    assert_int_equal(stats(sp).records, 3);
    assert_int_equal(count_segs(f), 2);
    assert_int_equal(dcem_spool_ack(sp, E0, 6), 0);
    assert_int_equal(count_segs(f), 1);
    assert_int_equal(stats(sp).old_epoch_records, 0);
    dcem_spool_close(sp);
    sp = open_ok(f, &small_segs, now + 1);
    st = stats(sp);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.epoch, e);
    assert_int_equal(st.next_seq, 2);
    assert_int_equal(st.records, 1);
    dcem_spool_close(sp);
}

static void test_metadata_lost_starts_new_epoch(void **state)
{
    fx *f = *state;
    meta_lost_case(f, 0); /* missing */
    meta_lost_case(f, 1); /* a flipped bit */
    meta_lost_case(f, 2); /* empty */
}

static void test_wrong_epoch_and_future_acks_ignored(void **state)
{
    fx *f = *state;
    dcem_spool *sp = open_ok(f, NULL, E0);
    append_n(sp, 1, 3, 0);
    assert_int_equal(dcem_spool_ack(sp, E0 - 1, 2), DCEM_ERANGE);
    assert_int_equal(dcem_spool_ack(sp, E0 + 1, 2), DCEM_ERANGE);
    assert_int_equal(dcem_spool_ack(sp, E0, 4), DCEM_ERANGE); /* not appended yet */
    assert_int_equal(dcem_spool_ack(sp, E0, 0), 0);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.rejected_acks, 3);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.acked_seq, 0);
    assert_int_equal(dcem_spool_ack(sp, E0, 3), 0);
    assert_int_equal(stats(sp).records, 0);
    dcem_spool_close(sp);
}

static void test_interval_policy(void **state)
{
    fx *f = *state;
    const dcem_spool_opts o = {.max_bytes = 1 << 20, .segment_bytes = 256,
                               .fsync = DCEM_SPOOL_FSYNC_INTERVAL};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 2, P68);
    uint8_t buf[128];
    dcem_spool_rec rec;
    /* not handed out for publishing before it is on disk */
    assert_int_equal(stats(sp).durable_seq, 0);
    assert_int_equal(dcem_spool_read(sp, 0, 0, buf, sizeof buf, &rec), DCEM_ENOTFOUND);
    assert_int_equal(dcem_spool_sync(sp), 0);
    assert_int_equal(stats(sp).durable_seq, 2);
    assert_int_equal(dcem_spool_read(sp, 0, 0, buf, sizeof buf, &rec), 0);
    assert_int_equal(rec.seq, 1);
    append_n(sp, 3, 3, P68); /* a new segment */
    assert_int_equal(dcem_spool_read(sp, E0, 3, buf, sizeof buf, &rec), DCEM_ENOTFOUND);
    /* acked segments go at the next sync, after the metadata */
    assert_int_equal(dcem_spool_ack(sp, E0, 2), 0);
    assert_int_equal(stats(sp).records, 1);
    assert_int_equal(count_segs(f), 2);
    assert_int_equal(dcem_spool_sync(sp), 0);
    assert_int_equal(count_segs(f), 1);
    assert_int_equal(dcem_spool_read(sp, E0, 3, buf, sizeof buf, &rec), 0);
    dcem_spool_close(sp);
    sp = open_ok(f, &o, E0);
    assert_int_equal(stats(sp).acked_seq, 2);
    assert_int_equal(stats(sp).next_seq, 4);
    dcem_spool_close(sp);
}

static void test_never_policy(void **state)
{
    fx *f = *state;
    const dcem_spool_opts o = {.fsync = DCEM_SPOOL_FSYNC_NEVER};
    dcem_spool *sp = open_ok(f, &o, E0);
    append_n(sp, 1, 3, 0);
    uint64_t seqs[4];
    assert_int_equal(read_all(sp, 0, 0, 0, NULL, seqs, 4), 3); /* no sync needed to read */
    assert_int_equal(dcem_spool_ack(sp, E0, 1), 0);
    dcem_spool_close(sp);
    sp = open_ok(f, &o, E0);
    assert_int_equal(stats(sp).next_seq, 4);
    assert_int_equal(stats(sp).acked_seq, 1);
    assert_int_equal(read_all(sp, 0, 0, 0, NULL, seqs, 4), 2);
    dcem_spool_close(sp);
}

static void test_runtime_corruption_never_returned(void **state)
{
    fx *f = *state;
    dcem_spool *sp = open_ok(f, NULL, E0);
    append_n(sp, 1, 5, P68);
    char names[4][64];
    assert_int_equal(seg_files(f, names, 4), 1);
    flip(in_dir(f, names[0]), 200 + 32 + 3, 0x20); /* seq 3, behind the spool's back */
    uint64_t seqs[8];
    assert_int_equal(read_all(sp, 0, 0, P68, NULL, seqs, 8), 4);
    assert_int_equal(seqs[2], 4);
    assert_int_equal(stats(sp).corrupt_segments, 1);
    char aside[96];
    snprintf(aside, sizeof aside, "%s.corrupt", names[0]);
    assert_true(exists(in_dir(f, aside)));
    append_n(sp, 6, 6, P68); /* the rewritten segment takes appends */
    assert_int_equal(read_all(sp, E0, 6, P68, NULL, seqs, 8), 1);
    dcem_spool_close(sp);
    sp = open_ok(f, NULL, E0);
    dcem_spool_stat st = stats(sp);
    assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.next_seq, 7);
    assert_int_equal(st.corrupt_segments, 0);
    dcem_spool_close(sp);
}

static void test_lock_and_bad_options(void **state)
{
    fx *f = *state;
    char err[256];
    dcem_spool *sp2 = NULL;
    dcem_spool_opts bad = {.segment_bytes = 10};
    assert_int_equal(dcem_spool_open(f->dir, &bad, E0, &sp2, err, sizeof err), DCEM_EINVAL);
    assert_non_null(strstr(err, "segment_bytes"));
    bad = (dcem_spool_opts){.fsync = 7};
    assert_int_equal(dcem_spool_open(f->dir, &bad, E0, &sp2, err, sizeof err), DCEM_EINVAL);
    assert_null(sp2);

    snprintf(f->dir + strlen(f->dir), sizeof f->dir - strlen(f->dir), "/a/b");
    dcem_spool *sp = open_ok(f, NULL, E0); /* parents created */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dcem_spool *other = NULL;
        int rc = dcem_spool_open(f->dir, NULL, E0, &other, err, sizeof err);
        _exit(rc == DCEM_ESTORAGE && strstr(err, "in use") ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    dcem_spool_close(sp);
}

/* ---- kill -9 in the middle of appends ------------------------------------------------------ */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: appends as fast as it can with FSYNC_ALWAYS and reports each
 * seq through the pipe after append returned ('A'), and each ack ('K'). */
static void crash_child(const char *dir, int wfd, const dcem_spool_opts *o)
{
    dcem_spool *sp = NULL;
    char err[256];
    if (dcem_spool_open(dir, o, E0, &sp, err, sizeof err)) _exit(2);
    uint8_t buf[512], msg[9];
    for (;;) {
        uint64_t s = dcem_spool_next_seq(sp);
        fill(s, buf, var_len(s));
        if (dcem_spool_append(sp, s, buf, var_len(s))) _exit(3);
        msg[0] = 'A';
        memcpy(msg + 1, &s, 8);
        if (write(wfd, msg, sizeof msg) != (ssize_t)sizeof msg) _exit(4);
        if (s % 16 == 0) {
            uint64_t a = s - 8;
            if (dcem_spool_ack(sp, dcem_spool_epoch(sp), a)) _exit(5);
            msg[0] = 'K';
            memcpy(msg + 1, &a, 8);
            if (write(wfd, msg, sizeof msg) != (ssize_t)sizeof msg) _exit(4);
        }
    }
}

static void drain(int fd, uint64_t *appended, uint64_t *acked, int wait_ms)
{
    uint8_t msg[9 * 64];
    size_t have = 0;
    int64_t until = now_ms() + wait_ms;
    for (;;) {
        int left = wait_ms < 0 ? -1 : (int)(until - now_ms());
        if (wait_ms >= 0 && left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        ssize_t n = read(fd, msg + have, sizeof msg - have);
        if (n <= 0) break;
        have += (size_t)n;
        size_t k = 0;
        for (; k + 9 <= have; k += 9) {
            uint64_t v;
            memcpy(&v, msg + k + 1, 8);
            if (msg[k] == 'A') *appended = v;
            else *acked = v;
        }
        memmove(msg, msg + k, have - k);
        have -= k;
    }
}

/* kills children appending under `policy`; the parent checks after each. */
static void kill9_loop(fx *f, int policy, int kills, uint64_t seed)
{
    const dcem_spool_opts o = {.max_bytes = 64u << 20, .segment_bytes = 4096, .fsync = policy};
    uint64_t appended = 0, acked = 0, torn = 0, rng = seed;
    int64_t t0 = now_ms();
    rm_rf(f->dir);
    for (int iter = 0; iter < kills; iter++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->dir, fds[1], &o);
        }
        close(fds[1]);
        /* the first child creates the spool (and its epoch): it is killed
         * only after its first append, however slow the machine */
        for (int tries = 0; iter == 0 && appended == 0 && tries < 1000; tries++)
            drain(fds[0], &appended, &acked, 10);
        int wait_ms = 5 + (int)(xorshift(&rng) % 60);
        drain(fds[0], &appended, &acked, wait_ms);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* not an early exit with an error */
        drain(fds[0], &appended, &acked, -1);
        close(fds[0]);

        dcem_spool *sp = open_ok(f, &o, E0 + 100 + iter);
        dcem_spool_stat st = stats(sp);
        assert_int_equal(st.epoch, E0); /* a torn tail never costs the epoch */
        assert_int_equal(st.epoch_reason, DCEM_SPOOL_EPOCH_RESUMED);
        assert_int_equal(st.corrupt_segments, 0);
        torn += st.truncated_bytes != 0;
        assert_true(st.acked_seq >= acked);
        /* every reported append is there; at most one more completed unreported */
        assert_true(st.next_seq - 1 >= appended);
        assert_true(st.next_seq - 1 <= appended + 1);
        /* held: exactly acked+1 .. next_seq-1, each intact (read_all checks) */
        uint64_t *seqs = malloc(sizeof *seqs * 65536);
        assert_non_null(seqs);
        int n = read_all(sp, 0, 0, 0, NULL, seqs, 65536);
        assert_int_equal((uint64_t)n, st.next_seq - 1 - st.acked_seq);
        assert_int_equal((uint64_t)n, st.records);
        for (int i = 0; i < n && i < 65536; i++)
            assert_int_equal(seqs[i], st.acked_seq + 1 + (uint64_t)i);
        free(seqs);
        append_n(sp, st.next_seq, st.next_seq, 0); /* next_seq continues */
        appended = st.next_seq;
        dcem_spool_close(sp);
    }
    fprintf(stderr, "kill -9 loop, fsync %s: %d kills (%llu left a torn tail), %llu records, %lld ms\n",
            policy == DCEM_SPOOL_FSYNC_ALWAYS ? "always" : "never", kills,
            (unsigned long long)torn, (unsigned long long)appended,
            (long long)(now_ms() - t0));
}

/* FSYNC_ALWAYS is what the guarantee is about; FSYNC_NEVER also survives a
 * process kill (the page cache does) and, being faster, is killed between
 * the header and payload writes far more often: torn tails get exercised. */
static void test_kill9_loses_nothing_reported(void **state)
{
    fx *f = *state;
    kill9_loop(f, DCEM_SPOOL_FSYNC_ALWAYS, 15, 0x9e3779b97f4a7c15ull);
    kill9_loop(f, DCEM_SPOOL_FSYNC_NEVER, 30, 0x2545f4914f6cdd1dull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_deletes_segments_and_survives_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes_and_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_drop_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_after_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_record_sets_segment_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_aside_copies_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_newest_tail_starts_new_epoch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metadata_lost_starts_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_epoch_and_future_acks_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interval_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_corruption_never_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_nothing_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

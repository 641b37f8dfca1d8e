/* The on-disk queue module (common/queue): the record codec against byte
 * vectors, the scanner on files held in memory (torn at every byte, damage in
 * the middle and at the end, records out of order, a failing reader), and
 * the directory on a fresh temp directory (parents, lock, names, listing,
 * whole-file writes, set-aside and its cap). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "qdir.h"
#include "qrec.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define H DCEM_QREC_HEADER

/* ---- a format of the tests' own: an id at 12 that must rise by one ------------------------- */

static int test_check(const uint8_t *h)
{
    return dcem_le_get64(h + 12) == 0 ? -1 : 0; /* id 0 is never written */
}

static int test_follows(const uint8_t *prev, const uint8_t *h)
{
    if (!prev) return DCEM_QREC_NEXT;
    uint64_t a = dcem_le_get64(prev + 12), b = dcem_le_get64(h + 12);
    if (b <= a) return DCEM_QREC_APART;
    return b == a + 1 ? DCEM_QREC_NEXT : DCEM_QREC_LATER;
}

static const dcem_qrec_fmt fmt = {
    .magic = {'T', 'E', 'S', 'T'},
    .version = 3,
    .max_payload = 64,
    .check = test_check,
    .follows = test_follows,
};

/* Appends a record (id, payload) to b at *n. */
static void put_rec(uint8_t *b, size_t *n, uint64_t id, const char *payload)
{
    uint8_t *h = b + *n;
    size_t len = strlen(payload);
    memset(h, 0, H);
    dcem_le_put64(h + 12, id);
    memcpy(h + H, payload, len);
    dcem_qrec_encode(&fmt, h, h + H, (uint32_t)len);
    *n += H + len;
}

typedef struct mem {
    const uint8_t *b;
    size_t n;
    int fail_at; /* the call that fails (1 = the first), 0 = never */
    int calls;
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

static int scan_mem(const uint8_t *b, size_t n, dcem_qrec_scanned *sc)
{
    mem m = {.b = b, .n = n};
    dcem_qrec_reader rd = {.pread = mem_pread, .ctx = &m};
    uint8_t buf[64];
    return dcem_qrec_scan(&fmt, &rd, n, buf, sizeof buf, NULL, sc);
}

/* ---- codec ------------------------------------------------------------------------------- */

static void test_crc_and_header_bytes(void **state)
{
    (void)state;
    assert_int_equal(dcem_qrec_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
    assert_int_equal(dcem_qrec_crc32(dcem_qrec_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(dcem_qrec_crc32(7, NULL, 0), 7);

    uint8_t b[128] = {0};
    size_t n = 0;
    put_rec(b, &n, 0x0102030405060708ull, "abc");
    static const uint8_t want[28] = {'T', 'E', 'S', 'T', 3, 0, 0, 0, 3, 0, 0, 0, 8, 7,
                                     6,   5,   4,   3,   2, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(b, want, sizeof want);
    uint32_t crc = dcem_qrec_crc32(dcem_qrec_crc32(0, want, 28), "abc", 3);
    assert_int_equal(dcem_le_get32(b + 28), crc);
    assert_int_equal(n, H + 3);
    assert_true(dcem_qrec_crc_ok(b, "abc", 3));
    assert_false(dcem_qrec_crc_ok(b, "abd", 3));

    uint32_t len = 0;
    assert_int_equal(dcem_qrec_parse(&fmt, b, &len), 0);
    assert_int_equal(len, 3);
    uint8_t h[H];
    memcpy(h, b, H);
    h[0] = 'X';
    assert_int_equal(dcem_qrec_parse(&fmt, h, &len), -1); /* magic */
    memcpy(h, b, H);
    h[4] = 1;
    assert_int_equal(dcem_qrec_parse(&fmt, h, &len), -1); /* version */
    memcpy(h, b, H);
    dcem_le_put32(h + 8, 65);
    assert_int_equal(dcem_qrec_parse(&fmt, h, &len), -1); /* length bound */
    memcpy(h, b, H);
    dcem_le_put64(h + 12, 0);
    assert_int_equal(dcem_qrec_parse(&fmt, h, &len), -1); /* the owner's check */
    memcpy(h, b, H);
    h[5] = 0xff; /* the owner's bytes are not the codec's business */
    assert_int_equal(dcem_qrec_parse(&fmt, h, &len), 0);
}

static void test_read_one_record(void **state)
{
    (void)state;
    uint8_t b[256] = {0}, h[H], buf[64];
    size_t n = 0;
    put_rec(b, &n, 1, "hello");
    mem m = {.b = b, .n = n};
    dcem_qrec_reader rd = {.pread = mem_pread, .ctx = &m};
    uint32_t len = 0;
    assert_int_equal(dcem_qrec_read(&fmt, &rd, n, 0, h, buf, sizeof buf, &len), DCEM_QREC_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    /* a payload larger than the buffer is not handed out */
    assert_int_equal(dcem_qrec_read(&fmt, &rd, n, 0, h, buf, 4, &len), DCEM_QREC_BAD);
    /* cut inside the payload, inside the header, inside the magic */
    assert_int_equal(dcem_qrec_read(&fmt, &rd, n - 1, 0, h, buf, sizeof buf, &len),
                     DCEM_QREC_SHORT);
    assert_int_equal(len, 5);
    assert_int_equal(dcem_qrec_read(&fmt, &rd, 10, 0, h, buf, sizeof buf, &len), DCEM_QREC_SHORT);
    assert_int_equal(dcem_qrec_read(&fmt, &rd, 2, 0, h, buf, sizeof buf, &len), DCEM_QREC_SHORT);
    b[1] = 'X';
    assert_int_equal(dcem_qrec_read(&fmt, &rd, 2, 0, h, buf, sizeof buf, &len), DCEM_QREC_BAD);
    b[1] = 'E';
    b[H + 1] ^= 1;
    assert_int_equal(dcem_qrec_read(&fmt, &rd, n, 0, h, buf, sizeof buf, &len), DCEM_QREC_BAD);
    m.fail_at = m.calls + 1;
    assert_int_equal(dcem_qrec_read(&fmt, &rd, n, 0, h, buf, sizeof buf, &len), DCEM_ESTORAGE);
}

/* ---- scanner ----------------------------------------------------------------------------- */

static void test_scan_clean_and_empty(void **state)
{
    (void)state;
    uint8_t b[512] = {0};
    size_t n = 0;
    dcem_qrec_scanned sc;
    assert_int_equal(scan_mem(b, 0, &sc), 0);
    assert_int_equal(sc.nrec, 0);
    assert_false(sc.bad_mid || sc.bad_tail);
    put_rec(b, &n, 1, "one");
    put_rec(b, &n, 2, "");
    put_rec(b, &n, 5, "three"); /* a gap: LATER, still valid */
    assert_int_equal(scan_mem(b, n, &sc), 0);
    assert_int_equal(sc.nrec, 3);
    assert_int_equal(sc.valid_bytes, n);
    assert_int_equal(sc.valid_end, n);
    assert_int_equal(sc.fsize, n);
    assert_false(sc.bad_mid || sc.bad_tail || sc.tail_torn);
    assert_int_equal(dcem_le_get64(sc.first + 12), 1);
    assert_int_equal(dcem_le_get64(sc.last + 12), 5);
}

/* A file cut at every byte of its last record: torn, the rest intact. */
static void test_scan_torn_every_offset(void **state)
{
    (void)state;
    uint8_t b[512] = {0};
    size_t n = 0;
    put_rec(b, &n, 1, "first");
    size_t whole = n;
    put_rec(b, &n, 2, "second record");
    for (size_t cut = whole + 1; cut < n; cut++) {
        dcem_qrec_scanned sc;
        assert_int_equal(scan_mem(b, cut, &sc), 0);
        assert_int_equal(sc.nrec, 1);
        assert_int_equal(sc.valid_end, whole);
        assert_true(sc.bad_tail);
        assert_true(sc.tail_torn);
        assert_false(sc.bad_mid);
    }
    /* torn in the first record: nothing valid, still torn */
    dcem_qrec_scanned sc;
    assert_int_equal(scan_mem(b, whole - 1, &sc), 0);
    assert_int_equal(sc.nrec, 0);
    assert_true(sc.tail_torn);
}

/* A cut-off record that is not the next one expected, or bytes that are no
 * record, are damage, not a torn append. */
static void test_scan_tail_not_torn(void **state)
{
    (void)state;
    uint8_t b[512] = {0};
    size_t n = 0;
    put_rec(b, &n, 1, "first");
    size_t whole = n;
    put_rec(b, &n, 3, "skips one");
    dcem_qrec_scanned sc;
    assert_int_equal(scan_mem(b, n - 1, &sc), 0); /* id 3 after 1: LATER, not NEXT */
    assert_int_equal(sc.nrec, 1);
    assert_true(sc.bad_tail);
    assert_false(sc.tail_torn);

    memcpy(b + whole, "garbage, no magic", 17);
    assert_int_equal(scan_mem(b, whole + 17, &sc), 0);
    assert_true(sc.bad_tail);
    assert_false(sc.tail_torn);

    /* a whole last record with a bad CRC */
    n = whole;
    put_rec(b, &n, 2, "bitrot");
    b[n - 1] ^= 0x20;
    assert_int_equal(scan_mem(b, n, &sc), 0);
    assert_int_equal(sc.nrec, 1);
    assert_true(sc.bad_tail);
    assert_false(sc.tail_torn);
}

/* Damage in the middle: the scan resynchronises on the next magic and keeps
 * what follows; a record going backwards does not belong. */
static void test_scan_resync_and_order(void **state)
{
    (void)state;
    uint8_t b[512] = {0};
    size_t n = 0, mid;
    put_rec(b, &n, 1, "a");
    mid = n;
    put_rec(b, &n, 2, "bb");
    put_rec(b, &n, 3, "ccc");
    b[mid + H] ^= 1; /* record 2's payload */
    dcem_qrec_scanned sc;
    assert_int_equal(scan_mem(b, n, &sc), 0);
    assert_int_equal(sc.nrec, 2);
    assert_true(sc.bad_mid);
    assert_false(sc.bad_tail);
    assert_int_equal(sc.valid_bytes, n - (H + 2));
    assert_int_equal(dcem_le_get64(sc.last + 12), 3);

    n = 0;
    put_rec(b, &n, 5, "x");
    put_rec(b, &n, 4, "y"); /* backwards */
    put_rec(b, &n, 6, "z");
    assert_int_equal(scan_mem(b, n, &sc), 0);
    assert_int_equal(sc.nrec, 2);
    assert_true(sc.bad_mid);
}

typedef struct collect {
    uint64_t ids[8];
    int n, stop_at;
} collect;

static int collect_record(void *ctx, const uint8_t *h, const void *payload, uint32_t len)
{
    collect *c = ctx;
    (void)payload;
    (void)len;
    if (c->n == c->stop_at) return DCEM_ENOMEM;
    c->ids[c->n++] = dcem_le_get64(h + 12);
    return 0;
}

static void test_scan_sink_and_reader_failure(void **state)
{
    (void)state;
    uint8_t b[512] = {0}, buf[64];
    size_t n = 0;
    put_rec(b, &n, 1, "a");
    put_rec(b, &n, 2, "b");
    memcpy(b + n, "junk", 4);
    n += 4;
    put_rec(b, &n, 3, "c");
    mem m = {.b = b, .n = n};
    dcem_qrec_reader rd = {.pread = mem_pread, .ctx = &m};
    collect c = {.stop_at = -1};
    dcem_qrec_sink sink = {.record = collect_record, .ctx = &c};
    dcem_qrec_scanned sc;
    assert_int_equal(dcem_qrec_scan(&fmt, &rd, n, buf, sizeof buf, &sink, &sc), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.ids[0], 1);
    assert_int_equal(c.ids[2], 3);
    c = (collect){.stop_at = 1};
    assert_int_equal(dcem_qrec_scan(&fmt, &rd, n, buf, sizeof buf, &sink, &sc), DCEM_ENOMEM);
    for (int k = 1; k <= 3; k++) {
        m = (mem){.b = b, .n = n, .fail_at = k};
        assert_int_equal(dcem_qrec_scan(&fmt, &rd, n, buf, sizeof buf, NULL, &sc), DCEM_ESTORAGE);
    }
}

/* ---- directory --------------------------------------------------------------------------- */

typedef struct fx {
    char tmp[64];
    char dir[128];
    char path[256];
    char err[256];
    dcem_qdir d;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/dcem-queue-XXXXXX");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/a/b/q", f->tmp);
    f->d.fd = f->d.lockfd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    dcem_qdir_close(&f->d);
    rm_rf(f->tmp);
    free(f);
    return 0;
}

static const char *in_dir(fx *f, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%.100s", f->dir, name);
    return f->path;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void touch(fx *f, const char *name, const char *text)
{
    FILE *fp = fopen(in_dir(f, name), "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void open_dir(fx *f)
{
    assert_int_equal(dcem_qdir_open(&f->d, f->dir, "q.lock", 0700, f->err, sizeof f->err), 0);
}

static void test_dir_open_lock(void **state)
{
    fx *f = *state;
    open_dir(f); /* parents created */
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_true(exists(in_dir(f, "q.lock")));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* fcntl locks are per process: the second opener is a child */
        dcem_qdir d;
        char err[256];
        int rc = dcem_qdir_open(&d, f->dir, "q.lock", 0700, err, sizeof err);
        _exit(rc == DCEM_ESTORAGE && strstr(err, "in use") && strstr(err, "held by another process")
                  ? 0
                  : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    dcem_qdir_close(&f->d);
    dcem_qdir_close(&f->d); /* idempotent */

    dcem_qdir d;
    char err[64];
    assert_int_equal(dcem_qdir_open(&d, "", "q.lock", 0700, err, sizeof err), DCEM_EINVAL);
    assert_int_equal(dcem_qdir_open(&d, "/proc/no/such", "q.lock", 0700, err, sizeof err),
                     DCEM_ESTORAGE);
    assert_non_null(strstr(err, "mkdir"));
}

static void test_dir_names_and_list(void **state)
{
    fx *f = *state;
    open_dir(f);
    char name[DCEM_QDIR_NAME_MAX];
    dcem_qdir_name(name, sizeof name, "x-", 42, ".log");
    assert_string_equal(name, "x-00000000000000000042.log");
    uint64_t id;
    const char *rest;
    assert_int_equal(dcem_qdir_parse_name(name, "x-", &id, &rest), 0);
    assert_int_equal(id, 42);
    assert_string_equal(rest, ".log");
    assert_int_equal(dcem_qdir_parse_name("x-123.log", "x-", &id, &rest), -1);
    assert_int_equal(dcem_qdir_parse_name("x-99999999999999999999.log", "x-", &id, &rest), -1);

    touch(f, "x-00000000000000000003.log", "");
    touch(f, "x-00000000000000000001.log", "");
    touch(f, "x-00000000000000000002.log.tmp", "");    /* an interrupted write */
    touch(f, "x-00000000000000000011.tmp", "");        /* ... of an older naming */
    touch(f, "x-00000000000000000009.log.corrupt", ""); /* set aside: its id stays used */
    touch(f, "x-00000000000000000004.other", "");
    touch(f, "notes.txt", "");
    touch(f, "notes.tmp", "");
    uint64_t *ids, max_any;
    size_t n;
    assert_int_equal(dcem_qdir_list(&f->d, "x-", ".log", &ids, &n, &max_any), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_int_equal(max_any, 11);
    free(ids);
    assert_false(exists(in_dir(f, "x-00000000000000000002.log.tmp")));
    assert_false(exists(in_dir(f, "x-00000000000000000011.tmp")));
    assert_true(exists(in_dir(f, "notes.tmp"))); /* not the queue's */
    assert_true(exists(in_dir(f, "notes.txt")));
    assert_int_equal(dcem_qdir_list(&f->d, "y-", ".log", &ids, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
}

static void test_dir_write_file(void **state)
{
    fx *f = *state;
    open_dir(f);
    assert_int_equal(dcem_qdir_write_file(&f->d, "w", "head", 4, "body", 4, 1), 0);
    assert_int_equal(dcem_qdir_write_file(&f->d, "w", "new", 3, NULL, 0, 0), 0); /* replaces */
    int fd = open(in_dir(f, "w"), O_RDONLY);
    assert_true(fd >= 0);
    char buf[16];
    assert_int_equal(dcem_qdir_pread(fd, buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "new", 3);
    close(fd);
    assert_false(exists(in_dir(f, "w.tmp")));
    struct stat st;
    assert_int_equal(stat(in_dir(f, "w"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a name in a directory that is not there: refused, nothing left behind */
    assert_int_equal(dcem_qdir_write_file(&f->d, "no/such", "x", 1, NULL, 0, 1), DCEM_ESTORAGE);
    assert_non_null(strstr(f->err, "no/such"));
}

static void test_dir_set_aside_and_cap(void **state)
{
    fx *f = *state;
    open_dir(f);
    touch(f, "bad", "1");
    assert_int_equal(dcem_qdir_set_aside(&f->d, "bad", 1), 0);
    assert_false(exists(in_dir(f, "bad")));
    assert_true(exists(in_dir(f, "bad.corrupt")));
    touch(f, "bad", "2");
    assert_int_equal(dcem_qdir_set_aside(&f->d, "bad", 0), 0);
    assert_true(exists(in_dir(f, "bad.corrupt.1"))); /* the first copy is kept */

    /* a copy, the original left in place */
    touch(f, "seg", "0123456789");
    int fd = open(in_dir(f, "seg"), O_RDONLY);
    assert_true(fd >= 0);
    char buf[4];
    assert_int_equal(dcem_qdir_copy_aside(&f->d, fd, 10, "seg", buf, sizeof buf, 1), 0);
    close(fd);
    assert_true(exists(in_dir(f, "seg")));
    fd = open(in_dir(f, "seg.corrupt"), O_RDONLY);
    assert_true(fd >= 0);
    char all[16];
    assert_int_equal(dcem_qdir_pread(fd, all, sizeof all, 0), 10);
    assert_memory_equal(all, "0123456789", 10);
    close(fd);
    assert_false(exists(in_dir(f, "seg.corrupt.tmp")));

    /* at the cap: deleted, not copied, counted */
    for (int i = 3; i < (int)DCEM_QDIR_MAX_ASIDE; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "f%d", i);
        touch(f, nm, "x");
        assert_int_equal(dcem_qdir_set_aside(&f->d, nm, 0), 0);
    }
    assert_int_equal(f->d.aside_discarded, 0);
    touch(f, "over", "x");
    assert_int_equal(dcem_qdir_set_aside(&f->d, "over", 0), 0);
    assert_false(exists(in_dir(f, "over")));
    assert_false(exists(in_dir(f, "over.corrupt")));
    fd = open(in_dir(f, "seg"), O_RDONLY);
    assert_int_equal(dcem_qdir_copy_aside(&f->d, fd, 10, "seg", buf, sizeof buf, 0), 0);
    close(fd);
    assert_false(exists(in_dir(f, "seg.corrupt.1")));
    assert_int_equal(f->d.aside_discarded, 2);
    /* a human deletes one: room again */
    unlink(in_dir(f, "bad.corrupt"));
    touch(f, "again", "x");
    assert_int_equal(dcem_qdir_set_aside(&f->d, "again", 0), 0);
    assert_true(exists(in_dir(f, "again.corrupt")));
    assert_int_equal(f->d.aside_discarded, 2);
}

/* The file reader seam reads what is on disk, short at its end. */
static void test_dir_reader(void **state)
{
    fx *f = *state;
    open_dir(f);
    uint8_t b[256] = {0};
    size_t n = 0;
    put_rec(b, &n, 1, "on disk");
    put_rec(b, &n, 2, "too");
    int fd = open(in_dir(f, "r"), O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dcem_qdir_pwrite(fd, b, n, 0), 0);
    dcem_qrec_reader rd = dcem_qdir_reader(fd);
    uint8_t buf[64];
    dcem_qrec_scanned sc;
    assert_int_equal(dcem_qrec_scan(&fmt, &rd, n + 5, buf, sizeof buf, NULL, &sc), 0);
    assert_int_equal(sc.nrec, 2);
    assert_true(sc.bad_tail); /* 5 bytes announced that the file does not have */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_and_header_bytes),
        cmocka_unit_test(test_read_one_record),
        cmocka_unit_test(test_scan_clean_and_empty),
        cmocka_unit_test(test_scan_torn_every_offset),
        cmocka_unit_test(test_scan_tail_not_torn),
        cmocka_unit_test(test_scan_resync_and_order),
        cmocka_unit_test(test_scan_sink_and_reader_failure),
        cmocka_unit_test_setup_teardown(test_dir_open_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_names_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_write_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_set_aside_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

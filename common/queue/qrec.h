/* qrec.h — the CRC'd record of dcem's on-disk queues (the agent's spool, the
 * InfluxDB backlog): its 32-byte header, and the scanner that finds the valid
 * records of a file after a crash. Pure: files are read through a reader seam
 * (qdir.h has the one for file descriptors; tests and fuzzing use memory). */
#ifndef DCEM_QREC_H
#define DCEM_QREC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Record (integers little-endian), a 32-byte header then the payload:
 *   off len  field
 *     0   4  magic: the owner's ("DCSP" spool, "DCIB" backlog)
 *     4   1  version: the owner's (1 for both)
 *     5   3  the owner's (written 0 by both; not checked here)
 *     8   4  payload length, <= the owner's bound
 *    12  16  the owner's fields (spool: epoch, seq; backlog: lines, seq, 0)
 *    28   4  CRC-32 (zlib) over bytes 0..27 and then the payload
 *    32   n  payload
 */
#define DCEM_QREC_HEADER 32u

static inline void dcem_le_put32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void dcem_le_put64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t dcem_le_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t dcem_le_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* What follows() says of a valid record after the file's previous one. */
enum {
    DCEM_QREC_APART = 0, /* does not belong after it (treated as invalid bytes) */
    DCEM_QREC_LATER = 1, /* belongs after it, with a gap */
    DCEM_QREC_NEXT = 2,  /* exactly the one expected next */
};

/* One owner's record format. */
typedef struct dcem_qrec_fmt {
    uint8_t magic[4];
    uint8_t version;
    uint32_t max_payload; /* a corrupt length never makes a reader allocate more */
    /* Optional: the owner's checks of a header whose magic, version and
     * length passed (its id ranges...): 0 when it passes. */
    int (*check)(const uint8_t *h);
    /* Optional (dcem_qrec_scan): whether the valid record h may follow
     * prev, the file's last valid record (NULL when none): DCEM_QREC_*.
     * NULL: every valid record is DCEM_QREC_NEXT. */
    int (*follows)(const uint8_t *prev, const uint8_t *h);
} dcem_qrec_fmt;

/* The seam through which a file is read. */
typedef struct dcem_qrec_reader {
    /* Up to n bytes at off into buf: the count read (short only at the end
     * of the file), or -1 with errno set. */
    int64_t (*pread)(void *ctx, void *buf, uint64_t n, uint64_t off);
    void *ctx;
} dcem_qrec_reader;

/* CRC-32 (zlib's) of n bytes continuing crc (0 to start); n = 0 leaves it. */
uint32_t dcem_qrec_crc32(uint32_t crc, const void *p, uint64_t n);

/* Completes header h for a payload of len bytes: magic, version, length and
 * CRC. The caller has zeroed h and put its own fields at 5..7 and 12..27. */
void dcem_qrec_encode(const dcem_qrec_fmt *f, uint8_t *h, const void *payload, uint32_t len);

/* Checks what a header alone can tell: magic, version, the length bound and
 * the owner's check. Returns 0 with *len, or -1. */
int dcem_qrec_parse(const dcem_qrec_fmt *f, const uint8_t *h, uint32_t *len);

/* Whether the CRC in h matches h and the payload. */
int dcem_qrec_crc_ok(const uint8_t *h, const void *payload, uint32_t len);

enum {
    DCEM_QREC_OK = 0,    /* a whole record whose header and CRC check out */
    DCEM_QREC_SHORT = 1, /* the file ends inside it: a cut-off append */
    DCEM_QREC_BAD = 2,   /* invalid (or its payload is larger than cap) */
};

/* Reads the record at off of a file of fsize bytes (off < fsize): the header
 * into h (32 bytes), the payload into buf (cap bytes). *len is set once the
 * header parsed (also for DCEM_QREC_SHORT). Returns DCEM_QREC_*, or
 * DCEM_ESTORAGE when the reader failed (errno as it left it). */
int dcem_qrec_read(const dcem_qrec_fmt *f, const dcem_qrec_reader *rd, uint64_t fsize, uint64_t off,
                   uint8_t *h, void *buf, size_t cap, uint32_t *len);

/* What dcem_qrec_scan found in a file. */
typedef struct dcem_qrec_scanned {
    uint64_t fsize;
    uint64_t nrec;        /* valid records */
    uint64_t valid_bytes; /* their bytes, headers included */
    uint64_t valid_end;   /* end of the last valid record */
    uint8_t first[DCEM_QREC_HEADER], last[DCEM_QREC_HEADER]; /* their headers, when nrec */
    int bad_mid;   /* invalid bytes followed by a valid record */
    int bad_tail;  /* invalid bytes after the last valid record */
    int tail_torn; /* ... and they are one cut-off append (see dcem_qrec_scan) */
} dcem_qrec_scanned;

/* Optional: called with each valid record, in file order (a salvage copies
 * them). Returns 0, or a negative code that stops the scan. */
typedef struct dcem_qrec_sink {
    int (*record)(void *ctx, const uint8_t *h, const void *payload, uint32_t len);
    void *ctx;
} dcem_qrec_sink;

/* Validates every record of a file of fsize bytes. A record is valid when
 * its header and CRC check out and f->follows() accepts it after the last
 * valid one; after invalid bytes the scan resynchronises on the next magic.
 * The tail is torn when the invalid bytes after the last valid record are one
 * record the file ends inside — part of a header that starts as a magic, or a
 * whole header that follows() calls DCEM_QREC_NEXT (or any, when no record is
 * valid) — that is, an append cut off by a crash. buf (cap bytes; a record
 * larger is invalid, so give it f->max_payload) holds each payload in turn;
 * sink may be NULL. Returns 0, DCEM_ESTORAGE (reader), or what the sink
 * returned. */
int dcem_qrec_scan(const dcem_qrec_fmt *f, const dcem_qrec_reader *rd, uint64_t fsize, void *buf,
                   size_t cap, const dcem_qrec_sink *sink, dcem_qrec_scanned *sc);

#endif

/* qrec.c — the CRC'd record codec and the file scanner of qrec.h. Pure:
 * bytes come through the caller's reader. */
#include "qrec.h"

#include "errors.h"

#include <string.h>
#include <zlib.h>

#define HDR ((uint64_t)DCEM_QREC_HEADER)

uint32_t dcem_qrec_crc32(uint32_t crc, const void *p, uint64_t n)
{
    /* zlib: a NULL buffer would return the initial value instead */
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32((uLong)crc, (const Bytef *)p, k);
        p = (const uint8_t *)p + k;
        n -= k;
    }
    return crc;
}

static uint32_t rec_crc(const uint8_t *h, const void *payload, uint64_t len)
{
    return dcem_qrec_crc32(dcem_qrec_crc32(0, h, HDR - 4), payload, len);
}

void dcem_qrec_encode(const dcem_qrec_fmt *f, uint8_t *h, const void *payload, uint32_t len)
{
    memcpy(h, f->magic, 4);
    h[4] = f->version;
    dcem_le_put32(h + 8, len);
    dcem_le_put32(h + 28, rec_crc(h, payload, len));
}

int dcem_qrec_parse(const dcem_qrec_fmt *f, const uint8_t *h, uint32_t *len)
{
    if (memcmp(h, f->magic, 4) || h[4] != f->version) return -1;
    uint32_t n = dcem_le_get32(h + 8);
    if (n > f->max_payload) return -1;
    if (f->check && f->check(h)) return -1;
    *len = n;
    return 0;
}

int dcem_qrec_crc_ok(const uint8_t *h, const void *payload, uint32_t len)
{
    return rec_crc(h, payload, len) == dcem_le_get32(h + 28);
}

int dcem_qrec_read(const dcem_qrec_fmt *f, const dcem_qrec_reader *rd, uint64_t fsize, uint64_t off,
                   uint8_t *h, void *buf, size_t cap, uint32_t *len)
{
    uint64_t avail = fsize - off, want = avail < HDR ? avail : HDR;
    int64_t n = rd->pread(rd->ctx, h, want, off);
    if (n < 0) return DCEM_ESTORAGE;
    if ((uint64_t)n < HDR) {
        /* the file ends inside a header: torn if what is there starts as one */
        size_t m = n < 4 ? (size_t)n : 4;
        return memcmp(h, f->magic, m) == 0 ? DCEM_QREC_SHORT : DCEM_QREC_BAD;
    }
    if (dcem_qrec_parse(f, h, len)) return DCEM_QREC_BAD;
    if (HDR + *len > avail) return DCEM_QREC_SHORT;
    if (*len > cap) return DCEM_QREC_BAD;
    n = rd->pread(rd->ctx, buf, *len, off + HDR);
    if (n < 0) return DCEM_ESTORAGE;
    if ((uint64_t)n < *len) return DCEM_QREC_SHORT;
    return dcem_qrec_crc_ok(h, buf, *len) ? DCEM_QREC_OK : DCEM_QREC_BAD;
}

/* Offset of the next magic at or after `from` (fsize if none). */
static int find_magic(const dcem_qrec_fmt *f, const dcem_qrec_reader *rd, uint64_t from,
                      uint64_t fsize, uint64_t *pos)
{
    uint8_t chunk[4096];
    uint64_t off = from;
    while (off + 4 <= fsize) {
        uint64_t want = fsize - off < sizeof chunk ? fsize - off : sizeof chunk;
        int64_t n = rd->pread(rd->ctx, chunk, want, off);
        if (n < 0) return DCEM_ESTORAGE;
        if (n < 4) break;
        for (size_t i = 0; i + 4 <= (size_t)n; i++) {
            if (chunk[i] == f->magic[0] && memcmp(chunk + i, f->magic, 4) == 0) {
                *pos = off + i;
                return 0;
            }
        }
        off += (uint64_t)n - 3; /* a magic may straddle two chunks */
    }
    *pos = fsize;
    return 0;
}

static int follows(const dcem_qrec_fmt *f, const dcem_qrec_scanned *sc, const uint8_t *h)
{
    if (!f->follows) return DCEM_QREC_NEXT;
    return f->follows(sc->nrec ? sc->last : NULL, h);
}

int dcem_qrec_scan(const dcem_qrec_fmt *f, const dcem_qrec_reader *rd, uint64_t fsize, void *buf,
                   size_t cap, const dcem_qrec_sink *sink, dcem_qrec_scanned *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->fsize = fsize;
    uint64_t off = 0;
    int in_bad = 0, bad_torn = 0;
    while (off < fsize) {
        uint8_t h[HDR];
        uint32_t len = 0;
        int k = dcem_qrec_read(f, rd, fsize, off, h, buf, cap, &len);
        if (k < 0) return k;
        if (k == DCEM_QREC_OK && follows(f, sc, h) != DCEM_QREC_APART) {
            if (in_bad) sc->bad_mid = 1;
            in_bad = 0;
            if (sink) {
                int rc = sink->record(sink->ctx, h, buf, len);
                if (rc) return rc;
            }
            if (!sc->nrec) memcpy(sc->first, h, HDR);
            memcpy(sc->last, h, HDR);
            sc->nrec++;
            sc->valid_bytes += HDR + len;
            off += HDR + len;
            sc->valid_end = off;
            continue;
        }
        if (!in_bad) {
            in_bad = 1;
            /* Torn: the file ends inside what would have been the next record. */
            bad_torn = k == DCEM_QREC_SHORT &&
                       (fsize - off < HDR || sc->nrec == 0 || follows(f, sc, h) == DCEM_QREC_NEXT);
        }
        int rc = find_magic(f, rd, off + 1, fsize, &off);
        if (rc) return rc;
    }
    if (in_bad) {
        sc->bad_tail = 1;
        sc->tail_torn = bad_torn;
    }
    return 0;
}

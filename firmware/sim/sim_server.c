#include "sim_server.h"
#include "errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL /* nanoseconds */
#define RTU_BUF 512
/* On a pty a request arrives in one piece; bytes that sit this long without
 * completing a frame are noise and are dropped (a real line would use 3.5
 * character times, which a pty does not keep). */
#define RTU_STALE_NS (100 * MS)
/* An answer on the line is written in pieces at most this far apart, each
 * piece the characters complete by then: the client sees the first byte
 * when a real line would deliver it (its response timeout), and the last
 * one not before (the frame's end). Finer pieces only cost wake-ups. */
#define RTU_PACE_NS (4 * MS)

typedef struct pending {
    int fd;         /* the TCP connection */
    int64_t due_ns; /* monotonic */
    int meter;      /* index, -1 for an exception to an unknown unit */
    int exception;  /* > 0: answer this exception */
    int function;
    unsigned address, count;
    uint16_t words[MODBUS_MAX_READ_REGISTERS]; /* the registers at request time */
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    int req_len;
} pending;

/* An RTU answer, built when the request is decided (so it carries the
 * registers as they were when asked), waiting for the line. */
typedef struct rtu_frame {
    int64_t earliest_ns; /* monotonic: may not start on the line before */
    size_t len;
    uint8_t b[MODBUS_RTU_MAX_ADU_LENGTH];
} rtu_frame;

struct sim_server {
    sim_site *site;
    sim_now_fn now;
    void *now_ctx;
    int64_t t0;
    modbus_mapping_t **maps; /* per meter */
    /* TCP */
    modbus_t *tcp;
    int listen_fd, port;
    int conns[SIM_MAX_CONN];
    size_t n_conns;
    /* RTU */
    modbus_t *rtu;
    int rtu_fd;
    uint8_t rx[RTU_BUF];
    size_t rx_len;
    int64_t rx_first_ns, rx_last_ns; /* the first and last byte of rx arrived */
    /* the line's timeline (all 0 without wire_time: everything at once) */
    int bits, baud;        /* per character; the line's speed */
    int64_t silence_ns;    /* between frames */
    int64_t turnaround_ns; /* the device's delay beyond the silence */
    int64_t line_free_ns;  /* the line may carry a new frame from then */
    rtu_frame *txq;        /* answers waiting for the line, unordered */
    size_t n_txq;
    rtu_frame tx; /* the answer on the line */
    int tx_busy;
    int64_t tx_start_ns; /* its first character started then */
    size_t tx_sent;      /* bytes of it written */
    /* delayed TCP answers, unordered (the queue is small) */
    pending *pend;
    size_t n_pend;
    sim_server_stats stats;
};

static int64_t mono(const sim_server *s)
{
    return s->now(s->now_ctx);
}

int64_t sim_server_sim_time(const sim_server *s)
{
    return sim_site_time(s->site, (mono(s) - s->t0) / MS);
}

int sim_server_tcp_port(const sim_server *s)
{
    return s->tcp ? s->port : -1;
}

const sim_server_stats *sim_server_get_stats(const sim_server *s)
{
    return &s->stats;
}

void sim_server_free(sim_server *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_conns; i++)
        close(s->conns[i]);
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->tcp) modbus_free(s->tcp); /* its socket is one of the above, already closed */
    if (s->rtu) {
        modbus_close(s->rtu);
        modbus_free(s->rtu);
    }
    if (s->maps)
        for (size_t i = 0; i < s->site->n_meters; i++)
            modbus_mapping_free(s->maps[i]);
    free(s->maps);
    free(s->pend);
    free(s->txq);
    free(s);
}

static int open_tcp(sim_server *s, const sim_listen *l, char *err, size_t errlen)
{
    s->tcp = modbus_new_tcp(l->tcp_host, l->tcp_port);
    if (!s->tcp) {
        snprintf(err, errlen, "tcp %s:%d: %s", l->tcp_host, l->tcp_port, modbus_strerror(errno));
        return DCEM_EIO;
    }
    s->listen_fd = modbus_tcp_listen(s->tcp, 16);
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "tcp %s:%d: %s", l->tcp_host, l->tcp_port, modbus_strerror(errno));
        return DCEM_EIO;
    }
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    if (getsockname(s->listen_fd, (struct sockaddr *)&a, &alen)) {
        snprintf(err, errlen, "tcp: getsockname: %s", strerror(errno));
        return DCEM_EIO;
    }
    s->port = ntohs(a.sin_port);
    return 0;
}

static int open_rtu(sim_server *s, const sim_listen *l, char *err, size_t errlen)
{
    s->rtu = modbus_new_rtu(l->rtu_device, l->baud, l->parity, l->data_bits, l->stop_bits);
    if (!s->rtu || modbus_connect(s->rtu)) {
        snprintf(err, errlen, "rtu %s: %s", l->rtu_device, modbus_strerror(errno));
        if (s->rtu) modbus_free(s->rtu);
        s->rtu = NULL;
        return DCEM_EIO;
    }
    s->rtu_fd = modbus_get_socket(s->rtu);
    if (s->rtu_fd >= FD_SETSIZE) {
        snprintf(err, errlen, "rtu %s: descriptor %d beyond select()", l->rtu_device, s->rtu_fd);
        return DCEM_EIO;
    }
    s->txq = calloc(SIM_MAX_PENDING, sizeof *s->txq);
    if (!s->txq) {
        snprintf(err, errlen, "rtu %s: out of memory", l->rtu_device);
        return DCEM_ENOMEM;
    }
    if (l->wire_time) {
        s->bits = 1 + l->data_bits + (l->parity != 'N') + l->stop_bits;
        s->baud = l->baud;
        /* Modbus over Serial Line V1.02, 2.5.1.1: above 19200 baud the
         * silence is a fixed 1.75 ms, not 3.5 characters */
        s->silence_ns =
            l->baud > 19200 ? 1750000 : (int64_t)7 * s->bits * 1000000000 / (2 * l->baud);
        s->turnaround_ns = (int64_t)l->turnaround_ms * MS;
    }
    return 0;
}

int sim_server_new(sim_site *site, const sim_listen *l, sim_now_fn now, void *now_ctx,
                   sim_server **out, char *err, size_t errlen)
{
    *out = NULL;
    sim_server *s = calloc(1, sizeof *s);
    if (!s) return DCEM_ENOMEM;
    s->site = site;
    s->now = now;
    s->now_ctx = now_ctx;
    s->listen_fd = s->rtu_fd = -1;
    s->maps = calloc(site->n_meters ? site->n_meters : 1, sizeof *s->maps);
    s->pend = calloc(SIM_MAX_PENDING, sizeof *s->pend);
    if (!s->maps || !s->pend) {
        sim_server_free(s);
        return DCEM_ENOMEM;
    }
    for (size_t i = 0; i < site->n_meters; i++) {
        const sim_meter *m = &site->meters[i];
        s->maps[i] = modbus_mapping_new_start_address(
            0, 0, 0, 0, m->range_start[0], m->range_count[0], m->range_start[1], m->range_count[1]);
        if (!s->maps[i]) {
            sim_server_free(s);
            return DCEM_ENOMEM;
        }
    }
    int rc = 0;
    if (l->tcp_port >= 0) rc = open_tcp(s, l, err, errlen);
    if (!rc && l->rtu_device[0]) rc = open_rtu(s, l, err, errlen);
    if (!rc && !s->tcp && !s->rtu) {
        snprintf(err, errlen, "no listener: give a TCP address or an RTU device");
        rc = DCEM_EIO;
    }
    if (rc) {
        sim_server_free(s);
        return rc;
    }
    s->t0 = mono(s);
    *out = s;
    return 0;
}

/* ---- answering ---- */

static uint16_t *table(modbus_mapping_t *map, int function)
{
    return function == 4 ? map->tab_input_registers : map->tab_registers;
}

static unsigned table_start(const modbus_mapping_t *map, int function)
{
    return (unsigned)(function == 4 ? map->start_input_registers : map->start_registers);
}

static void send_answer(sim_server *s, int fd, const uint8_t *req, int req_len, int meter,
                        int exception)
{
    modbus_set_socket(s->tcp, fd);
    int rc = exception > 0 ? modbus_reply_exception(s->tcp, req, (unsigned)exception)
                           : modbus_reply(s->tcp, req, req_len, s->maps[meter]);
    if (rc < 0) s->stats.send_errors++;
}

static uint16_t crc16(const uint8_t *b, size_t n);
static void rtu_answer(sim_server *s, const uint8_t *req, const sim_answer *a, int meter,
                       unsigned address, unsigned count, int64_t earliest_ns);

/* Decides the request of req_len bytes at req and answers it: on TCP
 * connection fd at once or after the answer's delay; on the RTU line (fd
 * -1) when the line allows, not before answer_ns (monotonic). */
static void handle_request(sim_server *s, modbus_t *ctx, int fd, const uint8_t *req, int req_len,
                           int64_t answer_ns)
{
    int hl = modbus_get_header_length(ctx);
    if (req_len < hl + 1) return;
    s->stats.requests++;
    int unit = req[hl - 1], function = req[hl];
    unsigned address = 0, count = 0;
    if (req_len >= hl + 5) {
        address = (unsigned)req[hl + 1] << 8 | req[hl + 2];
        count = (unsigned)req[hl + 3] << 8 | req[hl + 4];
    }
    sim_answer a;
    sim_site_request(s->site, sim_server_sim_time(s), fd >= 0 ? SIM_BUS_TCP : SIM_BUS_RTU, unit,
                     function, address, count, &a);
    if (a.action == SIM_IGNORE) return;
    int meter = a.meter ? (int)(a.meter - s->site->meters) : -1;
    if (a.action == SIM_REPLY) {
        modbus_mapping_t *map = s->maps[meter];
        sim_meter_fill(a.meter, function, table(map, function), table_start(map, function),
                       function == 4 ? (unsigned)map->nb_input_registers
                                     : (unsigned)map->nb_registers,
                       &a.glitch);
    }
    if (fd < 0) {
        rtu_answer(s, req, &a, meter, address, count, answer_ns + a.delay_ms * MS);
        return;
    }
    if (!a.delay_ms) {
        send_answer(s, fd, req, req_len, meter, a.action == SIM_EXCEPTION ? a.exception : 0);
        return;
    }
    if (s->n_pend == SIM_MAX_PENDING || req_len > (int)sizeof s->pend[0].req) {
        s->stats.pending_dropped++;
        return;
    }
    /* the answer carries the registers as they were when asked */
    pending *p = &s->pend[s->n_pend++];
    p->fd = fd;
    p->due_ns = mono(s) + a.delay_ms * MS;
    p->meter = meter;
    p->exception = a.action == SIM_EXCEPTION ? a.exception : 0;
    p->function = function;
    p->address = address;
    p->count = count;
    p->req_len = req_len;
    memcpy(p->req, req, (size_t)req_len);
    if (!p->exception) {
        const modbus_mapping_t *map = s->maps[meter];
        memcpy(p->words, table(s->maps[meter], function) + (address - table_start(map, function)),
               count * sizeof p->words[0]);
    }
}

static void send_due(sim_server *s)
{
    int64_t now = mono(s);
    for (size_t i = 0; i < s->n_pend;) {
        pending *p = &s->pend[i];
        if (p->due_ns > now) {
            i++;
            continue;
        }
        if (!p->exception) {
            modbus_mapping_t *map = s->maps[p->meter];
            memcpy(table(map, p->function) + (p->address - table_start(map, p->function)), p->words,
                   p->count * sizeof p->words[0]);
        }
        send_answer(s, p->fd, p->req, p->req_len, p->meter, p->exception);
        *p = s->pend[--s->n_pend];
    }
}

static int64_t next_due(const sim_server *s)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < s->n_pend; i++)
        if (s->pend[i].due_ns < due) due = s->pend[i].due_ns;
    return due;
}

/* ---- TCP ---- */

static void close_conn(sim_server *s, size_t i)
{
    int fd = s->conns[i];
    close(fd);
    s->conns[i] = s->conns[--s->n_conns];
    for (size_t k = 0; k < s->n_pend;) /* nobody left to answer */
        if (s->pend[k].fd == fd)
            s->pend[k] = s->pend[--s->n_pend];
        else
            k++;
}

static void accept_conn(sim_server *s)
{
    int fd = modbus_tcp_accept(s->tcp, &s->listen_fd);
    if (fd < 0) return;
    if (s->n_conns == SIM_MAX_CONN || fd >= FD_SETSIZE) {
        close(fd);
        s->stats.refused++;
        return;
    }
    s->conns[s->n_conns++] = fd;
    s->stats.accepted++;
}

static void read_conn(sim_server *s, size_t i)
{
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    modbus_set_socket(s->tcp, s->conns[i]);
    int rc = modbus_receive(s->tcp, req);
    if (rc < 0)
        close_conn(s, i); /* closed by the peer, or not Modbus */
    else if (rc > 0)
        handle_request(s, s->tcp, s->conns[i], req, rc, 0);
}

/* ---- RTU ---- */

static uint16_t crc16(const uint8_t *b, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= b[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : crc >> 1;
    }
    return crc;
}

/* Nanoseconds that n characters take on the line (0 without wire_time).
 * Computed from the frame's start each time, never summed per character,
 * so that rounding does not accumulate. */
static int64_t chars_ns(const sim_server *s, size_t n)
{
    return s->baud ? (int64_t)n * s->bits * 1000000000 / s->baud : 0;
}

static void rtu_answer(sim_server *s, const uint8_t *req, const sim_answer *a, int meter,
                       unsigned address, unsigned count, int64_t earliest_ns)
{
    if (s->n_txq == SIM_MAX_PENDING) {
        s->stats.pending_dropped++;
        return;
    }
    rtu_frame *f = &s->txq[s->n_txq];
    uint8_t *b = f->b;
    size_t n = 0;
    int exception = a->action == SIM_EXCEPTION ? a->exception : 0;
    const uint16_t *w = NULL;
    if (!exception) {
        const modbus_mapping_t *map = s->maps[meter];
        unsigned start = table_start(map, req[1]);
        unsigned size = (unsigned)(req[1] == 4 ? map->nb_input_registers : map->nb_registers);
        /* sim_site checked the range against the meter; this is the table */
        if (address < start || address - start + count > size || count > MODBUS_MAX_READ_REGISTERS)
            exception = MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
        else
            w = table(s->maps[meter], req[1]) + (address - start);
    }
    b[n++] = req[0];
    if (exception) {
        b[n++] = (uint8_t)(req[1] | 0x80);
        b[n++] = (uint8_t)exception;
    } else {
        b[n++] = req[1];
        b[n++] = (uint8_t)(2 * count);
        for (unsigned k = 0; k < count; k++) {
            b[n++] = (uint8_t)(w[k] >> 8);
            b[n++] = (uint8_t)w[k];
        }
    }
    uint16_t crc = crc16(b, n);
    b[n++] = (uint8_t)crc; /* low byte first */
    b[n++] = (uint8_t)(crc >> 8);
    f->len = n;
    f->earliest_ns = earliest_ns;
    s->n_txq++;
}

/* Puts answers on the line: the one on it gets the characters complete by
 * now written; when the line is free the earliest waiting answer starts,
 * at its earliest time or when the line became free, whichever is later
 * (a time in the past when the loop woke late: the timeline is kept, not
 * the wake-up). An answer waits in the queue, the line not taken, until
 * its start has come, so a request arriving meanwhile goes first, as on a
 * real line where the late device would still be silent. */
static void rtu_send(sim_server *s, int64_t now)
{
    for (;;) {
        if (!s->tx_busy) {
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < s->n_txq; i++)
                if (best == SIZE_MAX || s->txq[i].earliest_ns < s->txq[best].earliest_ns) best = i;
            if (best == SIZE_MAX) return;
            int64_t start = s->txq[best].earliest_ns;
            if (start < s->line_free_ns) start = s->line_free_ns;
            if (start > now) return;
            s->tx = s->txq[best];
            s->txq[best] = s->txq[--s->n_txq];
            s->tx_busy = 1;
            s->tx_start_ns = start;
            s->tx_sent = 0;
            s->line_free_ns = start + chars_ns(s, s->tx.len) + s->silence_ns;
        }
        /* characters complete by now: the k with chars_ns(k) <= elapsed */
        int64_t elapsed = now - s->tx_start_ns;
        size_t due =
            s->baud ? (size_t)(elapsed * s->baud / ((int64_t)s->bits * 1000000000)) : s->tx.len;
        if (due > s->tx.len) due = s->tx.len;
        while (due < s->tx.len && chars_ns(s, due + 1) <= elapsed)
            due++;
        while (due > 0 && chars_ns(s, due) > elapsed)
            due--;
        if (due > s->tx_sent) {
            ssize_t n = write(s->rtu_fd, s->tx.b + s->tx_sent, due - s->tx_sent);
            if (n > 0) {
                s->tx_sent += (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                s->stats.send_errors++; /* the rest of this answer is lost */
                s->tx_sent = s->tx.len;
            }
        }
        if (s->tx_sent < s->tx.len) return; /* more later (or the pty is full: try again) */
        s->tx_busy = 0;
    }
}

/* When rtu_send has something to do next, or INT64_MAX. */
static int64_t rtu_next(const sim_server *s, int64_t now)
{
    if (s->tx_busy) {
        int64_t end = s->tx_start_ns + chars_ns(s, s->tx.len);
        int64_t next = s->tx_start_ns + chars_ns(s, s->tx_sent + 1);
        if (next >= now + RTU_PACE_NS) return next; /* a slow line: byte by byte */
        /* pieces RTU_PACE_NS apart, the last one on time; behind (the pty
         * was full) means try again later, not at once */
        return end > now && end < now + RTU_PACE_NS ? end : now + RTU_PACE_NS;
    }
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < s->n_txq; i++)
        if (s->txq[i].earliest_ns < due) due = s->txq[i].earliest_ns;
    if (due != INT64_MAX && due < s->line_free_ns) due = s->line_free_ns;
    return due;
}

/* Length of the request frame at b (n bytes so far): > 0 the full length,
 * 0 more bytes needed, -1 a function this server cannot frame. */
static long rtu_request_len(const uint8_t *b, size_t n)
{
    if (n < 2) return 0;
    switch (b[1]) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 8:
        return 8;
    case 7:
    case 11:
    case 12:
    case 17:
        return 4;
    case 15:
    case 16:
        return n < 7 ? 0 : 9 + (long)b[6];
    case 22:
        return 10;
    case 23:
        return n < 11 ? 0 : 13 + (long)b[10];
    default:
        return -1;
    }
}

static void rtu_frames(sim_server *s)
{
    while (s->rx_len) {
        long len = rtu_request_len(s->rx, s->rx_len);
        if (len == 0 || (len > 0 && (size_t)len > s->rx_len)) return; /* incomplete */
        if (len < 0 || len > MODBUS_RTU_MAX_ADU_LENGTH) {
            s->stats.bad_frames++;
            s->rx_len = 0; /* resynchronise on the next request */
            return;
        }
        size_t n = (size_t)len;
        uint16_t crc = (uint16_t)(s->rx[n - 2] | s->rx[n - 1] << 8); /* low byte first */
        if (crc != crc16(s->rx, n - 2)) {
            s->stats.bad_frames++;
            s->rx_len = 0;
            return;
        }
        /* The request is on the line from its first byte's arrival (or
         * when the line was free, if later: a pty delivers it early) for
         * n characters; the device knows it has ended after the silence,
         * and answers after its turnaround. */
        int64_t start = s->rx_first_ns;
        if (start < s->line_free_ns) {
            /* a real line would garble it or merge it with the last frame;
             * here it waits, counted, so that a client's timing shows */
            start = s->line_free_ns;
            s->stats.early++;
        }
        int64_t end = start + chars_ns(s, n);
        s->line_free_ns = end + s->silence_ns;
        handle_request(s, s->rtu, -1, s->rx, (int)n, s->line_free_ns + s->turnaround_ns);
        memmove(s->rx, s->rx + n, s->rx_len - n);
        s->rx_len -= n;
    }
}

static int read_rtu(sim_server *s, char *err, size_t errlen)
{
    ssize_t n = read(s->rtu_fd, s->rx + s->rx_len, sizeof s->rx - s->rx_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n <= 0) {
        snprintf(err, errlen, "rtu: the line is gone: %s", n ? strerror(errno) : "end of file");
        return DCEM_EIO;
    }
    int64_t now = mono(s);
    if (!s->rx_len) s->rx_first_ns = now;
    s->rx_len += (size_t)n;
    s->rx_last_ns = now;
    rtu_frames(s);
    if (s->rx_len == sizeof s->rx) { /* no request is this long */
        s->stats.bad_frames++;
        s->rx_len = 0;
    }
    return 0;
}

/* ---- the loop ---- */

int sim_server_poll(sim_server *s, int max_wait_ms, const sigset_t *sigmask, char *err,
                    size_t errlen)
{
    int64_t now = mono(s), wake = now + max_wait_ms * MS;
    int64_t due = next_due(s);
    if (due < wake) wake = due;
    if (s->rtu && (due = rtu_next(s, now)) < wake) wake = due;
    if (s->rx_len && s->rx_last_ns + RTU_STALE_NS < wake) wake = s->rx_last_ns + RTU_STALE_NS;
    int64_t wait = wake > now ? wake - now : 0;

    fd_set rd;
    FD_ZERO(&rd);
    int maxfd = -1;
    if (s->listen_fd >= 0) {
        FD_SET(s->listen_fd, &rd);
        maxfd = s->listen_fd;
    }
    for (size_t i = 0; i < s->n_conns; i++) {
        FD_SET(s->conns[i], &rd);
        if (s->conns[i] > maxfd) maxfd = s->conns[i];
    }
    if (s->rtu_fd >= 0) {
        FD_SET(s->rtu_fd, &rd);
        if (s->rtu_fd > maxfd) maxfd = s->rtu_fd;
    }
    struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
    int ready = pselect(maxfd + 1, &rd, NULL, NULL, &ts, sigmask);
    if (ready < 0) {
        if (errno == EINTR) return 0;
        snprintf(err, errlen, "select: %s", strerror(errno));
        return DCEM_EIO;
    }
    if (ready > 0) {
        if (s->rtu_fd >= 0 && FD_ISSET(s->rtu_fd, &rd)) {
            int rc = read_rtu(s, err, errlen);
            if (rc) return rc;
        }
        /* from the end: close_conn moves the last connection into slot i */
        for (size_t i = s->n_conns; i-- > 0;)
            if (FD_ISSET(s->conns[i], &rd)) read_conn(s, i);
        if (s->listen_fd >= 0 && FD_ISSET(s->listen_fd, &rd)) accept_conn(s);
    }
    now = mono(s);
    if (s->rx_len && now - s->rx_last_ns >= RTU_STALE_NS) {
        s->stats.bad_frames++;
        s->rx_len = 0;
    }
    send_due(s);
    if (s->rtu) rtu_send(s, now);
    return 0;
}

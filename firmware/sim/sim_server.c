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

#define RTU_BUF 512
/* On a pty a request arrives in one piece; bytes that sit this long without
 * completing a frame are noise and are dropped (a real line would use 3.5
 * character times, which a pty does not keep). */
#define RTU_STALE_MS 100

typedef struct pending {
    int fd;         /* the TCP connection, or -1: the RTU line */
    int64_t due_ms; /* monotonic */
    int meter;      /* index, -1 for an exception to an unknown unit */
    int exception;  /* > 0: answer this exception */
    int function;
    unsigned address, count;
    uint16_t words[MODBUS_MAX_READ_REGISTERS]; /* the registers at request time */
    uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
    int req_len;
} pending;

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
    int64_t rx_last_ms;
    /* delayed answers, unordered (the queue is small) */
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
    return sim_site_time(s->site, mono(s) - s->t0);
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

static void send_answer(sim_server *s, modbus_t *ctx, int fd, const uint8_t *req, int req_len,
                        int meter, int exception)
{
    if (fd >= 0)
        modbus_set_socket(ctx, fd);
    else
        modbus_set_slave(ctx, req[0]);
    int rc = exception > 0 ? modbus_reply_exception(ctx, req, (unsigned)exception)
                           : modbus_reply(ctx, req, req_len, s->maps[meter]);
    if (rc < 0) s->stats.send_errors++;
}

static void handle_request(sim_server *s, modbus_t *ctx, int fd, const uint8_t *req, int req_len)
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
    if (!a.delay_ms) {
        send_answer(s, ctx, fd, req, req_len, meter, a.action == SIM_EXCEPTION ? a.exception : 0);
        return;
    }
    if (s->n_pend == SIM_MAX_PENDING || req_len > (int)sizeof s->pend[0].req) {
        s->stats.pending_dropped++;
        return;
    }
    /* the answer carries the registers as they were when asked */
    pending *p = &s->pend[s->n_pend++];
    p->fd = fd;
    p->due_ms = mono(s) + a.delay_ms;
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
        if (p->due_ms > now) {
            i++;
            continue;
        }
        if (!p->exception) {
            modbus_mapping_t *map = s->maps[p->meter];
            memcpy(table(map, p->function) + (p->address - table_start(map, p->function)), p->words,
                   p->count * sizeof p->words[0]);
        }
        send_answer(s, p->fd >= 0 ? s->tcp : s->rtu, p->fd, p->req, p->req_len, p->meter,
                    p->exception);
        *p = s->pend[--s->n_pend];
    }
}

static int64_t next_due(const sim_server *s)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < s->n_pend; i++)
        if (s->pend[i].due_ms < due) due = s->pend[i].due_ms;
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
        handle_request(s, s->tcp, s->conns[i], req, rc);
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
        handle_request(s, s->rtu, -1, s->rx, (int)n);
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
    s->rx_len += (size_t)n;
    s->rx_last_ms = mono(s);
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
    int64_t now = mono(s), wake = now + max_wait_ms;
    int64_t due = next_due(s);
    if (due < wake) wake = due;
    if (s->rx_len && s->rx_last_ms + RTU_STALE_MS < wake) wake = s->rx_last_ms + RTU_STALE_MS;
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
    struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
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
    if (s->rx_len && mono(s) - s->rx_last_ms >= RTU_STALE_MS) {
        s->stats.bad_frames++;
        s->rx_len = 0;
    }
    send_due(s);
    return 0;
}

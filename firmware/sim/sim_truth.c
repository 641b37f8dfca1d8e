#include "sim_truth.h"
#include "errors.h"
#include "parse.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *register_json(const sim_meter *m, size_t i, const sim_electrical *e)
{
    const dcem_register *r = &m->profile->regs[i];
    unsigned a = sim_meter_reg_address(m, i), n = dcem_regtype_words(r->type);
    uint16_t words[4] = {0};
    sim_meter_fill(m, r->function, words, a, n, NULL);
    double served = NAN;
    if (sim_meter_reg_decode(m, i, words, &served)) served = NAN;
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char hex[24] = "";
    for (unsigned k = 0, at = 0; k < n; k++, at = 5 * k - 1) /* "XXXX XXXX ..." */
        snprintf(hex + at, sizeof hex - at, "%s%04X", k ? " " : "", (unsigned)words[k]);
    cJSON_AddStringToObject(j, "name", r->name);
    cJSON_AddStringToObject(j, "quantity", dcem_quantity_name(r->quantity));
    cJSON_AddNumberToObject(j, "phase", r->phase);
    cJSON_AddNumberToObject(j, "function", r->function);
    cJSON_AddNumberToObject(j, "address", a);
    cJSON_AddStringToObject(j, "type", dcem_regtype_name(r->type));
    cJSON_AddStringToObject(j, "order", dcem_wordorder_name(r->order));
    cJSON_AddNumberToObject(j, "unit", sim_meter_reg_unit(m, i));
    double value = sim_meter_reg_value(m, i, e, NULL);
    const sim_ratio_seg *g = sim_meter_ratio(m);
    cJSON_AddNumberToObject(j, "value", value);
    cJSON_AddNumberToObject(j, "primary", value * dcem_ratio_factor(r->quantity, g->ct, g->pt));
    cJSON_AddNumberToObject(j, "served", served);
    cJSON_AddStringToObject(j, "words", hex);
    cJSON_AddBoolToObject(j, "refused", m->refused[i]);
    return j;
}

/* The stretches of constant ratios begun by the meter's time: with them
 * the primary energy follows from the counter the meter served. */
static cJSON *ratios_json(const sim_meter *m)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t k = 0; a && k <= m->seg; k++) {
        const sim_ratio_seg *g = &m->ratio[k];
        cJSON *j = cJSON_CreateObject();
        if (!j) break;
        cJSON_AddNumberToObject(j, "from_s", (double)(g->from_ms - m->start_ms) / 1000);
        cJSON_AddNumberToObject(j, "from_ms", (double)g->from_ms);
        cJSON_AddNumberToObject(j, "ct_ratio", g->ct);
        cJSON_AddNumberToObject(j, "pt_ratio", g->pt);
        cJSON_AddNumberToObject(j, "secondary_start_kwh", g->secondary_start_kwh);
        cJSON_AddNumberToObject(j, "energy_kwh", g->energy_kwh);
        cJSON_AddNumberToObject(j, "secondary_kwh", g->energy_kwh / (g->ct * g->pt));
        cJSON_AddItemToArray(a, j);
    }
    return a;
}

static cJSON *meter_json(sim_meter *m)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    sim_electrical e;
    sim_model_electrical(&m->model, m->t_ms, &e);
    double counter = sim_meter_counter_kwh(m), secondary = sim_meter_secondary_kwh(m);
    double wrap = sim_meter_reg_wrap(m, (size_t)m->counter_reg);
    const sim_ratio_seg *g = sim_meter_ratio(m);
    cJSON_AddStringToObject(j, "id", m->id);
    cJSON_AddNumberToObject(j, "unit", m->unit);
    cJSON_AddStringToObject(j, "profile", m->profile->model);
    cJSON_AddStringToObject(j, "shape", sim_shape_names[m->model.c.shape]);
    cJSON_AddNumberToObject(j, "rated_kw", m->model.c.rated_kw);
    cJSON_AddNumberToObject(j, "power_kw", e.p_kw[0]);
    cJSON_AddNumberToObject(j, "energy_kwh", m->energy_kwh);
    cJSON_AddNumberToObject(j, "initial_kwh", m->initial_kwh);
    cJSON_AddNumberToObject(j, "counter_kwh", counter);
    cJSON_AddNumberToObject(j, "ct_ratio", g->ct);
    cJSON_AddNumberToObject(j, "pt_ratio", g->pt);
    cJSON_AddNumberToObject(j, "secondary_kwh", secondary);
    cJSON_AddNumberToObject(j, "wrap_kwh", isinf(wrap) ? -1 : wrap);
    cJSON_AddNumberToObject(j, "wraps", isinf(wrap) ? 0 : floor(secondary / wrap));
    cJSON_AddBoolToObject(j, "reset", m->reset_done);
    cJSON_AddItemToObject(j, "ratios", ratios_json(m));
    cJSON_AddStringToObject(j, "holes", sim_holes_names[m->holes]);
    cJSON *refused = cJSON_AddArrayToObject(j, "refused");
    for (size_t i = 0; refused && i < m->profile->n_regs; i++)
        if (m->refused[i])
            cJSON_AddItemToArray(refused, cJSON_CreateString(m->profile->regs[i].name));
    cJSON *regs = cJSON_AddArrayToObject(j, "registers");
    double served = NAN;
    for (size_t i = 0; regs && i < m->profile->n_regs; i++) {
        cJSON *r = register_json(m, i, &e);
        if (!r) break;
        cJSON_AddItemToArray(regs, r);
        if ((int)i == m->counter_reg) served = cJSON_GetObjectItem(r, "served")->valuedouble;
    }
    cJSON_AddNumberToObject(j, "served_kwh", served);
    cJSON_AddNumberToObject(j, "served_primary_kwh", served * g->ct * g->pt);
    cJSON *st = cJSON_AddObjectToObject(j, "stats");
    if (st) {
        cJSON_AddNumberToObject(st, "requests", (double)m->stats.requests);
        cJSON_AddNumberToObject(st, "answered", (double)m->stats.answered);
        cJSON_AddNumberToObject(st, "dropped", (double)m->stats.dropped);
        cJSON_AddNumberToObject(st, "exceptions", (double)m->stats.exceptions);
        cJSON_AddNumberToObject(st, "delayed", (double)m->stats.delayed);
        cJSON_AddNumberToObject(st, "glitches", (double)m->stats.glitches);
        cJSON_AddNumberToObject(st, "refused", (double)m->stats.refused);
    }
    return j;
}

char *sim_truth_json(sim_site *s, int64_t t_ms, unsigned long seq)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    char when[40];
    int32_t offset = s->n_meters ? s->meters[0].model.c.utc_offset_s : 0;
    dcem_format_time(t_ms, offset, when, sizeof when);
    cJSON_AddStringToObject(root, "scenario", s->name);
    cJSON_AddNumberToObject(root, "seq", (double)seq);
    cJSON_AddStringToObject(root, "time", when);
    cJSON_AddNumberToObject(root, "time_ms", (double)t_ms);
    cJSON_AddNumberToObject(root, "start_ms", (double)s->start_ms);
    cJSON_AddNumberToObject(root, "speed", s->speed);
    cJSON_AddNumberToObject(root, "unknown_unit_requests", (double)s->unknown_unit);
    cJSON *meters = cJSON_AddArrayToObject(root, "meters");
    for (size_t i = 0; meters && i < s->n_meters; i++) {
        sim_meter_advance(&s->meters[i], t_ms);
        cJSON *m = meter_json(&s->meters[i]);
        if (!m) break;
        cJSON_AddItemToArray(meters, m);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

int sim_truth_write(sim_site *s, int64_t t_ms, unsigned long seq, const char *path, char *err,
                    size_t errlen)
{
    char *text = sim_truth_json(s, t_ms, seq);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return DCEM_ENOMEM;
    }
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        free(text);
        snprintf(err, errlen, "%s: path too long", path);
        return DCEM_EIO;
    }
    int rc = 0, why = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = DCEM_EIO;
        why = errno;
    } else {
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t w = write(fd, text + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        int failed = off < len || write(fd, "\n", 1) != 1 || fsync(fd);
        if (failed) why = errno;
        if (close(fd) && !failed) {
            failed = 1;
            why = errno;
        }
        if (!failed && rename(tmp, path)) {
            failed = 1;
            why = errno;
        }
        if (failed) {
            rc = DCEM_EIO;
            unlink(tmp);
        }
    }
    if (rc) snprintf(err, errlen, "%s: %s", path, why ? strerror(why) : "short write");
    free(text);
    return rc;
}

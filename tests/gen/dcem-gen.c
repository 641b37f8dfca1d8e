/* dcem-gen — a generated year of meter readings whose true energy is known,
 * for the figures tests (tests/unit/test_sample_sites.c) and the benchmark.
 * The power of every meter of a site ledger is modelled at the step knots
 * (15 minutes by default, aligned on the local clock) and is linear between
 * them, so the true energy of a step is exactly its trapezoid. The CSV holds
 * cumulative counters: that energy accumulated from a start value and
 * rounded to each meter's resolution. truth.json holds the exact energy per
 * meter and role for each local month and the year, the site figures built
 * from it, and every fault injected with --faults. Deterministic: the same
 * ledger, year, step and seed give the same bytes.
 *
 * --faults injects, on five different meters of the roles that enter the
 * figures, faults that leave every monthly true energy unchanged, so the
 * figures must still come out exact; truth.json lists each with its time
 * and gives the counts the engine must report:
 *   (a) rollover: a meter with counter_modulo_kwh starts just below a wrap
 *       that falls in mid-June (wraps without --faults are counted too);
 *   (b) glitch: one reading of a meter replaced by 0, neighbours right;
 *   (c) spike: one reading 24 h of rated power too high;
 *   (d) gap: 8 consecutive readings of one meter missing, inside one day;
 *   (e) reset: a meter replaced in March; the new counter starts from 0 plus
 *       the energy since the swap. The engine estimates the step across the
 *       swap at the rate of the step after it, so the meter's power is held
 *       flat for the hour around it and that estimate is exact.
 * (b) and (c) are discarded and their two steps bridged (estimated), (d) is
 * spread over its 9 steps (estimated), (e)'s straddling step is estimated.
 *
 * --until TIME (RFC 3339, or "now") ends the readings at that moment of the
 * year instead of its end: every knot before it, then one reading at TIME
 * itself (exact too: the power is linear up to the next knot). truth.json
 * then has the months begun by TIME, the last one and the year ending at
 * TIME, and faults that would fall after TIME are not injected. The
 * current year up to now, for a demo whose live meters carry on from there.
 *
 * Counters files are readings CSVs (time,meter,kwh), one row per meter.
 * --end-counters FILE writes each meter's counter at the last reading (as
 * the CSV shows it, never a glitch); --start-counters FILE starts every
 * meter from such a file, whose times must be this year's start: the
 * previous year's --end-counters, so the two files make one unbroken
 * history. The start row is then that file's last and is not written
 * again. Not with --faults, whose rollover needs its own start value.
 *
 *   dcem-gen --site FILE --year YYYY --out readings.csv --truth truth.json
 *            [--step-minutes 15] [--faults] [--seed N] [--until TIME|now]
 *            [--start-counters FILE] [--end-counters FILE]
 */
#include "calendar.h"
#include "dcem_io.h"
#include "parse.h"
#include "site.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PI 3.14159265358979323846
#define OUT_BUF (8u << 20) /* rows are written in blocks of this size */
#define ROW_MAX (40 + DCEM_ID_MAX + 32)

/* The site model. Every constant is a plain physical assumption; none is
 * tuned against the engine. */
#define LOAD_BASE 0.66        /* IT load / rated UPS output, on average */
#define COMPUTE_FRACTION 0.42 /* compute (AI racks) share of the IT load */
#define LOSS_FRACTION 0.05    /* unmetered UPS, transformer and lighting losses / IT */
#define COOLING_MAX 0.97      /* a cooling plant never runs above this share of its rating */
#define GAP_READINGS 8        /* readings dropped by the gap fault */
/* a replaced meter starts counting this far into the step after its last reading */
#define SWAP_FRACTION (7.0 / 15)

typedef struct meter_gen {
    const dcem_meter *m;
    double weight;          /* share of its role's power (compute, facility) */
    double imbalance;       /* fixed factor in [0.92, 1]: meters of one role differ */
    double res;             /* kWh per counter tick */
    int64_t mod_ticks;      /* counter wraps here; 0: never */
    int64_t units_per_tick; /* one tick in units of 10^-decimals kWh */
    int decimals;
    char prefix[DCEM_ID_MAX + 3]; /* ",id," */
    size_t prefix_len;
    double base_kwh; /* counter = base + true energy since the year began */
    double cum_kwh, cum_prev_kwh;
    double p_prev; /* power at the previous knot, kW */
    double peak_kw;
    int64_t last_ticks; /* unwrapped counter of the last reading written */
    int64_t last_t;     /* and its time */
    int have_last;
    double kwh[12];
    long rollovers[12], resets[12], discarded[12], est_intervals[12];
    int64_t est_ms[12];
    long read_intervals[12]; /* intervals with a good reading (not a glitch) */
    int64_t last_read_iv;    /* start of the interval of its last good reading */
} meter_gen;

/* One injected fault: meter index (-1: not injected) and the knot it hits. */
typedef struct fault {
    int meter;
    int64_t k;
} fault;

typedef struct gen {
    dcem_site *site;
    dcem_tz *tz;
    dcem_zone zone;
    long long year;
    uint64_t seed;
    int faults;
    int64_t step_ms, interval_ms;
    int64_t start_ms, end_ms, n_steps; /* knots 0..n_steps, both ends included */
    int64_t until_ms;                  /* end_ms, or a reading after the last knot (--until) */
    int n_months;                      /* months begun before until_ms */
    int continued;                     /* --start-counters: knot 0 is not written */
    int64_t mstart[13];                /* local month starts of the year, and the next */
    int64_t day0;                      /* local day number of 1 January */
    int ndays;
    double *day_total; /* facility + green_onsite energy per local day */
    meter_gen *mg;
    size_t n;
    fault roll, reset, glitch, spike, gap;
    double reset_hold_kw;
    int hold_active; /* 0 while reset_hold_kw itself is computed */
    cJSON *fault_list;
    cJSON *warnings;
    long long rows;
} gen;

/* ---- deterministic randomness ---- */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A counter-based hash, so that the model at knot k is a pure function of
 * (seed, what, k): the dry pass and the writing pass agree. */
static uint64_t mix(uint64_t seed, uint64_t what, uint64_t k)
{
    return splitmix(splitmix(seed ^ (what * 0x100000001B3ull)) + k);
}

static double unit(uint64_t h) /* [0, 1) */
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* xorshift64: places the faults. */
static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- the power model ---- */

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Power (kW) of every meter at knot k into p[]. */
static void model_knot(gen *g, int64_t k, double *p)
{
    int64_t t = g->start_ms + k * g->step_ms;
    int64_t local = t + (int64_t)dcem_zone_offset(&g->zone, t) * DCEM_MS_PER_S;
    int64_t day = dcem_floordiv(local, DCEM_MS_PER_DAY);
    double hod = (double)(local - day * DCEM_MS_PER_DAY) / 3.6e6; /* local hour */
    double yf = (double)(day - g->day0) / (double)g->ndays;       /* year fraction */
    int wd = (int)(((day + 4) % 7 + 7) % 7);                      /* 0 = Sunday */
    int weekend = wd == 0 || wd == 6;

    /* the day's weather: cloud cover (Beijing is mostly sunny) and how much
     * warmer or colder than normal it is */
    uint64_t wx = mix(g->seed, 0xD4E, (uint64_t)day);
    double sky = 1 - 0.65 * pow(unit(wx), 2);
    double anomaly = 6 * (unit(splitmix(wx)) - 0.5);
    /* outside temperature, °C: Beijing's -3 °C January to 27 °C July means,
     * warmest mid-afternoon */
    double temp = 12.5 - 15.5 * cos(2 * PI * (yf - 15.0 / 365)) +
                  5.5 * cos(2 * PI * (hod - 15) / 24) + anomaly;
    /* IT load: grows 10% over the year, peaks in the afternoon, a little
     * lower at weekends */
    double load = LOAD_BASE * (0.95 + 0.10 * yf) * (1 + 0.05 * cos(2 * PI * (hod - 15) / 24)) *
                  (weekend ? 0.97 : 1);
    /* cooling plant utilisation: free cooling when cold, chillers when hot,
     * and proportional to the heat the IT load makes */
    double cool_u = clampd(0.30 + 0.018 * (temp + 5), 0.22, 0.95) * load / LOAD_BASE;
    /* the sun: day length 9.1 h to 14.9 h, solar noon about 12:12 local,
     * clearest in late spring */
    double daylen = 12 + 2.9 * sin(2 * PI * (yf - 80.0 / 365));
    double x = (hod - (12.2 - daylen / 2)) / daylen;
    double sun = x > 0 && x < 1 ? pow(sin(PI * x), 1.3) : 0;
    double pv_peak = 0.80 + 0.08 * cos(2 * PI * (yf - 140.0 / 365));
    int office_hours = !weekend && hod >= 8 && hod < 19;

    double it = 0, cooling = 0, other = 0, pv = 0;
    for (size_t i = 0; i < g->n; i++) {
        const meter_gen *m = &g->mg[i];
        double rated = m->m->rated_kw;
        double noise = 2 * unit(mix(g->seed, i + 1, (uint64_t)k)) - 1; /* [-1, 1) */
        double v = 0;
        switch (m->m->role) {
        case DCEM_ROLE_IT:
            v = rated * load * m->imbalance * (1 + 0.01 * noise);
            break;
        case DCEM_ROLE_COOLING:
            v = fmin(rated * cool_u * m->imbalance * (1 + 0.01 * noise), rated * COOLING_MAX);
            break;
        case DCEM_ROLE_OTHER:
            v = rated * (office_hours ? 0.75 : 0.5) * m->imbalance;
            break;
        case DCEM_ROLE_GREEN_ONSITE:
            v = rated * pv_peak * sun * sky * (1 + 0.02 * noise);
            break;
        default:
            break; /* compute and facility follow from the others */
        }
        /* the reset fault holds its meter flat for an hour around the swap,
         * so the interval across it has the rate of the one after it */
        if (g->hold_active && (int)i == g->reset.meter && k > g->reset.k - 2 && k <= g->reset.k + 2)
            v = g->reset_hold_kw;
        switch (m->m->role) {
        case DCEM_ROLE_IT:
            it += v;
            break;
        case DCEM_ROLE_COOLING:
            cooling += v;
            break;
        case DCEM_ROLE_OTHER:
            other += v;
            break;
        case DCEM_ROLE_GREEN_ONSITE:
            pv += v;
            break;
        default:
            break;
        }
        p[i] = v;
    }
    /* everything behind the incomers; the PV feeds part of it */
    double consumption = it + cooling + other + LOSS_FRACTION * it;
    double grid = consumption - pv;
    if (grid < 0) grid = 0; /* export is not modelled; warned about via peak checks */
    for (size_t i = 0; i < g->n; i++) {
        if (g->mg[i].m->role == DCEM_ROLE_COMPUTE)
            p[i] = COMPUTE_FRACTION * it * g->mg[i].weight;
        else if (g->mg[i].m->role == DCEM_ROLE_FACILITY)
            p[i] = grid * g->mg[i].weight;
    }
}

/* ---- periods ---- */

/* Local month (0-11) of instant t in the year, -1 outside it. */
static int month_of(const gen *g, int64_t t)
{
    if (t < g->mstart[0] || t >= g->mstart[12]) return -1;
    int m = 0;
    while (t >= g->mstart[m + 1])
        m++;
    return m;
}

static int64_t knot_time(const gen *g, int64_t k)
{
    return g->start_ms + k * g->step_ms;
}

/* Records the engine intervals over [t0, t1) of meter i as estimated. */
static void add_estimated(gen *g, int i, int64_t t0, int64_t t1)
{
    meter_gen *m = &g->mg[i];
    for (int64_t a = t0; a < t1;) {
        int64_t s = g->start_ms + dcem_floordiv(a - g->start_ms, g->interval_ms) * g->interval_ms;
        int64_t e = s + g->interval_ms;
        int64_t hi = e < t1 ? e : t1;
        int mo = month_of(g, s);
        if (mo >= 0) {
            m->est_intervals[mo]++;
            m->est_ms[mo] += hi - a;
        }
        a = hi;
    }
}

/* ---- output ---- */

typedef struct out_buf {
    FILE *fp;
    char *buf;
    size_t used;
    int err;
} out_buf;

static void out_flush(out_buf *o)
{
    if (o->used && fwrite(o->buf, 1, o->used, o->fp) != o->used) o->err = 1;
    o->used = 0;
}

/* Writes units (>= 0) as a decimal with exactly `decimals` decimals. */
static char *put_fixed(char *o, int64_t units, int decimals)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + units % 10);
        units /= 10;
    } while (units || n <= decimals);
    for (int i = n - 1; i >= 0; i--) {
        *o++ = tmp[i];
        if (i == decimals && decimals) *o++ = '.';
    }
    return o;
}

static void time_string(gen *g, int64_t t, char *b, size_t n)
{
    dcem_format_time(t, dcem_zone_offset(&g->zone, t), b, n);
}

static void note_fault(gen *g, const char *kind, int i, int64_t t, const char *what)
{
    char ts[40];
    time_string(g, t, ts, sizeof ts);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "kind", kind);
    cJSON_AddStringToObject(f, "meter", g->mg[i].m->id);
    cJSON_AddStringToObject(f, "role", dcem_role_name(g->mg[i].m->role));
    cJSON_AddStringToObject(f, "time", ts);
    cJSON_AddStringToObject(f, "what", what);
    cJSON_AddItemToArray(g->fault_list, f);
}

/* ---- setup ---- */

static int parse_ll(const char *s, long long lo, long long hi, long long *v)
{
    size_t len = strlen(s);
    if (!len || len > 18) return -1;
    long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    if (x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* Counter geometry of meter m: the decimals its resolution needs, and the
 * modulo in ticks. */
static int setup_counter(meter_gen *m, char *err, size_t errlen)
{
    m->res = m->m->counter_resolution_kwh;
    m->decimals = -1;
    for (int d = 0; d <= 6; d++) {
        double scaled = m->res * pow(10, d);
        if (scaled >= 1 - 1e-9 && fabs(scaled - round(scaled)) < 1e-6 * scaled) {
            m->decimals = d;
            m->units_per_tick = (int64_t)llround(scaled);
            break;
        }
    }
    if (m->decimals < 0) {
        snprintf(err, errlen, "meter %s: resolution %g kWh is not a multiple of 1e-6", m->m->id,
                 m->res);
        return -1;
    }
    m->mod_ticks = 0;
    if (!isnan(m->m->counter_modulo_kwh)) {
        double ticks = m->m->counter_modulo_kwh / m->res;
        if (fabs(ticks - round(ticks)) > 1e-6 * ticks || ticks < 2) {
            snprintf(err, errlen, "meter %s: modulo %g kWh is not a multiple of its resolution",
                     m->m->id, m->m->counter_modulo_kwh);
            return -1;
        }
        m->mod_ticks = (int64_t)llround(ticks);
    }
    return 0;
}

/* The first meter, in order of the preferred roles, that has no fault yet
 * and (unless any_modulo) no counter modulo, which could turn a drop into a
 * plausible wrap. -1 if none. */
static int pick(const gen *g, const int *roles, int n_roles, int any_modulo, int need_modulo)
{
    for (int r = 0; r < n_roles; r++)
        for (size_t i = 0; i < g->n; i++) {
            const meter_gen *m = &g->mg[i];
            int ii = (int)i;
            if (m->m->role != roles[r]) continue;
            if (ii == g->roll.meter || ii == g->reset.meter || ii == g->glitch.meter ||
                ii == g->spike.meter || ii == g->gap.meter)
                continue;
            if (need_modulo && !m->mod_ticks) continue;
            if (!any_modulo && !need_modulo && m->mod_ticks) continue;
            return ii;
        }
    return -1;
}

/* The knot at local date month/day of the year, hh:mm (rounded down to a
 * knot). */
static int64_t knot_at(const gen *g, int month, int day, int hh, int mm)
{
    int64_t t = dcem_zone_day_start(&g->zone, dcem_days_from_civil(g->year, month, day)) +
                ((int64_t)hh * 60 + mm) * 60000;
    return dcem_floordiv(t - g->start_ms, g->step_ms);
}

/* Chooses which meters the faults hit and when. All five hit different
 * meters, inside a month and far from the ends of the year. */
static void place_faults(gen *g)
{
    g->roll = g->reset = g->glitch = g->spike = g->gap = (fault){-1, 0};
    if (!g->faults) return;
    uint64_t s = g->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!s) s = 1;
    static const int figure_roles[] = {DCEM_ROLE_GREEN_ONSITE, DCEM_ROLE_COMPUTE, DCEM_ROLE_IT,
                                       DCEM_ROLE_FACILITY};
    static const int reset_roles[] = {DCEM_ROLE_IT, DCEM_ROLE_GREEN_ONSITE};
    static const int glitch_roles[] = {DCEM_ROLE_IT, DCEM_ROLE_FACILITY, DCEM_ROLE_COMPUTE,
                                       DCEM_ROLE_GREEN_ONSITE};
    static const int spike_roles[] = {DCEM_ROLE_FACILITY, DCEM_ROLE_IT, DCEM_ROLE_COMPUTE,
                                      DCEM_ROLE_GREEN_ONSITE};
    static const int gap_roles[] = {DCEM_ROLE_COMPUTE, DCEM_ROLE_GREEN_ONSITE, DCEM_ROLE_IT,
                                    DCEM_ROLE_FACILITY};
    /* (a) rollover: a meter whose register wraps; mid-June at noon, when a
     * PV meter produces too */
    g->roll.meter = pick(g, figure_roles, 4, 1, 1);
    g->roll.k = knot_at(g, 6, 8 + (int)(xorshift(&s) % 14), 12, 0);
    /* (e) reset: an IT (or PV) meter, whose power the model can hold flat;
     * March, 10:00 */
    g->reset.meter = pick(g, reset_roles, 2, 0, 0);
    g->reset.k = knot_at(g, 3, 5 + (int)(xorshift(&s) % 18), 10, 0);
    /* (b) glitch: April, 03:15 */
    g->glitch.meter = pick(g, glitch_roles, 4, 0, 0);
    g->glitch.k = knot_at(g, 4, 3 + (int)(xorshift(&s) % 20), 3, 15);
    /* (c) spike: August, 14:30 */
    g->spike.meter = pick(g, spike_roles, 4, 0, 0);
    g->spike.k = knot_at(g, 8, 3 + (int)(xorshift(&s) % 20), 14, 30);
    /* (d) gap: September, 01:00-02:45 missing, inside one day */
    g->gap.meter = pick(g, gap_roles, 4, 1, 0);
    g->gap.k = knot_at(g, 9, 3 + (int)(xorshift(&s) % 20), 1, 0);
}

/* --until: a fault whose readings would come after until_ms is not
 * injected (its truth would describe readings that are not written). */
static void drop_late_faults(gen *g)
{
    struct {
        fault *f;
        int64_t last; /* the last knot the fault touches */
    } fs[] = {{&g->roll, g->roll.k + 1},
              {&g->reset, g->reset.k + 2},
              {&g->glitch, g->glitch.k + 1},
              {&g->spike, g->spike.k + 1},
              {&g->gap, g->gap.k + GAP_READINGS}};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        if (fs[i].f->meter >= 0 && knot_time(g, fs[i].last) >= g->until_ms) fs[i].f->meter = -1;
}

/* --start-counters: every meter's counter at the year's start from FILE, a
 * readings CSV whose rows are all at that start (the last row of a meter
 * counts). 0, or -1 with the reason in err. */
static int load_start_counters(gen *g, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    int rc = 0;
    long lineno = 0;
    int *seen = calloc(g->n ? g->n : 1, sizeof *seen);
    if (!seen) {
        fclose(fp);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while (!rc && fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        if (!len || (lineno == 1 && !strncmp(line, "time,", 5))) continue;
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        int64_t t;
        double kwh;
        if (!c2 || strchr(c2 + 1, ',')) {
            snprintf(err, errlen, "%s:%ld: expected time,meter,kwh", path, lineno);
            rc = -1;
        } else if (dcem_parse_time(line, (size_t)(c1 - line), &t) || t != g->start_ms) {
            snprintf(err, errlen, "%s:%ld: time: not the start of %lld", path, lineno, g->year);
            rc = -1;
        } else if (dcem_parse_double(c2 + 1, strlen(c2 + 1), &kwh) || !(kwh >= 0)) {
            snprintf(err, errlen, "%s:%ld: kwh: not a counter value", path, lineno);
            rc = -1;
        } else {
            *c2 = 0;
            size_t i = 0;
            while (i < g->n && strcmp(g->mg[i].m->id, c1 + 1))
                i++;
            meter_gen *m = i < g->n ? &g->mg[i] : NULL;
            double ticks = m ? kwh / m->res : 0;
            if (!m) {
                snprintf(err, errlen, "%s:%ld: meter '%s' is not in the ledger", path, lineno,
                         c1 + 1);
                rc = -1;
            } else if (fabs(ticks - round(ticks)) > 1e-6 ||
                       (m->mod_ticks && llround(ticks) >= m->mod_ticks)) {
                snprintf(err, errlen, "%s:%ld: kwh: %s cannot show %s", path, lineno, m->m->id,
                         c2 + 1);
                rc = -1;
            } else {
                m->base_kwh = (double)llround(ticks) * m->res;
                seen[i] = 1;
            }
        }
    }
    if (!rc && ferror(fp)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -1;
    }
    for (size_t i = 0; !rc && i < g->n; i++)
        if (!seen[i]) {
            snprintf(err, errlen, "%s: no counter for meter %s", path, g->mg[i].m->id);
            rc = -1;
        }
    free(seen);
    fclose(fp);
    return rc;
}

/* --end-counters: each meter's counter at its last reading, as the CSV
 * shows it (wrapped; never a glitch or a spike). */
static int write_end_counters(gen *g, const char *path)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fprintf(stderr, "dcem-gen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fputs("time,meter,kwh\n", fp);
    for (size_t i = 0; i < g->n; i++) {
        const meter_gen *m = &g->mg[i];
        char ts[40], v[40];
        time_string(g, m->last_t, ts, sizeof ts);
        int64_t ticks = m->mod_ticks ? m->last_ticks % m->mod_ticks : m->last_ticks;
        *put_fixed(v, ticks * m->units_per_tick, m->decimals) = 0;
        fprintf(fp, "%s,%s,%s\n", ts, m->m->id, v);
    }
    if (fclose(fp)) {
        fprintf(stderr, "dcem-gen: %s: write error\n", path);
        return -1;
    }
    return 0;
}

/* Start values of the counters: deterministic, non-zero, and for the
 * rollover fault's meter just below a wrap that falls at its knot. */
static void set_start_values(gen *g, double *p)
{
    for (size_t i = 0; i < g->n; i++) {
        meter_gen *m = &g->mg[i];
        int64_t ticks = (int64_t)llround(1000 / m->res) +
                        (int64_t)(hash_str(m->m->id) % (uint64_t)llround(2e6 / m->res));
        if (m->mod_ticks) {
            /* a meter with a small register starts in its lower quarter */
            ticks %= m->mod_ticks / 4 + 1;
            if (!ticks) ticks = 1;
        }
        m->base_kwh = (double)ticks * m->res;
    }
    if (g->roll.meter < 0) return;
    /* dry run up to the rollover knot: the energy the meter has counted by
     * then, so that its register wraps in the middle of that step */
    meter_gen *m = &g->mg[g->roll.meter];
    double h = (double)g->step_ms / 3.6e6, cum = 0, cum_prev = 0, prev = 0;
    for (int64_t k = 0; k <= g->roll.k; k++) {
        model_knot(g, k, p);
        if (k > 0) {
            cum_prev = cum;
            cum += (prev + p[g->roll.meter]) / 2 * h;
        }
        prev = p[g->roll.meter];
    }
    int64_t mid = (int64_t)llround((cum_prev + cum) / 2 / m->res);
    int64_t start = m->mod_ticks - mid % m->mod_ticks;
    if (start <= 0 || start >= m->mod_ticks) start = 1;
    m->base_kwh = (double)start * m->res;
}

/* ---- the year ---- */

static int run(gen *g, const char *out_path)
{
    double *p = calloc(g->n ? g->n : 1, sizeof *p);
    out_buf o = {.buf = malloc(OUT_BUF)};
    int rc = -1;
    if (!p || !o.buf) {
        fputs("dcem-gen: out of memory\n", stderr);
        goto out;
    }
    o.fp = fopen(out_path, "wb");
    if (!o.fp) {
        fprintf(stderr, "dcem-gen: %s: %s\n", out_path, strerror(errno));
        goto out;
    }
    static const char header[] = "time,meter,kwh\n";
    memcpy(o.buf, header, sizeof header - 1);
    o.used = sizeof header - 1;

    int mi = 0; /* month of the step ending at knot k */
    /* knots 0..n_steps, then (--until between two knots) one step to until_ms */
    int64_t last = g->until_ms > knot_time(g, g->n_steps) ? g->n_steps + 1 : g->n_steps;
    for (int64_t k = 0; k <= last; k++) {
        int64_t t = k <= g->n_steps ? knot_time(g, k) : g->until_ms;
        model_knot(g, k, p);
        if (k > g->n_steps) {
            /* the power is linear between knots: its value at until_ms */
            double f = (double)(t - knot_time(g, k - 1)) / (double)g->step_ms;
            for (size_t i = 0; i < g->n; i++)
                p[i] = g->mg[i].p_prev + (p[i] - g->mg[i].p_prev) * f;
        }
        if (k > 0) {
            int64_t t0 = knot_time(g, k - 1);
            double h = (double)(t - t0) / 3.6e6;
            while (mi < 11 && t0 >= g->mstart[mi + 1])
                mi++;
            int64_t local0 = t0 + (int64_t)dcem_zone_offset(&g->zone, t0) * DCEM_MS_PER_S;
            int64_t di = dcem_floordiv(local0, DCEM_MS_PER_DAY) - g->day0;
            for (size_t i = 0; i < g->n; i++) {
                meter_gen *m = &g->mg[i];
                double e = (m->p_prev + p[i]) / 2 * h; /* exact: power is linear in between */
                m->cum_prev_kwh = m->cum_kwh;
                m->cum_kwh += e;
                m->kwh[mi] += e;
                if ((m->m->role == DCEM_ROLE_FACILITY || m->m->role == DCEM_ROLE_GREEN_ONSITE) &&
                    di >= 0 && di < g->ndays)
                    g->day_total[di] += e;
            }
        }
        char ts[40];
        time_string(g, t, ts, sizeof ts);
        size_t tl = strlen(ts);
        for (size_t i = 0; i < g->n; i++) {
            meter_gen *m = &g->mg[i];
            int ii = (int)i;
            m->p_prev = p[i];
            if (p[i] > m->peak_kw) m->peak_kw = p[i];
            /* (d) gap: GAP_READINGS readings of this meter never arrive; the
             * engine spreads the energy over the gap, estimated */
            if (ii == g->gap.meter && k >= g->gap.k && k < g->gap.k + GAP_READINGS) {
                if (k == g->gap.k) {
                    note_fault(g, "gap", ii, t, "8 consecutive readings missing");
                    add_estimated(g, ii, knot_time(g, k - 1), knot_time(g, k + GAP_READINGS));
                }
                continue;
            }
            /* (e) reset: the meter is replaced SWAP_FRACTION into the step
             * before this reading; the new one counts from 0. Its power is
             * held flat around the swap, so the engine's estimate of the step
             * across it (at the rate of the next step) is exact */
            if (ii == g->reset.meter && k == g->reset.k) {
                m->base_kwh = -(m->cum_prev_kwh +
                                g->reset_hold_kw * ((double)g->step_ms / 3.6e6) * SWAP_FRACTION);
                m->have_last = 0;
                m->resets[mi]++;
                add_estimated(g, ii, knot_time(g, k - 1), t);
                note_fault(g, "reset", ii, t,
                           "meter replaced; new counter from 0 plus the energy since the swap");
            }
            int64_t ticks = (int64_t)llround((m->base_kwh + m->cum_kwh) / m->res);
            int64_t shown = ticks;
            if (m->mod_ticks) {
                /* (a) rollover, injected by the start value (set_start_values)
                 * or natural: count every wrap between readings written */
                if (m->have_last && dcem_floordiv(ticks, m->mod_ticks) >
                                        dcem_floordiv(m->last_ticks, m->mod_ticks)) {
                    m->rollovers[mi]++;
                    note_fault(g, "rollover", ii, t,
                               ii == g->roll.meter ? "register wraps at its modulo (injected)"
                                                   : "register wraps at its modulo (natural)");
                }
                shown = ticks % m->mod_ticks;
            }
            m->last_ticks = ticks;
            m->have_last = 1;
            m->last_t = t;
            /* (b) glitch: one reading reads 0; (c) spike: one reading a day
             * of rated power too high. Both disagree with both neighbours,
             * so the engine discards them and bridges the two steps */
            if ((ii == g->glitch.meter && k == g->glitch.k) ||
                (ii == g->spike.meter && k == g->spike.k)) {
                int glitch = ii == g->glitch.meter && k == g->glitch.k;
                shown = glitch ? 0 : shown + (int64_t)llround(m->m->rated_kw * 24 / m->res);
                int mo = month_of(g, t);
                if (mo >= 0) m->discarded[mo]++;
                add_estimated(g, ii, knot_time(g, k - 1), knot_time(g, k + 1));
                note_fault(g, glitch ? "glitch" : "spike", ii, t,
                           glitch ? "one reading replaced by 0"
                                  : "one reading 24 h of rated power too high");
            }
            else {
                /* a good reading: its interval has a reading (completeness
                 * counts intervals with one, docs/figures.md) */
                int64_t s0 = g->start_ms +
                             dcem_floordiv(t - g->start_ms, g->interval_ms) * g->interval_ms;
                int mo = month_of(g, s0);
                if (mo >= 0 && s0 != m->last_read_iv) m->read_intervals[mo]++;
                m->last_read_iv = s0;
            }
            /* continued: the previous file's last row is this reading */
            if (k == 0 && g->continued) continue;
            if (o.used + ROW_MAX > OUT_BUF) out_flush(&o);
            char *w = o.buf + o.used;
            memcpy(w, ts, tl);
            w += tl;
            memcpy(w, m->prefix, m->prefix_len);
            w += m->prefix_len;
            w = put_fixed(w, shown * m->units_per_tick, m->decimals);
            *w++ = '\n';
            o.used = (size_t)(w - o.buf);
            g->rows++;
        }
    }
    out_flush(&o);
    if (fclose(o.fp) || o.err) {
        fprintf(stderr, "dcem-gen: %s: write error\n", out_path);
        o.fp = NULL;
        goto out;
    }
    o.fp = NULL;
    rc = 0;
out:
    if (o.fp) fclose(o.fp);
    free(o.buf);
    free(p);
    return rc;
}

/* ---- truth ---- */

static int figure_role(int role)
{
    return role == DCEM_ROLE_FACILITY || role == DCEM_ROLE_IT || role == DCEM_ROLE_GREEN_ONSITE ||
           role == DCEM_ROLE_COMPUTE;
}

/* One period, months [m0, m1) of the year, as the engine would report it
 * from perfect arithmetic. */
static cJSON *period_json(gen *g, int m0, int m1)
{
    double role[DCEM_ROLE_COUNT] = {0};
    long roll = 0, resets = 0, disc = 0, est = 0;
    double completeness = 1;
    int64_t end = g->mstart[m1] < g->until_ms ? g->mstart[m1] : g->until_ms;
    int64_t len = end - g->mstart[m0];
    cJSON *o = cJSON_CreateObject();
    char name[16], ts[40];
    if (m1 - m0 == 12)
        snprintf(name, sizeof name, "%lld", g->year);
    else
        snprintf(name, sizeof name, "%lld-%02d", g->year, m0 + 1);
    cJSON_AddStringToObject(o, "period", name);
    cJSON_AddStringToObject(o, "kind", m1 - m0 == 12 ? "year" : "month");
    time_string(g, g->mstart[m0], ts, sizeof ts);
    cJSON_AddStringToObject(o, "start", ts);
    time_string(g, end, ts, sizeof ts);
    cJSON_AddStringToObject(o, "end", ts);
    cJSON *ms = cJSON_CreateArray();
    for (size_t i = 0; i < g->n; i++) {
        const meter_gen *m = &g->mg[i];
        double kwh = 0;
        long r = 0, rs = 0, d = 0, e = 0;
        long read = 0;
        for (int mo = m0; mo < m1; mo++) {
            kwh += m->kwh[mo];
            r += m->rollovers[mo];
            rs += m->resets[mo];
            d += m->discarded[mo];
            e += m->est_intervals[mo];
            read += m->read_intervals[mo];
        }
        /* readings received / expected, one per interval */
        double c = (double)read / (double)((len + g->interval_ms - 1) / g->interval_ms);
        if (c > 1) c = 1;
        role[m->m->role] += kwh;
        if (figure_role(m->m->role)) {
            roll += r;
            resets += rs;
            disc += d;
            est += e;
            if (c < completeness) completeness = c;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", m->m->id);
        cJSON_AddStringToObject(j, "role", dcem_role_name(m->m->role));
        cJSON_AddNumberToObject(j, "kwh", kwh);
        cJSON_AddNumberToObject(j, "completeness", c);
        cJSON_AddNumberToObject(j, "rollovers", (double)r);
        cJSON_AddNumberToObject(j, "resets", (double)rs);
        cJSON_AddNumberToObject(j, "discarded_readings", (double)d);
        cJSON_AddNumberToObject(j, "estimated_intervals", (double)e);
        cJSON_AddItemToArray(ms, j);
    }
    double ledger = 0;
    for (int mo = m0; mo < m1; mo++)
        ledger += dcem_site_green_month_kwh(g->site, (int)(g->year * 12 + mo));
    double total = role[DCEM_ROLE_FACILITY] + role[DCEM_ROLE_GREEN_ONSITE];
    double it = role[DCEM_ROLE_IT];
    double green = role[DCEM_ROLE_GREEN_ONSITE] + ledger;
    cJSON_AddNumberToObject(o, "total_kwh", total);
    cJSON_AddNumberToObject(o, "it_kwh", it);
    cJSON_AddNumberToObject(o, "green_kwh", green);
    cJSON_AddNumberToObject(o, "green_onsite_kwh", role[DCEM_ROLE_GREEN_ONSITE]);
    cJSON_AddNumberToObject(o, "green_ledger_kwh", ledger);
    cJSON_AddNumberToObject(o, "facility_kwh", role[DCEM_ROLE_FACILITY]);
    cJSON_AddNumberToObject(o, "compute_kwh", role[DCEM_ROLE_COMPUTE]);
    cJSON_AddNumberToObject(o, "cooling_kwh", role[DCEM_ROLE_COOLING]);
    cJSON_AddNumberToObject(o, "other_kwh", role[DCEM_ROLE_OTHER]);
    if (it > 0)
        cJSON_AddNumberToObject(o, "pue", total / it);
    else
        cJSON_AddNullToObject(o, "pue");
    if (total > 0) {
        /* green beyond consumption does not count (share at most 1) */
        cJSON_AddNumberToObject(o, "green_share", green >= total ? 1.0 : green / total);
        cJSON_AddNumberToObject(o, "compute_share", role[DCEM_ROLE_COMPUTE] / total);
    } else {
        cJSON_AddNullToObject(o, "green_share");
        cJSON_AddNullToObject(o, "compute_share");
    }
    cJSON_AddNumberToObject(o, "completeness", completeness);
    cJSON_AddNumberToObject(o, "rollovers", (double)roll);
    cJSON_AddNumberToObject(o, "resets", (double)resets);
    cJSON_AddNumberToObject(o, "discarded_readings", (double)disc);
    cJSON_AddNumberToObject(o, "estimated_intervals", (double)est);
    cJSON_AddItemToObject(o, "meters", ms);
    return o;
}

static cJSON *num_or_null(double v)
{
    return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

static int write_truth(gen *g, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "dcem-gen-truth/1");
    cJSON_AddStringToObject(root, "site", g->site->site);
    cJSON_AddStringToObject(root, "timezone", g->site->timezone);
    cJSON_AddNumberToObject(root, "year", (double)g->year);
    cJSON_AddNumberToObject(root, "step_minutes", (double)(g->step_ms / 60000));
    cJSON_AddNumberToObject(root, "seed", (double)g->seed);
    if (g->until_ms < g->end_ms) {
        char ts[40];
        time_string(g, g->until_ms, ts, sizeof ts);
        cJSON_AddStringToObject(root, "until", ts);
    } else {
        cJSON_AddNullToObject(root, "until");
    }
    cJSON_AddBoolToObject(root, "continued", g->continued);
    cJSON_AddBoolToObject(root, "faults_injected", g->faults);
    cJSON_AddStringToObject(root, "assumes",
                            "step == interval_minutes; policy data.gap_intervals < 2 and "
                            "glitch_margin >= 1 (the counts of estimated intervals and "
                            "discarded readings depend on them)");
    cJSON_AddNumberToObject(root, "racks", (double)g->site->racks);
    cJSON_AddNumberToObject(root, "rack_power_kw", g->site->rack_power_kw);
    cJSON_AddItemToObject(root, "approved_annual_kwh", num_or_null(g->site->approved_annual_kwh));
    cJSON_AddItemToObject(root, "baseline_annual_kwh", num_or_null(g->site->baseline_annual_kwh));
    cJSON_AddNumberToObject(root, "rows", (double)g->rows);
    long discarded = 0;
    cJSON *ms = cJSON_AddArrayToObject(root, "meters");
    for (size_t i = 0; i < g->n; i++) {
        const meter_gen *m = &g->mg[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", m->m->id);
        cJSON_AddStringToObject(j, "role", dcem_role_name(m->m->role));
        cJSON_AddNumberToObject(j, "rated_kw", m->m->rated_kw);
        cJSON_AddNumberToObject(j, "peak_kw", m->peak_kw);
        cJSON_AddNumberToObject(j, "resolution_kwh", m->res);
        cJSON_AddItemToObject(j, "modulo_kwh", num_or_null(m->m->counter_modulo_kwh));
        cJSON_AddNumberToObject(j, "year_kwh", m->cum_kwh);
        cJSON_AddItemToArray(ms, j);
        for (int mo = 0; mo < 12; mo++)
            discarded += m->discarded[mo];
    }
    cJSON_AddNumberToObject(root, "discarded_readings", (double)discarded);
    cJSON *ps = cJSON_AddArrayToObject(root, "periods");
    for (int mo = 0; mo < g->n_months; mo++)
        cJSON_AddItemToArray(ps, period_json(g, mo, mo + 1));
    cJSON_AddItemToArray(ps, period_json(g, 0, 12));
    cJSON *days = cJSON_AddArrayToObject(root, "day_total_kwh");
    int ndays = (int)(dcem_zone_day(&g->zone, g->until_ms - 1) - g->day0 + 1);
    for (int d = 0; d < g->ndays && d < ndays; d++)
        cJSON_AddItemToArray(days, cJSON_CreateNumber(g->day_total[d]));
    cJSON_AddItemToObject(root, "faults", g->fault_list);
    g->fault_list = NULL;
    cJSON_AddItemToObject(root, "warnings", g->warnings);
    g->warnings = NULL;

    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fputs("dcem-gen: out of memory\n", stderr);
        return -1;
    }
    FILE *fp = fopen(path, "wb");
    int rc = 0;
    if (!fp) {
        fprintf(stderr, "dcem-gen: %s: %s\n", path, strerror(errno));
        rc = -1;
    } else {
        size_t len = strlen(text);
        if (fwrite(text, 1, len, fp) != len || fputc('\n', fp) == EOF) rc = -1;
        if (fclose(fp)) rc = -1;
        if (rc) fprintf(stderr, "dcem-gen: %s: write error\n", path);
    }
    cJSON_free(text);
    return rc;
}

/* Every modelled power must stay within the meter's rating, or the engine
 * would rightly call its steps implausible. */
static void check_peaks(gen *g)
{
    for (size_t i = 0; i < g->n; i++) {
        const meter_gen *m = &g->mg[i];
        if (m->peak_kw <= m->m->rated_kw) continue;
        char b[256];
        snprintf(b, sizeof b, "meter %s: modelled peak %.1f kW above its rated %.1f kW", m->m->id,
                 m->peak_kw, m->m->rated_kw);
        fprintf(stderr, "dcem-gen: warning: %s\n", b);
        cJSON_AddItemToArray(g->warnings, cJSON_CreateString(b));
    }
}

static void usage(FILE *out)
{
    fputs("usage: dcem-gen --site FILE --year YYYY --out readings.csv --truth truth.json\n"
          "                [--step-minutes 15] [--faults] [--seed N] [--until TIME|now]\n"
          "                [--start-counters FILE] [--end-counters FILE]\n"
          "Writes a year of cumulative meter readings (CSV time,meter,kwh) for the\n"
          "meters of a site ledger, and their exact energy per month in truth.json.\n"
          "--until ends the readings at TIME (RFC 3339) or now; --start-counters\n"
          "carries on from the previous year's --end-counters file.\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"site", required_argument, 0, 's'},
        {"year", required_argument, 0, 'y'},
        {"out", required_argument, 0, 'o'},
        {"truth", required_argument, 0, 't'},
        {"step-minutes", required_argument, 0, 'm'},
        {"faults", no_argument, 0, 'f'},
        {"seed", required_argument, 0, 'S'},
        {"until", required_argument, 0, 'u'},
        {"start-counters", required_argument, 0, 'C'},
        {"end-counters", required_argument, 0, 'E'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *site_path = NULL, *out_path = NULL, *truth_path = NULL;
    const char *start_path = NULL, *end_path = NULL;
    long long year = 0, step = 15, seed = 1;
    int64_t until = INT64_MAX;
    int faults = 0, c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            site_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 't':
            truth_path = optarg;
            break;
        case 'f':
            faults = 1;
            break;
        case 'y':
            if (parse_ll(optarg, 1971, 9998, &year)) {
                fprintf(stderr, "dcem-gen: --year %s: expected YYYY\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_ll(optarg, 1, 60, &step) || 60 % step) {
                fprintf(stderr, "dcem-gen: --step-minutes %s: expected a divisor of 60\n", optarg);
                return 2;
            }
            break;
        case 'S':
            if (parse_ll(optarg, 0, 999999999999999999LL, &seed)) {
                fprintf(stderr, "dcem-gen: --seed %s: expected a non-negative integer\n", optarg);
                return 2;
            }
            break;
        case 'u':
            if (!strcmp(optarg, "now"))
                until = (int64_t)time(NULL) * 1000;
            else if (dcem_parse_time(optarg, strlen(optarg), &until)) {
                fprintf(stderr, "dcem-gen: --until %s: expected an RFC 3339 time or now\n", optarg);
                return 2;
            }
            break;
        case 'C':
            start_path = optarg;
            break;
        case 'E':
            end_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!site_path || !out_path || !truth_path || !year || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (start_path && faults) {
        fputs("dcem-gen: --start-counters and --faults: the rollover fault sets its meter's "
              "start value; use one\n",
              stderr);
        return 2;
    }

    char err[1024];
    int rc = 1;
    gen g = {.year = year, .seed = (uint64_t)seed, .faults = faults, .step_ms = step * 60000};
    double *p = NULL;
    g.site = malloc(sizeof *g.site);
    if (!g.site) goto out;
    if (dcem_io_load_site(site_path, g.site, err, sizeof err) ||
        dcem_io_load_tz(g.site->timezone, &g.tz, err, sizeof err)) {
        fprintf(stderr, "dcem-gen: %s\n", err);
        goto out;
    }
    dcem_zone_init(&g.zone, g.tz);
    g.interval_ms = g.site->interval_minutes * 60000;
    if (g.step_ms != g.interval_ms)
        fprintf(stderr,
                "dcem-gen: warning: step %lld min differs from the ledger's %lld min "
                "interval; the expected counts in truth.json assume they are equal\n",
                step, g.site->interval_minutes);
    for (int m = 0; m <= 12; m++)
        g.mstart[m] = dcem_zone_month_start(&g.zone, year * 12 + m);
    g.start_ms = g.mstart[0];
    g.end_ms = g.mstart[12];
    if (until <= g.start_ms) {
        fprintf(stderr, "dcem-gen: --until: not after the start of %lld\n", year);
        goto out;
    }
    g.until_ms = until < g.end_ms ? until : g.end_ms;
    g.n_steps = (g.until_ms - g.start_ms) / g.step_ms;
    g.n_months = 0;
    while (g.n_months < 12 && g.mstart[g.n_months] < g.until_ms)
        g.n_months++;
    g.day0 = dcem_zone_day(&g.zone, g.start_ms);
    g.ndays = (int)(dcem_zone_day(&g.zone, g.end_ms) - g.day0);
    g.n = g.site->n_meters;
    g.mg = calloc(g.n, sizeof *g.mg);
    g.day_total = calloc((size_t)g.ndays, sizeof *g.day_total);
    p = calloc(g.n, sizeof *p);
    g.fault_list = cJSON_CreateArray();
    g.warnings = cJSON_CreateArray();
    if (!g.mg || !g.day_total || !p || !g.fault_list || !g.warnings) {
        fputs("dcem-gen: out of memory\n", stderr);
        goto out;
    }

    /* meters: counter geometry, and each one's share of its role */
    double role_w[DCEM_ROLE_COUNT] = {0};
    for (size_t i = 0; i < g.n; i++) {
        meter_gen *m = &g.mg[i];
        m->m = &g.site->meters[i];
        if (setup_counter(m, err, sizeof err)) {
            fprintf(stderr, "dcem-gen: %s\n", err);
            goto out;
        }
        int n = snprintf(m->prefix, sizeof m->prefix, ",%s,", m->m->id);
        m->prefix_len = n > 0 ? (size_t)n : 0;
        m->imbalance = 0.92 + 0.08 * unit(splitmix(hash_str(m->m->id)));
        role_w[m->m->role] += m->m->rated_kw * m->imbalance;
    }
    for (size_t i = 0; i < g.n; i++)
        g.mg[i].weight = g.mg[i].m->rated_kw * g.mg[i].imbalance / role_w[g.mg[i].m->role];

    place_faults(&g);
    drop_late_faults(&g);
    if (g.reset.meter >= 0) {
        /* the power the replaced meter is held at: its own at two knots
         * before the first reading of the new meter */
        model_knot(&g, g.reset.k - 2, p);
        g.reset_hold_kw = p[g.reset.meter];
    }
    g.hold_active = 1;
    set_start_values(&g, p);
    if (start_path) {
        if (load_start_counters(&g, start_path, err, sizeof err)) {
            fprintf(stderr, "dcem-gen: --start-counters: %s\n", err);
            goto out;
        }
        g.continued = 1;
    }
    if (run(&g, out_path)) goto out;
    check_peaks(&g);
    if (write_truth(&g, truth_path)) goto out;
    if (end_path && write_end_counters(&g, end_path)) goto out;
    rc = 0;
out:
    free(p);
    free(g.day_total);
    free(g.mg);
    cJSON_Delete(g.fault_list);
    cJSON_Delete(g.warnings);
    dcem_tz_free(g.tz);
    free(g.site);
    return rc;
}

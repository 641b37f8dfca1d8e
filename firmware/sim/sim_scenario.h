/* sim_scenario.h — a dcem-sim scenario file (configs/sim/<name>.yaml): where to
 * listen, the simulated clock, and the meters with their profile, load
 * shape and faults. Parsed with the declarative config tables of cfg.h, so
 * errors read "file:line: key: what is wrong". Pure: bytes in, struct out;
 * profiles are resolved later (sim_site). docs/sim.md has the schema. */
#ifndef DCEM_SIM_SCENARIO_H
#define DCEM_SIM_SCENARIO_H

#include "profile.h"
#include "sim_fault.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_METER_CFG 64 /* meter entries in a file (each may repeat, see count) */
#define SIM_MAX_FAULTS 8     /* per meter entry */
#define SIM_MAX_UNITS 247    /* Modbus unit ids 1..247 */
#define SIM_ID_MAX 48
#define SIM_PROFILE_NAME_MAX 64
#define SIM_HOST_MAX 64

enum { SIM_HOLES_SERVE = 0, SIM_HOLES_REFUSE = 1 };
extern const char *const sim_holes_names[]; /* "serve", "refuse" */

typedef struct sim_meter_cfg {
    char id[SIM_ID_MAX];                /* with count > 1: "<id>-01", "<id>-02", ... */
    long long unit;                     /* 1..247; replicas take unit, unit+1, ... */
    long long count;                    /* replicas, >= 1 */
    char profile[SIM_PROFILE_NAME_MAX]; /* model: configs/meters/<profile>.yaml */
    int shape;                          /* sim_shape */
    double rated_kw;
    double level; /* NAN: the shape's default */
    double noise;
    double pf; /* NAN: the shape's default */
    double v_nominal;
    double hz_nominal;
    double initial_kwh; /* the PRIMARY counter at start; NAN: 0 */
    double ct_ratio;    /* transformers the meter sits behind: it serves primary / */
    double pt_ratio;    /* dcem_ratio_factor(quantity, ct, pt); 1: none */
    /* a partial register map: names of profile registers the meter answers
     * exception 02 for (checked against the profile by sim_meter_init) */
    char refuse[DCEM_PROFILE_MAX_REGS][DCEM_REG_NAME_MAX];
    size_t n_refuse;
    int holes; /* SIM_HOLES_*: whether a read may span words no register holds */
    sim_fault faults[SIM_MAX_FAULTS];
    size_t n_faults;
    int line;
} sim_meter_cfg;

typedef struct sim_scenario {
    char name[64];
    char description[200];
    struct {
        char tcp[SIM_HOST_MAX + 8]; /* "host:port"; "": no TCP listener */
        char rtu[256];              /* serial device; "": none */
        long long baud;
        int parity; /* 0 N, 1 E, 2 O */
        long long data_bits, stop_bits;
        int wire_time;           /* RTU: keep a real line's timing on a pty */
        long long turnaround_ms; /* RTU: the device's answer delay (with wire_time) */
    } listen;
    struct {
        char start[40];          /* RFC 3339, or "now" */
        double speed;            /* simulated seconds per real second; 0 freezes */
        double utc_offset_hours; /* local time of the load shapes */
        long long step_s;        /* knot spacing of the power model */
    } clock;
    long long seed;
    sim_meter_cfg meters[SIM_MAX_METER_CFG];
    size_t n_meters;
    /* derived */
    int start_now;    /* start is "now": the caller sets start_ms */
    int64_t start_ms; /* UTC */
} sim_scenario;

/* Parses a scenario into *out (large: allocate it). Checks beyond the
 * tables: ids and unit ids unique over all replicas, the keys of each fault
 * fit its kind, rollover and initial_kwh not both, no two ratio faults of a
 * meter at the same from_s, refuse names not repeated. Returns 0, or
 * DCEM_ECONFIG / DCEM_ENOMEM with "name:line: key: what" in err. */
int sim_scenario_parse(const char *name, const char *buf, size_t len, sim_scenario *out, char *err,
                       size_t errlen);

/* "host:port" (IPv4 dotted quad; port 0..65535, 0: any free port) into host
 * and port. Returns 0, or DCEM_EINVAL. */
int sim_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* The id of replica r (0-based) of entry c into buf: c->id when count is 1,
 * else "<id>-NN" (two digits or more). */
void sim_meter_cfg_id(const sim_meter_cfg *c, long long r, char *buf, size_t len);

/* The shape's default level and power factor. */
double sim_shape_default_level(int shape);
double sim_shape_default_pf(int shape);

#endif

/* site.h — the site ledger (台账): one data center, its meters with their
 * roles, and its green-power contracts and certificates, from
 * configs/sites/<site>.yaml. The keys are a contract other tools rely on;
 * docs/figures.md lists them. Pure: the caller supplies the file's bytes. */
#ifndef DCEM_SITE_H
#define DCEM_SITE_H

#include "calendar.h"
#include "sign.h"

#include <stddef.h>
#include <stdint.h>

#define DCEM_SITE_MAX_METERS 1024
#define DCEM_SITE_MAX_GREEN 1200
#define DCEM_ID_MAX 64
#define DCEM_SITE_MAX_GATEWAYS 256

typedef enum dcem_role {
    DCEM_ROLE_FACILITY = 0, /* utility incomer */
    DCEM_ROLE_IT,           /* UPS output / PDU / rack */
    DCEM_ROLE_GREEN_ONSITE, /* on-site renewable generation behind the incomer */
    DCEM_ROLE_COMPUTE,      /* AI / accelerator racks, a subset of IT */
    DCEM_ROLE_COOLING,
    DCEM_ROLE_OTHER,
    DCEM_ROLE_COUNT
} dcem_role;

typedef enum dcem_green_kind { DCEM_GREEN_CONTRACT = 0, DCEM_GREEN_CERTIFICATE } dcem_green_kind;

typedef struct dcem_meter {
    char id[DCEM_ID_MAX];
    int role;                      /* dcem_role */
    double rated_kw;               /* > 0: bounds plausible energy per hour */
    double counter_modulo_kwh;     /* NAN when the counter does not roll over */
    double counter_resolution_kwh; /* smallest step of the register (default 0.01) */
    double ct_ratio, pt_ratio;     /* instrument transformers (default 1): the inventory's
                                      record; readings carry the ratios in force, and the
                                      register's modulo and resolution scale with them */
    char model[96];
    char accuracy_class[16];
    char calibrated_on[11];        /* YYYY-MM-DD */
    int line;                      /* where it is declared, for messages */
} dcem_meter;

typedef struct dcem_green_entry {
    int month;       /* year * 12 + (month - 1) */
    double kwh;      /* NAN when given as certificates */
    double certificates;
    int kind;        /* dcem_green_kind */
    int line;
} dcem_green_entry;

/* A gateway allowed to send the site's readings, with the public keys its
 * batches and births must be signed with (docs/security.md). Two keys while
 * a key is rotated; none only for a lab collector with allow_unsigned. */
typedef struct dcem_gateway {
    char id[DCEM_ID_MAX];
    char key_text[DCEM_SIG_MAX_KEYS][DCEM_PUBKEY_TEXT_MAX];
    size_t n_keys;
    dcem_pubkey keys[DCEM_SIG_MAX_KEYS]; /* key_text decoded */
    int line;
} dcem_gateway;

typedef struct dcem_site {
    char site[DCEM_ID_MAX];
    char name[128];
    char timezone[64];
    long long racks;
    double rack_power_kw;
    double approved_annual_kwh;  /* NAN: no energy-review cap recorded */
    double baseline_annual_kwh;  /* NAN: no baseline for conversion */
    long long interval_minutes;  /* 1..60, divides 60; default 15 */
    dcem_meter meters[DCEM_SITE_MAX_METERS];
    size_t n_meters;
    unsigned short by_id[DCEM_SITE_MAX_METERS]; /* meter indexes in id order, for lookups */
    dcem_green_entry green[DCEM_SITE_MAX_GREEN];
    size_t n_green;
    dcem_gateway gateways[DCEM_SITE_MAX_GATEWAYS];
    size_t n_gateways; /* 0: the ledger names no gateway (only a lab collector accepts any) */
} dcem_site;

/* kWh per green certificate (绿证): 1 GEC = 1000 kWh (发改能源〔2023〕1044号). */
#define DCEM_KWH_PER_CERTIFICATE 1000.0

/* Parses a ledger into *out (caller storage, large: allocate it). Checks
 * cross-field rules too: unique meter ids, kwh xor certificates, interval
 * dividing 60. Returns 0, DCEM_ECONFIG with "file:line: key: what" in err. */
int dcem_site_parse(const char *name, const char *buf, size_t len, dcem_site *out, char *err,
                    size_t errlen);

/* Meter index by id, or -1. Linear; callers that look up per reading hash. */
int dcem_site_find_meter(const dcem_site *s, const char *id, size_t idlen);

/* The gateway of that id (idlen bytes, not terminated), or NULL. */
const dcem_gateway *dcem_site_find_gateway(const dcem_site *s, const char *id, size_t idlen);

/* Green kWh from the ledger for one month (year*12+month-1). */
double dcem_site_green_month_kwh(const dcem_site *s, int month);

/* Green kWh from the ledger for [t0, t1): each month's entries count in
 * proportion to the part of the local month inside the range, so whole
 * months count fully and a month to date counts pro rata. */
double dcem_site_green_kwh(const dcem_site *s, dcem_zone *z, int64_t t0_ms, int64_t t1_ms);

/* 1 when id[0..len) is a valid site, gateway, meter or model id: 1 to
 * DCEM_ID_MAX-1 letters, digits, '-', '_' or '.' — ids travel in MQTT topics,
 * CSV fields and file names. */
int dcem_id_valid(const char *id, size_t len);

/* A dcem_cfg_field check for a NUL-terminated id (see cfg.h). */
int dcem_cfg_check_id(const void *value, size_t count, char *why, size_t whylen);

/* Stable lower-case name of a role ("facility", "it", ...). */
const char *dcem_role_name(int role);

#endif

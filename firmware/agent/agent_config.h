/* agent_config.h — dcem-agent's configuration (agent.yaml): the gateway and
 * its site, the Modbus buses and their timing, the devices on them with
 * their profiles, MQTT, the spool and logging. Parsed into a fresh struct
 * and checked whole (cross-field rules included) before it replaces a
 * running one, so a bad reload changes nothing. */
#ifndef DCEM_AGENT_CONFIG_H
#define DCEM_AGENT_CONFIG_H

#include "mqtt_cfg.h"
#include "policy.h"
#include "profile.h"
#include "site.h"

#include <stddef.h>

#define DCEM_AGENT_MAX_BUSES 16
#define DCEM_AGENT_MAX_DEVICES 256
#define DCEM_PATH_MAX 512
#define DCEM_AGENT_MAX_READS 32 /* Modbus requests one device poll may take */

typedef enum { DCEM_BUS_TCP = 0, DCEM_BUS_RTU } dcem_bus_kind;

typedef struct dcem_bus_cfg {
    char name[DCEM_ID_MAX];
    int kind;                   /* derived: tcp or rtu */
    char tcp[128];              /* "host:port" */
    char host[100];             /* derived from tcp */
    int port;                   /* derived from tcp */
    char rtu[DCEM_PATH_MAX];    /* serial device */
    long long baud, data_bits, stop_bits;
    int parity;                 /* index into "N", "E", "O" */
    long long response_timeout_ms, pause_ms, connect_pause_ms;
    long long retries;          /* extra attempts per request before a poll fails */
    long long backoff_max_ms;   /* cap of a failing device's exponential backoff */
    int line;
} dcem_bus_cfg;

typedef struct dcem_device_cfg {
    char bus[DCEM_ID_MAX];
    long long unit;             /* Modbus unit id 1..247 (0..255 over TCP) */
    char profile[64];           /* model name: <profiles>/<profile>.yaml */
    char meter[DCEM_ID_MAX];    /* meter id from the site ledger */
    long long poll_ms;
    double ct_ratio, pt_ratio;  /* NAN: not configured (the meter's register, else 1) */
    long long ratio_every_s;    /* ratio registers read again this often */
    long long map_retry_s;      /* refused registers asked for again this often */
    int bus_index;              /* derived */
    int profile_index;          /* derived: into dcem_agent_config.profiles */
    int line;
} dcem_device_cfg;

typedef struct dcem_spool_cfg {
    char dir[DCEM_PATH_MAX];
    double max_mib;
    int fsync;                  /* 0 always, 1 interval, 2 never */
    long long fsync_interval_ms;
} dcem_spool_cfg;

typedef struct dcem_batch_cfg {
    long long max_readings;
    long long max_delay_ms;
} dcem_batch_cfg;

/* Who the agent is and whom it believes (docs/security.md). */
typedef struct dcem_identity_cfg {
    char key_file[DCEM_PATH_MAX]; /* the gateway's Ed25519 private key: signs batches, births */
    char collector_key_text[DCEM_SIG_MAX_KEYS][DCEM_PUBKEY_TEXT_MAX];
    size_t n_collector_keys;
    dcem_pubkey collector_keys[DCEM_SIG_MAX_KEYS]; /* decoded: acks and commands must verify */
    int allow_unsigned; /* lab only: run without key_file / collector_keys */
    int line;
} dcem_identity_cfg;

typedef struct dcem_agent_config {
    char file[DCEM_PATH_MAX];   /* where it was read from */
    char gateway[DCEM_ID_MAX];
    char site[DCEM_ID_MAX];
    char ledger[DCEM_PATH_MAX]; /* optional: site ledger, for local figures */
    char policy_file[DCEM_PATH_MAX]; /* with a ledger: the policy whose counter rules the
                                        local figures apply (default: the shipped one) */
    char profiles_dir[DCEM_PATH_MAX]; /* given, else found by dcem_io_profiles_dir */
    int log_level;
    dcem_bus_cfg buses[DCEM_AGENT_MAX_BUSES];
    size_t n_buses;
    dcem_device_cfg devices[DCEM_AGENT_MAX_DEVICES];
    size_t n_devices;
    dcem_mqtt_cfg mqtt;         /* the agent's keys: reconnect_max_ms, inflight */
    dcem_spool_cfg spool;
    dcem_batch_cfg batch;
    dcem_identity_cfg identity;
    /* loaded with the config: the profiles the devices use, and the ledger */
    dcem_profile *profiles;     /* n_profiles, owned */
    size_t n_profiles;
    dcem_site *site_ledger;     /* owned; NULL without a ledger */
    dcem_policy *policy;        /* owned; loaded with a ledger, else NULL */
    dcem_signer *signer;        /* owned; NULL without identity.key_file */
} dcem_agent_config;

/* Parses buf (the file's bytes; name for messages, and relative paths are
 * resolved against its directory), loads the profiles and the ledger it
 * names, and checks the cross-field rules: device buses exist, (bus, unit)
 * unique, meters unique and in the ledger when there is one, profiles load
 * (an unknown one: the error lists the profiles there), serial settings only
 * on RTU buses. Without 'profiles', the shipped folder is looked for
 * (dcem_io_profiles_dir). Does not look at serial devices: see
 * dcem_agent_config_check_device.
 * Returns a new config or NULL with "file:line: key: what" in err. */
dcem_agent_config *dcem_agent_config_parse(const char *name, const char *buf, size_t len,
                                           char *err, size_t errlen);

/* Reads and parses a file. */
dcem_agent_config *dcem_agent_config_load(const char *path, char *err, size_t errlen);

/* Checks that the serial device of RTU bus `bus` exists and is a character
 * device (a tty, or a pty a symlink names). Not part of loading: a USB
 * adapter unplugged at a SIGHUP must not make the config invalid and stop
 * the other buses, so the running agent logs this as a warning, while
 * --check-config and --once refuse. Returns 0 (also for a TCP bus), or
 * DCEM_ECONFIG with "file:line: buses.rtu: DEVICE: what" in err. */
int dcem_agent_config_check_device(const dcem_agent_config *c, size_t bus, char *err,
                                   size_t errlen);

/* dcem_agent_config_check_device for every bus; the first error. */
int dcem_agent_config_check_devices(const dcem_agent_config *c, char *err, size_t errlen);

void dcem_agent_config_free(dcem_agent_config *c);

#endif

/* store_sqlite.c — the embedded SQLite backend of the store: one file in
 * WAL mode with synchronous=FULL, so a commit that returned is on stable
 * storage before the collector acks; schema migrations at open; every
 * statement parameterised, prepared once on first use and reused. */
#include "store_backend.h"
#include "store_rollup.h"

#include "errors.h"

#include <sqlite3.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLICATION_ID 0x6463656d /* "dcem" in the file header: refuse other databases */
#define JOURNAL_SIZE_LIMIT (64 * 1024 * 1024) /* WAL file truncated to this after checkpoints */
#define CACHE_KIB (-16384)                    /* page cache: 16 MiB (negative: KiB) */

/* ---- schema ------------------------------------------------------------------------------- */

/* Ordered migrations: step N takes a store from version N-1 to N. Append new
 * steps, never edit a released one (stores in the field ran it). All pending
 * steps run in one transaction at open. docs/store.md describes each table. */
/* clang-format off: the SQL is laid out as SQL */
#define ID_CHECK(col) "length(" col ") BETWEEN 1 AND 63 AND " col " NOT GLOB '*[^A-Za-z0-9._-]*'"
#define MAX_INT "9007199254740991" /* 2^53 - 1, the wire format's integer range */
#define MAX_UKWH "1000000000000000" /* DCEM_STORE_MAX_UKWH */
#define MAX_STATE "1024"            /* DCEM_STORE_MAX_STATE */

static const struct migration {
    const char *name;
    const char *sql;
} migrations[] = {
    {"batches, readings, quarantine",
     "CREATE TABLE epochs (\n"
     " site TEXT NOT NULL, gateway TEXT NOT NULL,\n"
     " epoch INTEGER NOT NULL CHECK (epoch BETWEEN 1 AND " MAX_INT "),\n"
     " contiguous_seq INTEGER NOT NULL DEFAULT 0\n"
     "  CHECK (contiguous_seq BETWEEN 0 AND " MAX_INT "),\n"
     " max_seq INTEGER NOT NULL DEFAULT 0 CHECK (max_seq BETWEEN 0 AND " MAX_INT "),\n"
     " skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0),\n"
     " first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,\n"
     " PRIMARY KEY (site, gateway, epoch)\n"
     ") STRICT, WITHOUT ROWID;\n"

     "CREATE TABLE batches (\n"
     " site TEXT NOT NULL CHECK (" ID_CHECK(
         "site") "),\n"
                 " gateway TEXT NOT NULL CHECK (" ID_CHECK(
                     "gateway") "),\n"
                                " epoch INTEGER NOT NULL,\n"
                                " seq INTEGER NOT NULL CHECK (seq BETWEEN 1 AND " MAX_INT "),\n"
                                " received_ms INTEGER NOT NULL,\n"
                                " n_readings INTEGER NOT NULL CHECK (n_readings BETWEEN 0 AND "
                                "10000),\n"
                                " n_new INTEGER NOT NULL DEFAULT 0 CHECK (n_new BETWEEN 0 AND "
                                "n_readings),\n"
                                " quarantined INTEGER NOT NULL DEFAULT 0 CHECK (quarantined IN (0, "
                                "1)),\n"
                                " UNIQUE (site, gateway, epoch, seq),\n"
                                " FOREIGN KEY (site, gateway, epoch) REFERENCES epochs (site, "
                                "gateway, epoch)\n"
                                ") STRICT;\n"
                                "CREATE INDEX batches_received ON batches (received_ms);\n"

                                "CREATE TABLE readings (\n"
                                " site TEXT NOT NULL,\n"
                                " meter TEXT NOT NULL CHECK (" ID_CHECK(
                                    "meter") "),\n"
                                             " t_ms INTEGER NOT NULL CHECK (t_ms BETWEEN 0 AND "
                                             "253402300799999),\n"
                                             " kwh REAL CHECK (kwh BETWEEN -1e308 AND 1e308),\n"
                                             " kw REAL CHECK (kw BETWEEN -1e308 AND 1e308),\n"
                                             " quality INTEGER NOT NULL CHECK (quality BETWEEN 0 "
                                             "AND 3),\n"
                                             " gateway TEXT NOT NULL, epoch INTEGER NOT NULL, seq "
                                             "INTEGER NOT NULL,\n"
                                             " CHECK (quality <> 3 OR (kwh IS NULL AND kw IS "
                                             "NULL)),\n"
                                             " PRIMARY KEY (site, t_ms, meter)\n"
                                             ") STRICT, WITHOUT ROWID;\n"

                                             "CREATE TABLE quarantine (\n"
                                             " site TEXT NOT NULL, gateway TEXT NOT NULL, epoch "
                                             "INTEGER NOT NULL, seq INTEGER NOT NULL,\n"
                                             " received_ms INTEGER NOT NULL,\n"
                                             " reason TEXT NOT NULL CHECK (length(reason) <= "
                                             "1024),\n"
                                             " payload BLOB NOT NULL CHECK (length(payload) <= "
                                             "1048576),\n"
                                             " PRIMARY KEY (site, gateway, epoch, seq),\n"
                                             " FOREIGN KEY (site, gateway, epoch, seq) REFERENCES "
                                             "batches (site, gateway, epoch, seq)\n"
                                             "  ON DELETE CASCADE\n"
                                             ") STRICT;\n"},

    {"intervals, rollups, meter state, figures, alerts",
     "CREATE TABLE intervals (\n"
     " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (" ID_CHECK(
         "meter") "),\n"
                  " start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,\n"
                  " kwh REAL NOT NULL, estimated_kwh REAL NOT NULL, integrated_kwh REAL NOT NULL,\n"
                  " measured_ms INTEGER NOT NULL, covered_ms INTEGER NOT NULL, flags INTEGER NOT "
                  "NULL,\n"
                  " discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL, resets INTEGER NOT "
                  "NULL,\n"
                  " hour_ms INTEGER NOT NULL, day INTEGER NOT NULL, month INTEGER NOT NULL,\n"
                  " revisions INTEGER NOT NULL DEFAULT 0,\n"
                  " CHECK (end_ms > start_ms AND end_ms - start_ms <= 3600000),\n"
                  " CHECK (measured_ms >= 0 AND measured_ms <= covered_ms\n"
                  "  AND covered_ms <= end_ms - start_ms),\n"
                  " CHECK (abs(kwh) <= 1e9 AND abs(estimated_kwh) <= 1e9 AND abs(integrated_kwh) "
                  "<= 1e9),\n"
                  " CHECK (flags >= 0 AND discarded >= 0 AND rollovers >= 0 AND resets >= 0),\n"
                  " PRIMARY KEY (site, start_ms, meter)\n"
                  ") STRICT, WITHOUT ROWID;\n"

                  /* kind: 1 hour, 2 day, 3 month (dcem_period_kind); energies in micro-kWh */
                  "CREATE TABLE rollups (\n"
                  " site TEXT NOT NULL, kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),\n"
                  " key INTEGER NOT NULL, meter TEXT NOT NULL,\n"
                  " kwh_ukwh INTEGER NOT NULL, estimated_ukwh INTEGER NOT NULL,\n"
                  " integrated_ukwh INTEGER NOT NULL,\n"
                  " measured_ms INTEGER NOT NULL, covered_ms INTEGER NOT NULL,\n"
                  " intervals INTEGER NOT NULL, estimated_intervals INTEGER NOT NULL,\n"
                  " integrated_intervals INTEGER NOT NULL,\n"
                  " discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL, resets INTEGER NOT "
                  "NULL,\n"
                  " CHECK (intervals >= 0 AND estimated_intervals BETWEEN 0 AND intervals\n"
                  "  AND integrated_intervals BETWEEN 0 AND intervals AND measured_ms >= 0\n"
                  "  AND covered_ms >= measured_ms AND discarded >= 0 AND rollovers >= 0 AND "
                  "resets >= 0),\n"
                  " PRIMARY KEY (site, kind, key, meter)\n"
                  ") STRICT, WITHOUT ROWID;\n"

                  /* dcem_counter and dcem_splitter field by field; a NULL REAL is a NaN */
                  "CREATE TABLE meter_state (\n"
                  " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (" ID_CHECK(
                      "meter") "),\n"
                               " rated_kw REAL, modulo_kwh REAL, resolution_kwh REAL, margin "
                               "REAL,\n"
                               " gap_ms INTEGER NOT NULL, max_gap_ms INTEGER NOT NULL,\n"
                               " mode INTEGER NOT NULL, have_anchor INTEGER NOT NULL, have_pending "
                               "INTEGER NOT NULL,\n"
                               " have_late INTEGER NOT NULL,\n"
                               " anchor_t INTEGER NOT NULL, pending_t INTEGER NOT NULL, late_t "
                               "INTEGER NOT NULL,\n"
                               " last_t INTEGER NOT NULL,\n"
                               " anchor_v REAL, pending_v REAL, late_v REAL,\n"
                               " split_len_ms INTEGER NOT NULL CHECK (split_len_ms BETWEEN 60000 "
                               "AND 3600000),\n"
                               " split_open INTEGER NOT NULL CHECK (split_open IN (0, 1)),\n"
                               " cur_start_ms INTEGER NOT NULL, cur_end_ms INTEGER NOT NULL,\n"
                               " cur_kwh REAL, cur_estimated_kwh REAL, cur_integrated_kwh REAL,\n"
                               " cur_measured_ms INTEGER NOT NULL, cur_covered_ms INTEGER NOT "
                               "NULL,\n"
                               " cur_flags INTEGER NOT NULL,\n"
                               " updated_ms INTEGER NOT NULL,\n"
                               " PRIMARY KEY (site, meter)\n"
                               ") STRICT, WITHOUT ROWID;\n"

                               "CREATE TABLE figures (\n"
                               " site TEXT NOT NULL CHECK (" ID_CHECK(
                                   "site") "),\n"
                                           " kind INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 4),\n"
                                           " period_key INTEGER NOT NULL,\n"
                                           " json TEXT NOT NULL CHECK (json_valid(json)),\n"
                                           " computed_ms INTEGER NOT NULL,\n"
                                           " PRIMARY KEY (site, kind, period_key)\n"
                                           ") STRICT;\n"

                                           "CREATE TABLE alerts (\n"
                                           " id INTEGER PRIMARY KEY,\n"
                                           " site TEXT NOT NULL CHECK (" ID_CHECK(
                                               "site") "),\n"
                                                       " t_ms INTEGER NOT NULL,\n"
                                                       " kind TEXT NOT NULL CHECK (" ID_CHECK(
                                                           "kind") "),\n"
                                                                   " message TEXT NOT NULL CHECK "
                                                                   "(length(message) <= 1024),\n"
                                                                   " state TEXT NOT NULL CHECK "
                                                                   "(state IN ('raised', "
                                                                   "'cleared'))\n"
                                                                   ") STRICT;\n"
                                                                   "CREATE INDEX alerts_site_time "
                                                                   "ON alerts (site, t_ms);\n"
                                                                   "CREATE INDEX alerts_time ON "
                                                                   "alerts (t_ms);\n"},

    /* The id pattern (a GLOB per row) cost a third of each reading's and
     * interval's insert; store.c checks every id before it is written. */
    {"readings and intervals without the per-row id pattern check",
     "CREATE TABLE readings_v3 (\n"
     " site TEXT NOT NULL,\n"
     " meter TEXT NOT NULL CHECK (length(meter) BETWEEN 1 AND 63),\n"
     " t_ms INTEGER NOT NULL CHECK (t_ms BETWEEN 0 AND 253402300799999),\n"
     " kwh REAL CHECK (kwh BETWEEN -1e308 AND 1e308),\n"
     " kw REAL CHECK (kw BETWEEN -1e308 AND 1e308),\n"
     " quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 3),\n"
     " gateway TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,\n"
     " CHECK (quality <> 3 OR (kwh IS NULL AND kw IS NULL)),\n"
     " PRIMARY KEY (site, t_ms, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"
     "INSERT INTO readings_v3 SELECT site, meter, t_ms, kwh, kw, quality, gateway, epoch, seq\n"
     " FROM readings;\n"
     "DROP TABLE readings;\n"
     "ALTER TABLE readings_v3 RENAME TO readings;\n"

     "CREATE TABLE intervals_v3 (\n"
     " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (length(meter) BETWEEN 1 AND 63),\n"
     " start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,\n"
     " kwh REAL NOT NULL, estimated_kwh REAL NOT NULL, integrated_kwh REAL NOT NULL,\n"
     " measured_ms INTEGER NOT NULL, covered_ms INTEGER NOT NULL, flags INTEGER NOT NULL,\n"
     " discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL, resets INTEGER NOT NULL,\n"
     " hour_ms INTEGER NOT NULL, day INTEGER NOT NULL, month INTEGER NOT NULL,\n"
     " revisions INTEGER NOT NULL DEFAULT 0,\n"
     " CHECK (end_ms > start_ms AND end_ms - start_ms <= 3600000),\n"
     " CHECK (measured_ms >= 0 AND measured_ms <= covered_ms\n"
     "  AND covered_ms <= end_ms - start_ms),\n"
     " CHECK (abs(kwh) <= 1e9 AND abs(estimated_kwh) <= 1e9 AND abs(integrated_kwh) <= 1e9),\n"
     " CHECK (flags >= 0 AND discarded >= 0 AND rollovers >= 0 AND resets >= 0),\n"
     " PRIMARY KEY (site, start_ms, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"
     "INSERT INTO intervals_v3 SELECT site, meter, start_ms, end_ms, kwh, estimated_kwh,\n"
     " integrated_kwh, measured_ms, covered_ms, flags, discarded, rollovers, resets, hour_ms,\n"
     " day, month, revisions FROM intervals;\n"
     "DROP TABLE intervals;\n"
     "ALTER TABLE intervals_v3 RENAME TO intervals;\n"},

    /* events: 9 bytes each, the kind then the time in ms, big-endian */
    {"meter state: stale flag and pending counter events",
     "ALTER TABLE meter_state ADD COLUMN stale INTEGER NOT NULL DEFAULT 0\n"
     " CHECK (stale IN (0, 1));\n"
     "ALTER TABLE meter_state ADD COLUMN events BLOB NOT NULL DEFAULT x''\n"
     " CHECK (length(events) % 9 = 0 AND length(events) <= 144);\n"},

    /* the transformer ratio ct * pt a reading's values were scaled by: a
     * change of it is a counter event, so the export carries it */
    {"transformer ratios of readings and of a meter's counter",
     "ALTER TABLE readings ADD COLUMN ratio REAL NOT NULL DEFAULT 1\n"
     " CHECK (ratio > 0 AND ratio <= 1e10);\n"
     "ALTER TABLE meter_state ADD COLUMN ratio REAL NOT NULL DEFAULT 0\n"
     " CHECK (ratio >= 0 AND ratio <= 1e10);\n"
     "ALTER TABLE meter_state ADD COLUMN ratio_break INTEGER NOT NULL DEFAULT 0\n"
     " CHECK (ratio_break IN (0, 1));\n"},

    /* who sent each batch: the payload exactly as received, its signature
     * inside, and the public key that verified it (docs/security.md) */
    {"proofs: signed batches as received",
     "CREATE TABLE proofs (\n"
     " site TEXT NOT NULL, gateway TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,\n"
     " key TEXT NOT NULL CHECK (length(key) = 52),\n"
     " payload BLOB NOT NULL CHECK (length(payload) <= 1048576),\n"
     " PRIMARY KEY (site, gateway, epoch, seq),\n"
     " FOREIGN KEY (site, gateway, epoch, seq) REFERENCES batches (site, gateway, epoch, seq)\n"
     "  ON DELETE CASCADE\n"
     ") STRICT;\n"},

    /* One meter pipeline (common/meter.h): interval energy in whole
     * micro-kWh with estimated energy per span and the counter events
     * inside the interval, rollups as integer sums of those, the meter's
     * state as an opaque blob, checkpoints to replay late data from. The
     * old intervals (kWh as REAL), rollups and field-by-field meter state
     * cannot be converted: they are dropped, and the collector rebuilds
     * each meter without state from its stored readings (docs/store.md). */
    {"one meter pipeline: integer intervals and rollups, opaque meter state, checkpoints",
     "DROP TABLE intervals;\n"
     "DROP TABLE rollups;\n"
     "DROP TABLE meter_state;\n"

     "CREATE TABLE intervals (\n"
     " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (length(meter) BETWEEN 1 AND 63),\n"
     " start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,\n"
     " ukwh INTEGER NOT NULL,\n"
     " estimated_ukwh INTEGER NOT NULL, estimated_day_ukwh INTEGER NOT NULL,\n"
     " estimated_month_ukwh INTEGER NOT NULL, estimated_year_ukwh INTEGER NOT NULL,\n"
     " integrated_ukwh INTEGER NOT NULL, covered_ms INTEGER NOT NULL,\n"
     " readings INTEGER NOT NULL, discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL,\n"
     " resets INTEGER NOT NULL, flags INTEGER NOT NULL,\n"
     " hour_ms INTEGER NOT NULL, day INTEGER NOT NULL, month INTEGER NOT NULL,\n"
     " revisions INTEGER NOT NULL DEFAULT 0,\n"
     " CHECK (end_ms > start_ms AND end_ms - start_ms <= 3600000),\n"
     " CHECK (covered_ms BETWEEN 0 AND end_ms - start_ms),\n"
     " CHECK (ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_day_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_month_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_year_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND integrated_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "),\n"
     " CHECK (readings >= 0 AND discarded >= 0 AND rollovers >= 0 AND resets >= 0\n"
     "  AND flags >= 0),\n"
     " PRIMARY KEY (site, start_ms, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"

     /* kind: 1 hour, 2 day, 3 month (dcem_period_kind) */
     "CREATE TABLE rollups (\n"
     " site TEXT NOT NULL, kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),\n"
     " key INTEGER NOT NULL, meter TEXT NOT NULL,\n"
     " ukwh INTEGER NOT NULL,\n"
     " estimated_ukwh INTEGER NOT NULL, estimated_day_ukwh INTEGER NOT NULL,\n"
     " estimated_month_ukwh INTEGER NOT NULL, estimated_year_ukwh INTEGER NOT NULL,\n"
     " integrated_ukwh INTEGER NOT NULL, covered_ms INTEGER NOT NULL,\n"
     " intervals INTEGER NOT NULL, read_intervals INTEGER NOT NULL,\n"
     " estimated_intervals INTEGER NOT NULL, integrated_intervals INTEGER NOT NULL,\n"
     " discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL, resets INTEGER NOT NULL,\n"
     " CHECK (intervals >= 0 AND read_intervals BETWEEN 0 AND intervals\n"
     "  AND estimated_intervals BETWEEN 0 AND intervals\n"
     "  AND integrated_intervals BETWEEN 0 AND intervals AND covered_ms >= 0\n"
     "  AND discarded >= 0 AND rollovers >= 0 AND resets >= 0),\n"
     " PRIMARY KEY (site, kind, key, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"

     "CREATE TABLE meter_state (\n"
     " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (length(meter) BETWEEN 1 AND 63),\n"
     " state BLOB NOT NULL CHECK (length(state) <= " MAX_STATE "),\n"
     " stale INTEGER NOT NULL CHECK (stale IN (0, 1)),\n"
     " updated_ms INTEGER NOT NULL,\n"
     " PRIMARY KEY (site, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"

     "CREATE TABLE checkpoints (\n"
     " site TEXT NOT NULL, meter TEXT NOT NULL CHECK (length(meter) BETWEEN 1 AND 63),\n"
     " t_ms INTEGER NOT NULL,\n"
     " state BLOB NOT NULL CHECK (length(state) <= " MAX_STATE "),\n"
     " PRIMARY KEY (site, meter, t_ms)\n"
     ") STRICT, WITHOUT ROWID;\n"},

    /* what an alert is about (a meter, a gateway, a year; '' for the site),
     * and the state of each (site, kind, subject) last recorded: several
     * collectors on one store record each change once */
    {"alert subjects and alert states",
     "ALTER TABLE alerts ADD COLUMN subject TEXT NOT NULL DEFAULT ''\n"
     " CHECK (subject = '' OR (" ID_CHECK("subject") "));\n"
     "CREATE TABLE alert_state (\n"
     " site TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,\n"
     " state INTEGER NOT NULL CHECK (state IN (0, 1)),\n"
     " t_ms INTEGER NOT NULL,\n"
     " PRIMARY KEY (site, kind, subject)\n"
     ") STRICT, WITHOUT ROWID;\n"},

    /* A cheaper row: the hot tables key their rows by integer ids of the
     * site and the meter, from one dictionary (names), instead of their
     * text: a B-tree compare of two small integers, not of two strings,
     * and shorter rows and index pages. Existing rows are converted as
     * they are; ids follow the names' order at the conversion, then the
     * order names first come in (reads join names and order by it). */
    {"integer site and meter ids in readings, intervals and rollups",
     "CREATE TABLE names (\n"
     " id INTEGER PRIMARY KEY,\n"
     " name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63)\n"
     ") STRICT;\n"
     "INSERT INTO names (name)\n"
     " SELECT site FROM readings UNION SELECT meter FROM readings\n"
     " UNION SELECT site FROM intervals UNION SELECT meter FROM intervals\n"
     " UNION SELECT site FROM rollups UNION SELECT meter FROM rollups ORDER BY 1;\n"

     "CREATE TABLE readings_v9 (\n"
     " site INTEGER NOT NULL, meter INTEGER NOT NULL,\n"
     " t_ms INTEGER NOT NULL CHECK (t_ms BETWEEN 0 AND 253402300799999),\n"
     " kwh REAL CHECK (kwh BETWEEN -1e308 AND 1e308),\n"
     " kw REAL CHECK (kw BETWEEN -1e308 AND 1e308),\n"
     " quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 3),\n"
     " gateway TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,\n"
     " ratio REAL NOT NULL DEFAULT 1 CHECK (ratio > 0 AND ratio <= 1e10),\n"
     " CHECK (quality <> 3 OR (kwh IS NULL AND kw IS NULL)),\n"
     " PRIMARY KEY (site, t_ms, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"
     "INSERT INTO readings_v9 SELECT s.id, m.id, r.t_ms, r.kwh, r.kw, r.quality, r.gateway,\n"
     " r.epoch, r.seq, r.ratio\n"
     " FROM readings r JOIN names s ON s.name = r.site JOIN names m ON m.name = r.meter;\n"
     "DROP TABLE readings;\n"
     "ALTER TABLE readings_v9 RENAME TO readings;\n"

     "CREATE TABLE intervals_v9 (\n"
     " site INTEGER NOT NULL, meter INTEGER NOT NULL,\n"
     " start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,\n"
     " ukwh INTEGER NOT NULL,\n"
     " estimated_ukwh INTEGER NOT NULL, estimated_day_ukwh INTEGER NOT NULL,\n"
     " estimated_month_ukwh INTEGER NOT NULL, estimated_year_ukwh INTEGER NOT NULL,\n"
     " integrated_ukwh INTEGER NOT NULL, covered_ms INTEGER NOT NULL,\n"
     " readings INTEGER NOT NULL, discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL,\n"
     " resets INTEGER NOT NULL, flags INTEGER NOT NULL,\n"
     " hour_ms INTEGER NOT NULL, day INTEGER NOT NULL, month INTEGER NOT NULL,\n"
     " revisions INTEGER NOT NULL DEFAULT 0,\n"
     " CHECK (end_ms > start_ms AND end_ms - start_ms <= 3600000),\n"
     " CHECK (covered_ms BETWEEN 0 AND end_ms - start_ms),\n"
     " CHECK (ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_day_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_month_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND estimated_year_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "\n"
     "  AND integrated_ukwh BETWEEN -" MAX_UKWH " AND " MAX_UKWH "),\n"
     " CHECK (readings >= 0 AND discarded >= 0 AND rollovers >= 0 AND resets >= 0\n"
     "  AND flags >= 0),\n"
     " PRIMARY KEY (site, start_ms, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"
     "INSERT INTO intervals_v9 SELECT s.id, m.id, i.start_ms, i.end_ms, i.ukwh,\n"
     " i.estimated_ukwh, i.estimated_day_ukwh, i.estimated_month_ukwh, i.estimated_year_ukwh,\n"
     " i.integrated_ukwh, i.covered_ms, i.readings, i.discarded, i.rollovers, i.resets, i.flags,\n"
     " i.hour_ms, i.day, i.month, i.revisions\n"
     " FROM intervals i JOIN names s ON s.name = i.site JOIN names m ON m.name = i.meter;\n"
     "DROP TABLE intervals;\n"
     "ALTER TABLE intervals_v9 RENAME TO intervals;\n"

     "CREATE TABLE rollups_v9 (\n"
     " site INTEGER NOT NULL, kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),\n"
     " key INTEGER NOT NULL, meter INTEGER NOT NULL,\n"
     " ukwh INTEGER NOT NULL,\n"
     " estimated_ukwh INTEGER NOT NULL, estimated_day_ukwh INTEGER NOT NULL,\n"
     " estimated_month_ukwh INTEGER NOT NULL, estimated_year_ukwh INTEGER NOT NULL,\n"
     " integrated_ukwh INTEGER NOT NULL, covered_ms INTEGER NOT NULL,\n"
     " intervals INTEGER NOT NULL, read_intervals INTEGER NOT NULL,\n"
     " estimated_intervals INTEGER NOT NULL, integrated_intervals INTEGER NOT NULL,\n"
     " discarded INTEGER NOT NULL, rollovers INTEGER NOT NULL, resets INTEGER NOT NULL,\n"
     " CHECK (intervals >= 0 AND read_intervals BETWEEN 0 AND intervals\n"
     "  AND estimated_intervals BETWEEN 0 AND intervals\n"
     "  AND integrated_intervals BETWEEN 0 AND intervals AND covered_ms >= 0\n"
     "  AND discarded >= 0 AND rollovers >= 0 AND resets >= 0),\n"
     " PRIMARY KEY (site, kind, key, meter)\n"
     ") STRICT, WITHOUT ROWID;\n"
     "INSERT INTO rollups_v9 SELECT s.id, r.kind, r.key, m.id, r.ukwh, r.estimated_ukwh,\n"
     " r.estimated_day_ukwh, r.estimated_month_ukwh, r.estimated_year_ukwh, r.integrated_ukwh,\n"
     " r.covered_ms, r.intervals, r.read_intervals, r.estimated_intervals,\n"
     " r.integrated_intervals, r.discarded, r.rollovers, r.resets\n"
     " FROM rollups r JOIN names s ON s.name = r.site JOIN names m ON m.name = r.meter;\n"
     "DROP TABLE rollups;\n"
     "ALTER TABLE rollups_v9 RENAME TO rollups;\n"},
};
/* clang-format on */
#define SCHEMA_LATEST ((int)(sizeof migrations / sizeof migrations[0]))
#define SCHEMA_RATIO 5 /* readings.ratio, meter_state.ratio */
#define SCHEMA_PROOFS 6 /* proofs */
#define SCHEMA_METER 7  /* integer intervals and rollups, opaque meter state, checkpoints */
#define SCHEMA_ALERT_STATE 8 /* alerts.subject, alert_state */
#define SCHEMA_IDS 9    /* integer site and meter ids in readings, intervals and rollups */

/* ---- statements --------------------------------------------------------------------------- */

enum {
    S_BEGIN,
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_EPOCH_ENSURE,
    S_EPOCH_GET,
    S_EPOCH_SET,
    S_EPOCHS,
    S_BATCH_INSERT,
    S_BATCH_NREAD,
    S_BATCH_EXISTS,
    S_BATCH_COUNT,
    S_BATCH_SET_NEW,
    S_READING_INSERT,
    S_READING_INSERT_V4,
    S_QUARANTINE_INSERT,
    S_PROOF_INSERT,
    S_PROOF_GET,
    S_PROOFS,
    S_EXPORT_SITE,
    S_EXPORT_METER,
    S_PRUNE_SITES,
    S_PRUNE_READINGS,
    S_PRUNE_BATCHES,
    S_IV_GET,
    S_IV_INSERT,
    S_IV_UPSERT,
    S_IV_RANGE,
    S_IV_DELETE_SUMS,
    S_IV_DELETE,
    S_ROLLUP_UPDATE,
    S_ROLLUP_INSERT,
    S_ROLLUP_UPSERT,
    S_ROLLUP_DROP_EMPTY,
    S_ROLLUP_GET,
    S_ROLLUP_RANGE,
    S_STATE_PUT,
    S_STATE_GET,
    S_CKPT_PUT,
    S_CKPT_GET,
    S_CKPT_DROP,
    S_FIG_PUT,
    S_FIG_GET,
    S_FIG_RANGE,
    S_ALERT_ADD,
    S_ALERT_ADD_V1,
    S_ALERT_CHANGE,
    S_ALERTS_SITE,
    S_ALERTS_ALL,
    S_LAST_READING,
    S_LATEST_READINGS,
    S_ALERTS_PAGE,
    S_NAME_GET,
    S_NAME_ADD,
    S_COUNT
};

/* clang-format off */
#define IV_COLS                                                                                  \
    "end_ms, ukwh, estimated_ukwh, estimated_day_ukwh, estimated_month_ukwh, "                   \
    "estimated_year_ukwh, integrated_ukwh, covered_ms, readings, discarded, rollovers, resets, "  \
    "flags, hour_ms, day, month"
/* 14 sums, in the order of dcem_contrib.v (store_rollup.h) */
#define ROLLUP_COLS                                                                              \
    "ukwh, estimated_ukwh, estimated_day_ukwh, estimated_month_ukwh, estimated_year_ukwh, "      \
    "integrated_ukwh, covered_ms, intervals, read_intervals, estimated_intervals, "              \
    "integrated_intervals, discarded, rollovers, resets"
#define ROLLUP_ADD                                                                               \
    " ukwh = ukwh + ?5, estimated_ukwh = estimated_ukwh + ?6,"                                   \
    " estimated_day_ukwh = estimated_day_ukwh + ?7,"                                             \
    " estimated_month_ukwh = estimated_month_ukwh + ?8,"                                         \
    " estimated_year_ukwh = estimated_year_ukwh + ?9, integrated_ukwh = integrated_ukwh + ?10,"  \
    " covered_ms = covered_ms + ?11, intervals = intervals + ?12,"                               \
    " read_intervals = read_intervals + ?13, estimated_intervals = estimated_intervals + ?14,"    \
    " integrated_intervals = integrated_intervals + ?15, discarded = discarded + ?16,"           \
    " rollovers = rollovers + ?17, resets = resets + ?18"
#define ROLLUP_VALUES " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15," \
                      " ?16, ?17, ?18)"
#define IV_VALUES " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"    \
                  " ?16, ?17, ?18, ?19)"
#define EPOCH_COLS "site, gateway, epoch, contiguous_seq, max_seq, skipped, first_ms, last_ms"
/* reads of the hot tables name the meter from the dictionary (schema 9) */
#define READING_COLS "m.name, t_ms, kwh, kw, quality, gateway, epoch, seq, ratio"
#define READING_COLS_MAX "m.name, max(t_ms), kwh, kw, quality, gateway, epoch, seq, ratio"
#define JOIN_METER(t) " JOIN names m ON m.id = " t ".meter"

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN DEFERRED", /* the snapshot is taken at its first read */
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT dcem_op",
    [S_RELEASE] = "RELEASE dcem_op",
    [S_ROLLBACK_TO] = "ROLLBACK TO dcem_op",

    [S_EPOCH_ENSURE] = "INSERT INTO epochs (site, gateway, epoch, first_ms, last_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
    [S_EPOCH_GET] = "SELECT " EPOCH_COLS " FROM epochs"
                    " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3",
    [S_EPOCH_SET] = "UPDATE epochs SET contiguous_seq = ?4, max_seq = max(max_seq, ?5),"
                    " skipped = skipped + ?6, last_ms = max(last_ms, ?7)"
                    " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3",
    [S_EPOCHS] = "SELECT " EPOCH_COLS " FROM epochs ORDER BY site, gateway, epoch",

    [S_BATCH_INSERT] = "INSERT INTO batches (site, gateway, epoch, seq, received_ms, n_readings,"
                       " quarantined) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                       " ON CONFLICT (site, gateway, epoch, seq) DO NOTHING",
    [S_BATCH_NREAD] = "SELECT n_readings FROM batches"
                      " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3 AND seq = ?4",
    [S_BATCH_EXISTS] = "SELECT 1 FROM batches"
                       " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3 AND seq = ?4",
    [S_BATCH_COUNT] = "SELECT count(*) FROM batches"
                      " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3 AND seq > ?4 AND seq <= ?5",
    [S_BATCH_SET_NEW] = "UPDATE batches SET n_new = ?5"
                        " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3 AND seq = ?4",
    /* ON CONFLICT names the key, unlike INSERT OR IGNORE, which would also
     * silently skip rows that break a CHECK */
    [S_READING_INSERT] = "INSERT INTO readings"
                         " (site, meter, t_ms, kwh, kw, quality, gateway, epoch, seq, ratio)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                         " ON CONFLICT (site, t_ms, meter) DO NOTHING",
    /* a store held at a schema before the ratio column (tests build old
     * stores so): the readings without it, which then must be at ratio 1 */
    [S_READING_INSERT_V4] = "INSERT INTO readings"
                            " (site, meter, t_ms, kwh, kw, quality, gateway, epoch, seq)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                            " ON CONFLICT (site, t_ms, meter) DO NOTHING",
    [S_QUARANTINE_INSERT] = "INSERT INTO quarantine"
                            " (site, gateway, epoch, seq, received_ms, reason, payload)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",

    [S_PROOF_INSERT] = "INSERT INTO proofs (site, gateway, epoch, seq, key, payload)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                       " ON CONFLICT (site, gateway, epoch, seq) DO NOTHING",
    [S_PROOF_GET] = "SELECT key, payload FROM proofs"
                    " WHERE site = ?1 AND gateway = ?2 AND epoch = ?3 AND seq = ?4",
    [S_PROOFS] = "SELECT gateway, epoch, seq, key, payload FROM proofs WHERE site = ?1"
                 " ORDER BY gateway, epoch, seq",

    [S_EXPORT_SITE] = "SELECT " READING_COLS " FROM readings r" JOIN_METER("r")
                      " WHERE r.site = ?1 AND t_ms >= ?2 AND t_ms < ?3 ORDER BY t_ms, m.name",
    [S_EXPORT_METER] = "SELECT " READING_COLS " FROM readings r" JOIN_METER("r")
                       " WHERE r.site = ?1 AND t_ms >= ?2 AND t_ms < ?3 AND r.meter = ?4"
                       " ORDER BY t_ms",

    [S_PRUNE_SITES] = "SELECT DISTINCT site FROM epochs",
    [S_PRUNE_READINGS] = "DELETE FROM readings WHERE site = ?1 AND (t_ms, meter) IN"
                         " (SELECT t_ms, meter FROM readings WHERE site = ?1 AND t_ms < ?2"
                         "  ORDER BY t_ms LIMIT ?3)",
    [S_PRUNE_BATCHES] = "DELETE FROM batches WHERE rowid IN"
                        " (SELECT b.rowid FROM batches b JOIN epochs e"
                        "  ON e.site = b.site AND e.gateway = b.gateway AND e.epoch = b.epoch"
                        "  WHERE b.received_ms < ?1 AND b.seq <= e.contiguous_seq"
                        "  ORDER BY b.received_ms LIMIT ?2)",

    [S_IV_GET] = "SELECT " IV_COLS " FROM intervals"
                 " WHERE site = ?1 AND start_ms = ?2 AND meter = ?3",
    [S_IV_INSERT] = "INSERT INTO intervals (site, start_ms, meter, " IV_COLS ")" IV_VALUES
                    " ON CONFLICT (site, start_ms, meter) DO NOTHING",
    [S_IV_UPSERT] = "INSERT INTO intervals (site, start_ms, meter, " IV_COLS ")" IV_VALUES
                    " ON CONFLICT (site, start_ms, meter) DO UPDATE SET"
                    " end_ms = excluded.end_ms, ukwh = excluded.ukwh,"
                    " estimated_ukwh = excluded.estimated_ukwh,"
                    " estimated_day_ukwh = excluded.estimated_day_ukwh,"
                    " estimated_month_ukwh = excluded.estimated_month_ukwh,"
                    " estimated_year_ukwh = excluded.estimated_year_ukwh,"
                    " integrated_ukwh = excluded.integrated_ukwh,"
                    " covered_ms = excluded.covered_ms, readings = excluded.readings,"
                    " discarded = excluded.discarded, rollovers = excluded.rollovers,"
                    " resets = excluded.resets, flags = excluded.flags,"
                    " hour_ms = excluded.hour_ms, day = excluded.day, month = excluded.month,"
                    " revisions = revisions + 1",
    [S_IV_RANGE] = "SELECT m.name, start_ms, " IV_COLS " FROM intervals i" JOIN_METER("i")
                   " WHERE i.site = ?1 AND start_ms >= ?2 AND start_ms < ?3"
                   " ORDER BY start_ms, m.name",
    /* what the intervals to delete add to each rollup of kind ?4, in
     * ROLLUP_COLS order; ?5, ?6: the estimated and integrated flag masks */
    [S_IV_DELETE_SUMS] = "SELECT CASE ?4 WHEN 1 THEN hour_ms WHEN 2 THEN day ELSE month END AS k,"
                         " sum(ukwh), sum(estimated_ukwh), sum(estimated_day_ukwh),"
                         " sum(estimated_month_ukwh), sum(estimated_year_ukwh),"
                         " sum(integrated_ukwh), sum(covered_ms), count(*), sum(readings > 0),"
                         " sum((flags & ?5) <> 0), sum((flags & ?6) <> 0), sum(discarded),"
                         " sum(rollovers), sum(resets)"
                         " FROM intervals WHERE site = ?1 AND start_ms >= ?3 AND meter = ?2"
                         " GROUP BY k ORDER BY k",
    [S_IV_DELETE] = "DELETE FROM intervals WHERE site = ?1 AND start_ms >= ?3 AND meter = ?2",
    /* see rollup_apply */
    [S_ROLLUP_UPDATE] = "UPDATE rollups SET" ROLLUP_ADD
                        " WHERE site = ?1 AND kind = ?2 AND key = ?3 AND meter = ?4",
    [S_ROLLUP_INSERT] = "INSERT INTO rollups (site, kind, key, meter, " ROLLUP_COLS ")"
                        ROLLUP_VALUES,
    [S_ROLLUP_UPSERT] = "INSERT INTO rollups (site, kind, key, meter, " ROLLUP_COLS ")"
                        ROLLUP_VALUES " ON CONFLICT (site, kind, key, meter) DO UPDATE SET"
                        ROLLUP_ADD,
    [S_ROLLUP_DROP_EMPTY] = "DELETE FROM rollups WHERE site = ?1 AND kind = ?2 AND key = ?3"
                            " AND meter = ?4 AND intervals = 0",
    [S_ROLLUP_GET] = "SELECT m.name, kind, key, " ROLLUP_COLS " FROM rollups r" JOIN_METER("r")
                     " WHERE r.site = ?1 AND kind = ?2 AND key = ?3 AND r.meter = ?4",
    [S_ROLLUP_RANGE] = "SELECT m.name, kind, key, " ROLLUP_COLS " FROM rollups r"
                       JOIN_METER("r") " WHERE r.site = ?1 AND kind = ?2 AND key >= ?3"
                       " AND key < ?4 ORDER BY key, m.name",

    [S_STATE_PUT] = "INSERT OR REPLACE INTO meter_state (site, meter, state, stale, updated_ms)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_STATE_GET] = "SELECT state, stale, updated_ms FROM meter_state"
                    " WHERE site = ?1 AND meter = ?2",
    [S_CKPT_PUT] = "INSERT OR REPLACE INTO checkpoints (site, meter, t_ms, state)"
                   " VALUES (?1, ?2, ?3, ?4)",
    [S_CKPT_GET] = "SELECT t_ms, state FROM checkpoints"
                   " WHERE site = ?1 AND meter = ?2 AND t_ms < ?3 ORDER BY t_ms DESC LIMIT 1",
    [S_CKPT_DROP] = "DELETE FROM checkpoints WHERE site = ?1 AND meter = ?2 AND t_ms >= ?3",

    [S_FIG_PUT] = "INSERT OR REPLACE INTO figures (site, kind, period_key, json, computed_ms)"
                  " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_FIG_GET] = "SELECT json, computed_ms FROM figures"
                  " WHERE site = ?1 AND kind = ?2 AND period_key = ?3",
    [S_FIG_RANGE] = "SELECT period_key, json, computed_ms FROM figures"
                    " WHERE site = ?1 AND kind = ?2"
                    " AND period_key >= ?3 AND period_key < ?4 ORDER BY period_key",

    [S_ALERT_ADD] = "INSERT INTO alerts (site, t_ms, kind, message, state, subject)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ALERT_ADD_V1] = "INSERT INTO alerts (site, t_ms, kind, message, state)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)", /* before alert subjects */
    /* a row back when the state was recorded: new, or another than before */
    [S_ALERT_CHANGE] = "INSERT INTO alert_state (site, kind, subject, state, t_ms)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)"
                       " ON CONFLICT (site, kind, subject) DO UPDATE"
                       " SET state = excluded.state, t_ms = excluded.t_ms"
                       " WHERE alert_state.state <> excluded.state RETURNING 1",
    [S_ALERTS_SITE] = "SELECT id, site, t_ms, kind, message, state, subject FROM alerts"
                      " WHERE site = ?1 AND t_ms >= ?2 AND t_ms < ?3 ORDER BY t_ms, id",
    [S_ALERTS_ALL] = "SELECT id, site, t_ms, kind, message, state, subject FROM alerts"
                     " WHERE t_ms >= ?2 AND t_ms < ?3 ORDER BY t_ms, id",

    /* the API's reads */
    [S_LAST_READING] = "SELECT max(t_ms) FROM readings WHERE site = ?1",
    /* a bare column beside a single max() comes from the row holding the
     * max (SQLite's documented rule), so each meter's columns are those of
     * its latest reading in the range */
    [S_LATEST_READINGS] = "SELECT " READING_COLS_MAX " FROM readings r" JOIN_METER("r")
                          " WHERE r.site = ?1 AND t_ms >= ?2 AND t_ms < ?3"
                          " AND (kwh IS NOT NULL OR kw IS NOT NULL)"
                          " GROUP BY r.meter ORDER BY m.name",
    [S_ALERTS_PAGE] = "SELECT id, site, t_ms, kind, message, state, subject FROM alerts"
                      " WHERE site = ?1 AND t_ms >= ?2 AND t_ms < ?3"
                      " AND (t_ms < ?4 OR (t_ms = ?4 AND id < ?5))"
                      " ORDER BY t_ms DESC, id DESC LIMIT ?6",

    [S_NAME_GET] = "SELECT id FROM names WHERE name = ?1",
    [S_NAME_ADD] = "INSERT INTO names (name) VALUES (?1)",
};

/* clang-format on */

/* A name of the dictionary and its id (schema 9). */
typedef struct id_entry {
    char *name; /* NULL: a free slot */
    int64_t id;
    uint32_t hash;
} id_entry;

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT]; /* prepared on first use, finalized at close */
    int aborted;                 /* SQLite rolled the explicit transaction back after a failure */
    /* The dictionary's names met so far: open addressing, at most half
     * full. An id never changes once committed (names are never deleted),
     * but one added by a transaction that is then rolled back is gone: every
     * rollback empties the cache (ids_forget). */
    id_entry *ids;
    size_t ids_cap, ids_n;
} sq;

static sq *conn(dcem_store *st)
{
    return st->impl;
}

/* Maps an SQLite result code to a dcem error. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return DCEM_ENOMEM;
    case SQLITE_FULL:
        return DCEM_EFULL;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return DCEM_EINVAL;
    default:
        return DCEM_ESTORAGE;
    }
}

/* Records the failure of `what` (with SQLite's own message, read now: a
 * rollback would replace it) and returns the dcem code. */
static int fail(dcem_store *st, const char *what, int rc)
{
    sq *c = conn(st);
    const char *msg = c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
    dcem_store_set_error(st, "%s: %s (sqlite %d)", what, msg, rc);
    return map_rc(rc);
}

static sqlite3_stmt *stmt(dcem_store *st, int id)
{
    sq *c = conn(st);
    if (!c->stmt[id]) {
        int rc = sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            fail(st, "prepare", rc);
            c->stmt[id] = NULL;
            return NULL;
        }
    }
    return c->stmt[id];
}

/* Resets a statement after use and drops its bindings, so no pointer into
 * the caller's memory outlives the call. */
static void done(sqlite3_stmt *s)
{
    if (!s) return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Steps s once: 1 for a row, 0 when done, < 0 (a dcem error) on failure. */
static int step(dcem_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return fail(st, what, rc);
}

/* Runs a statement that returns no rows. */
static int run(dcem_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = step(st, s, what);
    done(s);
    return rc > 0 ? 0 : rc;
}

static int run_id(dcem_store *st, int id, const char *what)
{
    sqlite3_stmt *s = stmt(st, id);
    if (!s) return DCEM_ESTORAGE;
    return run(st, s, what);
}

/* Binders: text is bound SQLITE_STATIC, valid until done() clears it. */
static void b_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static void b_i64(sqlite3_stmt *s, int i, int64_t v)
{
    sqlite3_bind_int64(s, i, v);
}

static void b_u64(sqlite3_stmt *s, int i, uint64_t v) /* v <= 2^53 - 1, checked by store.c */
{
    sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

static int64_t c_i64(sqlite3_stmt *s, int i)
{
    return sqlite3_column_int64(s, i);
}

static uint64_t c_u64(sqlite3_stmt *s, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(s, i);
    return v < 0 ? 0 : (uint64_t)v;
}

static int c_int(sqlite3_stmt *s, int i)
{
    return sqlite3_column_int(s, i);
}

static const char *c_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

static void copy_id(char dst[DCEM_ID_MAX], const char *src)
{
    size_t n = strnlen(src, DCEM_ID_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- the dictionary of site and meter ids (schema 9) ------------------------------------------
 */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void ids_forget(sq *c)
{
    for (size_t i = 0; i < c->ids_cap; i++)
        free(c->ids[i].name);
    free(c->ids);
    c->ids = NULL;
    c->ids_cap = c->ids_n = 0;
}

static id_entry *ids_slot(id_entry *t, size_t cap, const char *name, uint32_t h)
{
    size_t i = h & (cap - 1);
    while (t[i].name && (t[i].hash != h || strcmp(t[i].name, name) != 0))
        i = (i + 1) & (cap - 1);
    return &t[i];
}

/* Remembers name -> id; a cache that cannot grow just stays as it is. */
static void ids_put(sq *c, const char *name, uint32_t h, int64_t id)
{
    if (2 * (c->ids_n + 1) > c->ids_cap) {
        size_t cap = c->ids_cap ? 2 * c->ids_cap : 256;
        id_entry *t = calloc(cap, sizeof *t);
        if (!t) return;
        for (size_t i = 0; i < c->ids_cap; i++)
            if (c->ids[i].name) *ids_slot(t, cap, c->ids[i].name, c->ids[i].hash) = c->ids[i];
        free(c->ids);
        c->ids = t;
        c->ids_cap = cap;
    }
    id_entry *e = ids_slot(c->ids, c->ids_cap, name, h);
    if (e->name || !(e->name = strdup(name))) return;
    e->id = id;
    e->hash = h;
    c->ids_n++;
}

/* The id of a site or meter name: 1 with *id; 0 when the dictionary has
 * none and create is 0 (then no row can name it); < 0 a dcem error. With
 * create, a new name is added inside the caller's transaction. */
static int name_id(dcem_store *st, const char *name, int create, int64_t *id)
{
    sq *c = conn(st);
    uint32_t h = name_hash(name);
    if (c->ids_cap) {
        const id_entry *e = ids_slot(c->ids, c->ids_cap, name, h);
        if (e->name) {
            *id = e->id;
            return 1;
        }
    }
    sqlite3_stmt *s = stmt(st, S_NAME_GET);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, name);
    int rc = step(st, s, "names");
    if (rc == 1) *id = c_i64(s, 0);
    done(s);
    if (rc == 0 && create) {
        if (!(s = stmt(st, S_NAME_ADD))) return DCEM_ESTORAGE;
        b_text(s, 1, name);
        if ((rc = run(st, s, "names: add")) < 0) return rc;
        *id = sqlite3_last_insert_rowid(c->db);
        rc = 1;
    }
    if (rc == 1) ids_put(c, name, h, *id);
    return rc;
}

/* Binds a site or meter of a hot table: its text before schema 9, its id
 * from then on. Returns 1, 0 when the name has no id (create 0), or < 0. */
static int b_name(dcem_store *st, sqlite3_stmt *s, int i, const char *name, int create)
{
    if (st->schema_version < SCHEMA_IDS) {
        b_text(s, i, name);
        return 1;
    }
    int64_t id = 0;
    int rc = name_id(st, name, create, &id);
    if (rc == 1) b_i64(s, i, id);
    return rc;
}

/* The reads that name meters from the dictionary came with schema 9; a
 * store held at an older schema (tests, tools) is only written. */
static int need_ids_schema(dcem_store *st, const char *what)
{
    if (st->schema_version >= SCHEMA_IDS) return 0;
    dcem_store_set_error(st, "%s: the store is at schema %d, before integer ids (%d)", what,
                         st->schema_version, SCHEMA_IDS);
    return DCEM_ESTORAGE;
}

/* ---- transactions ------------------------------------------------------------------------- */

/* Every write call runs between op_begin and op_end: its own IMMEDIATE
 * transaction (the write lock taken up front, so it can never fail half-way
 * for a lock) or, inside an explicit transaction, a savepoint (cheap here;
 * store.c dooms a transaction in which a call failed all the same). */
static int op_begin_check(dcem_store *st)
{
    if (st->in_tx && conn(st)->aborted) {
        dcem_store_set_error(st, "the transaction was rolled back by an earlier failure");
        return DCEM_ESTORAGE;
    }
    return 0;
}

static int op_begin(dcem_store *st)
{
    int rc = op_begin_check(st);
    return rc ? rc : run_id(st, st->in_tx ? S_SAVEPOINT : S_BEGIN, "begin");
}

static int op_end(dcem_store *st, int rc)
{
    sq *c = conn(st);
    if (rc == 0) {
        int r = run_id(st, st->in_tx ? S_RELEASE : S_COMMIT, "commit");
        if (r == 0) return 0;
        rc = r;
    }
    ids_forget(c); /* a name added by what is undone is undone too */
    /* Some failures (I/O, disk full) make SQLite roll back the whole
     * transaction itself: then there is nothing left to undo here. */
    if (sqlite3_get_autocommit(c->db)) {
        if (st->in_tx) c->aborted = 1;
        return rc;
    }
    if (st->in_tx) {
        sqlite3_stmt *s = stmt(st, S_ROLLBACK_TO);
        if (s) sqlite3_step(s), sqlite3_reset(s);
        s = stmt(st, S_RELEASE);
        if (s) sqlite3_step(s), sqlite3_reset(s);
    } else {
        sqlite3_stmt *s = stmt(st, S_ROLLBACK);
        if (s) sqlite3_step(s), sqlite3_reset(s);
    }
    return rc;
}

/* A write call of one statement needs no savepoint inside an explicit
 * transaction: SQLite undoes a failing statement by itself. */
static int op_begin_stmt(dcem_store *st)
{
    return st->in_tx ? op_begin_check(st) : op_begin(st);
}

static int op_end_stmt(dcem_store *st, int rc)
{
    if (!st->in_tx) return op_end(st, rc);
    if (rc) ids_forget(conn(st));
    if (rc && sqlite3_get_autocommit(conn(st)->db)) conn(st)->aborted = 1;
    return rc;
}

static int sq_begin(dcem_store *st)
{
    conn(st)->aborted = 0;
    return run_id(st, S_BEGIN, "begin");
}

static int sq_begin_read(dcem_store *st)
{
    conn(st)->aborted = 0;
    return run_id(st, S_BEGIN_READ, "begin_read");
}

static int sq_commit(dcem_store *st)
{
    sq *c = conn(st);
    if (c->aborted) {
        c->aborted = 0;
        dcem_store_set_error(st, "commit: the transaction was rolled back by an earlier failure");
        return DCEM_ESTORAGE;
    }
    int rc = run_id(st, S_COMMIT, "commit");
    if (rc) ids_forget(c);
    if (rc && !sqlite3_get_autocommit(c->db)) {
        sqlite3_stmt *s = stmt(st, S_ROLLBACK);
        if (s) sqlite3_step(s), sqlite3_reset(s);
    }
    return rc;
}

static int sq_rollback(dcem_store *st)
{
    sq *c = conn(st);
    c->aborted = 0;
    ids_forget(c);
    if (sqlite3_get_autocommit(c->db)) return 0;
    return run_id(st, S_ROLLBACK, "rollback");
}

/* ---- open and migrations ------------------------------------------------------------------ */

static int exec(dcem_store *st, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(conn(st)->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) return 0;
    dcem_store_set_error(st, "%s: %s (sqlite %d)", what, msg ? msg : sqlite3_errstr(rc), rc);
    sqlite3_free(msg);
    return map_rc(rc);
}

/* The single value of a one-row query (pragmas, counts); text into buf when given. */
static int query_one(dcem_store *st, const char *sql, int64_t *v, char *buf, size_t len)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(conn(st)->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) return fail(st, sql, rc);
    rc = step(st, s, sql);
    if (rc == 1) {
        if (v) *v = sqlite3_column_int64(s, 0);
        if (buf && len) {
            const char *t = c_text(s, 0);
            size_t n = strnlen(t, len - 1);
            memcpy(buf, t, n);
            buf[n] = '\0';
        }
        rc = 0;
    } else if (rc == 0) {
        if (v) *v = 0;
        if (buf && len) buf[0] = '\0';
    }
    sqlite3_finalize(s);
    return rc;
}

/* Brings the schema to `target` in one transaction. A file that holds
 * tables but not our application id is someone else's database; a schema
 * newer than the code is refused rather than written with old assumptions. */
static int migrate(dcem_store *st, int target)
{
    int rc = exec(st, "BEGIN IMMEDIATE", "migrate: begin");
    if (rc) {
        /* the first read of a file that is not SQLite fails here */
        if (sqlite3_errcode(conn(st)->db) == SQLITE_NOTADB) rc = DCEM_ECONFIG;
        return rc;
    }
    int64_t app = 0, objects = 0, current = 0;
    char sql[128];
    if ((rc = query_one(st, "PRAGMA application_id", &app, NULL, 0))) goto out;
    if ((rc = query_one(st, "SELECT count(*) FROM sqlite_master", &objects, NULL, 0))) goto out;
    if (app == 0 && objects == 0) {
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", APPLICATION_ID);
        if ((rc = exec(st, sql, "migrate: application_id"))) goto out;
        rc = exec(st,
                  "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                  " applied_ms INTEGER NOT NULL) STRICT",
                  "migrate: schema_version");
        if (rc) goto out;
    } else if (app != APPLICATION_ID) {
        dcem_store_set_error(st,
                             "not a dcem store (application_id 0x%llx, %lld schema objects):"
                             " refusing to write into it",
                             (unsigned long long)app, (long long)objects);
        rc = DCEM_ECONFIG;
        goto out;
    }
    if ((rc = query_one(st, "SELECT coalesce(max(version), 0) FROM schema_version", &current, NULL,
                        0)))
        goto out;
    if (current > SCHEMA_LATEST) {
        dcem_store_set_error(st,
                             "store schema version %lld is newer than this program's %d:"
                             " upgrade dcem-collector (a downgrade cannot read it)",
                             (long long)current, SCHEMA_LATEST);
        rc = DCEM_ECONFIG;
        goto out;
    }
    if (current > target) {
        dcem_store_set_error(st, "store schema version %lld is newer than the %d asked for",
                             (long long)current, target);
        rc = DCEM_ECONFIG;
        goto out;
    }
    for (int v = (int)current + 1; v <= target; v++) {
        const struct migration *m = &migrations[v - 1];
        char what[96];
        snprintf(what, sizeof what, "migrate to version %d", v);
        if ((rc = exec(st, m->sql, what))) goto out;
        sqlite3_stmt *s = NULL;
        int r = sqlite3_prepare_v2(conn(st)->db,
                                   "INSERT INTO schema_version (version, name, applied_ms)"
                                   " VALUES (?1, ?2, unixepoch() * 1000)",
                                   -1, &s, NULL);
        if (r != SQLITE_OK) {
            rc = fail(st, what, r);
            goto out;
        }
        sqlite3_bind_int(s, 1, v);
        b_text(s, 2, m->name);
        rc = step(st, s, what);
        sqlite3_finalize(s);
        if (rc < 0) goto out;
        rc = 0;
    }
    st->schema_version = target;
    return exec(st, "COMMIT", "migrate: commit");
out:
    sqlite3_exec(conn(st)->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_open(dcem_store *st, const char *target)
{
    sq *c = calloc(1, sizeof *c);
    if (!c) {
        dcem_store_set_error(st, "out of memory");
        return DCEM_ENOMEM;
    }
    st->impl = c;
    /* NOMUTEX: a handle belongs to one thread (store.h) */
    int rc = sqlite3_open_v2(
        target, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        dcem_store_set_error(st, "%s: %s", target,
                             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return DCEM_ESTORAGE;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, st->opts.busy_timeout_ms);

    /* Whose file is it? Asked before anything is written (WAL mode changes
     * the header): another program's database is left exactly as it was.
     * migrate() asks again inside its transaction. */
    int64_t app = 0, objects = 0;
    if ((rc = query_one(st, "PRAGMA application_id", &app, NULL, 0)) ||
        (rc = query_one(st, "SELECT count(*) FROM sqlite_master", &objects, NULL, 0))) {
        if (sqlite3_errcode(c->db) == SQLITE_NOTADB) rc = DCEM_ECONFIG;
        return rc;
    }
    if (app != APPLICATION_ID && (app != 0 || objects != 0)) {
        dcem_store_set_error(st,
                             "%s: not a dcem store (application_id 0x%llx, %lld schema"
                             " objects): refusing to write into it",
                             target, (unsigned long long)app, (long long)objects);
        return DCEM_ECONFIG;
    }

    char mode[16];
    int64_t fk = 0;
    char sql[192];
    if ((rc = query_one(st, "PRAGMA journal_mode = WAL", NULL, mode, sizeof mode))) return rc;
    if (strcmp(mode, "wal") != 0) {
        dcem_store_set_error(st, "%s: cannot use WAL mode (journal mode is \"%s\")", target, mode);
        return DCEM_ESTORAGE;
    }
    /* FULL: in WAL mode, NORMAL does not fsync the WAL at commit, and a power
     * cut could then take back a batch the agent has deleted after our ack. */
    /* temp_store MEMORY: savepoints' sub-journals stay off the disk;
     * cache_size: a group of batches in one transaction fits in the cache */
    snprintf(sql, sizeof sql,
             "PRAGMA synchronous = %s; PRAGMA journal_size_limit = %d;"
             " PRAGMA temp_store = MEMORY; PRAGMA cache_size = %d",
             st->opts.synchronous == DCEM_STORE_SYNC_NORMAL ? "NORMAL" : "FULL",
             JOURNAL_SIZE_LIMIT, CACHE_KIB);
    if ((rc = exec(st, sql, "pragmas"))) return rc;
    if ((rc = exec(st, "PRAGMA foreign_keys = ON", "foreign_keys"))) return rc;
    if ((rc = query_one(st, "PRAGMA foreign_keys", &fk, NULL, 0))) return rc;
    if (fk != 1) {
        dcem_store_set_error(st, "this SQLite has no foreign key support");
        return DCEM_ESTORAGE;
    }
    int target_version = st->opts.schema_version ? st->opts.schema_version : SCHEMA_LATEST;
    if (target_version > SCHEMA_LATEST) {
        dcem_store_set_error(st, "schema_version: %d is above this program's %d", target_version,
                             SCHEMA_LATEST);
        return DCEM_ECONFIG;
    }
    return migrate(st, target_version);
}

static void sq_close(dcem_store *st)
{
    sq *c = conn(st);
    if (!c) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    ids_forget(c);
    /* an explicit transaction still open is rolled back by the close */
    if (c->db) sqlite3_close(c->db);
    free(c);
    st->impl = NULL;
}

/* ---- batches and readings ----------------------------------------------------------------- */

static void bind_epoch_key(sqlite3_stmt *s, const char *site, const char *gateway, uint64_t epoch)
{
    b_text(s, 1, site);
    b_text(s, 2, gateway);
    b_u64(s, 3, epoch);
}

static void read_epoch(sqlite3_stmt *s, dcem_store_epoch *e)
{
    copy_id(e->site, c_text(s, 0));
    copy_id(e->gateway, c_text(s, 1));
    e->epoch = c_u64(s, 2);
    e->contiguous_seq = c_u64(s, 3);
    e->max_seq = c_u64(s, 4);
    e->skipped = c_u64(s, 5);
    e->first_ms = c_i64(s, 6);
    e->last_ms = c_i64(s, 7);
}

/* The epoch's row, inserted when it is new (inside the caller's transaction). */
static int epoch_get(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                     int64_t received_ms, dcem_store_epoch *e)
{
    sqlite3_stmt *s = stmt(st, S_EPOCH_ENSURE);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    b_i64(s, 4, received_ms);
    int rc = run(st, s, "epoch");
    if (rc) return rc;
    if (!(s = stmt(st, S_EPOCH_GET))) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    rc = step(st, s, "epoch");
    if (rc == 1) read_epoch(s, e);
    done(s);
    if (rc == 0) {
        dcem_store_set_error(st, "epoch: row vanished");
        return DCEM_ESTORAGE;
    }
    return rc < 0 ? rc : 0;
}

static int batch_exists(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t seq)
{
    sqlite3_stmt *s = stmt(st, S_BATCH_EXISTS);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    b_u64(s, 4, seq);
    int rc = step(st, s, "batch lookup");
    done(s);
    return rc;
}

/* Moves H from h past the batches already stored after it, then writes the
 * epoch row: H, the highest seq, seqs skipped, the time of this batch. */
static int epoch_advance(dcem_store *st, const dcem_store_epoch *e, uint64_t h, uint64_t seq,
                         uint64_t skipped, int64_t received_ms)
{
    for (;;) {
        int rc = batch_exists(st, e->site, e->gateway, e->epoch, h + 1);
        if (rc < 0) return rc;
        if (!rc) break;
        h++;
    }
    sqlite3_stmt *s = stmt(st, S_EPOCH_SET);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, e->site, e->gateway, e->epoch);
    b_u64(s, 4, h);
    b_u64(s, 5, seq > h ? seq : h);
    b_u64(s, 6, skipped);
    b_i64(s, 7, received_ms);
    return run(st, s, "epoch update");
}

/* The batch row: 1 when inserted, 0 when it was there (a duplicate). */
static int batch_insert(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t seq, int64_t received_ms, size_t n, int quarantined)
{
    sqlite3_stmt *s = stmt(st, S_BATCH_INSERT);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    b_u64(s, 4, seq);
    b_i64(s, 5, received_ms);
    b_i64(s, 6, (int64_t)n);
    b_i64(s, 7, quarantined);
    int rc = run(st, s, "batch insert");
    if (rc) return rc;
    if (sqlite3_changes(conn(st)->db) == 1) return 1;
    /* a duplicate: a different reading count means the gateway reused a
     * seq for other content, which the collector should hear about */
    if (!(s = stmt(st, S_BATCH_NREAD))) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    b_u64(s, 4, seq);
    rc = step(st, s, "batch lookup");
    if (rc == 1 && sqlite3_column_int64(s, 0) != (sqlite3_int64)n) st->call.duplicate_mismatch++;
    done(s);
    return rc < 0 ? rc : 0;
}

/* Everything of put_batch between op_begin and op_end. */
static int put_batch_tx(dcem_store *st, const dcem_wire_batch *b, int64_t received_ms,
                        int *duplicate, unsigned char *mark)
{
    dcem_store_epoch e;
    int rc = epoch_get(st, b->site, b->gateway, b->epoch, received_ms, &e);
    if (rc) return rc;
    /* a duplicate is a batch whose row exists. Not "seq <= H": a seq given
     * up by skip_to may still arrive (the birth raced it), and is stored */
    rc = batch_insert(st, b->site, b->gateway, b->epoch, b->seq, received_ms, b->n_readings, 0);
    if (rc <= 0) {
        if (rc == 0) *duplicate = 1;
        return rc;
    }

    int has_ratio = st->schema_version >= SCHEMA_RATIO;
    sqlite3_stmt *s = stmt(st, has_ratio ? S_READING_INSERT : S_READING_INSERT_V4);
    if (!s) return DCEM_ESTORAGE;
    sqlite3 *db = conn(st)->db;
    int ids = st->schema_version >= SCHEMA_IDS;
    /* the batch's columns are bound once; bindings survive sqlite3_reset */
    if ((rc = b_name(st, s, 1, b->site, 1)) < 0) {
        done(s);
        return rc;
    }
    b_text(s, 7, b->gateway);
    b_u64(s, 8, b->epoch);
    b_u64(s, 9, b->seq);
    size_t fresh = 0;
    for (size_t i = 0; i < b->n_readings; i++) {
        const dcem_wire_reading *r = &b->readings[i];
        if ((r->has_kwh && isnan(r->kwh)) || (r->has_kw && isnan(r->kw))) {
            done(s);
            dcem_store_set_error(st, "put_batch: readings[%zu]: NaN value", i);
            return DCEM_EINVAL;
        }
        /* meter ids were checked by store.c */
        if (!ids) {
            sqlite3_bind_text(s, 2, r->meter, (int)strnlen(r->meter, DCEM_ID_MAX), SQLITE_STATIC);
        } else if ((rc = b_name(st, s, 2, r->meter, 1)) < 0) {
            done(s);
            return rc;
        }
        b_i64(s, 3, r->t_ms);
        if (r->has_kwh)
            sqlite3_bind_double(s, 4, r->kwh);
        else
            sqlite3_bind_null(s, 4);
        if (r->has_kw)
            sqlite3_bind_double(s, 5, r->kw);
        else
            sqlite3_bind_null(s, 5);
        sqlite3_bind_int(s, 6, r->quality);
        if (has_ratio) {
            sqlite3_bind_double(s, 10, dcem_wire_ratio(r));
        } else if (dcem_wire_ratio(r) != 1) {
            done(s);
            dcem_store_set_error(st, "put_batch: schema %d has no transformer ratio",
                                 st->schema_version);
            return DCEM_ESTORAGE;
        }
        rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            char what[64];
            snprintf(what, sizeof what, "put_batch: readings[%zu]", i);
            rc = fail(st, what, rc);
            done(s);
            return rc;
        }
        /* 0: stored before (ON CONFLICT DO NOTHING) */
        mark[i] = sqlite3_changes(db) == 1;
        fresh += mark[i];
        sqlite3_reset(s);
    }
    done(s);

    if (!(s = stmt(st, S_BATCH_SET_NEW))) return DCEM_ESTORAGE;
    bind_epoch_key(s, b->site, b->gateway, b->epoch);
    b_u64(s, 4, b->seq);
    b_i64(s, 5, (int64_t)fresh);
    if ((rc = run(st, s, "batch update"))) return rc;

    uint64_t h = e.contiguous_seq;
    if ((rc = epoch_advance(st, &e, h, b->seq, 0, received_ms))) return rc;
    st->call.batches = 1;
    st->call.readings = fresh;
    st->call.readings_replayed = b->n_readings - fresh;
    return 0;
}

static int sq_put_batch(dcem_store *st, const dcem_wire_batch *b, int64_t received_ms,
                        int *duplicate, unsigned char *fresh)
{
    int rc = op_begin(st);
    if (rc) return rc;
    rc = put_batch_tx(st, b, received_ms, duplicate, fresh);
    if (*duplicate) {
        /* nothing to keep: the epoch row, if just made, cannot be new here */
        st->call.duplicates = 1;
        st->call.batches = 0;
    }
    return op_end(st, rc);
}

static int sq_put_quarantine(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                             uint64_t seq, int64_t received_ms, const char *reason,
                             const void *payload, size_t len, int *duplicate)
{
    int rc = op_begin(st);
    if (rc) return rc;
    dcem_store_epoch e;
    rc = epoch_get(st, site, gateway, epoch, received_ms, &e);
    if (!rc) {
        rc = batch_insert(st, site, gateway, epoch, seq, received_ms, 0, 1);
        if (rc == 0) *duplicate = 1;
        if (rc == 1) {
            sqlite3_stmt *s = stmt(st, S_QUARANTINE_INSERT);
            rc = s ? 0 : DCEM_ESTORAGE;
            if (s) {
                bind_epoch_key(s, site, gateway, epoch);
                b_u64(s, 4, seq);
                b_i64(s, 5, received_ms);
                b_text(s, 6, reason);
                sqlite3_bind_blob(s, 7, payload, (int)len, SQLITE_STATIC);
                rc = run(st, s, "quarantine insert");
            }
            if (!rc) rc = epoch_advance(st, &e, e.contiguous_seq, seq, 0, received_ms);
            if (!rc) st->call.quarantined = 1;
        }
    }
    if (*duplicate) st->call.duplicates = 1;
    return op_end(st, rc);
}

static int sq_put_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t seq, const char *key, const void *payload, size_t len)
{
    if (st->schema_version < SCHEMA_PROOFS) return 0; /* a store held at an older schema */
    int rc = op_begin_stmt(st);
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_PROOF_INSERT);
    rc = s ? 0 : DCEM_ESTORAGE;
    if (s) {
        bind_epoch_key(s, site, gateway, epoch);
        b_u64(s, 4, seq);
        b_text(s, 5, key);
        sqlite3_bind_blob(s, 6, payload, (int)len, SQLITE_STATIC);
        rc = run(st, s, "proof insert");
    }
    return op_end_stmt(st, rc);
}

static int sq_get_proof(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                        uint64_t seq, char *key, size_t keylen, void **payload, size_t *len)
{
    if (st->schema_version < SCHEMA_PROOFS) return DCEM_ENOTFOUND;
    sqlite3_stmt *s = stmt(st, S_PROOF_GET);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, site, gateway, epoch);
    b_u64(s, 4, seq);
    int rc = step(st, s, "get_proof");
    if (rc == 1) {
        size_t n = (size_t)sqlite3_column_bytes(s, 1);
        const void *p = sqlite3_column_blob(s, 1);
        snprintf(key, keylen, "%s", c_text(s, 0));
        *payload = malloc(n ? n : 1);
        if (*payload) {
            if (n) memcpy(*payload, p, n);
            *len = n;
        } else {
            dcem_store_set_error(st, "get_proof: out of memory");
            rc = DCEM_ENOMEM;
        }
    }
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_proofs(dcem_store *st, const char *site, dcem_store_proof_fn fn, void *ctx)
{
    if (st->schema_version < SCHEMA_PROOFS) return 0;
    sqlite3_stmt *s = stmt(st, S_PROOFS);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    int rc;
    while ((rc = step(st, s, "proofs")) == 1) {
        dcem_store_proof p = {.site = site,
                              .gateway = c_text(s, 0),
                              .epoch = c_u64(s, 1),
                              .seq = c_u64(s, 2),
                              .key = c_text(s, 3),
                              .payload = sqlite3_column_blob(s, 4),
                              .len = (size_t)sqlite3_column_bytes(s, 4)};
        if ((rc = fn(ctx, &p)) != 0) break;
    }
    done(s);
    return rc;
}

static int sq_gateway_seq(dcem_store *st, dcem_store_epoch *io)
{
    sqlite3_stmt *s = stmt(st, S_EPOCH_GET);
    if (!s) return DCEM_ESTORAGE;
    bind_epoch_key(s, io->site, io->gateway, io->epoch);
    int rc = step(st, s, "gateway_seq");
    if (rc == 1) read_epoch(s, io);
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_skip_to(dcem_store *st, const char *site, const char *gateway, uint64_t epoch,
                      uint64_t seq)
{
    int rc = op_begin(st);
    if (rc) return rc;
    dcem_store_epoch e;
    /* a skip for an epoch never seen still records that its seqs are gone */
    rc = epoch_get(st, site, gateway, epoch, 0, &e);
    if (!rc && seq > e.contiguous_seq) {
        /* the seqs in (H, seq] that were never stored are the ones given up */
        sqlite3_stmt *s = stmt(st, S_BATCH_COUNT);
        if (!s) return op_end(st, DCEM_ESTORAGE);
        bind_epoch_key(s, site, gateway, epoch);
        b_u64(s, 4, e.contiguous_seq);
        b_u64(s, 5, seq);
        rc = step(st, s, "skip_to");
        uint64_t stored = rc == 1 ? c_u64(s, 0) : 0;
        done(s);
        if (rc == 1)
            rc = epoch_advance(st, &e, seq, seq, seq - e.contiguous_seq - stored, e.last_ms);
    }
    return op_end(st, rc);
}

static int sq_epochs(dcem_store *st, dcem_store_epoch_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, S_EPOCHS);
    if (!s) return DCEM_ESTORAGE;
    int rc;
    while ((rc = step(st, s, "epochs")) == 1) {
        dcem_store_epoch e;
        read_epoch(s, &e);
        if ((rc = fn(ctx, &e)) != 0) break;
    }
    done(s);
    return rc;
}

/* Calls fn for each row of s, a statement over READING_COLS, already
 * bound; resets it. */
static int each_reading(dcem_store *st, sqlite3_stmt *s, const char *site, const char *what,
                        dcem_store_reading_fn fn, void *ctx)
{
    int rc;
    while ((rc = step(st, s, what)) == 1) {
        dcem_store_reading r = {
            .site = site,
            .meter = c_text(s, 0),
            .t_ms = c_i64(s, 1),
            .has_kwh = sqlite3_column_type(s, 2) != SQLITE_NULL,
            .has_kw = sqlite3_column_type(s, 3) != SQLITE_NULL,
            .kwh = sqlite3_column_double(s, 2),
            .kw = sqlite3_column_double(s, 3),
            .quality = c_int(s, 4),
            .gateway = c_text(s, 5),
            .epoch = c_u64(s, 6),
            .seq = c_u64(s, 7),
            .ratio = sqlite3_column_double(s, 8),
        };
        if ((rc = fn(ctx, &r)) != 0) break;
    }
    done(s);
    return rc;
}

static int sq_export(dcem_store *st, const char *site, const char *meter, int64_t from_ms,
                     int64_t to_ms, dcem_store_reading_fn fn, void *ctx)
{
    int rc = need_ids_schema(st, "export");
    sqlite3_stmt *s = rc ? NULL : stmt(st, meter ? S_EXPORT_METER : S_EXPORT_SITE);
    if (!s) return DCEM_ESTORAGE;
    /* a site or meter without an id has no readings */
    if ((rc = b_name(st, s, 1, site, 0)) == 1 &&
        (!meter || (rc = b_name(st, s, 4, meter, 0)) == 1)) {
        b_i64(s, 2, from_ms);
        b_i64(s, 3, to_ms);
        return each_reading(st, s, site, "export", fn, ctx);
    }
    done(s);
    return rc;
}

static int sq_last_reading_ms(dcem_store *st, const char *site, int64_t *t_ms)
{
    sqlite3_stmt *s = stmt(st, S_LAST_READING);
    if (!s) return DCEM_ESTORAGE;
    int rc = b_name(st, s, 1, site, 0);
    if (rc <= 0) {
        done(s);
        return rc ? rc : DCEM_ENOTFOUND;
    }
    rc = step(st, s, "last_reading_ms");
    if (rc == 1) {
        if (sqlite3_column_type(s, 0) == SQLITE_NULL) rc = 0; /* max() of no rows */
        else *t_ms = c_i64(s, 0);
    }
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_latest_readings(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                              dcem_store_reading_fn fn, void *ctx)
{
    int rc = need_ids_schema(st, "latest_readings");
    sqlite3_stmt *s = rc ? NULL : stmt(st, S_LATEST_READINGS);
    if (!s) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) <= 0) {
        done(s);
        return rc;
    }
    b_i64(s, 2, from_ms);
    b_i64(s, 3, to_ms);
    return each_reading(st, s, site, "latest_readings", fn, ctx);
}

static int prune_tx(dcem_store *st, int64_t cutoff_ms, size_t chunk, size_t *deleted)
{
    sqlite3 *db = conn(st)->db;
    sqlite3_stmt *sites = stmt(st, S_PRUNE_SITES);
    sqlite3_stmt *del = stmt(st, S_PRUNE_READINGS);
    if (!sites || !del) return DCEM_ESTORAGE;
    size_t left = chunk;
    int rc = 0;
    while (left && (rc = step(st, sites, "prune")) == 1) {
        int has = b_name(st, del, 1, c_text(sites, 0), 0);
        if (has <= 0) { /* a site without readings */
            done(del);
            if ((rc = has) < 0) break;
            continue;
        }
        b_i64(del, 2, cutoff_ms);
        b_i64(del, 3, (int64_t)left);
        rc = run(st, del, "prune readings");
        if (rc) break;
        left -= (size_t)sqlite3_changes(db);
    }
    done(sites);
    if (rc < 0) return rc;
    *deleted = chunk - left;
    st->call.pruned_readings = *deleted;

    sqlite3_stmt *s = stmt(st, S_PRUNE_BATCHES);
    if (!s) return DCEM_ESTORAGE;
    b_i64(s, 1, cutoff_ms);
    b_i64(s, 2, (int64_t)chunk);
    if ((rc = run(st, s, "prune batches"))) return rc;
    st->call.pruned_batches = (uint64_t)sqlite3_changes(db);
    return 0;
}

static int sq_prune(dcem_store *st, int64_t cutoff_ms, size_t chunk, size_t *deleted)
{
    int rc = op_begin(st);
    if (rc) return rc;
    return op_end(st, prune_tx(st, cutoff_ms, chunk, deleted));
}

/* ---- interval energy and rollups ---------------------------------------------------------- */

/* Intervals, rollups, meter state and checkpoints as they are now came with
 * SCHEMA_METER; a store held at an older schema (tests, tools) has none. */
static int need_meter_schema(dcem_store *st, const char *what)
{
    if (st->schema_version >= SCHEMA_METER) return 0;
    dcem_store_set_error(st, "%s: the store is at schema %d, before integer intervals (%d)", what,
                         st->schema_version, SCHEMA_METER);
    return DCEM_ESTORAGE;
}

/* Reads an intervals row (IV_COLS from column `at`). */
static void read_interval(sqlite3_stmt *s, int at, int64_t start_ms, dcem_interval *iv,
                          dcem_store_keys *keys)
{
    memset(iv, 0, sizeof *iv);
    iv->start_ms = start_ms;
    iv->end_ms = c_i64(s, at);
    iv->ukwh = c_i64(s, at + 1);
    iv->estimated_ukwh[DCEM_SPAN_INTERVAL] = c_i64(s, at + 2);
    iv->estimated_ukwh[DCEM_SPAN_DAY] = c_i64(s, at + 3);
    iv->estimated_ukwh[DCEM_SPAN_MONTH] = c_i64(s, at + 4);
    iv->estimated_ukwh[DCEM_SPAN_YEAR] = c_i64(s, at + 5);
    iv->integrated_ukwh = c_i64(s, at + 6);
    iv->covered_ms = c_i64(s, at + 7);
    iv->readings = (int32_t)c_i64(s, at + 8);
    iv->discarded = (int32_t)c_i64(s, at + 9);
    iv->rollovers = (int32_t)c_i64(s, at + 10);
    iv->resets = (int32_t)c_i64(s, at + 11);
    iv->flags = (unsigned)c_i64(s, at + 12);
    if (keys) {
        keys->hour_ms = c_i64(s, at + 13);
        keys->day = c_i64(s, at + 14);
        keys->month = c_i64(s, at + 15);
    }
}

/* Adds d to the rollup row, creating it when there is none (then d is a
 * sum of whole intervals' contributions, never a net decrease). A
 * difference that would break the table's CHECKs as a row of its own is
 * applied with UPDATE (and a row INSERTed only when there is none): an
 * upsert checks the row it would insert before it sees the conflict. */
static int rollup_apply(dcem_store *st, const char *site, const dcem_rollup_delta *r)
{
    int zero = 1;
    const int64_t *v = r->d.v; /* ROLLUP_COLS order; energies (0..5) may be negative */
    for (int i = 0; i < DCEM_CONTRIB_N; i++)
        zero &= v[i] == 0;
    /* a difference that is a valid row itself (new intervals, the common
     * case) is one upsert: the rollups table's CHECK, on the difference */
    int row_ok = dcem_contrib_row_ok(&r->d);
    for (int id = row_ok ? S_ROLLUP_UPSERT : S_ROLLUP_UPDATE; !zero; id = S_ROLLUP_INSERT) {
        sqlite3_stmt *s = stmt(st, id);
        if (!s) return DCEM_ESTORAGE;
        int rc = b_name(st, s, 1, site, 1);
        if (rc == 1) rc = b_name(st, s, 4, r->meter, 1);
        if (rc < 0) {
            done(s);
            return rc;
        }
        sqlite3_bind_int(s, 2, r->kind);
        b_i64(s, 3, r->key);
        for (int i = 0; i < DCEM_CONTRIB_N; i++)
            b_i64(s, 5 + i, v[i]);
        if ((rc = run(st, s, "rollup"))) return rc;
        if (id != S_ROLLUP_UPDATE || sqlite3_changes(conn(st)->db) == 1) break;
    }
    if (!r->drop_empty) return 0;
    sqlite3_stmt *d = stmt(st, S_ROLLUP_DROP_EMPTY);
    if (!d) return DCEM_ESTORAGE;
    int rc = b_name(st, d, 1, site, 1);
    if (rc == 1) rc = b_name(st, d, 4, r->meter, 1);
    if (rc < 0) {
        done(d);
        return rc;
    }
    sqlite3_bind_int(d, 2, r->kind);
    b_i64(d, 3, r->key);
    return run(st, d, "rollup cleanup");
}

/* The site's and meter's keys are bound by the caller (b_name). */
static void bind_interval(sqlite3_stmt *s, const dcem_store_interval_row *r)
{
    const dcem_interval *iv = &r->iv;
    b_i64(s, 2, iv->start_ms);
    b_i64(s, 4, iv->end_ms);
    b_i64(s, 5, iv->ukwh);
    b_i64(s, 6, iv->estimated_ukwh[DCEM_SPAN_INTERVAL]);
    b_i64(s, 7, iv->estimated_ukwh[DCEM_SPAN_DAY]);
    b_i64(s, 8, iv->estimated_ukwh[DCEM_SPAN_MONTH]);
    b_i64(s, 9, iv->estimated_ukwh[DCEM_SPAN_YEAR]);
    b_i64(s, 10, iv->integrated_ukwh);
    b_i64(s, 11, iv->covered_ms);
    b_i64(s, 12, iv->readings);
    b_i64(s, 13, iv->discarded);
    b_i64(s, 14, iv->rollovers);
    b_i64(s, 15, iv->resets);
    b_i64(s, 16, (int64_t)iv->flags);
    b_i64(s, 17, r->keys.hour_ms);
    b_i64(s, 18, r->keys.day);
    b_i64(s, 19, r->keys.month);
}

/* Writes one interval row: a new interval is one INSERT; a revision reads
 * the old row first. Appends what it adds to (and takes from) the rollups
 * to *deltas (room for 6 more). */
static int put_one_interval(dcem_store *st, const char *site, const dcem_store_interval_row *r,
                            dcem_rollup_delta *deltas, size_t *nd)
{
    sqlite3_stmt *s = stmt(st, S_IV_INSERT);
    if (!s) return DCEM_ESTORAGE;
    int rc = b_name(st, s, 1, site, 1);
    if (rc == 1) rc = b_name(st, s, 3, r->meter, 1);
    if (rc < 0) {
        done(s);
        return rc;
    }
    int64_t mid = 0;
    if (st->schema_version >= SCHEMA_IDS) name_id(st, r->meter, 0, &mid); /* cached just now */
    bind_interval(s, r);
    if ((rc = run(st, s, "interval insert"))) return rc;
    if (sqlite3_changes(conn(st)->db) == 1) {
        dcem_rollup_deltas_new(deltas, nd, r->meter, mid, r);
        st->call.intervals++;
        return 0;
    }

    /* a revision: the old row's contribution comes off the rollups it was in */
    if (!(s = stmt(st, S_IV_GET))) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 1)) == 1) rc = b_name(st, s, 3, r->meter, 1);
    if (rc < 0) {
        done(s);
        return rc;
    }
    b_i64(s, 2, r->iv.start_ms);
    dcem_interval old_iv;
    dcem_store_keys old_keys;
    int had = step(st, s, "interval lookup");
    if (had == 1) read_interval(s, 0, r->iv.start_ms, &old_iv, &old_keys);
    done(s);
    if (had != 1) return had < 0 ? had : DCEM_ESTORAGE;
    if (!(s = stmt(st, S_IV_UPSERT))) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 1)) == 1) rc = b_name(st, s, 3, r->meter, 1);
    if (rc < 0) {
        done(s);
        return rc;
    }
    bind_interval(s, r);
    if ((rc = run(st, s, "interval update"))) return rc;
    dcem_rollup_deltas_revised(deltas, nd, r->meter, mid, r, &old_iv, &old_keys);
    st->call.interval_revisions++;
    return 0;
}

static int put_intervals_tx(dcem_store *st, const char *site, const dcem_store_interval_row *rows,
                            size_t n, dcem_rollup_delta *deltas)
{
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = put_one_interval(st, site, &rows[i], deltas, &nd);
        if (rc) return rc;
    }
    /* one write per rollup row: sum the differences that fall on it */
    size_t sums;
    int rc = dcem_rollup_deltas_sum(st, deltas, nd, &sums);
    for (size_t i = 0; i < sums && !rc; i++)
        rc = rollup_apply(st, site, &deltas[i]);
    return rc;
}

static int sq_put_intervals(dcem_store *st, const char *site, const dcem_store_interval_row *rows,
                            size_t n)
{
    int rc = need_meter_schema(st, "put_intervals");
    if (rc) return rc;
    dcem_rollup_delta *deltas = malloc(6 * n * sizeof *deltas);
    if (!deltas) {
        dcem_store_set_error(st, "put_intervals: out of memory");
        return DCEM_ENOMEM;
    }
    rc = op_begin(st);
    if (!rc) rc = op_end(st, put_intervals_tx(st, site, rows, n, deltas));
    free(deltas);
    return rc;
}

static int sq_get_interval(dcem_store *st, const char *site, const char *meter, int64_t start_ms,
                           dcem_interval *iv)
{
    int rc = need_meter_schema(st, "get_interval");
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_IV_GET);
    if (!s) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) == 1) rc = b_name(st, s, 3, meter, 0);
    if (rc <= 0) {
        done(s);
        return rc ? rc : DCEM_ENOTFOUND;
    }
    b_i64(s, 2, start_ms);
    rc = step(st, s, "get_interval");
    if (rc == 1) read_interval(s, 0, start_ms, iv, NULL);
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_intervals(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                        dcem_store_interval_fn fn, void *ctx)
{
    int rc = need_meter_schema(st, "intervals");
    if (rc || (rc = need_ids_schema(st, "intervals"))) return rc;
    sqlite3_stmt *s = stmt(st, S_IV_RANGE);
    if (!s) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) <= 0) {
        done(s);
        return rc;
    }
    b_i64(s, 2, from_ms);
    b_i64(s, 3, to_ms);
    while ((rc = step(st, s, "intervals")) == 1) {
        dcem_interval iv;
        read_interval(s, 2, c_i64(s, 1), &iv, NULL);
        if ((rc = fn(ctx, c_text(s, 0), &iv)) != 0) break;
    }
    done(s);
    return rc;
}

/* Takes the intervals' sums off each rollup they count in — SQL sums them
 * per rollup row, one UPDATE each — then deletes them. */
static int delete_intervals_tx(dcem_store *st, const char *site, const char *meter,
                               int64_t from_ms)
{
    sqlite3_stmt *s = stmt(st, S_IV_DELETE_SUMS);
    if (!s) return DCEM_ESTORAGE;
    int rc = 0;
    int64_t mid = 0;
    if (st->schema_version >= SCHEMA_IDS) {
        /* a meter or site without an id has no intervals */
        int has = name_id(st, site, 0, &mid);
        if (has == 1) has = name_id(st, meter, 0, &mid);
        if (has <= 0) return has;
    }
    static const int kinds[3] = {DCEM_PERIOD_HOUR, DCEM_PERIOD_DAY, DCEM_PERIOD_MONTH};
    for (int k = 0; k < 3 && !rc; k++) {
        if ((rc = b_name(st, s, 1, site, 0)) == 1) rc = b_name(st, s, 2, meter, 0);
        if (rc < 0) {
            done(s);
            break;
        }
        rc = 0;
        b_i64(s, 3, from_ms);
        sqlite3_bind_int(s, 4, kinds[k]);
        b_i64(s, 5, DCEM_SEG_ESTIMATED);
        b_i64(s, 6, DCEM_SEG_INTEGRATED);
        while ((rc = step(st, s, "delete_intervals: sums")) == 1) {
            dcem_rollup_delta d = {meter, mid, kinds[k], c_i64(s, 0), 1, {{0}}};
            for (int i = 0; i < DCEM_CONTRIB_N; i++)
                d.d.v[i] = -c_i64(s, 1 + i); /* each sum checked against int64 by SQLite */
            if ((rc = rollup_apply(st, site, &d))) break;
        }
        done(s);
    }
    if (rc) return rc;
    if (!(s = stmt(st, S_IV_DELETE))) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) == 1) rc = b_name(st, s, 2, meter, 0);
    if (rc < 0) {
        done(s);
        return rc;
    }
    b_i64(s, 3, from_ms);
    if ((rc = run(st, s, "delete_intervals"))) return rc;
    st->call.intervals_deleted = (uint64_t)sqlite3_changes(conn(st)->db);
    return 0;
}

static int sq_delete_intervals(dcem_store *st, const char *site, const char *meter,
                               int64_t from_ms)
{
    int rc = need_meter_schema(st, "delete_intervals");
    if (rc) return rc;
    rc = op_begin(st);
    if (rc) return rc;
    return op_end(st, delete_intervals_tx(st, site, meter, from_ms));
}

static void read_rollup(sqlite3_stmt *s, dcem_store_rollup *r)
{
    memset(r, 0, sizeof *r);
    copy_id(r->meter, c_text(s, 0));
    r->kind = c_int(s, 1);
    r->key = c_i64(s, 2);
    r->ukwh = c_i64(s, 3);
    r->estimated_ukwh[DCEM_SPAN_INTERVAL] = c_i64(s, 4);
    r->estimated_ukwh[DCEM_SPAN_DAY] = c_i64(s, 5);
    r->estimated_ukwh[DCEM_SPAN_MONTH] = c_i64(s, 6);
    r->estimated_ukwh[DCEM_SPAN_YEAR] = c_i64(s, 7);
    r->integrated_ukwh = c_i64(s, 8);
    r->covered_ms = c_i64(s, 9);
    r->intervals = (long)c_i64(s, 10);
    r->read_intervals = (long)c_i64(s, 11);
    r->estimated_intervals = (long)c_i64(s, 12);
    r->integrated_intervals = (long)c_i64(s, 13);
    r->discarded_readings = (long)c_i64(s, 14);
    r->rollovers = (long)c_i64(s, 15);
    r->resets = (long)c_i64(s, 16);
}

static int sq_get_rollup(dcem_store *st, const char *site, const char *meter, int kind, int64_t key,
                         dcem_store_rollup *out)
{
    int rc = need_meter_schema(st, "get_rollup");
    if (rc) return rc;
    if ((rc = need_ids_schema(st, "get_rollup"))) return rc;
    sqlite3_stmt *s = stmt(st, S_ROLLUP_GET);
    if (!s) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) == 1) rc = b_name(st, s, 4, meter, 0);
    if (rc <= 0) {
        done(s);
        return rc ? rc : DCEM_ENOTFOUND;
    }
    sqlite3_bind_int(s, 2, kind);
    b_i64(s, 3, key);
    rc = step(st, s, "get_rollup");
    if (rc == 1) read_rollup(s, out);
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_rollups(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                      dcem_store_rollup_fn fn, void *ctx)
{
    int rc = need_meter_schema(st, "rollups");
    if (rc || (rc = need_ids_schema(st, "rollups"))) return rc;
    sqlite3_stmt *s = stmt(st, S_ROLLUP_RANGE);
    if (!s) return DCEM_ESTORAGE;
    if ((rc = b_name(st, s, 1, site, 0)) <= 0) {
        done(s);
        return rc;
    }
    sqlite3_bind_int(s, 2, kind);
    b_i64(s, 3, from_key);
    b_i64(s, 4, to_key);
    while ((rc = step(st, s, "rollups")) == 1) {
        dcem_store_rollup r;
        read_rollup(s, &r);
        if ((rc = fn(ctx, &r)) != 0) break;
    }
    done(s);
    return rc;
}

/* ---- per-meter state and checkpoints ------------------------------------------------------ */

/* Copies a blob column into buf; DCEM_EFULL (with *len the size needed)
 * when it does not fit. */
static int take_blob(dcem_store *st, sqlite3_stmt *s, int col, void *buf, size_t cap,
                     size_t *len, const char *what)
{
    const void *p = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    *len = n;
    if (n > cap) {
        dcem_store_set_error(st, "%s: the state is %zu bytes, the buffer %zu", what, n, cap);
        return DCEM_EFULL;
    }
    if (n) memcpy(buf, p, n);
    return 0;
}

static int sq_put_meter_state(dcem_store *st, const char *site, const char *meter,
                              const void *blob, size_t len, int stale, int64_t updated_ms)
{
    int rc = need_meter_schema(st, "put_meter_state");
    if (rc) return rc;
    if ((rc = op_begin_stmt(st))) return rc;
    sqlite3_stmt *s = stmt(st, S_STATE_PUT);
    if (!s) return op_end_stmt(st, DCEM_ESTORAGE);
    b_text(s, 1, site);
    b_text(s, 2, meter);
    /* blob is never NULL (store.c): a zero length binds an empty blob, not NULL */
    sqlite3_bind_blob(s, 3, blob, (int)len, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, stale);
    b_i64(s, 5, updated_ms);
    return op_end_stmt(st, run(st, s, "put_meter_state"));
}

static int sq_get_meter_state(dcem_store *st, const char *site, const char *meter, void *buf,
                              size_t cap, size_t *len, int *stale, int64_t *updated_ms)
{
    int rc = need_meter_schema(st, "get_meter_state");
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_STATE_GET);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    b_text(s, 2, meter);
    rc = step(st, s, "get_meter_state");
    if (rc == 1) {
        *stale = c_int(s, 1);
        *updated_ms = c_i64(s, 2);
        int r = take_blob(st, s, 0, buf, cap, len, "get_meter_state");
        if (r) rc = r;
    }
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_put_checkpoint(dcem_store *st, const char *site, const char *meter, int64_t t_ms,
                             const void *blob, size_t len)
{
    int rc = need_meter_schema(st, "put_checkpoint");
    if (rc) return rc;
    if ((rc = op_begin_stmt(st))) return rc;
    sqlite3_stmt *s = stmt(st, S_CKPT_PUT);
    if (!s) return op_end_stmt(st, DCEM_ESTORAGE);
    b_text(s, 1, site);
    b_text(s, 2, meter);
    b_i64(s, 3, t_ms);
    sqlite3_bind_blob(s, 4, blob, (int)len, SQLITE_STATIC);
    return op_end_stmt(st, run(st, s, "put_checkpoint"));
}

static int sq_get_checkpoint(dcem_store *st, const char *site, const char *meter,
                             int64_t before_ms, int64_t *t_ms, void *buf, size_t cap, size_t *len)
{
    int rc = need_meter_schema(st, "get_checkpoint");
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_CKPT_GET);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    b_text(s, 2, meter);
    b_i64(s, 3, before_ms);
    rc = step(st, s, "get_checkpoint");
    if (rc == 1) {
        *t_ms = c_i64(s, 0);
        int r = take_blob(st, s, 1, buf, cap, len, "get_checkpoint");
        if (r) rc = r;
    }
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_drop_checkpoints(dcem_store *st, const char *site, const char *meter, int64_t from_ms)
{
    int rc = need_meter_schema(st, "drop_checkpoints");
    if (rc) return rc;
    if ((rc = op_begin_stmt(st))) return rc;
    sqlite3_stmt *s = stmt(st, S_CKPT_DROP);
    if (!s) return op_end_stmt(st, DCEM_ESTORAGE);
    b_text(s, 1, site);
    b_text(s, 2, meter);
    b_i64(s, 3, from_ms);
    return op_end_stmt(st, run(st, s, "drop_checkpoints"));
}

/* ---- figures, verdicts, alerts ------------------------------------------------------------ */

static int sq_put_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                          const char *json, size_t len, int64_t computed_ms)
{
    int rc = op_begin_stmt(st);
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_FIG_PUT);
    if (!s) return op_end_stmt(st, DCEM_ESTORAGE);
    b_text(s, 1, site);
    sqlite3_bind_int(s, 2, kind);
    b_i64(s, 3, period_key);
    sqlite3_bind_text(s, 4, json, (int)len, SQLITE_STATIC);
    b_i64(s, 5, computed_ms);
    return op_end_stmt(st, run(st, s, "put_figures"));
}

static int sq_get_figures(dcem_store *st, const char *site, int kind, int64_t period_key,
                          char **json, int64_t *computed_ms)
{
    sqlite3_stmt *s = stmt(st, S_FIG_GET);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    sqlite3_bind_int(s, 2, kind);
    b_i64(s, 3, period_key);
    int rc = step(st, s, "get_figures");
    if (rc == 1) {
        const char *t = c_text(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        *json = malloc(n + 1);
        if (*json) {
            memcpy(*json, t, n);
            (*json)[n] = '\0';
            *computed_ms = c_i64(s, 1);
        } else {
            dcem_store_set_error(st, "get_figures: out of memory");
            rc = DCEM_ENOMEM;
        }
    }
    done(s);
    return rc == 1 ? 0 : rc == 0 ? DCEM_ENOTFOUND : rc;
}

static int sq_figures(dcem_store *st, const char *site, int kind, int64_t from_key, int64_t to_key,
                      dcem_store_figures_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(st, S_FIG_RANGE);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    sqlite3_bind_int(s, 2, kind);
    b_i64(s, 3, from_key);
    b_i64(s, 4, to_key);
    int rc;
    while ((rc = step(st, s, "figures")) == 1)
        if ((rc = fn(ctx, c_i64(s, 0), c_text(s, 1), c_i64(s, 2))) != 0) break;
    done(s);
    return rc;
}

/* Appends alert a (inside the caller's statement or transaction). */
static int insert_alert(dcem_store *st, const dcem_store_alert *a, int64_t *id)
{
    int v1 = st->schema_version < SCHEMA_ALERT_STATE; /* tests build old stores */
    sqlite3_stmt *s = stmt(st, v1 ? S_ALERT_ADD_V1 : S_ALERT_ADD);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, a->site);
    b_i64(s, 2, a->t_ms);
    b_text(s, 3, a->kind);
    b_text(s, 4, a->message);
    b_text(s, 5, a->state == DCEM_STORE_ALERT_CLEARED ? "cleared" : "raised");
    if (!v1) b_text(s, 6, a->subject);
    int rc = run(st, s, "add_alert");
    if (!rc) *id = sqlite3_last_insert_rowid(conn(st)->db);
    return rc;
}

static int need_alert_schema(dcem_store *st, const char *what)
{
    if (st->schema_version >= SCHEMA_ALERT_STATE) return 0;
    dcem_store_set_error(st, "%s: the store is at schema %d, before alert states (%d)", what,
                         st->schema_version, SCHEMA_ALERT_STATE);
    return DCEM_ESTORAGE;
}

static int sq_add_alert(dcem_store *st, const dcem_store_alert *a, int64_t *id)
{
    int rc = op_begin_stmt(st);
    if (rc) return rc;
    return op_end_stmt(st, insert_alert(st, a, id));
}

static int sq_change_alert(dcem_store *st, const dcem_store_alert *a, int *changed, int64_t *id)
{
    int rc = need_alert_schema(st, "change_alert");
    if (rc || (rc = op_begin_stmt(st))) return rc;
    sqlite3_stmt *s = stmt(st, S_ALERT_CHANGE);
    if (!s) return op_end_stmt(st, DCEM_ESTORAGE);
    b_text(s, 1, a->site);
    b_text(s, 2, a->kind);
    b_text(s, 3, a->subject);
    b_i64(s, 4, a->state);
    b_i64(s, 5, a->t_ms);
    rc = step(st, s, "change_alert");
    done(s);
    if (rc == 1) {
        *changed = 1;
        rc = insert_alert(st, a, id);
    }
    return op_end_stmt(st, rc);
}

/* Calls fn for each alert row of s (bound; columns id, site, t_ms, kind,
 * message, state, subject), then resets s. */
static int walk_alerts(dcem_store *st, sqlite3_stmt *s, const char *what, dcem_store_alert_fn fn,
                       void *ctx)
{
    int rc;
    while ((rc = step(st, s, what)) == 1) {
        dcem_store_alert a = {
            .id = c_i64(s, 0),
            .site = c_text(s, 1),
            .t_ms = c_i64(s, 2),
            .kind = c_text(s, 3),
            .message = c_text(s, 4),
            .state = strcmp(c_text(s, 5), "cleared") == 0 ? DCEM_STORE_ALERT_CLEARED
                                                          : DCEM_STORE_ALERT_RAISED,
            .subject = c_text(s, 6),
        };
        if ((rc = fn(ctx, &a)) != 0) break;
    }
    done(s);
    return rc;
}

static int sq_alerts(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                     dcem_store_alert_fn fn, void *ctx)
{
    int rc = need_alert_schema(st, "alerts");
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, site ? S_ALERTS_SITE : S_ALERTS_ALL);
    if (!s) return DCEM_ESTORAGE;
    if (site) b_text(s, 1, site);
    b_i64(s, 2, from_ms);
    b_i64(s, 3, to_ms);
    return walk_alerts(st, s, "alerts", fn, ctx);
}

static int sq_alerts_page(dcem_store *st, const char *site, int64_t from_ms, int64_t to_ms,
                          int64_t before_t_ms, int64_t before_id, long limit,
                          dcem_store_alert_fn fn, void *ctx)
{
    int rc = need_alert_schema(st, "alerts_page");
    if (rc) return rc;
    sqlite3_stmt *s = stmt(st, S_ALERTS_PAGE);
    if (!s) return DCEM_ESTORAGE;
    b_text(s, 1, site);
    b_i64(s, 2, from_ms);
    b_i64(s, 3, to_ms);
    b_i64(s, 4, before_t_ms);
    b_i64(s, 5, before_id);
    b_i64(s, 6, limit);
    return walk_alerts(st, s, "alerts_page", fn, ctx);
}

const dcem_store_backend dcem_store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .begin_read = sq_begin_read,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .put_batch = sq_put_batch,
    .put_quarantine = sq_put_quarantine,
    .put_proof = sq_put_proof,
    .get_proof = sq_get_proof,
    .proofs = sq_proofs,
    .gateway_seq = sq_gateway_seq,
    .skip_to = sq_skip_to,
    .epochs = sq_epochs,
    .export_readings = sq_export,
    .prune = sq_prune,
    .put_intervals = sq_put_intervals,
    .get_interval = sq_get_interval,
    .intervals = sq_intervals,
    .get_rollup = sq_get_rollup,
    .rollups = sq_rollups,
    .delete_intervals = sq_delete_intervals,
    .put_meter_state = sq_put_meter_state,
    .get_meter_state = sq_get_meter_state,
    .put_checkpoint = sq_put_checkpoint,
    .get_checkpoint = sq_get_checkpoint,
    .drop_checkpoints = sq_drop_checkpoints,
    .put_figures = sq_put_figures,
    .get_figures = sq_get_figures,
    .figures = sq_figures,
    .add_alert = sq_add_alert,
    .change_alert = sq_change_alert,
    .alerts = sq_alerts,
    .last_reading_ms = sq_last_reading_ms,
    .latest_readings = sq_latest_readings,
    .alerts_page = sq_alerts_page,
};

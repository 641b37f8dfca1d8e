/* dcem-local-figures: the agent's local figures (firmware/agent/
 * local_figures.c) over a readings CSV, for tests/integration/
 * pipeline_property.sh. The rows are fed in file order, as an agent polls
 * them; after each row every interval that ended at least GRACE_MS before
 * the row's time is taken (as the agent does with the wall clock), and at
 * the end all of them. Each taken interval prints one line per role that has
 * a meter:
 *
 *   start_ms,end_ms,role,ukwh
 *
 * ukwh is the role's kWh as local_figures gives it (dcem_wire_metrics:
 * a double made from whole micro-kWh) back in micro-kWh. An interval can be
 * taken twice when a meter's energy reaches it after it was taken: the
 * caller adds the lines up.
 *
 *   dcem-local-figures AGENT.yaml READINGS.csv [GRACE_MS]
 *
 * The CSV is time,meter,kwh[,kw[,ratio]] (docs/audit.md); rows of meters the
 * agent has no device for are ignored, as the agent would never poll them. */
#include "agent_config.h"
#include "figures.h"
#include "local_figures.h"
#include "parse.h"
#include "profile.h"
#include "site.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void take(dcem_local *l, int64_t now_ms, int64_t grace_ms)
{
    dcem_wire_metrics m;
    while (dcem_local_take(l, now_ms, grace_ms, &m))
        for (int r = 0; r < DCEM_ROLE_COUNT; r++)
            if (!isnan(m.role_kwh[r]))
                printf("%lld,%lld,%s,%lld\n", (long long)m.start_ms, (long long)m.end_ms,
                       dcem_role_name(r), (long long)dcem_kwh_ukwh(m.role_kwh[r]));
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: dcem-local-figures AGENT.yaml READINGS.csv [GRACE_MS]\n");
        return 2;
    }
    char err[1024] = "";
    dcem_agent_config *c = dcem_agent_config_load(argv[1], err, sizeof err);
    if (!c) {
        fprintf(stderr, "dcem-local-figures: %s\n", err);
        return 1;
    }
    dcem_local *l = dcem_local_new(c, err, sizeof err);
    if (!l) {
        fprintf(stderr, "dcem-local-figures: %s\n", err);
        return 1;
    }
    int64_t grace = 0;
    if (argc == 4) grace = strtoll(argv[3], NULL, 10);
    FILE *fp = fopen(argv[2], "r");
    if (!fp) {
        perror(argv[2]);
        return 1;
    }
    char line[4096];
    long lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!*line || !strncmp(line, "time,", 5)) continue;
        char *f[5] = {0};
        int nf = 0;
        for (char *p = line; nf < 5;) {
            f[nf++] = p;
            char *comma = strchr(p, ',');
            if (!comma) break;
            *comma = 0;
            p = comma + 1;
        }
        dcem_wire_reading r = {.quality = DCEM_WIRE_Q_OK, .ct = 1, .pt = 1};
        double ratio = 1;
        if (nf < 3 || dcem_parse_time(f[0], strlen(f[0]), &r.t_ms) ||
            strlen(f[1]) >= sizeof r.meter ||
            (*f[2] && dcem_parse_double(f[2], strlen(f[2]), &r.kwh)) ||
            (nf >= 4 && *f[3] && dcem_parse_double(f[3], strlen(f[3]), &r.kw)) ||
            (nf == 5 && *f[4] && dcem_parse_double(f[4], strlen(f[4]), &ratio))) {
            fprintf(stderr, "dcem-local-figures: %s:%ld: not a reading\n", argv[2], lineno);
            return 1;
        }
        memcpy(r.meter, f[1], strlen(f[1]) + 1);
        r.has_kwh = *f[2] != 0;
        r.has_kw = nf >= 4 && *f[3];
        /* as dcem-agent --import carries the export's ratio */
        r.ct = ratio > DCEM_RATIO_MAX ? DCEM_RATIO_MAX : ratio;
        r.pt = ratio / r.ct;
        dcem_local_add(l, &r);
        take(l, r.t_ms, grace);
    }
    fclose(fp);
    take(l, INT64_MAX / 2, 0);
    dcem_local_free(l);
    dcem_agent_config_free(c);
    return 0;
}

/* fuzz_daemon_config.c — the agent's and the collector's config parsers
 * (firmware/agent/agent_config.c, gateway/collector/collector_config.c) on
 * hostile bytes. The first input byte picks which; the rest is the file.
 * Both take the file's bytes; the files they name (ledger, profiles, sites,
 * policy, token files) are read relative to the shipped configs/agent and
 * configs/collector folders, as if the input stood there, so an input that
 * keeps the shipped references gets past loading them into the cross-field
 * checks. Nothing is written. */
#include "fuzz.h"

#include "agent_config.h"
#include "collector_config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1); /* exactly the file's bytes: no NUL after them */
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data + 1, len);
    char err[1024] = "";
    if (data[0] & 1) {
        dcem_collector_config *c = dcem_collector_config_parse(
            DCEM_FUZZ_CONFIGS "/collector/collector.yaml", buf, len, err, sizeof err);
        FUZZ_CHECK(c || *err);
        if (c) FUZZ_CHECK(c->policy != NULL && c->n_sites <= DCEM_COLLECTOR_MAX_SITES);
        dcem_collector_config_free(c);
    } else {
        dcem_agent_config *c = dcem_agent_config_parse(DCEM_FUZZ_CONFIGS "/agent/agent.yaml", buf,
                                                       len, err, sizeof err);
        FUZZ_CHECK(c || *err);
        if (c) FUZZ_CHECK(c->n_buses <= DCEM_AGENT_MAX_BUSES &&
                          c->n_devices <= DCEM_AGENT_MAX_DEVICES);
        dcem_agent_config_free(c);
    }
    free(buf);
    return 0;
}

/* commission.h — what `dcem-agent --once` reports: one poll of every device,
 * for commissioning a meter. Per device: the result the agent would publish
 * (and why a poll failed), the requests it took, the CT/PT ratios in force
 * and where they come from, every value with its register, and the
 * registers the device refused. Printed as a table for a person at a
 * terminal, or as one JSON document (format "dcem-agent-once/1") for
 * scripts. Collects the poll results first: devices are polled bus by bus,
 * printed in the config's order. */
#ifndef DCEM_COMMISSION_H
#define DCEM_COMMISSION_H

#include "agent_config.h"
#include "poll.h"

#include <stdio.h>

typedef struct dcem_commission dcem_commission;

/* A report for the devices of c (which must outlive it). NULL when out of
 * memory. */
dcem_commission *dcem_commission_new(const dcem_agent_config *c);

/* Keeps a copy of r. quality is the reading's quality as the agent would
 * publish it (dcem_wire_quality: to_wire's verdict, which also weighs the
 * values), r->quality aside. A second result for a device replaces the first. */
void dcem_commission_add(dcem_commission *o, const dcem_poll_result *r, int quality);

/* Devices that failed (comm_error), counting those without a result (their
 * bus could not be set up). */
size_t dcem_commission_failed(const dcem_commission *o);

/* The JSON document, NUL-terminated, for the caller to free; NULL when out
 * of memory. Shape in docs/agent.md ("Commissioning a meter"). */
char *dcem_commission_json(const dcem_commission *o);

/* The table, for a terminal. */
void dcem_commission_print_table(const dcem_commission *o, FILE *f);

void dcem_commission_free(dcem_commission *o);

#endif

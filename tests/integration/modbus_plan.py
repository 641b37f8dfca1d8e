"""The fewest Modbus reads that fetch a meter's served registers, computed
from a dcem-sim truth file and the profile's limits, independently of the
agent's planner (common/profile.c): used by tests/integration/agent_partial.sh
and scripts/bench/partial.sh."""
import re

WORDS = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "u64": 4, "s64": 4, "f64": 4}


def limits(profile_file):
    """max_registers and max_gap of a profile file (max_gap 0 when absent)."""
    text = open(profile_file).read()

    def get(key):
        m = re.search(rf"^{key}:\s*(\d+)", text, re.M)
        return int(m.group(1)) if m else 0

    return get("max_registers"), get("max_gap")


def polled(meter):
    """(function, address, words) of every register a poll reads: all but
    the refused ones and the ratio registers, sorted."""
    refused = set(meter["refused"])
    return sorted((r["function"], r["address"], WORDS[r["type"]]) for r in meter["registers"]
                  if r["name"] not in refused and r["quantity"] not in ("ct_ratio", "pt_ratio"))


def minimum_plan(meter, profile_file):
    """The reads (function, first address, count) of the fewest requests:
    greedy over the registers sorted by function and address, with the
    profile's limits, never covering a refused register, nor (holes:
    refuse) an address no register holds."""
    max_regs, max_gap = limits(profile_file)
    regs = meter["registers"]
    refused = set(meter["refused"])
    bad = {(r["function"], r["address"] + i) for r in regs if r["name"] in refused
           for i in range(WORDS[r["type"]])}
    held = {(r["function"], r["address"] + i) for r in regs for i in range(WORDS[r["type"]])}
    plan, cur = [], None
    for fn, a, wd in polled(meter):
        if cur and fn == cur[0] and a <= cur[2] + max_gap and max(cur[2], a + wd) - cur[1] <= max_regs:
            span = range(cur[2], a)
            if not any((fn, x) in bad for x in span) and \
               (meter["holes"] != "refuse" or all((fn, x) in held for x in span)):
                cur = (fn, cur[1], max(cur[2], a + wd))
                continue
        if cur:
            plan.append((cur[0], cur[1], cur[2] - cur[1]))
        cur = (fn, a, a + wd)
    if cur:
        plan.append((cur[0], cur[1], cur[2] - cur[1]))
    return plan


def minimum_requests(meter, profile_file):
    return len(minimum_plan(meter, profile_file))

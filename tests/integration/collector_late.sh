#!/usr/bin/env bash
# Late data (issue 11): a year of 2025 history imported with dcem-agent
# --import after live 2026 readings had started, through a real mosquitto on
# loopback into a real dcem-collector and its SQLite store.
#
#   collector_late.sh BUILD_DIR SOURCE_DIR
#
# The 2026 readings are dcem-gen's first days of 2026 for the sample site
# yz-alpha, each meter's counter carried on from where its 2025 readings end
# (the same meters, a continuous register). They are imported first (the
# "live" data); then the whole generated 2025 year, with its faults: every
# one of those readings is older than its meter's latest.
#
# Proves: the 2025 import exits 0 and nothing is refused; the collector's
# 2025 figures (the year and each month) and its 2026 figures equal
# dcem-audit --json over the collector's own export, field by field; its
# intervals table equals dcem-audit --intervals over that export row for row
# in whole micro-kWh and counts — except each meter's last interval, which
# the collector keeps open until the meter's next reading (it is not in the
# table yet, or holds only part of it); a week of 2025 imported again (a
# gateway that was offline and replays what it had: all duplicates) is not
# refused and changes no figure and no interval.
#
# Not checked here: the engine's late_readings / rebuilds counters
# (dcem_engine_stats) are neither in the health log line nor in /metrics.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
policy=$src/configs/policy/beijing-etown-2024.yaml
make_work collector-late

start_mosquitto

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: late
sites: sites
policy: $policy
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
health_log_s: 1
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null

# agent.yaml for gateway NAME: an importing agent needs no buses or devices
# of its own; each import has its own gateway and spool
agent_config() { # NAME
  import_agent_config "$work/agent-$1.yaml" "$1" "$work/sites/yz-alpha.yaml" "$work/spool-$1" \
    alpha-ups-a
}

# import NAME CSV: delivers CSV as gateway NAME; must exit 0 with every row
# delivered and acknowledged and nothing refused
import() {
  local name=$1 csv=$2 rows rc=0 t0=$SECONDS
  rows=$(($(wc -l <"$csv") - 1))
  agent_config "$name"
  "$agent" -c "$work/agent-$name.yaml" --import "$csv" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  wait "$pid" || rc=$?
  ((rc == 0)) || fail "the import of $(basename "$csv") exited $rc: $(tail -5 "$work/$name.err")"
  grep -q "import of .* complete: $rows readings delivered and acknowledged, 0 rows skipped" \
    "$work/$name.err" || fail "$name's summary: $(grep 'import of' "$work/$name.err")"
  ! grep -Eq "collector refused|refused to count" "$work/$name.err" ||
    fail "$name: refusals: $(grep -E 'collector refused|refused to count' "$work/$name.err")"
  grep -qF "refused by the collector: 0 unknown_meter, 0 future, 0 out_of_range, 0 wrong_kind, 0 quarantined" \
    "$work/$name.err" || fail "$name's stats line: $(grep 'refused by' "$work/$name.err")"
  echo "$name: $rows readings of $(basename "$csv") imported in $((SECONDS - t0)) s"
}

# the year 2025 with its faults, through the reading that closes it; the
# first four days of 2026 carried on from it
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/y2025.csv" \
  --truth "$work/truth-2025.json" >/dev/null
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2026 --out "$work/y2026.csv" \
  --truth "$work/truth-2026.json" >/dev/null
$PY - "$work" <<'EOF'
import sys
w = sys.argv[1]
MODULO = {"alpha-pv": 1000000}  # the ledger's counter_modulo_kwh
def rows(path):
    lines = open(path).read().splitlines()
    return lines[0], [l.split(",") for l in lines[1:]]
head, y25 = rows(f"{w}/y2025.csv")
_, y26 = rows(f"{w}/y2026.csv")
last = {}
for f in y25: last[f[1]] = f  # rows of a meter are in time order
first = {}
for f in y26: first.setdefault(f[1], f)
out = [head]
for f in y26:
    t, m, kwh = f[0], f[1], f[2]
    if t[:10] >= "2026-01-05" or t == first[m][0]:  # its first reading is 2025's last
        continue
    dec = len(kwh.split(".")[1]) if "." in kwh else 0
    v = float(kwh) - float(first[m][2]) + float(last[m][2])
    if m in MODULO: v %= MODULO[m]
    out.append(",".join([t, m, f"{v:.{dec}f}"] + f[3:]))
open(f"{w}/live2026.csv", "w").write("\n".join(out) + "\n")
# a week of 2025 again: a replay of what the collector already has
week = [head] + [",".join(f) for f in y25 if "2025-06-10" <= f[0][:10] < "2025-06-17"]
open(f"{w}/week.csv", "w").write("\n".join(week) + "\n")
EOF

"$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"

import gw-live "$work/live2026.csv"
import gw-history "$work/y2025.csv"

# check [LABEL]: the figures of 2025 and 2026 and the intervals against
# dcem-audit over the collector's export; saves them as LABEL-*
check() {
  local label=$1 y
  "$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2026-02-01 \
    >"$work/$label-export.csv"
  for y in 2025 2026; do
    "$col" figures -c "$work/collector.yaml" --site yz-alpha --year $y >"$work/$label-collector-$y.json"
    "$audit" --site "$work/sites/yz-alpha.yaml" --policy "$policy" --readings "$work/$label-export.csv" \
      --year $y --json --intervals "$work/$label-audit-intervals.csv" >"$work/$label-audit-$y.json"
  done
  sqlite3 -cmd '.timeout 5000' -csv -header "$work/store.db" \
    "SELECT n.name AS meter, start_ms, end_ms, ukwh, estimated_ukwh, estimated_day_ukwh, estimated_month_ukwh,
            estimated_year_ukwh, integrated_ukwh, covered_ms, readings, discarded, rollovers, resets
     FROM intervals i JOIN names n ON n.id = i.meter
     WHERE i.site = (SELECT id FROM names WHERE name = 'yz-alpha') ORDER BY n.name, start_ms" >"$work/$label-intervals.csv"
  $PY - "$work" "$label" <<'EOF'
import collections, csv, datetime, json, sys
w, label = sys.argv[1:3]
bad = []
ms = lambda t: round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
# the export is exactly what was imported (the replayed week adds nothing)
def table(path):
    out = collections.Counter()
    for r in csv.DictReader(open(path)):
        out[(ms(r["time"]), r["meter"], float(r["kwh"]))] += 1
    return out
sent = table(f"{w}/y2025.csv") + table(f"{w}/live2026.csv")
exp = table(f"{w}/{label}-export.csv")
if exp != sent:
    bad.append(f"export {sum(exp.values())} rows, imported {sum(sent.values())}: "
               f"{len(sent - exp)} missing, {len(exp - sent)} extra")
summary = []
for y in (2025, 2026):
    col = json.load(open(f"{w}/{label}-collector-{y}.json"))
    aud = json.load(open(f"{w}/{label}-audit-{y}.json"))
    if aud["readings"]["rejected"]: bad.append(f"dcem-audit rejected {aud['readings']['rejected']} rows")
    if len(col) != len(aud["periods"]):
        bad.append(f"{y}: {len(col)} periods from the collector, {len(aud['periods'])} from dcem-audit")
    for c, a in zip(col, aud["periods"]):
        for k, v in a.items():
            if c.get(k) != v: bad.append(f"{a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
    yr = col[-1]
    summary.append(f"{yr['period']}: {yr['total_kwh']} kWh, PUE {yr['pue']}, {yr['verdicts']}")
# intervals: the store's table against dcem-audit --intervals, row for row
F = ["ukwh", "estimated_ukwh", "estimated_day_ukwh", "estimated_month_ukwh", "estimated_year_ukwh",
     "integrated_ukwh", "covered_ms", "readings", "discarded", "rollovers", "resets"]
def ivs(path, start, end):
    out = {}
    for r in csv.DictReader(open(path)):
        s, e = start(r), end(r)
        out[(r["meter"], s)] = (e,) + tuple(int(r[k]) for k in F)
    return out
sto = ivs(f"{w}/{label}-intervals.csv", lambda r: int(r["start_ms"]), lambda r: int(r["end_ms"]))
aud = ivs(f"{w}/{label}-audit-intervals.csv", lambda r: ms(r["start"]), lambda r: ms(r["end"]))
# each meter's last interval: still open in the collector (until its next reading)
last = {}
for m, s in aud: last[m] = max(last.get(m, s), s)
open_ = {(m, s) for m, s in last.items()}
n_ok = 0
for k in sorted(set(sto) | set(aud)):
    if k in open_: continue
    a, s = aud.get(k), sto.get(k)
    if a != s:
        what = (dict(zip(["end"] + F, a)) if a else None, dict(zip(["end"] + F, s)) if s else None)
        bad.append(f"interval {k[0]} {datetime.datetime.fromtimestamp(k[1] / 1000, datetime.timezone.utc):%Y-%m-%dT%H:%MZ}:"
                   f" dcem-audit {what[0]}, collector {what[1]}")
    else:
        n_ok += 1
print(f"{label}: export = the imported readings ({sum(sent.values())}); 2025 and 2026 figures equal to"
      f" dcem-audit's; {n_ok} intervals equal ({len(open_)} open ones left out)")
print("  " + "; ".join(summary))
if bad:
    print(f"{len(bad)} differences:"); print("\n".join(bad[:30])); sys.exit(1)
EOF
}
check after-import || fail "the collector differs from dcem-audit after the 2025 import"

# a gateway that was offline a week replays it: every reading a duplicate
import gw-replay "$work/week.csv"
check after-replay || fail "the collector differs from dcem-audit after the replayed week"
for y in 2025 2026; do
  cmp -s "$work/after-import-collector-$y.json" "$work/after-replay-collector-$y.json" ||
    fail "the replayed week changed the $y figures"
done
cmp -s "$work/after-import-intervals.csv" "$work/after-replay-intervals.csv" ||
  fail "the replayed week changed the stored intervals"

kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"
grep -q "health: received" "$work/collector.err" || fail "no health line from the collector"
echo "collector_late.sh: passed"

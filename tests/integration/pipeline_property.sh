#!/usr/bin/env bash
# The one meter pipeline (issue 11, "Done when"): random streams with
# rollovers, a meter replacement (reset), a glitch, gaps (some across the
# month end), a ratio change, jittered polls, late and duplicate deliveries,
# through the three paths, compared in whole micro-kWh with no rounding step:
#
#   (a) dcem-audit --intervals and --json over the readings sorted by time;
#   (b) dcem-agent --import -> a real mosquitto on loopback -> a real
#       dcem-collector and its SQLite store, the readings delivered out of
#       order: the last third first, then the first two thirds (late), then a
#       random 10 % again (duplicates); every import exits 0 and nothing is
#       refused; the stored intervals, the month and year figures and the
#       export against (a);
#   (c) the agent's local figures (firmware/agent/local_figures.c, through
#       tests/tools/dcem-local-figures.c) over the sorted readings — in order
#       only, as an agent polls — against (a)'s intervals added up by role.
#
#   pipeline_property.sh BUILD_DIR SOURCE_DIR
#
# Seeds 1, 2 and 3, each printed; DCEM_PROPERTY_SEED=N runs seed N only. The
# stream of a seed is described in tests/integration/pipeline_property.py.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
audit=$build/gateway/audit/dcem-audit
local_figures=$build/tests/dcem-local-figures
driver=$src/tests/integration/pipeline_property.py
policy=$src/configs/policy/beijing-etown-2024.yaml
for b in "$agent" "$col" "$audit" "$local_figures"; do [[ -x $b ]] || fail "no $b"; done
make_work pipeline-property
seeds=(${DCEM_PROPERTY_SEED:-1 2 3})

start_mosquitto

failed=()
run_seed() { # SEED: one stream through the three paths, in $work/seed-SEED
  local seed=$1 d=$work/seed-$1 n rc
  mkdir -p "$d/sites"
  cat >"$d/sites/prop.yaml" <<EOF
site: prop
name: pipeline property test
timezone: Asia/Shanghai
racks: 60
rack_power_kw: 600
approved_annual_kwh: 20000000
interval_minutes: 15
meters:
  - {id: p-fac, role: facility, rated_kw: 1000, counter_resolution_kwh: 0.01}
  - {id: p-it, role: it, rated_kw: 800, counter_resolution_kwh: 0.01}
  - {id: p-pv, role: green_onsite, rated_kw: 300, counter_resolution_kwh: 0.01, counter_modulo_kwh: 10000}
  - {id: p-cool, role: cooling, rated_kw: 500, counter_resolution_kwh: 0.01}
EOF
  cat >"$d/collector.yaml" <<EOF
collector: property-$seed
sites: sites
policy: $policy
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
health_log_s: 1
EOF
  echo "seed $seed:"
  $PY "$driver" gen "$seed" "$d"

  # (a)
  "$audit" --site "$d/sites/prop.yaml" --policy "$policy" --readings "$d/sorted.csv" --year 2025 \
    --json --intervals "$d/audit-intervals.csv" >"$d/audit-2025.json"

  # (b)
  "$col" -c "$d/collector.yaml" >"$d/collector.out" 2>"$d/collector.err" &
  local cpid=$!
  pids+=("$cpid")
  wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$d/collector.err"
  for n in 1 2 3; do
    import_agent_config "$d/agent-$n.yaml" "gw-$n" "$d/sites/prop.yaml" "$d/spool-$n" \
      p-fac:300000 p-it:900000 p-pv:900000 p-cool:900000
    rc=0
    "$agent" -c "$d/agent-$n.yaml" --import "$d/deliver-$n.csv" >"$d/agent-$n.out" 2>"$d/agent-$n.err" &
    local apid=$!
    pids+=("$apid")
    wait "$apid" || rc=$?
    ((rc == 0)) || fail "seed $seed: the import of deliver-$n.csv exited $rc: $(tail -3 "$d/agent-$n.err")"
    ! grep -Eq "collector refused|refused to count" "$d/agent-$n.err" ||
      fail "seed $seed: deliver-$n.csv: $(grep -E 'collector refused|refused to count' "$d/agent-$n.err")"
  done
  "$col" figures -c "$d/collector.yaml" --site prop --year 2025 >"$d/collector-2025.json"
  "$col" export -c "$d/collector.yaml" --site prop --from 2025-03-01 --to 2025-05-01 >"$d/export.csv"
  sqlite3 -cmd '.timeout 5000' -csv -header "$d/store.db" \
    "SELECT n.name AS meter, start_ms, end_ms, ukwh, estimated_ukwh, estimated_day_ukwh, estimated_month_ukwh,
            estimated_year_ukwh, integrated_ukwh, covered_ms, readings, discarded, rollovers, resets
     FROM intervals i JOIN names n ON n.id = i.meter
     WHERE i.site = (SELECT id FROM names WHERE name = 'prop') ORDER BY n.name, start_ms" >"$d/store-intervals.csv"
  kill -TERM "$cpid"
  wait "$cpid" || fail "seed $seed: the collector exited with $?"

  # (c): the agent's grace is twice its longest poll (firmware/agent/agent.c)
  "$local_figures" "$d/agent-1.yaml" "$d/sorted.csv" 1800000 >"$d/local.csv"

  $PY "$driver" check "$d" || failed+=("$seed")
}

t0=$SECONDS
for seed in "${seeds[@]}"; do run_seed "$seed"; done
echo "${#seeds[@]} seeds in $((SECONDS - t0)) s"
((${#failed[@]} == 0)) || fail "seeds ${failed[*]}: the paths differ (above)"
echo "pipeline_property.sh: passed"

#!/usr/bin/env bash
# The dashboard (gateway/dashboard, docs/dashboard.md) in headless Chromium
# against real parts: mosquitto on loopback, dcem-collector with its API on
# a free loopback port serving the dashboard from its default directory,
# and data through the real ingest paths: this year of yz-alpha up to now
# backfilled as the demo does it (dcem-gen --until, delivered by
# dcem-agent --import; hourly readings, green contracts added to its ledger
# so it is reward-eligible) and the last three weeks of yz-beta played by
# dcem-replay (15-minute readings, a small approved cap so the cap verdicts
# show, one glitched reading, a stale reading with power, a gateway gone
# offline).
#
#   dashboard.sh BUILD_DIR SOURCE_DIR [OUT_DIR]
#
# Proves: every figure the page shows (each element marked data-figure=
# "<endpoint>:<json path>") equals the API's value for the same request,
# fetched with curl and the same token, after the page's formatting rules
# (js/format.js); the views are complete (overview, a site's live power,
# PUE of four periods, green share against the threshold, the cap
# burn-down with projection, verdicts with clauses, alerts, meters with a
# stale one, counter events); live power refreshes on its timer; yz-alpha's
# live view (this year) has its data: a PUE, not a dash, for the interval,
# the month, the year to date and 12 months, non-zero energy and cap use, a
# burn-down line and bar for every month so far, a live power sparkline of
# non-zero totals (dashboard-site-alpha-en.png); the
# Chinese view has Chinese labels; an operator sees only its own site and
# gets "403" for another; without a token only the public list. Screenshots
# go to OUT_DIR (default BUILD_DIR/tests) as dashboard-*.png.
set -euo pipefail
build=$1
src=$2
out=${3:-$build/tests}
. "$(dirname "$0")/lib.sh"
command -v chromium >/dev/null || { echo "SKIP: chromium is not installed (scripts/deps.sh installs it)"; exit 77; }
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
agent=$build/firmware/agent/dcem-agent
make_work dash
started=$SECONDS
mkdir -p "$out" "$work/sites"

start_mosquitto

# yz-alpha hourly (a year replays in seconds) with green contracts this
# year; yz-beta with an approved cap its three weeks come close to
year=$(TZ=Asia/Shanghai date +%Y)
sed 's/^interval_minutes: 15$/interval_minutes: 60/' "$src/configs/sites/yz-alpha.yaml" >"$work/sites/yz-alpha.yaml"
for m in 01 02 03 04 05 06 07 08 09 10 11 12; do
  echo "  - {month: $year-$m, kwh: 600000, kind: contract}" >>"$work/sites/yz-alpha.yaml"
done
sed 's/^approved_annual_kwh: 21000000$/approved_annual_kwh: 1000000/' "$src/configs/sites/yz-beta.yaml" \
  >"$work/sites/yz-beta.yaml"
grep -q '^interval_minutes: 60$' "$work/sites/yz-alpha.yaml" || fail "yz-alpha ledger not adapted"
grep -q '^approved_annual_kwh: 1000000$' "$work/sites/yz-beta.yaml" || fail "yz-beta ledger not adapted"

reg=regulator-token-$RANDOM$RANDOM-abcdefgh
alpha_tok=alpha-operator-$RANDOM$RANDOM-abcdefgh
aport=$(free_port)
# no dashboard_dir: the built-in default, the source tree's gateway/dashboard
cat >"$work/collector.yaml" <<EOF
collector: dashboard-test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
recompute_ms: 200
health_log_s: 1
api:
  listen: 127.0.0.1:$aport
  tokens:
    - {name: regulator, role: regulator, token: "$reg"}
    - {name: alpha-ops, role: operator, sites: [yz-alpha], token: "$alpha_tok"}
EOF

# the readings: this year up to now (and last year, early in January,
# whose counters this year's carry on from)
until=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for s in alpha beta; do
  step=15
  [[ $s == alpha ]] && step=60
  cont=()
  echo "time,meter,kwh" >"$work/$s-y.csv"
  if [[ $(TZ=Asia/Shanghai date +%m%d) < 0122 ]]; then
    "$gen" --site "$work/sites/yz-$s.yaml" --year $((year - 1)) --step-minutes $step \
      --out "$work/$s-p.csv" --truth "$work/$s-ptruth.json" --end-counters "$work/$s-p-end.csv" >/dev/null
    tail -n +2 "$work/$s-p.csv" >>"$work/$s-y.csv"
    cont=(--start-counters "$work/$s-p-end.csv")
  fi
  "$gen" --site "$work/sites/yz-$s.yaml" --year "$year" --step-minutes $step --until "$until" "${cont[@]}" \
    --out "$work/$s-t.csv" --truth "$work/$s-truth.json" >/dev/null
  tail -n +2 "$work/$s-t.csv" >>"$work/$s-y.csv"
done
$PY - "$work" <<'EOF'
import csv, sys, time
from datetime import datetime, timedelta, timezone
w = sys.argv[1]
now = time.time()
cst = timezone(timedelta(hours=8))
jan1 = datetime(datetime.fromtimestamp(now, cst).year, 1, 1, tzinfo=cst).timestamp()
def cut(src, dst, since, glitch=None):
    rows = [r for r in list(csv.reader(open(src)))[1:]
            if since <= datetime.fromisoformat(r[0]).timestamp() <= now]
    g = None
    if glitch:  # one reading of a meter three hours ago read as 0: discarded, bridged
        cands = [i for i, r in enumerate(rows) if r[1] == glitch]
        g = min(cands, key=lambda i: abs(datetime.fromisoformat(rows[i][0]).timestamp() - (now - 3 * 3600)))
        rows[g] = [rows[g][0], rows[g][1], "0"]
    with open(dst, "w") as o:
        o.write("time,meter,kwh\n")
        for r in rows: o.write(",".join(r) + "\n")
    return len(rows), (rows[g][0] if g is not None else "")
a, _ = cut(f"{w}/alpha-y.csv", f"{w}/alpha.csv", min(jan1, now - 21 * 86400))
b, gt = cut(f"{w}/beta-y.csv", f"{w}/beta.csv", now - 21 * 86400, glitch="beta-crac")
open(f"{w}/glitch.txt", "w").write(gt + "\n")
print(f"readings: yz-alpha {a} (this year, hourly), yz-beta {b} (3 weeks), beta-crac glitched at {gt}")
EOF

"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
api=http://127.0.0.1:$aport
wait_for "the API" 10 curl -sf "$api/healthz"
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
curl -sf "$api/" | grep -q 'js/main.js' || fail "/ is not the dashboard (api.dashboard_dir default)"

# yz-alpha's year as the demo backfills it (dcem-agent --import), yz-beta's
# weeks played by dcem-replay, at the same time
import_agent_config "$work/import-alpha.yaml" gw-a0 "$work/sites/yz-alpha.yaml" "$work/spool-alpha" alpha-ups-a
"$agent" -c "$work/import-alpha.yaml" --import "$work/alpha.csv" >"$work/import-a.out" 2>"$work/import-a.err" &
ipid=$!
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-beta --gateway gw-b0 --csv "$work/beta.csv" \
  >"$work/replay-b.out" 2>&1 &
rpid=$!
pids+=("$ipid" "$rpid")
wait "$rpid" || fail "the replay failed: $(cat "$work/replay-b.out")"
wait "$ipid" || fail "the import of yz-alpha failed: $(tail -3 "$work/import-a.err")"
grep -q "import of .* complete: $(($(wc -l <"$work/alpha.csv") - 1)) readings delivered and acknowledged" \
  "$work/import-a.err" || fail "the import of yz-alpha: $(grep 'import of' "$work/import-a.err")"
echo "imported and replayed in $((SECONDS - started)) s"

# a stale reading with power (meter status, a meter_stale alert, power from
# a reading) and a gateway's last will (a gateway_offline alert)
read -r stale_t stale_kwh < <(grep ',beta-in-1,' "$work/beta.csv" | tail -n 1 | $PY -c '
import sys
from datetime import datetime
t, m, kwh = sys.stdin.read().strip().split(",")
print(int(datetime.fromisoformat(t).timestamp() * 1000) + 60000, float(kwh) + 1.5)')
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-beta/gw-stale/data -m \
  "{\"v\":1,\"site\":\"yz-beta\",\"gateway\":\"gw-stale\",\"epoch\":1,\"seq\":1,\"readings\":[{\"meter\":\"beta-in-1\",\"t\":$stale_t,\"q\":\"stale\",\"kwh\":$stale_kwh,\"kw\":812.5}]}"
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-beta/gw-b0/state -m '{"v":1,"online":false}'
wait_for "the gateway_offline alert" 10 grep -q "gateway gw-b0 offline" "$work/collector.err"
wait_for "the meter_stale alert" 10 grep -q "meter beta-in-1 stale" "$work/collector.err"
recomputes() {
  curl -s -H "Authorization: Bearer $reg" "$api/metrics" | awk '$1 == "dcem_recomputes_total" {print $2}'
}
settled() {
  local a b
  a=$(recomputes)
  sleep 0.5
  b=$(recomputes)
  [[ -n $a && $a == "$b" && $a != 0 ]]
}
wait_for "the figures to settle" 30 settled
echo "settled at $((SECONDS - started)) s"

# browse: NAME TOKEN FRAGMENT [WxH]: the DOM after 12 s of the page's
# virtual time (live power polls every 5 s) to $work/NAME.html, a
# screenshot to $out/dashboard-NAME.png
browse() {
  local name=$1 token=$2 frag=$3 size=${4:-1400,1000}
  local url="$api/#${token:+token=$token&}$frag"
  rm -rf "$work/chromium-$name"
  timeout 60 chromium --headless=new --no-sandbox --disable-gpu --no-first-run --disable-extensions \
    --user-data-dir="$work/chromium-$name" --virtual-time-budget=12000 --window-size="$size" \
    --screenshot="$out/dashboard-$name.png" --dump-dom "$url" >"$work/$name.html" 2>"$work/chromium-$name.err" ||
    fail "chromium failed on $name: $(grep -v -e dbus -e 'unexpected operator' "$work/chromium-$name.err" | tail -5)"
  [[ -s $out/dashboard-$name.png ]] || fail "no screenshot of $name"
}

# check: NAME TOKEN KIND [SITE]: every data-figure of the DOM against the API
check() {
  API="$api" TOKEN="$2" KIND="$3" SITE="${4:-}" GLITCH="$(cat "$work/glitch.txt")" \
    $PY "$src/tests/integration/dashboard_check.py" "$work/$1.html"
}

# view NAME TOKEN FRAGMENT KIND [SITE] [WxH]: browse and check; a mismatch
# is looked at again once, with a new page, since the live endpoints (power,
# meters, the last interval) answer for "now" and may cross an interval's
# end between the page's request and the test's
view() {
  local name=$1 token=$2 frag=$3 kind=$4 site=${5:-} size=${6:-1400,1000}
  browse "$name" "$token" "$frag" "$size"
  if ! check "$name" "$token" "$kind" "$site" >"$work/check-$name.out" 2>&1; then
    echo "dashboard: $name: a mismatch, loading the page again: $(tail -3 "$work/check-$name.out")"
    browse "$name" "$token" "$frag" "$size"
    check "$name" "$token" "$kind" "$site" >"$work/check-$name.out" 2>&1 ||
      { cat "$work/check-$name.out"; fail "$name: the page differs from the API"; }
  fi
  cat "$work/check-$name.out"
}

view overview-en "$reg" "lang=en" overview
view site-alpha-en "$reg" "site=yz-alpha&lang=en" site-live yz-alpha 1400,2400
view site-beta-zh "$reg" "site=yz-beta&lang=zh" site-zh yz-beta 1400,2400
view overview-zh "$reg" "lang=zh" overview-zh
view operator-overview "$alpha_tok" "lang=en" operator
view operator-other "$alpha_tok" "site=yz-beta&lang=en" forbidden yz-beta
view public "" "lang=en" public

kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector did not stop cleanly"
if grep -E "Sanitizer|runtime error" "$work/collector.err"; then fail "sanitizer"; fi
for f in "$out"/dashboard-*.png; do echo "screenshot: $f"; done
echo "dashboard.sh: passed in $((SECONDS - started)) s"

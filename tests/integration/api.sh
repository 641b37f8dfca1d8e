#!/usr/bin/env bash
# The collector's HTTP API (docs/api.md) against real parts: mosquitto on
# loopback, dcem-collector with its API on a free loopback port, and data
# through the real ingest path (dcem-replay playing agents): a whole year
# 2025 of yz-alpha (hourly readings, four gateways) and the last days of
# yz-beta up to now (15-minute readings), then a stale reading with power
# and a malformed payload.
#
#   api.sh BUILD_DIR SOURCE_DIR
#
# Proves: every endpoint's status and JSON shape; month and year figures
# equal `dcem-collector figures` and dcem-audit over the API's own export
# (and the export equals `dcem-collector export` byte for byte); year to
# date equals dcem-audit --as-of; days sum to their month, intervals to
# their day; access control (no token 401, wrong token 401, an operator
# reading another's site 403, an operator's export 403, the regulator
# everything, the public only the compliant list, /healthz and static
# files); bad parameters 400 naming the parameter; /metrics parses as
# Prometheus text and equals the collector's health log line; the static
# server refuses traversal and symbolic links; SIGHUP moves the listener and
# re-reads the tokens; config errors name file:line: key.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work api
started=$SECONDS

start_mosquitto

# yz-alpha with hourly intervals, so a whole year replays in seconds; yz-beta as shipped
mkdir -p "$work/sites" "$work/dash/js" "$work/dash/sub"
sed 's/^interval_minutes: 15$/interval_minutes: 60/' "$src/configs/sites/yz-alpha.yaml" \
  >"$work/sites/yz-alpha.yaml"
grep -q '^interval_minutes: 60$' "$work/sites/yz-alpha.yaml" || fail "yz-alpha ledger not adapted"
cp "$src/configs/sites/yz-beta.yaml" "$work/sites/"

# dashboard files, a secret beside them, and links that point out of them
echo '<!doctype html><title>dcem</title>' >"$work/dash/index.html"
echo 'console.log("dcem");' >"$work/dash/js/app.js"
echo 'sub' >"$work/dash/sub/index.html"
echo 'hidden' >"$work/dash/.hidden"
echo 'SECRET' >"$work/secret.txt"
ln -s ../secret.txt "$work/dash/link.txt"
ln -s .. "$work/dash/up"

reg=regulator-token-$RANDOM$RANDOM-abcdefgh
alpha_tok=alpha-operator-$RANDOM$RANDOM-abcdefgh
export DCEM_TEST_BETA_TOKEN=beta-operator-$RANDOM$RANDOM-abcdefgh
printf '%s\n' "$alpha_tok" >"$work/alpha.token"
chmod 600 "$work/alpha.token" # token files must be 0600 or stricter
aport=$(free_port)
write_config() { # $1 api port
  cat >"$work/collector.yaml" <<EOF
collector: api-test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
recompute_ms: 200
health_log_s: 1
api:
  listen: 127.0.0.1:$1
  dashboard_dir: dash
  metrics: regulator
  tokens:
    - {name: regulator, role: regulator, token: "$reg"}
    - {name: alpha-ops, role: operator, sites: [yz-alpha], token_file: alpha.token}
    - {name: beta-ops, role: operator, sites: [yz-beta], token_env: DCEM_TEST_BETA_TOKEN}
EOF
}
write_config "$aport"
"$col" -c "$work/collector.yaml" --check-config

# configuration errors name file:line: key
check_error() { # $1 expected pattern, stdin: the api section
  { sed '/^api:/,$d' "$work/collector.yaml"; cat; } >"$work/bad.yaml"
  local out
  out=$("$col" -c "$work/bad.yaml" --check-config 2>&1) && fail "bad api section accepted: $1"
  grep -qE "$1" <<<"$out" || fail "expected /$1/, got: $out"
}
check_error 'bad\.yaml:[0-9]+: api\.tokens\[0\]: a token must be 16 to 255 characters' <<'EOF'
api:
  tokens: [{role: regulator, token: short}]
EOF
check_error "bad\.yaml:[0-9]+: api\.tokens\[0\]: sites: no ledger for site 'yz-nowhere'" <<'EOF'
api:
  tokens: [{role: operator, sites: [yz-nowhere], token: "0123456789abcdef0123"}]
EOF
check_error 'bad\.yaml:[0-9]+: api\.tokens\[0\]: an operator needs .sites.' <<'EOF'
api:
  tokens: [{role: operator, token: "0123456789abcdef0123"}]
EOF
check_error 'bad\.yaml:[0-9]+: api\.tokens\[1\]: the same token as tokens\[0\]' <<'EOF'
api:
  tokens:
    - {role: regulator, token: "0123456789abcdef0123"}
    - {role: operator, sites: [yz-beta], token: "0123456789abcdef0123"}
EOF
check_error 'bad\.yaml:[0-9]+: api\.tokens\[0\]: token_env: the environment variable DCEM_NO_SUCH_VAR' <<'EOF'
api:
  tokens: [{role: regulator, token_env: DCEM_NO_SUCH_VAR}]
EOF
check_error 'bad\.yaml:[0-9]+: api\.tokens\[0\]: give exactly one of token, token_file, token_env' <<'EOF'
api:
  tokens: [{role: regulator, token: "0123456789abcdef0123", token_env: HOME}]
EOF
check_error "bad\.yaml:[0-9]+: api\.listen: 'localhost' is not a numeric IPv4 address" <<'EOF'
api:
  listen: localhost:8080
EOF
check_error 'bad\.yaml:[0-9]+: api\.tokens\[0\]\.role: .admin. is not one of: operator, regulator' <<'EOF'
api:
  tokens: [{role: admin, token: "0123456789abcdef0123"}]
EOF

# the data: yz-alpha 2025, four gateways of two meters each; yz-beta from
# ten days ago to five minutes ago, two gateways
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --step-minutes 60 --out "$work/alpha.csv" \
  --truth "$work/alpha-truth.json" >/dev/null
"$gen" --site "$work/sites/yz-beta.yaml" --year "$(date -u +%Y)" --out "$work/beta-year.csv" \
  --truth "$work/beta-truth.json" >/dev/null
if [[ $(date -u +%m%d) < 0111 ]]; then # early January: last year's end as well
  "$gen" --site "$work/sites/yz-beta.yaml" --year "$(($(date -u +%Y) - 1))" \
    --out "$work/beta-prev.csv" --truth "$work/beta-prev.json" >/dev/null
  tail -n +2 "$work/beta-year.csv" >>"$work/beta-prev.csv"
  mv "$work/beta-prev.csv" "$work/beta-year.csv"
fi
$PY - "$work" <<'EOF'
import csv, sys, time
from datetime import datetime
w = sys.argv[1]
def split(src, prefix, n, keep=lambda t: True):
    rows = list(csv.reader(open(src)))
    meters = []
    for r in rows[1:]:
        if r[1] not in meters: meters.append(r[1])
    outs = [open(f"{w}/{prefix}-{i}.csv", "w") for i in range(n)]
    for o in outs: o.write("time,meter,kwh\n")
    kept = 0
    for r in rows[1:]:
        if keep(datetime.fromisoformat(r[0]).timestamp()):
            outs[meters.index(r[1]) * n // len(meters)].write(",".join(r) + "\n")
            kept += 1
    return kept
now = time.time()
a = split(f"{w}/alpha.csv", "alpha", 4)
b = split(f"{w}/beta-year.csv", "beta", 2, lambda t: now - 10 * 86400 <= t <= now - 300)
print(f"readings: yz-alpha {a} (2025, hourly), yz-beta {b} (the last 10 days)")
EOF

"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
api=http://127.0.0.1:$aport
wait_for "the API" 10 curl -sf "$api/healthz"
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"

rpids=()
for i in 0 1 2 3; do
  "$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway "gw-a$i" \
    --csv "$work/alpha-$i.csv" >"$work/replay-a$i.out" 2>&1 &
  rpids+=($!)
done
for i in 0 1; do
  "$replay" --uri "tcp://127.0.0.1:$port" --site yz-beta --gateway "gw-b$i" \
    --csv "$work/beta-$i.csv" >"$work/replay-b$i.out" 2>&1 &
  rpids+=($!)
done
pids+=("${rpids[@]}")
for p in "${rpids[@]}"; do wait "$p" || fail "a replay failed: $(cat "$work"/replay-*.out)"; done
echo "replayed in $((SECONDS - started)) s"

# a stale reading that carries power (for meters, power and a meter_stale
# alert), a malformed payload (refused, counted by gateway and reason), and
# a gateway's last will (a gateway_offline alert)
read -r stale_t stale_kwh < <(tail -n 1 "$work/beta-0.csv" | $PY -c '
import sys
from datetime import datetime
t, m, kwh = sys.stdin.read().strip().split(",")
print(int(datetime.fromisoformat(t).timestamp() * 1000) + 60000, float(kwh) + 1.5)')
stale_meter=$(tail -n 1 "$work/beta-0.csv" | cut -d, -f2)
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-beta/gw-stale/data -m \
  "{\"v\":1,\"site\":\"yz-beta\",\"gateway\":\"gw-stale\",\"epoch\":1,\"seq\":1,\"readings\":[{\"meter\":\"$stale_meter\",\"t\":$stale_t,\"q\":\"stale\",\"kwh\":$stale_kwh,\"kw\":123.5}]}"
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-beta/gw-bad/data -m '{"v":1,'
mosquitto_pub -p "$port" -q 1 -t dcem/v1/yz-beta/gw-b1/state -m '{"v":1,"online":false}'
wait_for "the gateway_offline alert" 10 grep -q "gateway gw-b1 offline" "$work/collector.err"
wait_for "the meter_stale alert" 10 grep -q "meter $stale_meter stale" "$work/collector.err"
wait_for "the refusal" 10 grep -q "gw-bad: malformed payload" "$work/collector.err"
# the figures of everything stored: recomputes run until nothing is dirty
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

# the command-line views of the same store, for comparison
"$col" figures -c "$work/collector.yaml" --site yz-alpha --year 2025 >"$work/cli-figures.json"
"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-31T16:00:00Z \
  --to 2026-01-01T16:00:00Z >"$work/cli-export.csv"
curl -sf -H "Authorization: Bearer $reg" -o "$work/api-export.csv" \
  "$api/api/v1/sites/yz-alpha/export?from=2025-01-01&to=2026-01-02"
cmp "$work/cli-export.csv" "$work/api-export.csv" ||
  fail "the API's export differs from dcem-collector export"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/api-export.csv" --year 2025 --json >"$work/audit-alpha.json"
yesterday=$(TZ=Asia/Shanghai date -d yesterday +%F)
curl -sf -H "Authorization: Bearer $reg" -o "$work/api-export-beta.csv" \
  "$api/api/v1/sites/yz-beta/export?from=$(date -u +%Y -d '-15 days')-01-01&to=$(TZ=Asia/Shanghai date -d tomorrow +%F)"
"$audit" --site "$work/sites/yz-beta.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/api-export-beta.csv" --year "$(TZ=Asia/Shanghai date -d yesterday +%Y)" \
  --as-of "$yesterday" --json >"$work/audit-beta.json"

# /metrics against the health line logged after it was read (nothing moves now)
curl -sf -H "Authorization: Bearer $reg" -o "$work/metrics.txt" "$api/metrics"
lines=$(grep -c "health: received" "$work/collector.err")
more_health() { (($(grep -c "health: received" "$work/collector.err") > lines)); }
wait_for "a health line" 5 more_health
grep "health: received" "$work/collector.err" | tail -1 >"$work/health.txt"
grep "health: refused from" "$work/collector.err" | tail -1 >>"$work/health.txt"

API="$api" REG="$reg" ALPHA="$alpha_tok" BETA="$DCEM_TEST_BETA_TOKEN" YESTERDAY="$yesterday" \
  STALE_METER="$stale_meter" $PY - "$work" <<'EOF'
import http.client, json, os, re, subprocess, sys, time, urllib.parse
from datetime import datetime, timezone
w = sys.argv[1]
api = os.environ["API"]
host, port = api[len("http://"):].split(":")
REG, ALPHA, BETA = os.environ["REG"], os.environ["ALPHA"], os.environ["BETA"]
bad = []
def check(cond, what):
    if not cond: bad.append(what)
    return cond

def req(path, token=None, method="GET", header=None):
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    h = {}
    if token: h["Authorization"] = "Bearer " + token
    if header: h.update(header)
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body

def get(path, token=REG, status=200):
    s, h, b = req(path, token)
    check(s == status, f"GET {path}: status {s}, expected {status}: {b[:200]!r}")
    if h.get("content-type", "").startswith("application/json"):
        return json.loads(b)
    return b

# --- access control -------------------------------------------------------
site_paths = ["/api/v1/sites/{s}", "/api/v1/sites/{s}/figures", "/api/v1/sites/{s}/verdicts",
              "/api/v1/sites/{s}/alerts", "/api/v1/sites/{s}/meters", "/api/v1/sites/{s}/power"]
cases = [("/api/v1/sites", None, 401), ("/api/v1/sites", "wrong-token-0123456789abc", 401),
         ("/api/v1/sites", ALPHA, 200), ("/api/v1/sites", REG, 200),
         ("/api/v1/public/compliant", None, 200), ("/api/v1/public/compliant", "wrong-token-0123456789abc", 200),
         ("/healthz", None, 200), ("/", None, 200),
         ("/metrics", None, 401), ("/metrics", "wrong-token-0123456789abc", 401),
         ("/metrics", ALPHA, 403), ("/metrics", REG, 200),
         ("/api/v1/sites/yz-alpha/export?from=2025-01-01&to=2025-01-02", ALPHA, 403),
         ("/api/v1/sites/yz-alpha/export?from=2025-01-01&to=2025-01-02", None, 401),
         ("/api/v1/sites/yz-alpha/export?from=2025-01-01&to=2025-01-02", REG, 200),
         ("/api/v1/reports", None, 401), ("/api/v1/reports", ALPHA, 403), ("/api/v1/reports", REG, 200),
         ("/api/v1/sites/yz-alpha/reports", ALPHA, 403), ("/api/v1/sites/yz-alpha/reports", REG, 200),
         ("/api/v1/sites/yz-alpha/reports/2025-02", ALPHA, 403),
         ("/api/v1/sites/yz-alpha/reports/2025-02/MANIFEST.sha256", ALPHA, 403),
         ("/api/v1/sites/yz-alpha/reports/2025-02/MANIFEST.sha256", None, 401),
         ("/api/v1/sites/yz-alpha/reports/2025-3", REG, 404),
         ("/api/v1/sites/yz-alpha/reports/2030", REG, 404),
         ("/api/v1/zone/reports/2025-03", None, 401), ("/api/v1/zone/reports/2025-03", ALPHA, 403),
         ("/api/v1/zone/reports/2025-03/MANIFEST.sha256", ALPHA, 403), ("/api/v1/zone/reports/2030", REG, 404),
         ("/api/v1/sites/yz-nowhere", REG, 404), ("/api/v1/sites/yz-nowhere", ALPHA, 403),
         ("/api/v1/sites/bad%20id/figures", REG, 404), ("/api/v1/sites/bad%20id/figures", ALPHA, 403),
         ("/api/v1/nothing", REG, 404), ("/api/v2/sites", REG, 404), ("/api/v1/sites/yz-alpha/nothing", REG, 404),
         ("/api/v1/sites/", REG, 404)]
for p in site_paths:
    for s, tok, st in (("yz-alpha", None, 401), ("yz-alpha", "wrong-token-0123456789abc", 401),
                       ("yz-alpha", ALPHA, 200), ("yz-beta", ALPHA, 403), ("yz-beta", BETA, 200),
                       ("yz-alpha", BETA, 403), ("yz-alpha", REG, 200), ("yz-beta", REG, 200)):
        cases.append((p.format(s=s), tok, st))
for path, tok, st in cases:
    s, h, b = req(path, tok)
    if not check(s == st, f"{path} with {'no token' if not tok else tok[:12]}: {s}, expected {st}"):
        continue
    if s == 401:
        check(h.get("www-authenticate", "").startswith('Bearer realm="dcem"'), f"{path}: 401 without WWW-Authenticate")
        if tok: check('error="invalid_token"' in h["www-authenticate"], f"{path}: wrong token without invalid_token")
    if s >= 400:
        e = json.loads(b)
        check(set(e) == {"error", "param"} and e["error"], f"{path}: error body {e}")
s, h, b = req("/api/v1/sites", method="POST")
check(s == 405 and h.get("allow") == "GET, HEAD", f"POST: {s} {h.get('allow')}")
s, h, b = req("/api/v1/sites", REG, method="DELETE")
check(s == 405, f"DELETE: {s}")
c = http.client.HTTPConnection(host, int(port), timeout=30)
c.request("GET", "/api/v1/sites", body=b"x=1", headers={"Authorization": "Bearer " + REG})
r = c.getresponse()
check(r.status == 400 and b"no body" in r.read(), f"GET with a body: {r.status}")
c.close()
s, h, b = req("/api/v1/sites", REG, method="HEAD")
check(s == 200 and b == b"", f"HEAD: {s} {b[:40]!r}")
s, h, b = req("/api/v1/sites", header={"Authorization": "Basic " + REG})
check(s == 401, f"Basic auth: {s}")
s, h, b = req("/api/v1/sites", header={"Authorization": "bearer  " + REG})
check(s == 200, f"lower-case scheme: {s}")

# --- bad parameters: 400 naming the parameter ------------------------------
for path, param, why in [
        ("/api/v1/sites/yz-alpha/figures?period=week", "period", "expected one of"),
        ("/api/v1/sites/yz-alpha/figures?period=month&at=2025", "at", "expected YYYY-MM"),
        ("/api/v1/sites/yz-alpha/figures?period=year&at=25", "at", "expected YYYY"),
        ("/api/v1/sites/yz-alpha/figures?period=day&at=2025-02-30", "at", "YYYY-MM-DD"),
        ("/api/v1/sites/yz-alpha/figures?period=interval&at=2025-02-01", "at", "RFC 3339"),
        ("/api/v1/sites/yz-alpha/figures?period=month&period=year", "period", "more than once"),
        ("/api/v1/sites/yz-alpha/figures?colour=red", "colour", "unknown parameter"),
        ("/api/v1/sites/yz-alpha/figures?period=", "period", "empty"),
        ("/api/v1/sites/yz-alpha/verdicts?year=20x5", "year", "YYYY"),
        ("/api/v1/sites/yz-alpha/alerts?limit=0", "limit", "1 to 1000"),
        ("/api/v1/sites/yz-alpha/alerts?limit=1001", "limit", "1 to 1000"),
        ("/api/v1/sites/yz-alpha/alerts?cursor=abc", "cursor", "cursor"),
        ("/api/v1/sites/yz-alpha/alerts?from=yesterday", "from", "RFC 3339"),
        ("/api/v1/sites/yz-alpha/alerts?from=2025-02-01&to=2025-01-01", "to", "later than from"),
        ("/api/v1/sites/yz-alpha/export?from=2025-01-01", "to", "missing"),
        ("/api/v1/sites/yz-alpha/meters?at=now", "at", "RFC 3339"),
        ("/api/v1/public/compliant?year=1900", "year", "1970-9999"),
        ("/api/v1/sites?x=1", "x", "unknown parameter (valid: none)")]:
    for tok in (REG,):
        e = get(path, tok, 400)
        if isinstance(e, dict):
            check(e.get("param") == param and why in e.get("error", ""), f"{path}: {e}")
# an operator learns nothing about parameters of a site it may not read
check(req("/api/v1/sites/yz-beta/figures?period=week", ALPHA)[0] == 403, "403 before 400")

# --- sites and ledgers -------------------------------------------------------
sites = get("/api/v1/sites")["sites"]
check([s["site"] for s in sites] == ["yz-alpha", "yz-beta"], f"regulator's sites {sites}")
check([s["site"] for s in get("/api/v1/sites", ALPHA)["sites"]] == ["yz-alpha"], "alpha operator's sites")
check([s["site"] for s in get("/api/v1/sites", BETA)["sites"]] == ["yz-beta"], "beta operator's sites")
keys = {"site", "name", "timezone", "racks", "rack_power_kw", "approved_annual_kwh",
        "baseline_annual_kwh", "interval_minutes", "in_scope", "meters"}
check(all(set(s) == keys for s in sites), f"site keys {[sorted(s) for s in sites]}")
check(sites[0]["approved_annual_kwh"] == 26000000 and sites[0]["in_scope"] is True, f"{sites[0]}")
led = get("/api/v1/sites/yz-alpha", ALPHA)
check(len(led["meters"]) == 8 and led["policy"]["pue_limit"] == 1.4, "ledger meters / policy")
m0 = led["meters"][0]
check(set(m0) == {"id", "role", "model", "ct_ratio", "pt_ratio", "accuracy_class", "calibrated_on",
                  "rated_kw", "counter_modulo_kwh", "counter_resolution_kwh"}, f"ledger meter {m0}")
check(m0 == {"id": "alpha-in-a", "role": "facility", "model": "Schneider PM5560", "ct_ratio": 1,
             "pt_ratio": 1, "accuracy_class": "0.2S", "calibrated_on": "2024-11-12", "rated_kw": 2000,
             "counter_modulo_kwh": None, "counter_resolution_kwh": 0.01}, f"ledger meter {m0}")
cert = [g for g in led["green"] if g["kind"] == "certificate"]
check(len(led["green"]) == 16 and cert[0] == {"month": "2025-03", "kind": "certificate", "kwh": 300000,
                                                "certificates": 300}, f"green {led['green'][:3]}")

# --- figures: month and year against dcem-collector figures and dcem-audit ---
cli = json.load(open(f"{w}/cli-figures.json"))
aud = json.load(open(f"{w}/audit-alpha.json"))["periods"]
apif = [get(f"/api/v1/sites/yz-alpha/figures?period=month&at=2025-{m:02d}", ALPHA) for m in range(1, 13)]
apif.append(get("/api/v1/sites/yz-alpha/figures?period=year&at=2025", ALPHA))
check(all(f["site"] == "yz-alpha" and f["period"] in ("month", "year") for f in apif), "figures wrapper")
check(apif[2]["at"] == "2025-03" and apif[12]["at"] == "2025", "figures at")
apif = [f["figures"] for f in apif]
check(len(cli) == 13 and len(aud) == 13, f"periods: cli {len(cli)}, audit {len(aud)}")
for a, c, d in zip(apif, cli, aud):
    check(a == c, f"{c['period']}: API differs from dcem-collector figures: "
                  f"{[k for k in c if a.get(k) != c[k]]}")
    diff = [k for k in d if a.get(k) != d[k]]
    check(not diff, f"{d['period']}: API differs from dcem-audit in {diff}")
year = apif[12]
check("reward_eligible" in year["verdicts"], f"yz-alpha 2025 verdicts {year['verdicts']}")
# numbers are fixed-point in the body as in dcem-audit's
raw = req("/api/v1/sites/yz-alpha/figures?period=year&at=2025", ALPHA)[2].decode()
check(re.search(r'"pue":\d\.\d{6}[,}]', raw) and re.search(r'"total_kwh":\d+\.\d{3}[,}]', raw), "fixed-point numbers")

# year to date = dcem-audit --as-of; rolling 12 months ending with 2025 = the year's sums
yd = os.environ["YESTERDAY"]
ytd = get(f"/api/v1/sites/yz-beta/figures?period=ytd&at={yd}", BETA)["figures"]
audy = json.load(open(f"{w}/audit-beta.json"))["periods"][-1]
check(ytd["kind"] == "ytd" and audy["kind"] == "year", "ytd kind")
diff = [k for k in audy if k != "kind" and ytd.get(k) != audy[k]]
check(not diff, f"ytd at {yd} differs from dcem-audit --as-of in {diff}")
check(ytd["total_kwh"] > 0 or yd.endswith("-01-01"), f"yz-beta ytd total {ytd['total_kwh']}")
r12 = get("/api/v1/sites/yz-alpha/figures?period=rolling12&at=2026-01-01")["figures"]
check(r12["kind"] == "rolling12" and r12["period"] == "2025-01/2025-12" and r12["cap"] is None,
      f"rolling12 {r12['period']} cap {r12['cap']}")
for k in ("total_kwh", "it_kwh", "green_kwh", "pue", "green_share", "completeness"):
    check(r12[k] == year[k], f"rolling12 ending 2025 {k}: {r12[k]} vs the year's {year[k]}")
r12b = get("/api/v1/sites/yz-alpha/figures?period=rolling12&at=2026-03-15")["figures"]
check(r12b["period"] == "2025-04/2026-03" and r12b["as_of"] == "2026-03-15T00:00:00+08:00", f"rolling12 {r12b['period']}")
check(get("/api/v1/sites/yz-beta/figures", BETA)["period"] == "month", "default period")

# days sum to their month, intervals to their day (common/figures over rollups)
days = [get(f"/api/v1/sites/yz-alpha/figures?period=day&at=2025-03-{d:02d}", ALPHA)["figures"] for d in range(1, 32)]
march = apif[2]
for k in ("total_kwh", "it_kwh", "green_onsite_kwh", "compute_kwh"):
    s = sum(d[k] for d in days)
    check(abs(s - march[k]) < 0.02, f"March days' {k} {s} vs the month's {march[k]}")
check(all(d["kind"] == "day" and d["completeness"] == 1 and "verdicts" not in d for d in days), "day shape")
check(days[14]["period"] == "2025-03-15" and days[14]["start"] == "2025-03-15T00:00:00+08:00", "day 15")
ivs = [get(f"/api/v1/sites/yz-alpha/figures?period=interval&at=" +
           urllib.parse.quote(f"2025-03-15T{h:02d}:30:00+08:00"))["figures"] for h in range(24)]
check(ivs[10]["start"] == "2025-03-15T10:00:00+08:00" and ivs[10]["end"] == "2025-03-15T11:00:00+08:00",
      f"interval {ivs[10]['start']}")
s = sum(i["total_kwh"] for i in ivs)
check(abs(s - days[14]["total_kwh"]) < 0.02, f"intervals of 15 March sum to {s}, the day {days[14]['total_kwh']}")
check(abs(ivs[10]["pue"] - ivs[10]["total_kwh"] / ivs[10]["it_kwh"]) < 1e-5, "interval PUE")
# an interval every meter has closed: the data end five minutes ago
half_hour_ago = datetime.fromtimestamp(time.time() - 1800, timezone.utc).isoformat()
live = get("/api/v1/sites/yz-beta/figures?period=interval&at=" + urllib.parse.quote(half_hour_ago), BETA)["figures"]
check(live["total_kwh"] > 0 and live["completeness"] == 1, f"the last interval of yz-beta {live}")

# --- verdicts, compliant list ------------------------------------------------
v = get("/api/v1/sites/yz-alpha/verdicts?year=2025", ALPHA)
check({"id": "reward_eligible", "clause": "2"} in v["verdicts"] and len(v["months"]) == 12
      and v["as_of"] == "2026-01-01T00:00:00+08:00" and v["computed_at"], f"verdicts {v}")
check([x["id"] for x in v["verdicts"]] == year["verdicts"], "stored year verdicts = computed")
check(v["months"][0]["period"] == "2025-01", "month verdicts")
v0 = get("/api/v1/sites/yz-alpha/verdicts?year=2019", ALPHA)
check(v0["computed_at"] is None and v0["verdicts"] == [] and v0["months"] == [], f"empty year {v0}")
vb = get("/api/v1/sites/yz-beta/verdicts", BETA)
check(any(x["id"] == "insufficient_data" for x in vb["verdicts"]), f"yz-beta this year {vb['verdicts']}")
pub = get("/api/v1/public/compliant", None)
check(pub["year"] == 2025 and [s["site"] for s in pub["sites"]] == ["yz-alpha"], f"compliant {pub}")
check(pub["sites"][0]["pue"] == year["pue"] and pub["sites"][0]["provisional"] is False, f"{pub['sites']}")
check(get("/api/v1/public/compliant?year=2026", None)["sites"] == [], "nobody compliant in 2026")

# --- meters, power -----------------------------------------------------------
mb = get("/api/v1/sites/yz-beta/meters", BETA)
st = {m["id"]: m["status"] for m in mb["meters"]}
stale = os.environ["STALE_METER"]
check(st.pop(stale) == "stale" and set(st.values()) == {"ok"}, f"yz-beta statuses {mb['meters']}")
m = mb["meters"][0]
check(set(m) == {"id", "role", "model", "rated_kw", "status", "last_reading", "month"}, f"meter keys {m}")
check(set(m["last_reading"]) == {"t", "kwh", "kw", "quality"} and m["last_reading"]["quality"] == "ok", f"{m}")
check(m["month"] and m["month"]["intervals"] > 0 and m["month"]["resets"] == 0, f"month events {m['month']}")
ma = get("/api/v1/sites/yz-alpha/meters", ALPHA)
check(all(m["status"] == "silent" and m["last_reading"]["t"] == "2026-01-01T00:00:00+08:00"
          and m["last_reading"]["kwh"] > 0 for m in ma["meters"]), f"yz-alpha meters {ma['meters'][0]}")
check(ma["silent_after_s"] == 3 * 3600 and mb["silent_after_s"] == 3 * 900, "silent_after_s")
pw = get("/api/v1/sites/yz-beta/power", BETA)
by = {m["id"]: m for m in pw["meters"]}
check(by[stale]["source"] == "reading" and by[stale]["kw"] == 123.5, f"power of the stale meter {by[stale]}")
check(all(m["kw"] is not None and m["source"] in ("reading", "interval") for m in pw["meters"]), f"power {pw}")
for role, kw in pw["roles"].items():
    s = sum(m["kw"] for m in pw["meters"] if m["role"] == role)
    check(abs(s - kw) < 0.01, f"power role {role}: {kw} vs {s}")
check(abs(pw["total_kw"] - pw["roles"]["facility"] - pw["roles"]["green_onsite"]) < 0.01, "total_kw")
pa = get("/api/v1/sites/yz-alpha/power?at=" + urllib.parse.quote("2025-06-01T12:30:00+08:00"), ALPHA)
check(all(m["source"] == "interval" and m["t"] == "2025-06-01T11:00:00+08:00" for m in pa["meters"]), f"{pa}")

# --- alerts, newest first, paged -----------------------------------------------
al = get("/api/v1/sites/yz-beta/alerts", BETA)
kinds = [a["kind"] for a in al["alerts"]]
check({"gateway_offline", "meter_stale", "insufficient_data"} <= set(kinds) and al["next"] is None, f"alerts {kinds}")
check(set(al["alerts"][0]) == {"id", "t", "kind", "subject", "state", "message"}, "alert keys")
subjects = {a["kind"]: a["subject"] for a in al["alerts"]}
check(subjects.get("insufficient_data", "").isdigit() and subjects.get("meter_stale"), f"alert subjects {subjects}")
page, cur = [], None
while True:
    p = get("/api/v1/sites/yz-beta/alerts?limit=1" + (f"&cursor={cur}" if cur else ""), BETA)
    page += p["alerts"]
    cur = p["next"]
    if not cur or len(page) > 50: break
check([a["id"] for a in page] == [a["id"] for a in al["alerts"]], f"paged {[a['id'] for a in page]}")
order = [(datetime.fromisoformat(a["t"]), a["id"]) for a in al["alerts"]]
check(order == sorted(order, reverse=True), f"newest first: {order}")
check(get("/api/v1/sites/yz-beta/alerts?to=2020-01-01", BETA)["alerts"] == [], "alerts to")
check(get("/api/v1/sites/yz-alpha/alerts", ALPHA)["alerts"] == [], "no alpha alerts")

# --- reports (gateway/report through the API) --------------------------------------
import hashlib
rp = get("/api/v1/reports")
check([x["site"] for x in rp["reports"]] == ["yz-alpha", "yz-beta"], f"reports {rp}")
ap = [p["period"] for p in rp["reports"][0]["periods"]]
check(ap == ["2025"] + [f"2025-{m:02d}" for m in range(1, 13)], f"yz-alpha's report periods {ap}")
check(get("/api/v1/sites/yz-alpha/reports")["periods"] == rp["reports"][0]["periods"], "one site's periods")
rep = get("/api/v1/sites/yz-alpha/reports/2025-03")
names = [f["name"] for f in rep["files"]]
check({"yz-alpha-2025-03.xlsx", "yz-alpha-2025-03.json", "readings.csv", "yz-alpha-2025-03-figures.csv"}
      <= set(names), f"report files {names}")
check(rep["verdicts"] == march["verdicts"] and rep["as_of"] == march["as_of"], f"report {rep['verdicts']}")
for f in rep["files"]:
    s, h, b = req(f["url"], REG)
    if check(s == 200, f"{f['url']}: {s}"):
        check(hashlib.sha256(b).hexdigest() == f["sha256"] and len(b) == f["bytes"], f"{f['name']}: hash or size")
        check(h.get("content-disposition") == f'attachment; filename="{f["name"]}"', f"{f['name']}: {h}")
        if f["name"].endswith(".xlsx"):
            check(h["content-type"].startswith("application/vnd.openxmlformats"), f"xlsx type {h['content-type']}")
            check(b[:2] == b"PK", "xlsx is a zip")
s, h, b = req(rep["manifest"], REG)
manifest = {ln[66:]: ln[:64] for ln in b.decode().splitlines()}
check(manifest == {f["name"]: f["sha256"] for f in rep["files"]}, "the manifest lists the files")
doc = json.loads(req("/api/v1/sites/yz-alpha/reports/2025-03/yz-alpha-2025-03.json", REG)[2])
check(doc["figures"]["periods"][0] == march, "the report's figures differ from the API's")
check(get("/api/v1/sites/yz-alpha/reports/2025-03")["generated_at"] == rep["generated_at"], "written once a day")
for p in ("/api/v1/sites/yz-alpha/reports/2025-03/collector.yaml", "/api/v1/sites/yz-alpha/reports/2025-03/..",
          "/api/v1/sites/yz-alpha/reports/2025-03/%2e%2e%2fcollector.yaml",
          "/api/v1/sites/yz-alpha/reports/2025-03/.hidden"):
    check(req(p, REG)[0] == 404, f"{p}: not 404")
e = get("/api/v1/sites/yz-alpha/reports/2030", REG, 404)
check("nothing to report yet" in e.get("error", ""), f"future report: {e}")
# the zone report: every site in one table, each row the site's own report
zr = get("/api/v1/zone/reports/2025-03")
check(zr.get("zone") is True and zr["period"] == "2025-03" and "verdicts" not in zr, f"zone report {zr}")
znames = {f["name"] for f in zr["files"]}
check({"zone-2025-03.xlsx", "zone-2025-03.json", "zone-2025-03-zone.csv"} <= znames, f"zone files {znames}")
for f in zr["files"]:
    s, h, b = req(f["url"], REG)
    if check(s == 200, f"{f['url']}: {s}"):
        check(hashlib.sha256(b).hexdigest() == f["sha256"], f"zone {f['name']}: hash")
zdoc = json.loads(req("/api/v1/zone/reports/2025-03/zone-2025-03.json", REG)[2])
zrow = {x["site"]: x for x in zdoc["sites"]}
check(sorted(zrow) == ["yz-alpha", "yz-beta"], f"zone sites {sorted(zrow)}")
check(zrow.get("yz-alpha", {}).get("figures") == march, "the zone's yz-alpha row differs from the API's figures")
check(req("/api/v1/zone/reports/2025-03/../yz-alpha/2025-03/readings.csv", REG)[0] == 404, "zone path escape")

# --- healthz, metrics ------------------------------------------------------------
hz = get("/healthz", None)
check(hz["status"] == "ok" and hz["mqtt"]["connected"] and hz["store"]["ok"] and
      hz["store"]["schema_version"] >= 4 and hz["collector"] == "api-test" and hz["influx"] is None, f"healthz {hz}")
text = open(f"{w}/metrics.txt").read()
vals, types, helps = {}, {}, set()
for ln in text.splitlines():
    if ln.startswith("# HELP "): helps.add(ln.split()[2]); continue
    if ln.startswith("# TYPE "):
        _, _, n, t = ln.split(); types[n] = t; continue
    mt = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (-?[0-9.eE+]+)', ln)
    if not check(mt, f"metrics line not Prometheus text: {ln!r}"): continue
    check(mt.group(1) in types and mt.group(1) in helps, f"{mt.group(1)} without TYPE/HELP")
    vals[mt.group(1) + (mt.group(2) or "")] = float(mt.group(4))
health = open(f"{w}/health.txt").read().splitlines()
h0 = re.findall(r"([a-z ]+) (\d+)", health[0].split("health: ", 1)[1].replace(";", ","))
logged = {k.strip(): int(v) for k, v in h0}
names = {"received": "dcem_batches_received_total", "stored": "dcem_batches_stored_total",
         "duplicates": "dcem_batches_duplicate_total", "gaps": "dcem_batch_gaps_total",
         "malformed": "dcem_batches_malformed_total", "quarantined": "dcem_batches_quarantined_total",
         "unknown site": "dcem_batches_unknown_site_total", "failed": "dcem_batches_failed_total",
         "readings": "dcem_readings_total", "intervals": "dcem_intervals_total"}
check(set(logged) == set(names), f"health line fields {sorted(logged)}")
for k, n in names.items():
    check(vals.get(n) == logged.get(k), f"metrics {n} {vals.get(n)} vs health log {k} {logged.get(k)}")
check(logged["malformed"] == 1 and logged["stored"] > 0, f"health {logged}")
rf = re.search(r"refused from (\S+): (\S+) (\d+)", health[1])
check(rf and vals.get(f'dcem_refused_payloads_total{{gateway="{rf.group(1)}",reason="{rf.group(2)}"}}') == int(rf.group(3)),
      f"refusals: log {health[1]!r}")
check(vals.get('dcem_batches_malformed_by_reason_total{reason="not_json"}') == 1, "malformed by reason")
check(vals.get("dcem_mqtt_connected") == 1 and types.get("dcem_mqtt_connected") == "gauge", "mqtt gauge")
check(types.get("dcem_batches_received_total") == "counter", "counter type")
check(vals.get('dcem_api_requests_total{code="200"}', 0) > 0, "request counts")
s, h, b = req("/metrics", REG)
check(h.get("content-type", "").startswith("text/plain; version=0.0.4"), f"metrics type {h.get('content-type')}")

# --- the dashboard's files -----------------------------------------------------------
s, h, b = req("/")
check(s == 200 and h["content-type"] == "text/html; charset=utf-8" and b"<title>dcem" in b, f"/: {s} {h}")
s, h, b = req("/js/app.js")
check(s == 200 and h["content-type"].startswith("text/javascript"), f"/js/app.js: {s} {h.get('content-type')}")
check(req("/sub/")[2] == b"sub\n", "a directory's index.html")
for p in ("/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/js/%2e%2e/%2e%2e/secret.txt",
          "/link.txt", "/up/secret.txt", "/.hidden", "/nothing.html", "/js", "//etc/passwd",
          "/..%2fsecret.txt", "/js\\..\\..\\secret.txt"):
    s, h, b = req(p)
    check(s == 404 and b"SECRET" not in b, f"static {p}: {s} {b[:60]!r}")
out = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "%{http_code}", f"{api}/../secret.txt"],
                     capture_output=True, text=True).stdout
check(out.endswith("404") and "SECRET" not in out, f"curl --path-as-is: {out}")

print(f"api checks: {len(cases)} access cases, 13 periods equal to dcem-collector figures and dcem-audit, "
      f"ytd equal to dcem-audit --as-of, {len(days)} days, {len(ivs)} intervals, {len(al['alerts'])} alerts")
if bad:
    print("\n".join(bad[:40]))
    sys.exit(1)
EOF

# SIGHUP: (1) new tokens on the same listener (the API re-pointed: a new
# view); (2) the listener moved (bound before the old one closes); (3) its
# limits changed on the same address (restarted in place); (4) a bad file
# refused, the API serving on
code() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$2"; }
reloads() { grep -c "collector: reloaded" "$work/collector.err" || true; }
reload() {
  local before
  before=$(reloads)
  kill -HUP "$col_pid"
  reloaded() { (($(reloads) > before)); }
  wait_for "the reload" 10 reloaded
}
alpha_tok2=alpha-operator-new-$RANDOM$RANDOM-abcdefgh
printf '%s\n' "$alpha_tok2" >"$work/alpha.token"
reload
[[ $(code "$alpha_tok" "$api/api/v1/sites/yz-alpha") == 401 ]] || fail "the old token still works"
[[ $(code "$alpha_tok2" "$api/api/v1/sites/yz-alpha") == 200 ]] || fail "the new token does not work"
aport2=$(free_port)
write_config "$aport2"
reload
api2=http://127.0.0.1:$aport2
wait_for "the API on its new port" 10 curl -sf "$api2/healthz"
wait_for "the old port closed" 10 bash -c "! curl -s -o /dev/null $api/healthz"
grep -q "reloaded .*; API listener anew" "$work/collector.err" || fail "no new listener logged"
[[ $(code "$alpha_tok2" "$api2/api/v1/sites/yz-alpha") == 200 ]] || fail "the token on the new port"
[[ $(code "$reg" "$api2/api/v1/sites/yz-alpha/figures?period=year&at=2025") == 200 ]] ||
  fail "figures after the reload"
sed -i 's/^  metrics: regulator$/  metrics: regulator\n  max_connections: 8\n  timeout_s: 5/' "$work/collector.yaml"
reload
wait_for "the API restarted in place" 10 curl -sf "$api2/healthz"
[[ $(grep -c "^info: api: listening on http://127.0.0.1:$aport2" "$work/collector.err") == 2 ]] ||
  fail "the listener was not restarted in place"
sed -i 's/sites: \[yz-alpha\]/sites: [yz-nowhere]/' "$work/collector.yaml"
kill -HUP "$col_pid"
wait_for "the refused reload" 10 grep -q "reload refused.*yz-nowhere" "$work/collector.err"
[[ $(code "$alpha_tok2" "$api2/api/v1/sites/yz-alpha") == 200 ]] || fail "the API after a refused reload"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector did not stop cleanly"
if grep -E "Sanitizer|runtime error" "$work/collector.err"; then fail "sanitizer"; fi
echo "api.sh: passed in $((SECONDS - started)) s"

#!/usr/bin/env bash
# The README's first command as a user runs it: scripts/demo.sh on this
# build, in a directory and on a port of its own, stopped with Ctrl-C.
#
#   demo.sh BUILD_DIR SOURCE_DIR
#
# Proves: the demo comes up, backfills 2025 and this year up to the moment
# it started through dcem-agent --import, prints the three sample sites'
# expected verdicts (yz-alpha reward_eligible, yz-beta
# differential_pricing_candidate, yz-gamma cap_exceeded) and writes their
# reports and the zone reports of 2025 (one candidate, one site over its
# cap) and of last month, prints each site's figures of this year to date; right after
# start-up the collector's year-to-date figures (the API's, what the
# dashboard's live view shows) are whole — a PUE, energy, completeness
# 100 %, no counter reset — and at the seam between the history and the
# live meters every counter carries on: no reading of a meter is below the
# one before it, and dcem-audit (the collector's counter rules) over the
# readings around the seam finds no reset and nothing discarded; the live
# agents deliver readings,
# the dashboard's page is served, every batch is signed and kept with its
# proof (dcem-collector verify), the broker is the shipped TLS one, and
# Ctrl-C ends it with "stopped", status 0, and no process it started left
# behind.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
work=$(mktemp -d /tmp/dcem-demo.XXXXXX)
trap 'rc=$?; if ((rc == 0)); then rm -rf "$work"; else echo "demo.sh failed; files kept in $work" >&2; fi' EXIT
port=$(free_port)
# run as a user runs it: in a session of its own (a terminal's process
# group), until it says it is running; then Ctrl-C (SIGINT to the group)
DCEM_BUILD_DIR=$build DCEM_DEMO_DIR=$work/demo DCEM_DEMO_PORT=$port \
  $PY - "$src/scripts/demo.sh" "$work/demo.out" "$port" "$build/gateway/audit/dcem-audit" \
  "$src/configs/policy/beijing-etown-2024.yaml" <<'EOF' || fail "scripts/demo.sh and Ctrl-C: $(tail -5 "$work/demo.out")"
import csv, io, json, os, signal, subprocess, sys, time, urllib.request
from datetime import datetime
script, out, port, audit, policy = sys.argv[1:6]
demo = os.environ["DCEM_DEMO_DIR"]
def api(path):
    tok = open(f"{demo}/tokens/regulator.token").read().strip()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/{path}", headers={"Authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()
def check_live(p):
    """this year's figures right after start-up, and the seam; the demo keeps running meanwhile"""
    bad = []
    starts = list(csv.DictReader(open(f"{demo}/history/live-start.csv")))
    until = datetime.fromisoformat(starts[0]["time"])
    year = str(until.year)
    for s in ("yz-alpha", "yz-beta", "yz-gamma"):
        f = json.loads(api(f"sites/{s}/figures?period=ytd"))["figures"]
        if f["period"] != year: bad.append(f"{s}: ytd is {f['period']}, the history ends in {year}")
        if until.strftime("%m-%d") == "01-01": continue  # no whole day of this year yet
        if not isinstance(f.get("pue"), float) or not 1 < f["pue"] < 2: bad.append(f"{s}: ytd PUE {f.get('pue')}")
        if not f["total_kwh"] > 0 or not f["it_kwh"] > 0: bad.append(f"{s}: ytd energy {f['total_kwh']}")
        if f["completeness"] < 0.999: bad.append(f"{s}: ytd completeness {f['completeness']}")
        if f["resets"] or f["discarded_readings"]: bad.append(f"{s}: ytd resets {f['resets']}, discarded {f['discarded_readings']}")
        if not (f.get("cap") or {}).get("ytd_kwh"): bad.append(f"{s}: no cap burn-down: {f.get('cap')}")
    # the seam: wait for three live readings of every meter after it
    names = {r["meter"] for r in starts}
    deadline = time.time() + 60
    while True:
        lo = until.timestamp() - 3600
        text = {s: api(f"sites/{s}/export?from={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(lo))}"
                          f"&to={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + 3600))}")
                for s in ("yz-alpha", "yz-beta", "yz-gamma")}
        rows = [r for t in text.values() for r in csv.DictReader(io.StringIO(t))]
        live = {}
        for r in rows:
            if datetime.fromisoformat(r["time"]) > until: live[r["meter"]] = live.get(r["meter"], 0) + 1
        if set(live) == names and min(live.values()) >= 3: break
        if time.time() > deadline: sys.exit(f"live readings after the seam: {live}")
        time.sleep(1)
    by = {}
    for r in rows: by.setdefault(r["meter"], []).append((datetime.fromisoformat(r["time"]), float(r["kwh"])))
    for m, v in by.items():
        v.sort()
        at = [kwh for t, kwh in v if t == until]
        if not at: bad.append(f"{m}: no history reading at the seam {until}")
        for (t0, a), (t1, b) in zip(v, v[1:]):
            if b < a: bad.append(f"{m}: counter back from {a} ({t0}) to {b} ({t1})")
    for s, t in text.items():
        open(f"{demo}/seam-{s}.csv", "w").write(t)
        a = subprocess.run([audit, "--site", f"{demo}/sites/{s}.yaml", "--policy", policy, "--readings",
                            f"{demo}/seam-{s}.csv", "--year", year, "--json"], capture_output=True, text=True)
        if a.returncode: bad.append(f"{s}: dcem-audit: {a.stderr.strip()}"); continue
        y = [x for x in json.loads(a.stdout)["periods"] if x["period"] == year][0]
        if y["resets"] or y["discarded_readings"]:
            bad.append(f"{s}: across the seam: {y['resets']} resets, {y['discarded_readings']} discarded")
    if bad: sys.exit("after start-up: " + "; ".join(bad))
    print(f"seam at {until}: {sum(len(v) for v in by.values())} readings of {len(by)} meters, every counter carries on",
          file=open(f"{demo}/seam.txt", "w"))
p = subprocess.Popen([script], stdout=open(out, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
deadline = time.time() + 500
while "Running. Ctrl-C stops everything." not in open(out).read():
    if p.poll() is not None: sys.exit(f"the demo ended before it ran, status {p.returncode}")
    if time.time() > deadline: os.killpg(p.pid, signal.SIGKILL); sys.exit("the demo did not come up in 500 s")
    time.sleep(0.5)
try: check_live(p)
except BaseException: os.killpg(p.pid, signal.SIGKILL); raise
os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the whole group, as a terminal sends it
try: rc = p.wait(60)
except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); sys.exit("the demo did not stop in 60 s")
text = open(out).read()
if rc != 0: sys.exit(f"Ctrl-C: exit status {rc}")
if text.rstrip().splitlines()[-1] != "stopped": sys.exit("Ctrl-C: the last line is not 'stopped'")
if "demo: failed" in text: sys.exit("Ctrl-C: the demo said it failed")
EOF
cat "$work/demo.out"
cat "$work/demo/seam.txt"
this_year=$(TZ=Asia/Shanghai date +%Y)
for want in "yz-alpha .*reward_eligible" "yz-beta .*differential_pricing_candidate" "yz-gamma .*cap_exceeded" \
  "Dashboard (regulator): http://127.0.0.1:$port/#token=" "backfilling 2025 .*$this_year up to" \
  "zone report 2025: .*3 sites, 3 in scope, 1 differential-pricing candidates, 1 over their cap"; do
  grep -q -- "$want" "$work/demo.out" || fail "the demo did not print '$want'"
done
grep -q "yz-alpha .*cap_exceeded\|yz-gamma .*reward_eligible\|yz-beta .*reward_eligible" "$work/demo.out" &&
  fail "a site has a verdict it must not have"
# each site's figures of this year to date, with numbers, not dashes
if ((this_year > 2025)); then
  n=$(grep -cE "^ +$this_year to date \([0-9-]+\): PUE 1\.[0-9]{3}  green share [0-9.]+%  energy [0-9.]+ GWh  cap used [0-9.]+%" "$work/demo.out" || true)
  ((n == 3)) || fail "the summary has $n sites' figures of $this_year to date, not 3"
fi
for s in yz-alpha yz-beta yz-gamma; do
  [[ -s $work/demo/reports/$s/figures-2025.json ]] || fail "no figures of $s"
  for p in 2025 2025-12; do
    [[ -s $work/demo/reports/$s/$p/$s-$p.xlsx ]] || fail "no $p report of $s"
    (cd "$work/demo/reports/$s/$p" && sha256sum --quiet -c MANIFEST.sha256) ||
      fail "the $p report of $s does not match its manifest"
  done
  # the live agent delivered readings (its log says so when batches are acked)
  n=$(sqlite3 "$work/demo/store.db" "SELECT count(*) FROM readings WHERE gateway = 'gw-$s'")
  ((n > 0)) || fail "the live agent of $s delivered nothing"
done
# the zone reports: the design year and last month, each whole
last_month=$(TZ=Asia/Shanghai date -d "$(TZ=Asia/Shanghai date +%Y-%m-01) -1 day" +%Y-%m)
for p in 2025 "$last_month"; do
  [[ -s $work/demo/reports/zone/$p/zone-$p.xlsx ]] || fail "no zone report of $p"
  (cd "$work/demo/reports/zone/$p" && sha256sum --quiet -c MANIFEST.sha256) ||
    fail "the zone report of $p does not match its manifest"
done
# set up as a deployment is: every stored batch signed by its gateway and kept
# with its proof, nothing refused, and every reading of December proven
batches=$(sqlite3 "$work/demo/store.db" "SELECT count(*) FROM batches")
proofs=$(sqlite3 "$work/demo/store.db" "SELECT count(*) FROM proofs")
((batches > 0 && proofs == batches)) || fail "$proofs proofs for $batches batches: not every batch was signed"
grep -q "malformed payload\|refused from" "$work/demo/logs/collector.log" &&
  fail "the collector refused something: $(grep -m1 'malformed payload\|refused from' "$work/demo/logs/collector.log")"
"$build/gateway/collector/dcem-collector" verify -c "$work/demo/collector.yaml" --site yz-alpha \
  --from 2025-12-01 --to 2026-01-01 || fail "dcem-collector verify: not every reading of yz-alpha is proven"
grep -q "^listener .* 127.0.0.1$" "$work/demo/mosquitto.conf" && grep -q "^require_certificate true" "$work/demo/mosquitto.conf" ||
  fail "the demo's broker is not the shipped TLS one"
left=$(pgrep -f "$work/demo" || true)
[[ -z $left ]] || fail "processes left behind: $(ps -o pid,args -p "$left")"
echo "demo.sh: passed"

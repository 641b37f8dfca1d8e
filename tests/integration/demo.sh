#!/usr/bin/env bash
# The README's first command as a user runs it: scripts/demo.sh on this
# build, in a directory and on a port of its own, stopped with Ctrl-C.
#
#   demo.sh BUILD_DIR SOURCE_DIR
#
# Proves: the demo comes up, backfills 2025 through dcem-agent --import,
# prints the three sample sites' expected verdicts (yz-alpha
# reward_eligible, yz-beta differential_pricing_candidate, yz-gamma
# cap_exceeded) and writes their reports, the live agents deliver readings,
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
  $PY - "$src/scripts/demo.sh" "$work/demo.out" <<'EOF' || fail "scripts/demo.sh and Ctrl-C: $(tail -5 "$work/demo.out")"
import os, signal, subprocess, sys, time
script, out = sys.argv[1], sys.argv[2]
p = subprocess.Popen([script], stdout=open(out, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
deadline = time.time() + 500
while "Running. Ctrl-C stops everything." not in open(out).read():
    if p.poll() is not None: sys.exit(f"the demo ended before it ran, status {p.returncode}")
    if time.time() > deadline: os.killpg(p.pid, signal.SIGKILL); sys.exit("the demo did not come up in 500 s")
    time.sleep(0.5)
time.sleep(2)
os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the whole group, as a terminal sends it
try: rc = p.wait(60)
except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); sys.exit("the demo did not stop in 60 s")
text = open(out).read()
if rc != 0: sys.exit(f"Ctrl-C: exit status {rc}")
if text.rstrip().splitlines()[-1] != "stopped": sys.exit("Ctrl-C: the last line is not 'stopped'")
if "demo: failed" in text: sys.exit("Ctrl-C: the demo said it failed")
EOF
cat "$work/demo.out"
for want in "yz-alpha .*reward_eligible" "yz-beta .*differential_pricing_candidate" "yz-gamma .*cap_exceeded" \
  "Dashboard (regulator): http://127.0.0.1:$port/#token="; do
  grep -q -- "$want" "$work/demo.out" || fail "the demo did not print '$want'"
done
grep -q "yz-alpha .*cap_exceeded\|yz-gamma .*reward_eligible\|yz-beta .*reward_eligible" "$work/demo.out" &&
  fail "a site has a verdict it must not have"
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

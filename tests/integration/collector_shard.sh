#!/usr/bin/env bash
# Two dcem-collectors sharded by site on one store, for brokers without
# shared subscriptions (MQTT 3.1.1 here): collector a takes yz-alpha
# (shard.sites), collector b takes yz-beta, each subscribed to its sites'
# topics only. A real mosquitto on loopback; dcem-replay publishes two weeks
# of each sample site (dcem-gen, with its faults) at once; collector b is
# killed with SIGKILL mid-stream and restarted 3 s later.
#
#   collector_shard.sh BUILD_DIR SOURCE_DIR
#
# Proves: each collector stored batches of its own site only (neither saw
# the other's: subscribed to its site's topics, no unknown-site refusal, and
# a, never killed, stored exactly its site's batch count); every reading of both sites is stored exactly once; the
# figures of both sites from the shared store equal dcem-audit's over their
# exports, field by field. And a shard naming a site without a ledger is
# refused with file:line.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
policy=$src/configs/policy/beijing-etown-2024.yaml
make_work collector-shard

start_mosquitto

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$src/configs/sites/yz-beta.yaml" "$work/sites/"
write_config() { # NAME SITE
  cat >"$work/collector-$1.yaml" <<EOF
collector: shard-$1
sites: sites
policy: $policy
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 3}
store: {path: store.db}
shard:
  sites: [$2]
recompute_ms: 500
health_log_s: 1
EOF
}
write_config a yz-alpha
write_config b yz-beta
for name in a b; do "$col" -c "$work/collector-$name.yaml" --check-config >/dev/null; done

# a site without a ledger, and a site twice: file:line, exit 1
write_config bad "yz-alpha, yz-omega"
if "$col" -c "$work/collector-bad.yaml" --check-config >"$work/bad.out" 2>&1; then
  fail "a shard naming yz-omega was accepted"
fi
grep -q "collector-bad.yaml:[0-9]*: shard.sites: no ledger for site 'yz-omega'" "$work/bad.out" ||
  fail "unclear refusal: $(cat "$work/bad.out")"
write_config bad "yz-alpha, yz-alpha"
if "$col" -c "$work/collector-bad.yaml" --check-config >"$work/bad.out" 2>&1; then
  fail "a shard naming yz-alpha twice was accepted"
fi
grep -q "shard.sites: site 'yz-alpha' is listed twice" "$work/bad.out" ||
  fail "unclear refusal: $(cat "$work/bad.out")"

for site in yz-alpha yz-beta; do
  "$gen" --site "$work/sites/$site.yaml" --year 2025 --faults --out "$work/$site-year.csv" \
    --truth "$work/$site-truth.json" >/dev/null
  awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-15" || substr($1, 1, 19) == "2025-01-15T00:00:00"' \
    "$work/$site-year.csv" >"$work/$site.csv"
done

declare -A col_pid
start_collector() { # NAME
  local log=$work/collector-$1.err
  [[ -f $log ]] && sed -i 's/^info: mqtt: subscribed to/info: mqtt: (earlier run) subscribed to/' "$log"
  "$col" -c "$work/collector-$1.yaml" >>"$work/collector-$1.out" 2>>"$log" &
  col_pid[$1]=$!
  pids+=("${col_pid[$1]}")
  wait_for "collector $1's subscription" 10 grep -q "^info: mqtt: subscribed to dcem/v1/yz-" "$log"
}
start_collector a
start_collector b

declare -A replay_pid
for site in yz-alpha yz-beta; do
  "$replay" --uri "$uri" --site "$site" --gateway gw-1 --csv "$work/$site.csv" --batch 100 \
    --timeout-s 120 >"$work/replay-$site.out" 2>&1 &
  replay_pid[$site]=$!
  pids+=("${replay_pid[$site]}")
done
site_batches() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "SELECT count(*) FROM batches WHERE site = '$1'" 2>/dev/null || echo 0; }
wait_for "the first 10 batches of yz-beta stored" 60 \
  bash -c "(( \$(sqlite3 -cmd '.timeout 5000' '$work/store.db' \"SELECT count(*) FROM batches WHERE site = 'yz-beta'\" 2>/dev/null || echo 0) >= 10 ))"
kill -KILL "${col_pid[b]}"
wait "${col_pid[b]}" 2>/dev/null || true
at_kill=$(site_batches yz-beta)
sleep 3
start_collector b
for site in yz-alpha yz-beta; do
  wait "${replay_pid[$site]}" || fail "the replay of $site: $(cat "$work/replay-$site.out")"
  echo "replay $site: $(cat "$work/replay-$site.out")"
done
echo "collector b killed after $at_kill batches of yz-beta were stored"

for name in a b; do
  n=$(grep -c "health: received" "$work/collector-$name.err" || true)
  wait_for "collector $name's next health line" 10 \
    bash -c "(( \$(grep -c 'health: received' '$work/collector-$name.err') > $n ))"
  kill -TERM "${col_pid[$name]}"
  wait "${col_pid[$name]}" || fail "collector $name exited with $?"
done

for site in yz-alpha yz-beta; do
  "$col" export -c "$work/collector-a.yaml" --site "$site" --from 2024-12-01 --to 2026-02-01 \
    >"$work/$site-export.csv"
  "$col" figures -c "$work/collector-a.yaml" --site "$site" --year 2025 >"$work/$site-figures.json"
  "$audit" --site "$work/sites/$site.yaml" --policy "$policy" --readings "$work/$site-export.csv" \
    --year 2025 --json >"$work/$site-audit.json"
done
alpha_batches=$(site_batches yz-alpha)
beta_batches=$(site_batches yz-beta)

$PY - "$work" "$alpha_batches" "$beta_batches" <<'EOF'
import collections, json, re, sys
w, batches = sys.argv[1], {"a": int(sys.argv[2]), "b": int(sys.argv[3])}
bad = []
for name in "ab":
    err = open(f"{w}/collector-{name}.err").read()
    total = 0
    for run in err.split("(earlier run) subscribed to"):
        lines = re.findall(r"health: received (\d+), stored (\d+), duplicates (\d+), gaps (\d+), "
                           r"malformed (\d+), quarantined (\d+), unknown site (\d+), failed (\d+)", run)
        if lines:
            rec, st, dup, gaps, mal, q, unk, failed = map(int, lines[-1])
            total += st
            if failed or mal or q or unk:
                bad.append(f"collector {name}: failed {failed}, malformed {mal}, quarantined {q}, unknown site {unk}")
    # each stored its own site's batches, and only those (b's health lines
    # miss what its killed run stored after its last one: at most all)
    if total != batches[name] if name == "a" else not 0 < total <= batches[name]:
        bad.append(f"collector {name} stored {total} batches, its site has {batches[name]} in the store")
    if f"subscribed to dcem/v1/{('yz-alpha', 'yz-beta')['ab'.index(name)]}/+/data" not in err:
        bad.append(f"collector {name} did not subscribe to its site's topics only")

def table(path):
    out = collections.Counter()
    for line in list(open(path))[1:]:
        t, meter, kwh = line.rstrip("\n").split(",")[:3]
        out[(meter, float(kwh))] += 1
    return out

for site in ("yz-alpha", "yz-beta"):
    exp, sent = table(f"{w}/{site}-export.csv"), table(f"{w}/{site}.csv")
    if exp != sent: bad.append(f"{site}: the export is not the replayed readings, once each")
    col = json.load(open(f"{w}/{site}-figures.json"))
    aud = json.load(open(f"{w}/{site}-audit.json"))
    if len(col) != len(aud["periods"]): bad.append(f"{site}: period count differs")
    for c, a in zip(col, aud["periods"]):
        for k, v in a.items():
            if c.get(k) != v: bad.append(f"{site} {a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
    print(f"{site}: {sum(exp.values())} readings stored once; {len(col)} periods identical to dcem-audit"
          f" (January total {col[0]['total_kwh']} kWh)")
print(f"collector a stored {batches['a']} batches (yz-alpha), b {batches['b']} (yz-beta)")
if bad: print("\n".join(bad[:20])); sys.exit(1)
EOF
echo "collector_shard.sh: passed"

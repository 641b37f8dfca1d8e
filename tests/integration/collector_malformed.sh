#!/usr/bin/env bash
# dcem-collector against payloads it must not accept (docs/wire-format.md,
# "Malformed payloads"), while a good gateway's batches flow: a real mosquitto
# on loopback, a SQLite store, the sample site yz-alpha, dcem-replay as the
# good gateway gw-good (two days of dcem-gen readings), mosquitto_pub as the
# bad gateway gw-bad.
#
#   collector_malformed.sh BUILD_DIR SOURCE_DIR
#
# Proves: every good reading is stored once (the export is exactly the
# replayed rows) and the figures equal dcem-audit's over those rows; the
# health line counts each unacceptable payload as malformed, the bad reading
# as quarantined, the site without a ledger as unknown site; gw-bad gets an
# ack for the quarantined batch and for nothing else, and nobody gets an ack
# for a payload that names another gateway; each malformed warning is logged
# once (repeats are counted, not logged); the collector keeps running and
# storing.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
make_work collector-malformed

# mosquitto 2.0.11 refuses "max_packet_size 0"; without the line there is no
# limit but MQTT's own (256 MiB). It is set explicitly so that the 10 MB
# payload below reaches the collector, which has to refuse it itself
# (configs/mosquitto/dcem.conf stops it at the broker with 2 MiB).
start_mosquitto mosquitto "max_packet_size 16777216"
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 "$@"; }

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
recompute_ms: 500
health_log_s: 1
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null

# two days of readings (through the reading that closes the second day)
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --out "$work/year.csv" \
  --truth "$work/truth.json" >/dev/null
awk -F, 'NR == 1 || substr($1, 1, 10) < "2025-01-03" || substr($1, 1, 19) == "2025-01-03T00:00:00"' \
  "$work/year.csv" >"$work/good.csv"
rows=$(($(wc -l <"$work/good.csv") - 1))
half=$((rows / 2 + 1))
head -n "$half" "$work/good.csv" >"$work/good1.csv"
{ head -n 1 "$work/good.csv"; tail -n +$((half + 1)) "$work/good.csv"; } >"$work/good2.csv"

# every ack, from before the first payload on
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -v -t 'dcem/v1/+/+/ack' >"$work/acks.txt" 2>&1 &
pids+=($!)
wait_for "mosquitto_sub's subscription" 10 \
  bash -c "mosquitto_pub -h 127.0.0.1 -p $port -t dcem/v1/probe/probe/ack -m probe &&
           grep -q probe '$work/acks.txt'"

"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.err"

# ---- the payloads ------------------------------------------------------------------------
# Each rejected one carries an epoch of its own (7001...), so that an ack for
# it would be recognised; readings in them are at times off the 15-minute
# grid, so that a stored one would show in the export.
hdr='"v":1,"site":"yz-alpha","gateway":"gw-bad"'
rd='{"meter":"alpha-in-a","t":1735747500000,"q":"ok","kwh":400000}' # 2025-01-02T00:05+08
bad_topic=dcem/v1/yz-alpha/gw-bad/data
# $work/big.json: 10 MB of a plausible batch (too_large, refused before parsing)
$PY - "$work/big.json" <<'EOF'
import sys
r = '{"meter":"alpha-in-a","t":1735747500000,"q":"ok","kwh":400000},'
n = 10 * 1000 * 1000 // len(r) + 1
body = '{"v":1,"site":"yz-alpha","gateway":"gw-bad","epoch":7003,"seq":1,"readings":[' + r * n
open(sys.argv[1], "w").write(body.rstrip(",") + "]}")
EOF
expect_malformed=0
bad() { # TOPIC ARGS...: a payload that must be refused, not acked
  local topic=$1
  shift
  pub -t "$topic" "$@"
  expect_malformed=$((expect_malformed + 1))
}

# the good gateway, first half, in batches of one timestamp (8 readings) so
# that it is still flowing while the bad payloads arrive
"$replay" --uri "$uri" --site yz-alpha --gateway gw-good --csv "$work/good1.csv" --batch 8 \
  --epoch 1 --timeout-s 120 >"$work/replay1.out" 2>&1 &
replay_pid=$!
pids+=("$replay_pid")

# truncated JSON, twice (the repeat is counted, not logged again)
trunc="{$hdr,\"epoch\":7001,\"seq\":1,\"readings\":[{\"meter\":\"alpha-in-a\",\"t\":17357"
bad "$bad_topic" -m "$trunc"
bad "$bad_topic" -m "$trunc"
# an empty payload
bad "$bad_topic" -n
# a wrong type: seq as a string
bad "$bad_topic" -m "{$hdr,\"epoch\":7002,\"seq\":\"1\",\"readings\":[$rd]}"
# 10 MB
bad "$bad_topic" -f "$work/big.json"
# another gateway's id in the payload (gw-good's own epoch and next seqs: an
# ack of it on gw-bad's topic, or a store of it, would be wrong either way)
bad "$bad_topic" -m '{"v":1,"site":"yz-alpha","gateway":"gw-good","epoch":1,"seq":1,"readings":['"$rd"']}'
# a future schema version
bad "$bad_topic" -m "{\"v\":2,\"site\":\"yz-alpha\",\"gateway\":\"gw-bad\",\"epoch\":7004,\"seq\":1,\"readings\":[$rd]}"
# on the good gateway's topic, a batch naming another gateway
bad dcem/v1/yz-alpha/gw-good/data \
  -m '{"v":1,"site":"yz-alpha","gateway":"gw-other","epoch":7005,"seq":1,"readings":['"$rd"']}'
# a site without a ledger: not malformed, not acked
pub -t dcem/v1/no-such-site/gw-bad/data \
  -m '{"v":1,"site":"no-such-site","gateway":"gw-bad","epoch":7006,"seq":1,"readings":['"$rd"']}'
# an identified batch with a bad reading (t = -1) and a good one: quarantined,
# acked as (9, 1) with both readings refused as "quarantined", none stored
pub -t "$bad_topic" -m "{$hdr,\"epoch\":9,\"seq\":1,\"readings\":[$rd,{\"meter\":\"alpha-in-b\",\"t\":-1,\"q\":\"ok\",\"kwh\":1}]}"

if kill -0 "$replay_pid" 2>/dev/null; then
  echo "the bad payloads arrived while gw-good's first replay was still running"
else
  echo "note: gw-good's first replay had finished before the last bad payload"
fi
wait "$replay_pid" || fail "gw-good, first half: $(cat "$work/replay1.out")"
# after the bad payloads: the second half, acked (a new epoch, as after a lost spool)
"$replay" --uri "$uri" --site yz-alpha --gateway gw-good --csv "$work/good2.csv" --epoch 2 \
  --timeout-s 120 >"$work/replay2.out" 2>&1 || fail "gw-good, second half: $(cat "$work/replay2.out")"
kill -0 "$col_pid" 2>/dev/null || fail "the collector is not running any more"

health() { grep "health: received" "$work/collector.err" | tail -1; }
want="malformed $expect_malformed, quarantined 1, unknown site 1, failed 0;"
wait_for "a health line with: $want" 15 bash -c "grep 'health: received' '$work/collector.err' | tail -1 | grep -qF '$want'"
health
kill -0 "$col_pid" 2>/dev/null || fail "the collector is not running any more"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector exited with $?"
last=$(health)
echo "$last"
grep -qF "$want" <<<"$last" || fail "final health line: $last; expected $want"

"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2024-12-01 --to 2025-02-01 \
  >"$work/export.csv"
"$col" figures -c "$work/collector.yaml" --site yz-alpha --month 2025-01 >"$work/collector-figures.json"
"$audit" --site "$work/sites/yz-alpha.yaml" --policy "$src/configs/policy/beijing-etown-2024.yaml" \
  --readings "$work/good.csv" --year 2025 --json >"$work/audit.json"

$PY - "$work" "$rows" <<'EOF'
import collections, datetime, json, re, sys
w, rows = sys.argv[1], int(sys.argv[2])
bad = []

def table(path):
    out = collections.Counter()
    for line in list(open(path))[1:]:
        t, meter, kwh = line.rstrip("\n").split(",")[:3]
        ms = int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
        out[(ms, meter, float(kwh))] += 1
    return out

# 1. the good traffic, entirely and only
exp, got = table(f"{w}/export.csv"), table(f"{w}/good.csv")
if sum(exp.values()) != rows or exp != got:
    bad.append(f"export: {sum(exp.values())} rows, {len(exp - got)} not replayed, "
               f"{len(got - exp)} replayed rows missing (expected {rows})")

# 2. its figures: January as dcem-audit computes it over the replayed rows
col = json.load(open(f"{w}/collector-figures.json"))[0]
aud = json.load(open(f"{w}/audit.json"))["periods"][0]
for k, v in aud.items():
    if col.get(k) != v: bad.append(f"figures {aud['period']} {k}: collector {col.get(k)!r}, dcem-audit {v!r}")

# 3. acks: gw-bad only for the quarantined batch (9, 1); gw-good only for its
# own epochs 1 and 2, up to their last seq; no one else
acks, refused = collections.defaultdict(list), collections.defaultdict(list)
for line in open(f"{w}/acks.txt"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if topic == "dcem/v1/probe/probe/ack": continue
    a = json.loads(payload)
    acks[topic].append((a["epoch"], a["seq"]))
    refused[topic].append(a.get("refused"))
g = "dcem/v1/yz-alpha/gw-good/ack"
b = "dcem/v1/yz-alpha/gw-bad/ack"
if set(acks[b]) != {(9, 1)}: bad.append(f"gw-bad acks: {acks[b]} (expected only (9, 1))")
# the first ack of the quarantined batch says what it withheld (a re-ack after a reconnect: nothing)
if not refused[b] or refused[b][0] != {"quarantined": 2} or any(refused[b][1:]):
    bad.append(f"gw-bad acks' refused: {refused[b]} (expected {{'quarantined': 2}} first)")
if any(refused[g]): bad.append(f"gw-good acks with refusals: {[r for r in refused[g] if r]}")
if {e for e, _ in acks[g]} != {1, 2}: bad.append(f"gw-good acks of epochs {sorted({e for e, _ in acks[g]})}")
others = set(acks) - {g, b}
if others: bad.append(f"acks on other topics: {sorted(others)}")
print(f"export: {rows} rows, exactly the replayed ones; January figures identical to dcem-audit "
      f"(total {col['total_kwh']} kWh, verdicts {col['verdicts']}); "
      f"acks: gw-bad {sorted(set(acks[b]))}, gw-good {len(acks[g])}")

# 4. counted by gateway and reason (the last health report), each pair
# logged once (repeats only counted), and gw-good's complaint ended by its
# good batches after it
err = open(f"{w}/collector.err").read()
last_stop = err.rindex("collector: stopping")
refused = {(g, r): int(n) for g, r, n in
           re.findall(r"health: refused from (\S+): (\w+) (\d+)", err[last_stop:])}
want = {("yz-alpha/gw-bad", "not_json"): 3, ("yz-alpha/gw-bad", "wrong_type"): 1,
        ("yz-alpha/gw-bad", "too_large"): 1, ("yz-alpha/gw-bad", "gateway_mismatch"): 1,
        ("yz-alpha/gw-bad", "unsupported_version"): 1, ("yz-alpha/gw-good", "gateway_mismatch"): 1,
        ("unknown", "unknown_site"): 1}
if refused != want: bad.append(f"refused by gateway and reason: {refused}, expected {want}")
logged = re.findall(r"warn: ingest: (\S+): malformed payload on \S+ dropped: (\w+)", err)
logged += re.findall(r"warn: ingest: (\S+): batch for site \S+ not acked: no ledger for it", err)
logged = [(x, "unknown_site") if isinstance(x, str) else x for x in logged]
dups = [k for k, n in collections.Counter(logged).items() if n > 1]
if set(logged) != set(want): bad.append(f"logged {sorted(set(logged))}, expected one of each {sorted(want)}")
if dups: bad.append(f"logged more than once: {dups}")
if not re.search(r"ingest: yz-alpha/gw-good: good payloads again after gateway_mismatch", err):
    bad.append("gw-good's good batches did not end its complaint")
print(f"refused, by gateway and reason: {sorted(refused.items())}; each logged once")
if bad: print("\n".join(bad[:20])); sys.exit(1)
EOF
echo "collector_malformed.sh: passed"

#!/usr/bin/env bash
# Adversarial cases 1 and 2 (forged births, forged batches, forged acks) and
# the signatures checked against an independent implementation, the openssl
# command line (docs/security.md, docs/wire-format.md "Signatures").
#
#   security.sh BUILD_DIR SOURCE_DIR
#
# dcem-sim -> dcem-agent (signing, believing only the collector's key) ->
# mosquitto -> dcem-collector (its key; a ledger listing gw-1 with the agent's
# key and gw-ossl with a key made by `openssl genpkey`). An outsider who can
# publish anything on the broker:
#   1. forges acks for every batch the agent holds while the collector is
#      away, then the broker restarts and loses its queue: an obeyed ack would
#      have deleted batches nobody stored;
#   2. forges births (unsigned, signed with its own key, and a genuine birth
#      of gw-1 replayed on gw-ossl's topic) claiming next_seq 2^53-1: the
#      collector would skip to it;
#   3. forges batches for the seqs gw-1 is about to send (unsigned, own key):
#      the real ones would be acked as duplicates;
#   4. replays a genuine batch of gw-1 on gw-ossl's topic;
#   5. publishes under 600 gateway names the ledger does not list; and
#      gw-ossl's own clock jumps to 9999 for one reading.
# Every live batch of gw-1 is still stored once, with nothing given up
# (epochs.skipped 0), none of the forged readings; the refusals are counted
# and logged by reason. openssl verifies what the agent signed and what the
# collector kept as proof, and signs a batch of gw-ossl the collector accepts.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
sim=$build/firmware/sim/dcem-sim
agent=$build/firmware/agent/dcem-agent
col=$build/gateway/collector/dcem-collector
for b in "$sim" "$agent" "$col"; do [[ -x $b ]] || fail "no $b"; done
make_work security
root=dcem/v1/test-site

# ---- keys: ours, and openssl's --------------------------------------------
mkdir -m 700 "$work/keys"
gw_key=$("$agent" --keygen "$work/keys/gw-1.key" 2>/dev/null)
col_key=$("$col" --keygen "$work/keys/collector.key" 2>/dev/null)
openssl genpkey -algorithm ed25519 -out "$work/keys/gw-ossl.key" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$work/keys/attacker.key" 2>/dev/null
chmod 600 "$work/keys"/*.key
ossl_key=$("$agent" --pubkey "$work/keys/gw-ossl.key")
[[ $ossl_key == "ed25519:$(openssl pkey -in "$work/keys/gw-ossl.key" -pubout -outform DER |
  tail -c 32 | base64)" ]] || fail "dcem and openssl disagree on a public key: $ossl_key"
openssl pkey -in "$work/keys/gw-1.key" -pubout -out "$work/keys/gw-1.pub" 2>/dev/null ||
  fail "openssl cannot read the key dcem-agent --keygen wrote"
[[ $gw_key == "ed25519:$(openssl pkey -in "$work/keys/gw-1.pub" -pubin -outform DER |
  tail -c 32 | base64)" ]] || fail "dcem-agent --keygen printed another key than it wrote"

# ossl_sign KEY TOPIC JSON: JSON signed for TOPIC by the openssl command line
# (docs/wire-format.md's recipe, the other way round)
ossl_sign() {
  local prefix=${3%\}}
  printf 'dcem-sig-v1\n%s\n%s' "$2" "$prefix" | openssl dgst -sha256 -binary >"$work/digest"
  openssl pkeyutl -sign -inkey "$1" -rawin -in "$work/digest" -out "$work/sig"
  printf '%s,"sig":"%s"}' "$prefix" "$(base64 -w0 "$work/sig")"
}
# ossl_verify PUB_PEM TOPIC FILE: the recipe of docs/wire-format.md
ossl_verify() {
  head -c -98 "$3" >"$work/prefix"
  printf 'dcem-sig-v1\n%s\n' "$2" | cat - "$work/prefix" | openssl dgst -sha256 -binary >"$work/digest"
  tail -c 90 "$3" | head -c 88 | base64 -d >"$work/sig"
  openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$work/digest" -sigfile "$work/sig" >/dev/null
}

# ---- the system ------------------------------------------------------------
start_mosquitto
restart_broker() { # the same port, an empty broker: whatever it queued is gone
  kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
  mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
  pids[0]=$!
  wait_for "mosquitto again" 10 port_open "$port"
}
"$sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")

mkdir "$work/sites"
cat >"$work/sites/test-site.yaml" <<EOF
site: test-site
racks: 60
rack_power_kw: 300
interval_minutes: 1
meters:
  - {id: it-main, role: it, rated_kw: 400}
  - {id: cooling, role: facility, rated_kw: 250}
  - {id: pv-roof, role: green_onsite, rated_kw: 80}
gateways:
  - {id: gw-1, keys: ["$gw_key"]}
  - {id: gw-ossl, keys: ["$ossl_key"]}
EOF
cat >"$work/collector.yaml" <<EOF
collector: test
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
mqtt: {uri: "$uri", version: 5}
store: {path: store.db}
identity: {key_file: keys/collector.key}
health_log_s: 1
EOF
"$col" -c "$work/collector.yaml" --check-config >/dev/null
start_collector() {
  "$col" -c "$work/collector.yaml" >>"$work/collector.out" 2>>"$work/collector.err" &
  col_pid=$!
  pids+=("$col_pid")
}
cat >"$work/agent.yaml" <<EOF
gateway: gw-1
site: test-site
profiles: $src/configs/meters
buses:
  - {name: tcp, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 300}
devices:
  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main, poll_ms: 250}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling, poll_ms: 250}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof, poll_ms: 250}
mqtt: {uri: "$uri", version: 5, reconnect_max_ms: 500}
spool: {dir: "$work/spool"}
batch: {max_readings: 250, max_delay_ms: 200}
identity:
  key_file: keys/gw-1.key
  collector_keys: ["$col_key"]
EOF
"$agent" -c "$work/agent.yaml" --check-config >/dev/null
start_agent() {
  "$agent" -c "$work/agent.yaml" >>"$work/agent.out" 2>>"$work/agent.err" &
  agent_pid=$!
  pids+=("$agent_pid")
}
sql() { sqlite3 -cmd '.timeout 5000' "$work/store.db" "$1"; }
stored() { sql "SELECT count(*) FROM batches WHERE gateway = '$1'" 2>/dev/null || echo 0; }
at_least() { (($(stored "$1") >= $2)); }

# what the agent publishes, as received by anyone on the broker
mosquitto_sub -h 127.0.0.1 -p "$port" -t "$root/gw-1/data" -C 1 -N >"$work/captured-batch.json" &
cap_pid=$!
mosquitto_sub -h 127.0.0.1 -p "$port" -t "$root/gw-1/state" -C 1 -N >"$work/captured-birth.json" &
start_collector
wait_for "the collector's subscription" 10 grep -q "subscribed to" "$work/collector.err"
start_agent
wait_for "gw-1's first batches stored" 20 at_least gw-1 5
wait "$cap_pid" || fail "no batch captured"

# openssl verifies what the agent signed
ossl_verify "$work/keys/gw-1.pub" "$root/gw-1/data" "$work/captured-batch.json" ||
  fail "openssl does not verify the agent's batch"
ossl_verify "$work/keys/gw-1.pub" "$root/gw-1/state" "$work/captured-birth.json" ||
  fail "openssl does not verify the agent's birth"
echo "openssl verifies the agent's batch and birth"

# a batch of gw-ossl signed by openssl is accepted
batch='{"v":1,"site":"test-site","gateway":"gw-ossl","epoch":5,"seq":1,"readings":[{"meter":"pv-roof","t":1735689600000,"q":"ok","kwh":12.5}]}'
ossl_sign "$work/keys/gw-ossl.key" "$root/gw-ossl/data" "$batch" >"$work/ossl-batch.json"
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "$root/gw-ossl/data" -f "$work/ossl-batch.json"
wait_for "gw-ossl's openssl-signed batch stored" 10 at_least gw-ossl 1

# ---- 1. forged acks while the collector is away ----------------------------
kill -TERM "$col_pid"; wait "$col_pid" || fail "the collector exited with $?"
read -r epoch acked < <(sql "SELECT epoch, contiguous_seq FROM epochs WHERE gateway = 'gw-1'" | tr '|' ' ')
held_beyond() { (($(spool_records "$work/spool" | awk '{print $2}' | sort -n | tail -1) >= acked + 4)); }
wait_for "4 unacknowledged batches on gw-1's spool" 20 held_beyond
newest=$(spool_records "$work/spool" | awk '{print $2}' | sort -n | tail -1)
ack="{\"v\":1,\"epoch\":$epoch,\"seq\":$newest}"
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 "$@"; }
pub -t "$root/gw-1/ack" -m "$ack"
pub -t "$root/gw-1/ack" -m "$(ossl_sign "$work/keys/attacker.key" "$root/gw-1/ack" "$ack")"
ignored() { (($(grep -c "ack on $root/gw-1/ack ignored" "$work/agent.err") >= 1)); }
wait_for "the agent ignoring forged acks" 10 ignored
# the broker restarts and forgets the collector's queue: gw-1's unacknowledged
# batches now exist only on its spool
restart_broker
echo "forged acks for epoch $epoch up to seq $newest (acknowledged: $acked); broker restarted"

# ---- 2 and 3. forged births and batches, the collector back ----------------
start_collector
subscribed_twice() { (($(grep -c "subscribed to" "$work/collector.err") >= 2)); }
wait_for "the collector's second subscription" 10 subscribed_twice
big=9007199254740991
birth="{\"v\":1,\"online\":true,\"epoch\":$epoch,\"next_seq\":$big,\"queued\":0,\"version\":\"x\"}"
pub -r -t "$root/gw-1/state" -m "$birth"
pub -r -t "$root/gw-1/state" -m "$(ossl_sign "$work/keys/attacker.key" "$root/gw-1/state" "$birth")"
# a genuine birth of gw-1, replayed on another gateway's topic
pub -t "$root/gw-ossl/state" -f "$work/captured-birth.json"
for ((s = newest + 1; s <= newest + 10; s++)); do
  fake="{\"v\":1,\"site\":\"test-site\",\"gateway\":\"gw-1\",\"epoch\":$epoch,\"seq\":$s,\"readings\":[{\"meter\":\"it-main\",\"t\":$(($(date +%s) * 1000 + s)),\"q\":\"ok\",\"kwh\":999999}]}"
  pub -t "$root/gw-1/data" -m "$fake"
  pub -t "$root/gw-1/data" -m "$(ossl_sign "$work/keys/attacker.key" "$root/gw-1/data" "$fake")"
done
# ---- 4. a genuine batch of gw-1 replayed as gw-ossl's ----------------------
pub -t "$root/gw-ossl/data" -f "$work/captured-batch.json"

# ---- 5. junk gateway names, and a clock at 9999 -----------------------------
# 600 names the ledger does not list share one source: gw-1's refusals stay
# visible (checked below)
junk=()
for ((i = 0; i < 600; i++)); do
  pub -t "$root/junk-$i/data" -m "{\"v\":1,\"site\":\"test-site\",\"gateway\":\"junk-$i\",\"epoch\":1,\"seq\":1,\"readings\":[]}" &
  junk+=($!)
  if ((${#junk[@]} == 50)); then wait "${junk[@]}"; junk=(); fi
done
# gw-ossl's clock jumps to 9999 for one reading (signed: a faulty gateway,
# not an outsider), then a reading of now: refused, then stored
now_ms=$(($(date +%s) * 1000))
# and a value of 1.5e308 (stored out_of_range without it: verify must still
# find the signed batch and the store agree)
for b in "2:253402300799000:13" "3:$now_ms:13" "4:$((now_ms + 1)):1.5e308"; do
  IFS=: read -r seq t kwh <<<"$b"
  batch="{\"v\":1,\"site\":\"test-site\",\"gateway\":\"gw-ossl\",\"epoch\":5,\"seq\":$seq,\"readings\":[{\"meter\":\"pv-roof\",\"t\":$t,\"q\":\"ok\",\"kwh\":$kwh}]}"
  pub -t "$root/gw-ossl/data" -m "$(ossl_sign "$work/keys/gw-ossl.key" "$root/gw-ossl/data" "$batch")"
done

# the real batches keep coming; then a clean stop, and a start that drains
# the spool (its last batch was spooled at stop)
wait_for "gw-1 past the forged seqs" 30 at_least gw-1 $((newest + 12))
kill -TERM "$agent_pid"; wait "$agent_pid" || fail "the agent exited with $?"
start_agent
has_no_segments() { ! ls "$work/spool"/seg-* >/dev/null 2>&1; }
wait_for "gw-1's spool to drain" 40 has_no_segments
kill -TERM "$agent_pid"; wait "$agent_pid" || true
sleep 1.5 # one more health line
kill -TERM "$col_pid"; wait "$col_pid" || fail "the collector exited with $?"

# ---- what the store holds ---------------------------------------------------
read -r contiguous skipped n max_seq < <(sql "SELECT e.contiguous_seq, e.skipped,
  (SELECT count(*) FROM batches b WHERE b.gateway = 'gw-1' AND b.epoch = e.epoch),
  (SELECT max(seq) FROM batches b WHERE b.gateway = 'gw-1' AND b.epoch = e.epoch)
  FROM epochs e WHERE e.gateway = 'gw-1'" | tr '|' ' ')
echo "gw-1 epoch $epoch: $n batches stored, contiguous to $contiguous, $skipped given up"
((skipped == 0)) || fail "$skipped of gw-1's batches were given up (a forged birth or ack obeyed)"
((contiguous == n && max_seq == n)) || fail "gw-1's batches are not 1..$n exactly once"
((n > newest + 10)) || fail "only $n batches: the forged seqs were not passed"
[[ $(sql "SELECT count(*) FROM readings WHERE kwh = 999999") == 0 ]] || fail "a forged reading was stored"
[[ $(sql "SELECT count(*) FROM quarantine") == 0 ]] || fail "something was quarantined"
[[ $(sql "SELECT group_concat(seq) FROM batches WHERE gateway = 'gw-ossl'") == "1,2,3,4" ]] ||
  fail "gw-ossl's batches are not its four openssl-signed ones"
[[ $(sql "SELECT quality FROM readings WHERE gateway = 'gw-ossl' AND t_ms = $now_ms + 1 AND kwh IS NULL") == 2 ]] ||
  fail "the reading of 1.5e308 was not stored out_of_range without its value"
[[ $(sql "SELECT count(*) FROM readings WHERE gateway = 'gw-ossl' AND t_ms > $now_ms + 3600000") == 0 ]] ||
  fail "a reading stamped 9999 was stored"
[[ $(sql "SELECT count(*) FROM readings WHERE gateway = 'gw-ossl' AND t_ms = $now_ms") == 1 ]] ||
  fail "the reading after the clock jump was not stored (the meter froze)"
grep -q "readings refused: stamped in the future 1," "$work/collector.err" ||
  fail "the reading stamped 9999 was not counted"
proofs=$(sql "SELECT count(*) FROM proofs WHERE gateway = 'gw-1' AND key = '$gw_key'")
((proofs == n)) || fail "$proofs proofs for gw-1's $n batches"
# a stored proof, checked by openssl
sql "SELECT writefile('$work/proof.json', payload) FROM proofs WHERE gateway = 'gw-1' ORDER BY seq DESC LIMIT 1" >/dev/null
ossl_verify "$work/keys/gw-1.pub" "$root/gw-1/data" "$work/proof.json" ||
  fail "openssl does not verify a stored proof"
echo "every batch of gw-1 stored once with its proof; none forged"

# dcem-collector verify: every stored reading proven from the kept proofs;
# a reading changed in the store afterwards is found out
"$col" verify -c "$work/collector.yaml" --site test-site --from 2000-01-01 --to 2100-01-01 \
  >"$work/verify.out" || fail "verify: $(cat "$work/verify.out")"
cat "$work/verify.out"
grep -q "(0 do not verify, 0 signed by a key no longer in the ledger, 0 readings differ" \
  "$work/verify.out" || fail "verify found problems"
sql "UPDATE readings SET kwh = kwh + 1 WHERE (site, t_ms, meter) =
  (SELECT site, t_ms, meter FROM readings WHERE gateway = 'gw-1' AND kwh IS NOT NULL LIMIT 1)"
rc=0
"$col" verify -c "$work/collector.yaml" --site test-site --from 2000-01-01 --to 2100-01-01 \
  >"$work/verify2.out" || rc=$?
((rc == 1)) || fail "verify did not fail on a changed reading (exit $rc)"
grep -q "the store holds other values than the batch signed" "$work/verify2.out" ||
  fail "verify did not say what changed: $(cat "$work/verify2.out")"
echo "a changed reading: $(head -1 "$work/verify2.out")"

# the refusals, by reason, counted (the health line) and logged once per
# gateway, reason and spell: gw-1's 10 forged batches and 1 birth of each kind,
# gw-ossl's replayed batch and birth
health=$(grep "refused from" "$work/collector.err" | tail -3)
echo "$health"
for want in "test-site/gw-1: unsigned 11" "test-site/gw-1: bad_signature 11" \
  "test-site/gw-ossl: bad_signature 2"; do
  grep -q "refused from $want\$" <<<"$health" || fail "not counted: $want"
done
# (a good batch of gw-1 in between starts a new spell: logged again); the
# junk names are lumped together as `unknown`
# (refused as unknown_gateway, or dropped first by that source's rate limit)
last_count() { { grep "refused from unknown: $1 " "$work/collector.err" || true; } | awk '{n = $NF} END {print n + 0}'; }
junk_n=$(($(last_count unknown_gateway) + $(last_count rate_limited)))
((junk_n == 600)) ||
  fail "the junk gateways were not all counted under one unknown source ($junk_n of 600)"
for r in "gw-1.* unsigned" "gw-1.* bad_signature" "gw-ossl.* bad_signature"; do
  n=$(grep -c "test-site/$r: " "$work/collector.err") || true
  ((n >= 1 && n < 5)) || fail "the refusals '$r' were logged $n times, not once per spell"
done
grep -q ", [1-9][0-9]* not signed by a collector" "$work/agent.err" ||
  fail "the agent did not count the forged acks"
echo "security: passed"

#!/usr/bin/env bash
# The amd64 packages of scripts/package.sh installed, used and removed, as
# an operator would (docs/packages.md); run by scripts/test.sh, as root:
#
#   package.sh DIST_DIR BUILD_DIR SOURCE_DIR
#
# 1. dpkg -i dcem-data, dcem-agent and dcem-collector: the dcem user, its
#    /var/lib/dcem, the signing keys made on install (0600, the user's), the
#    conffiles under /etc/dcem;
# 2. the example configs pass --check-config as the units run it (as dcem),
#    with the profiles, policy and dashboard found under /usr/share/dcem;
# 3. the installed agent, with a config that names no profiles, reads three
#    meters of dcem-sim (BUILD_DIR's) once: every value is what was served;
# 4. dpkg --purge: the programs, conffiles and keys are gone.
# The machine is left as found: a dcem user or /var/lib/dcem this test
# made is removed again. It refuses to run where dcem packages are installed.
set -euo pipefail
dist=$1
build=$2
src=$3
. "$(dirname "$0")/lib.sh"
make_work package
chmod 0755 "$work" # the dcem user reads the configs written here
((EUID == 0)) || fail "installs packages: run as root"
pkgs=(dcem-collector dcem-agent dcem-data)
for p in "${pkgs[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
    fail "$p is installed on this machine; this test installs and purges it: remove it first"
  fi
done
version=$(sed -n 's/^project(dcem VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
debs=("$dist/dcem-data_${version}_all.deb" "$dist/dcem-agent_${version}_amd64.deb"
  "$dist/dcem-collector_${version}_amd64.deb")
for d in "${debs[@]}"; do [[ -f $d ]] || fail "no $d: run scripts/package.sh amd64 first"; done
had_user=0
getent passwd dcem >/dev/null && had_user=1
had_state=0
[[ -e /var/lib/dcem ]] && had_state=1

purge() {
  dpkg --purge "${pkgs[@]}" >"$work/purge.out" 2>&1
  ((had_state)) || rm -rf /var/lib/dcem
  ((had_user)) || { deluser --quiet --system dcem >/dev/null 2>&1 || true; }
}
cleanup() { # after a failure too: never leave the packages behind
  local rc=$?
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed && { purge || true; break; }
  done
  (exit "$rc") # stop_work reads the status
  stop_work
}
trap cleanup EXIT

# ---- 1. install ----
dpkg -i "${debs[@]}" >"$work/install.out" 2>&1 || fail "dpkg -i: $(tail -5 "$work/install.out")"
grep -q "public key" "$work/install.out" || fail "no public key printed on install: $(cat "$work/install.out")"
getent passwd dcem >/dev/null || fail "no dcem user"
[[ $(stat -c '%U:%G %a' /var/lib/dcem) == "dcem:dcem 750" ]] ||
  fail "/var/lib/dcem is $(stat -c '%U:%G %a' /var/lib/dcem)"
for key in gateway collector; do
  [[ $(stat -c '%U %a' "/etc/dcem/$key.key") == "dcem 600" ]] ||
    fail "/etc/dcem/$key.key is $(stat -c '%U %a' "/etc/dcem/$key.key")"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' dcem-agent dcem-collector dcem-data | awk 'NF {print $1}' | sort | tr '\n' ' ')
want="/etc/dcem/agent/agent.yaml /etc/dcem/collector/collector.yaml /etc/dcem/sites/yz-alpha.yaml /etc/dcem/sites/yz-beta.yaml /etc/dcem/sites/yz-gamma.yaml "
[[ $conffiles == "$want" ]] || fail "conffiles: $conffiles"
for unit in dcem-agent dcem-collector; do
  [[ -f /lib/systemd/system/$unit.service ]] || fail "no $unit.service"
done
echo "installed: $(dpkg-query -W -f='${Package} ${Version} ${Architecture}, ' "${pkgs[@]}")"

# ---- 2. the example configs, checked as the units check them ----
out=$(runuser -u dcem -- dcem-agent -c /etc/dcem/agent/agent.yaml --check-config 2>&1) ||
  fail "agent --check-config: $out"
[[ $out == *"2 profiles from /usr/share/dcem/meters)" ]] || fail "agent --check-config said: $out"
echo "$out"
out=$(runuser -u dcem -- dcem-collector -c /etc/dcem/collector/collector.yaml --check-config 2>&1) ||
  fail "collector --check-config: $out"
[[ $out == *"3 sites, policy "*" from /usr/share/dcem/policy/beijing-etown-2024.yaml, "*", dashboard /usr/share/dcem/dashboard)" ]] ||
  fail "collector --check-config said: $out"
echo "$out"
for prog in dcem-report dcem-audit; do
  "$prog" --help >/dev/null 2>&1 || fail "$prog --help failed"
done

# ---- 3. one poll of dcem-sim by the installed agent ----
"$build/firmware/sim/dcem-sim" -c "$src/configs/sim/clean-3.yaml" --tcp 127.0.0.1:0 --speed 0 \
  --truth "$work/truth.json" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
pids+=("$sim_pid")
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
collector_pub=$(dcem-collector --pubkey /etc/dcem/collector.key) || fail "dcem-collector --pubkey"
cat >"$work/agent.yaml" <<EOF
gateway: gw-pkg
site: yz-alpha
buses:
  - {name: tcp, tcp: "127.0.0.1:$sim_port", response_timeout_ms: 500}
devices:
  - {bus: tcp, unit: 1, profile: eastron-sdm630, meter: it-main}
  - {bus: tcp, unit: 2, profile: acrel-adl400, meter: cooling}
  - {bus: tcp, unit: 3, profile: chint-dtsu666, meter: pv-roof}
mqtt: {uri: "tcp://127.0.0.1:1", version: 5}
spool: {dir: /var/lib/dcem/spool}
identity: {key_file: /etc/dcem/gateway.key, collector_keys: ["$collector_pub"]}
EOF
runuser -u dcem -- dcem-agent -c "$work/agent.yaml" --once --json >"$work/once.json" 2>"$work/once.err" ||
  fail "--once: $(cat "$work/once.err")"
kill -USR1 "$sim_pid"
wait_for "truth file" 10 test -s "$work/truth.json"
$PY - "$work/once.json" "$work/truth.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
served = {m["id"]: {(r["quantity"], r["phase"]): r["served"] for r in m["registers"]}
          for m in json.load(open(sys.argv[2]))["meters"]}
bad, n = [], 0
if doc["summary"] != {"devices": 3, "answered": 3, "failed": 0}: bad.append(f"summary {doc['summary']}")
for d in doc["devices"]:
    for v in d["values"]:
        want = served[d["meter"]].get((v["quantity"], v["phase"]))
        if want is None: continue
        n += 1
        if v["status"] != "ok" or abs(v["value"] - want) > 1e-9 * max(1.0, abs(want)):
            bad.append(f"{d['meter']} {v['register']}: {v['value']!r} read, {want!r} served")
if n < 20: bad.append(f"only {n} values compared")
print(f"the installed agent read {n} values of {len(doc['devices'])} meters, each as served")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# ---- 4. purge ----
purge || fail "dpkg --purge: $(cat "$work/purge.out")"
for gone in /usr/bin/dcem-agent /usr/bin/dcem-collector /usr/share/dcem /etc/dcem/agent \
  /etc/dcem/collector /etc/dcem/sites /etc/dcem/gateway.key /etc/dcem/collector.key \
  /lib/systemd/system/dcem-agent.service; do
  [[ ! -e $gone ]] || fail "$gone is still there after dpkg --purge"
done
echo "purged: nothing of the packages is left"

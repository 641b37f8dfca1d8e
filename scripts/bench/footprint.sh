#!/usr/bin/env bash
# Benchmark (not a test): the agent's footprint on a gateway, per
# architecture (amd64 natively; arm64 and armhf as cross-built by
# scripts/cross.sh, under qemu-user):
#
#   - installed size: the stripped dcem-agent, and every shared library it
#     needs (NEEDED, followed recursively, in that architecture's multiarch
#     folders), file sizes after symlinks; the issue's target: under 8 MiB;
#   - resident memory with 1 and with 64 meters (configs/sim/bench-64.yaml:
#     64 Eastron SDM630 behind one Modbus TCP port, each polled every
#     second, batches signed and published to a local mosquitto, acked by
#     dcem-test-ack with a collector key), read after SECONDS of polling,
#     and per meter: (64-meter figure - 1-meter figure) / 63. Two figures:
#     RSS, and its anonymous part (heap, stacks, written data; Anonymous: in
#     smaps). Target: under 8 MiB resident with 64 meters, on armhf;
#   - start-up: from exec to the first poll (the first reading's own time)
#     and to that reading at the acknowledger (its batch waits up to
#     batch.max_delay_ms, 1 s, for more readings).
#
# Not counting the emulator. Under qemu-user the guest's memory is host
# memory at a known place: qemu's -d page log lists the guest's mappings
# (its last "page layout" table, at guest_base: 0x1000 for 32-bit guests, 0
# for 64-bit ones, both printed there), and the host's /proc/PID/smaps gives
# each mapping's resident pages. Only mappings that start inside one of the
# guest's are summed; qemu's own code, heap and translated-code cache are not. The
# baseline printed beside it is the whole qemu process (VmRSS), i.e. what
# the emulator adds; for amd64 the same sum over the agent's own smaps
# equals its VmRSS. Start-up under qemu is emulated time, printed as such:
# a real board's is nearer the amd64 figure times its slower clock.
#
# Usage: scripts/bench/footprint.sh [seconds] [arch...]   (defaults: 20; amd64 arm64 armhf)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/bench/lib.sh"
secs=${1:-20}
shift || true
arches=("$@")
((${#arches[@]})) || arches=(amd64 arm64 armhf)
bench_work footprint
host=$root/build/release

echo "building (host: build/release; ARM: scripts/cross.sh) ..." >&2
cmake -S "$root" -B "$host" -DDCEM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$host" -j "$(nproc)" --target dcem-agent dcem-sim dcem-test-ack >/dev/null
for arch in "${arches[@]}"; do
  [[ $arch == amd64 ]] || "$root/scripts/cross.sh" "$arch" >/dev/null 2>&1 ||
    fail "scripts/cross.sh $arch failed"
done

mqtt_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n' \
  "$mqtt_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_for "mosquitto" 10 port_open "$mqtt_port"
"$host/firmware/sim/dcem-sim" -c "$root/configs/sim/bench-64.yaml" --tcp 127.0.0.1:0 \
  >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
wait_for "dcem-sim ready" 10 grep -q '^ready' "$work/sim.out"
sim_port=$(sed -n 's/.*tcp=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sim.out")
"$host/firmware/agent/dcem-agent" --keygen "$work/gw.key" >/dev/null 2>&1
collector_key=$("$host/firmware/agent/dcem-agent" --keygen "$work/collector.key" 2>/dev/null)

triplet_of() { case $1 in amd64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; armhf) echo arm-linux-gnueabihf ;; esac; }
agent_of() { if [[ $1 == amd64 ]]; then echo "$host/firmware/agent/dcem-agent"; else echo "$root/build/$1/firmware/agent/dcem-agent"; fi; }

# sizes ARCH: "agent_bytes libs_bytes" and the library list in $work/libs-ARCH
sizes() {
  local arch=$1 t bin strip=strip
  t=$(triplet_of "$arch")
  [[ $arch == amd64 ]] || strip=$t-strip
  bin=$work/dcem-agent-$arch
  "$strip" -o "$bin" "$(agent_of "$arch")"
  $PY - "$bin" "$t" "$work/libs-$arch" <<'EOF'
import os, subprocess, sys
binary, t, out = sys.argv[1], sys.argv[2], sys.argv[3]
dirs = [f"/lib/{t}", f"/usr/lib/{t}", f"/usr/{t}/lib"]
def needed(path):
    text = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return [l.split("[")[1].split("]")[0] for l in text.splitlines() if "(NEEDED)" in l]
seen, todo = {}, needed(binary)
while todo:
    name = todo.pop()
    if name in seen: continue
    path = next((os.path.join(d, name) for d in dirs if os.path.exists(os.path.join(d, name))), None)
    if path is None: sys.exit(f"{name}: not found for {t}")
    seen[name] = os.path.realpath(path)
    todo += needed(seen[name])
with open(out, "w") as f:
    for name, path in sorted(seen.items(), key=lambda kv: -os.path.getsize(kv[1])):
        f.write(f"{os.path.getsize(path) / 1024:8.0f} KiB  {name}\n")
print(os.path.getsize(binary), sum(os.path.getsize(p) for p in seen.values()))
EOF
}

# run ARCH METERS: polls METERS meters for $secs s; prints
# "first_poll_ms first_ack_ms guest_rss_kib guest_anon_kib process_rss_kib"
run() {
  local arch=$1 n=$2 t emu=() tag=$1-$2
  t=$(triplet_of "$arch")
  if [[ $arch != amd64 ]]; then
    local qemu=qemu-aarch64 loader=ld-linux-aarch64.so.1
    [[ $arch == armhf ]] && qemu=qemu-arm loader=ld-linux-armhf.so.3
    emu=("$qemu" -d page -D "$work/qemu-$tag.log" "/usr/$t/lib/$loader" --library-path "/usr/$t/lib")
  fi
  {
    printf 'gateway: gw-fp\nsite: bench\nprofiles: %s/configs/meters\nlog_level: warn\nbuses:\n' "$root"
    printf '  - {name: tcp-1, tcp: "127.0.0.1:%s", response_timeout_ms: 1000, retries: 1}\ndevices:\n' "$sim_port"
    for ((u = 1; u <= n; u++)); do
      printf '  - {bus: tcp-1, unit: %d, profile: eastron-sdm630, meter: rack-%02d, poll_ms: 1000}\n' "$u" "$u"
    done
    printf 'mqtt: {uri: "tcp://127.0.0.1:%s", version: 5, client_id: "fp-%s"}\n' "$mqtt_port" "$tag"
    printf 'spool: {dir: "%s/spool-%s"}\n' "$work" "$tag"
    printf 'identity: {key_file: "%s/gw.key", collector_keys: ["%s"]}\n' "$work" "$collector_key"
  } >"$work/agent-$tag.yaml"
  "$host/tests/dcem-test-ack" --uri "tcp://127.0.0.1:$mqtt_port" --out "$work/acked-$tag.jsonl" \
    --key "$work/collector.key" >"$work/ack-$tag.out" 2>"$work/ack-$tag.err" &
  local ack_pid=$!
  pids+=("$ack_pid")
  wait_for "dcem-test-ack ready" 10 grep -q '^ready' "$work/ack-$tag.out"
  local t0 t1
  t0=$(date +%s%N)
  "${emu[@]}" "$(agent_of "$arch")" -c "$work/agent-$tag.yaml" >"$work/agent-$tag.out" 2>"$work/agent-$tag.err" &
  local agent_pid=$!
  pids+=("$agent_pid")
  wait_for "the first reading of $tag" 60 test -s "$work/acked-$tag.jsonl"
  t1=$(date +%s%N)
  local first_poll # the first reading's own time: when its meter was read
  first_poll=$($PY -c 'import json, sys; print(min(json.loads(l)["t"] for l in open(sys.argv[1])))' \
    "$work/acked-$tag.jsonl")
  sleep "$secs"
  kill -0 "$agent_pid" 2>/dev/null || fail "$tag: the agent died: $(tail -3 "$work/agent-$tag.err")"
  local layout=""
  [[ $arch == amd64 ]] || layout=$work/qemu-$tag.log
  local mem
  mem=$($PY - "/proc/$agent_pid/smaps" "$layout" <<'EOF'
import re, sys
smaps, layout = sys.argv[1], sys.argv[2]
ranges = None  # the guest's mappings, in host addresses
if layout:
    text = open(layout).read()
    base = 0
    m = re.findall(r"Locating guest address space @ 0x([0-9a-f]+)", text)
    if m: base = int(m[-1], 16)
    table = text.rsplit("start", 1)[1].splitlines()[1:]
    ranges = []
    for line in table:
        f = line.split()
        if len(f) < 3 or not re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", f[0]): break
        lo, hi = (int(x, 16) + base for x in f[0].split("-"))
        ranges.append((lo, hi))
rss = anon = 0
cur = None
for line in open(smaps):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        lo, hi = int(m[1], 16), int(m[2], 16)
        # the host merges neighbouring mappings that qemu lists apart: a
        # mapping is the guest's when it starts inside one of the guest's
        cur = ranges is None or any(a <= lo < b for a, b in ranges)
    elif cur and line.startswith("Rss:"): rss += int(line.split()[1])
    elif cur and line.startswith("Anonymous:"): anon += int(line.split()[1])
print(rss, anon)
EOF
)
  local proc_rss
  proc_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status")
  kill -TERM "$agent_pid"
  wait "$agent_pid" 2>/dev/null || true
  kill -TERM "$ack_pid"
  wait "$ack_pid" 2>/dev/null || true
  echo "$((first_poll - t0 / 1000000)) $(((t1 - t0) / 1000000)) $mem $proc_rss"
}

printf '\n%-6s %10s %10s %10s | %-16s %-16s %10s | %12s %-26s | %10s\n' arch agent libs installed \
  "RSS 1 / 64 m" "anon 1 / 64 m" "RSS/meter" "qemu RSS 64" "start-up 64: poll / acked" target
for arch in "${arches[@]}"; do
  read -r a_bytes l_bytes < <(sizes "$arch")
  read -r _ _ r1 an1 _ < <(run "$arch" 1)
  read -r f64 s64 r64 an64 p64 < <(run "$arch" 64)
  per=$(((r64 - r1) * 1000 / 63))
  qemu_rss="-"
  [[ $arch == amd64 ]] || qemu_rss="$((p64 / 1024)) MiB"
  startup="$f64 / $s64 ms"
  [[ $arch == amd64 ]] || startup="$startup (emulated)"
  printf '%-6s %7d KiB %7d KiB %6.2f MiB | %5.2f / %5.2f MiB %5.2f / %5.2f MiB %6.1f KiB | %12s %-26s | %10s\n' \
    "$arch" $((a_bytes / 1024)) $((l_bytes / 1024)) "$(echo "($a_bytes + $l_bytes) / 1048576" | bc -l)" \
    "$(echo "$r1 / 1024" | bc -l)" "$(echo "$r64 / 1024" | bc -l)" \
    "$(echo "$an1 / 1024" | bc -l)" "$(echo "$an64 / 1024" | bc -l)" "$(echo "$per / 1000" | bc -l)" \
    "$qemu_rss" "$startup" "< 8 / 8 MiB"
done
for arch in "${arches[@]}"; do
  echo
  echo "$arch: the agent's libraries (largest first)"
  cat "$work/libs-$arch"
done

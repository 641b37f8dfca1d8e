#!/usr/bin/env bash
# Hostile input to the collector's HTTP API (docs/api.md, "What is
# refused") and its token files (docs/collector.md): mosquitto and
# dcem-collector with its API on free loopback ports, no data needed.
#
#   api_input.sh BUILD_DIR SOURCE_DIR
#
# Proves: `--check-config` refuses a token file that group or others may
# read (0644, 0640) or write (0620), a FIFO (at once: it never opens it),
# a directory, and a missing file, each as file:line: key: token_file: ...;
# it takes a 0600 file and a symbolic link to one. The running API answers
# 400 with a reason to a %00 or invalid UTF-8 in the path or in a query
# parameter (a %00 would otherwise cut the path or the value short and
# serve something else), to a broken %-escape, and to dates outside
# 1970-01-01..9999-12-31 (year 0, year 10000, month 13, a time before 1970
# or after 9999) naming that range; from after to stays a 400.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
make_work api-input

start_mosquitto
mkdir -p "$work/sites"
cp "$src/configs/sites/yz-alpha.yaml" "$work/sites/"
reg=regulator-token-$RANDOM$RANDOM-abcdefgh
aport=$(free_port)
write_config() { # $1: the token_file
  cat >"$work/collector.yaml" <<EOF
collector: api-input
sites: sites
policy: $src/configs/policy/beijing-etown-2024.yaml
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
identity: {allow_unsigned: true}
api:
  listen: 127.0.0.1:$aport
  tokens:
    - {name: regulator, role: regulator, token_file: $1}
EOF
}

# --- token files ---------------------------------------------------------
printf '%s\n' "$reg" >"$work/reg.token"
refused() { # $1 token_file, $2 expected pattern
  write_config "$1"
  local out rc=0 t0=$SECONDS
  out=$(timeout 5 "$col" -c "$work/collector.yaml" --check-config 2>&1) || rc=$?
  ((rc != 124)) || fail "--check-config hung on token_file $1"
  ((rc != 0)) || fail "token_file $1 accepted"
  grep -qE "collector\.yaml:[0-9]+: api\.tokens\[0\]: token_file: $2" <<<"$out" ||
    fail "token_file $1: expected /$2/, got: $out"
  echo "refused in $((SECONDS - t0)) s: $out"
}
chmod 644 "$work/reg.token"
refused reg.token ".*/reg\.token is readable by group/others \(mode 0644\); chmod 600 it"
chmod 640 "$work/reg.token"
refused reg.token ".*/reg\.token is readable by group/others \(mode 0640\); chmod 600 it"
chmod 620 "$work/reg.token"
refused reg.token ".*/reg\.token is writable or executable by group/others \(mode 0620\)"
mkfifo -m 600 "$work/fifo.token"
refused fifo.token ".*/fifo\.token is not a regular file \(a FIFO\)"
mkdir -m 700 "$work/dir.token"
refused dir.token ".*/dir\.token is not a regular file \(a directory\)"
refused missing.token ".*/missing\.token: No such file or directory"
chmod 600 "$work/reg.token"
write_config reg.token
"$col" -c "$work/collector.yaml" --check-config >/dev/null || fail "a 0600 token file refused"
ln -s reg.token "$work/link.token"
write_config link.token
"$col" -c "$work/collector.yaml" --check-config >/dev/null || fail "a link to a 0600 token file refused"

# --- the running API -------------------------------------------------------
"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
pids+=($!)
wait_for "the API" 10 curl -sf "http://127.0.0.1:$aport/healthz"

PORT=$aport REG="$reg" $PY - <<'EOF'
import http.client, json, os, socket
port, REG = int(os.environ["PORT"]), os.environ["REG"]
bad = []

def raw(target):
    """The request target sent as these bytes, exactly."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: dcem\r\nAuthorization: Bearer "
              + REG.encode() + b"\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body

def expect(target, status, why=None, param=None):
    s, body = raw(target)
    if s != status:
        bad.append(f"{target!r}: {s}, expected {status}: {body[:200]!r}")
        return
    if why is not None:
        e = json.loads(body.decode("utf-8", "replace"))
        if why not in e.get("error", "") or (param is not None and e.get("param") != param):
            bad.append(f"{target!r}: {e}, expected '{why}'" + (f" naming {param}" if param else ""))

site = b"/api/v1/sites/yz-alpha"
# what is served normally
expect(site, 200)
expect(site + b"/figures?period=month&at=2025-03", 200)
expect(site + b"/figures?period=day&at=9999-12-31", 200)
expect(site + b"/alerts?from=1970-01-01T00:00:00Z&to=2025-01-01", 200)
expect(b"/api/v1/sites/yz-%61lpha", 200) # an escape that decodes to a plain letter
# a %00 cuts a C string: "yz-alpha%00/figures" would read as the site itself
expect(site + b"%00/figures", 400, "the path holds %00")
expect(site + b"%00", 400, "the path holds %00")
expect(b"/healthz%00.html", 400, "the path holds %00")
expect(site + b"/figures?period=month%00junk", 400, "the query holds %00")
expect(site + b"/figures?period%00x=month", 400, "the query holds %00")
# invalid UTF-8, escaped or raw
expect(b"/api/v1/sites/yz-%C3%28", 400, "the path is not UTF-8")
expect(b"/api/v1/sites/yz-\xff", 400, "the path is not UTF-8")
expect(b"/api/v1/sites/yz-%ED%A0%80", 400, "the path is not UTF-8")  # a surrogate
expect(b"/api/v1/sites/yz-%C0%AF", 400, "the path is not UTF-8")     # overlong '/'
expect(site + b"/figures?period=month&at=%E2%82", 400, "the query is not UTF-8")
expect(site + b"/figures?x=%FF", 400, "the query is not UTF-8")
expect(b"/api/v1/sites/%E4%B8%AD", 404)                             # UTF-8, no such site
# broken escapes
expect(site + b"%2", 400, "not followed by two hex digits")
expect(site + b"/figures?period=%zz", 400, "not followed by two hex digits")
# dates outside 1970-01-01..9999-12-31, each named with that range
rng_d, rng_t = "1970-01-01 to 9999-12-31", "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
expect(site + b"/figures?period=day&at=0000-01-01", 400, rng_d, "at")
expect(site + b"/figures?period=day&at=10000-01-01", 400, rng_d, "at")
expect(site + b"/figures?period=day&at=2025-13-01", 400, rng_d, "at")
expect(site + b"/figures?period=month&at=2025-13", 400, "1970-01 to 9999-12", "at")
expect(site + b"/figures?period=month&at=0000-01", 400, "1970-01 to 9999-12", "at")
expect(site + b"/figures?period=year&at=0000", 400, "1970-9999", "at")
expect(site + b"/figures?period=year&at=10000", 400, "1970-9999", "at")
expect(site + b"/verdicts?year=0", 400, "1970-9999", "year")
expect(site + b"/figures?period=interval&at=0000-01-01T00:00:00Z", 400, rng_t, "at")
expect(site + b"/meters?at=1969-12-31T23:59:59Z", 400, rng_t, "at")
expect(site + b"/power?at=9999-12-31T23:00:00-14:00", 400, rng_t, "at")
expect(site + b"/alerts?from=0000-01-01T00:00:00Z", 400, rng_t, "from")
expect(site + b"/alerts?to=1969-01-01", 400, rng_d, "to")
expect(site + b"/export?from=2025-01-01&to=10000-01-01", 400, rng_d, "to")
expect(site + b"/alerts?from=2025-02-01&to=2025-01-01", 400, "later than from", "to")
expect(site + b"/alerts?from=2025-02-01&to=2025-01-01T00:00:00Z", 400, "later than from", "to")
if bad:
    print("\n".join(bad))
    raise SystemExit(1)
print("api input: every hostile target refused with its reason")
EOF
curl -sf "http://127.0.0.1:$aport/healthz" >/dev/null || fail "the API stopped answering"
echo "api_input: ok"

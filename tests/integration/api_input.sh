#!/usr/bin/env bash
# Hostile input to the collector's HTTP API: its token files
# (docs/api.md, "Configuration"): dcem-collector --check-config.
#
#   api_input.sh BUILD_DIR SOURCE_DIR
#
# Proves: `--check-config` refuses a token file that group or others may
# read (0644, 0640) or write (0620), a FIFO (at once: it never opens it),
# a directory, and a missing file, each as file:line: key: token_file: ...;
# it takes a 0600 file and a symbolic link to one.
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

echo "api_input: ok"

#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole
# CTest suite, then build and run it again under AddressSanitizer + UBSan,
# then cross-build the agent's side for arm64 and armhf and run its tests
# under qemu-user, then build the Debian packages and install, try and purge
# the amd64 ones, then fuzz every target in tests/fuzz/ briefly with libFuzzer (clang, ASan +
# UBSan; DCEM_FUZZ_SECONDS each, default 12). Exits non-zero on any failure:
# a failing test, or a crash, leak, UB report or broken invariant found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

"$root/scripts/deps.sh"

run_suite() { # name, extra cmake args...
  local name=$1; shift
  local dir="$root/build/$name"
  echo "== $name: configure and build" >&2
  cmake -S "$root" -B "$dir" -DDCEM_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
  echo "== $name: ctest" >&2
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

run_suite release  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCEM_SANITIZE=OFF
# The sanitizers look for memory and UB errors on the same paths: there the
# broker and InfluxDB outages last 20 s instead of 60 (reconnect, spool
# replay and backlog drain all happen; the release suite keeps the minute),
# which keeps the whole run under CI's 20 minutes.
OUTAGE_S=20 DCEM_INFLUX_OUTAGE_S=20 \
  run_suite sanitize -DCMAKE_BUILD_TYPE=Debug -DDCEM_SANITIZE=ON
# The gateways' ARM boards: the agent's side cross-built for each and its
# tests run under qemu-user (scripts/cross.sh, docs/cross.md): about 40 s per
# architecture once the cross packages are installed.
for arch in arm64 armhf; do "$root/scripts/cross.sh" "$arch" --test; done
# The Debian packages (scripts/package.sh, docs/packages.md): built from the
# builds just tested, lintian without errors; the amd64 ones installed,
# checked, used against dcem-sim and purged (as root: dpkg).
"$root/scripts/package.sh"
"$root/tests/integration/package.sh" "$root/dist" "$root/build/release" "$root"
# About a minute and a half: the clang build, then the targets two at a time,
# 12 s each (20 until the ARM and package stages needed the room; a
# search for new bugs is a longer run of scripts/fuzz.sh anyway).
# A fixed seed: the suite explores the same inputs every run, so it stays a
# test (a new finding belongs to a longer run of scripts/fuzz.sh, which
# draws its seed at random, and then to a regression seed in the corpus).
DCEM_FUZZ_SEED=${DCEM_FUZZ_SEED:-1} "$root/scripts/fuzz.sh" --jobs "$jobs" all "${DCEM_FUZZ_SECONDS:-12}"
echo "== all suites passed" >&2

#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole
# CTest suite, then build and run it again under AddressSanitizer + UBSan.
# Exits non-zero on any failure.
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
run_suite sanitize -DCMAKE_BUILD_TYPE=Debug          -DDCEM_SANITIZE=ON
echo "== all suites passed" >&2

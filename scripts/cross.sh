#!/usr/bin/env bash
# Cross build of the gateway's side (common/, the agent, dcem-sim and their
# tests) for an ARM gateway board, with Debian's cross toolchain and the
# multiarch -dev packages (scripts/deps.sh cross ARCH installs them):
#
#   scripts/cross.sh arm64|armhf [--test]
#
# builds into build/ARCH/ (docs/cross.md). --test then runs its tests: the
# unit tests and two end-to-end scenarios, every ARM program under qemu-user.
# BUILD_TYPE (default Release) is passed to CMake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-}
case $arch in
arm64) toolchain=toolchain-aarch64-linux-gnu.cmake ;;
armhf) toolchain=toolchain-arm-linux-gnueabihf.cmake ;;
*) echo "usage: scripts/cross.sh arm64|armhf [--test]" >&2; exit 2 ;;
esac
test=0
case ${2:-} in
"") ;;
--test) test=1 ;;
*) echo "cross.sh: unknown option ${2}" >&2; exit 2 ;;
esac

"$root/scripts/deps.sh" cross "$arch"

dir=$root/build/$arch
echo "== $arch: configure and build into build/$arch" >&2
cmake -S "$root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/$toolchain" \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DDCEM_COLLECTOR=OFF -DDCEM_WERROR=ON >/dev/null
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "$arch: dcem-agent is $(readelf -h "$dir/firmware/agent/dcem-agent" | sed -n "s/ *Machine: *//p")" >&2
if ((test)); then
  echo "== $arch: ctest under qemu-user" >&2
  (cd "$dir" && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)")
fi

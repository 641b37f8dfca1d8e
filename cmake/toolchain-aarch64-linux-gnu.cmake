# Cross build for 64-bit ARM gateways (arm64) with Debian's cross toolchain
# (crossbuild-essential-arm64) and the multiarch -dev packages of every
# library (libfoo-dev:arm64; scripts/deps.sh cross arm64). Tests run under
# qemu-user (CMAKE_CROSSCOMPILING_EMULATOR): ctest works as on the host.
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
# or simply scripts/cross.sh arm64.
set(DCEM_TRIPLET aarch64-linux-gnu)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(DCEM_QEMU qemu-aarch64)
set(DCEM_LOADER ld-linux-aarch64.so.1)
include(${CMAKE_CURRENT_LIST_DIR}/cross-common.cmake)

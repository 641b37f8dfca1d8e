# Cross build for 32-bit ARM gateways (armhf: ARMv7, hard float) with
# Debian's cross toolchain (crossbuild-essential-armhf) and the multiarch
# -dev packages of every library (libfoo-dev:armhf; scripts/deps.sh cross
# armhf). Tests run under qemu-user, as for arm64.
#   cmake -S . -B build/armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm-linux-gnueabihf.cmake
# or simply scripts/cross.sh armhf.
set(DCEM_TRIPLET arm-linux-gnueabihf)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(DCEM_QEMU qemu-arm)
set(DCEM_LOADER ld-linux-armhf.so.3)
include(${CMAKE_CURRENT_LIST_DIR}/cross-common.cmake)

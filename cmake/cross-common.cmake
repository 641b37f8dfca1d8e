# What both cross toolchain files share: DCEM_TRIPLET, CMAKE_SYSTEM_PROCESSOR
# DCEM_QEMU and DCEM_LOADER are set by the file that includes this one.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${DCEM_TRIPLET}-gcc)
# the target's libraries and headers only (Debian multiarch paths)
set(CMAKE_FIND_ROOT_PATH /usr/${DCEM_TRIPLET} /usr/lib/${DCEM_TRIPLET})
set(CMAKE_LIBRARY_ARCHITECTURE ${DCEM_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config answers for the target architecture (the host's .pc files would
# name amd64 libraries)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${DCEM_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# Tests run under qemu-user, which starts the target's own dynamic loader
# with the target's libraries. Not `qemu -L /usr/TRIPLET PROGRAM`: Debian 12's
# qemu-user (7.2) loads the loader named in PT_INTERP wrongly (docs/cross.md);
# glibc's stack cache list is then garbage, so the first pthread_create spins
# forever under qemu-aarch64 and crashes under qemu-arm, as does a fork child.
# Started as the program, the loader maps everything itself and all is well.
set(CMAKE_CROSSCOMPILING_EMULATOR ${DCEM_QEMU} /usr/${DCEM_TRIPLET}/lib/${DCEM_LOADER}
    --library-path /usr/${DCEM_TRIPLET}/lib)

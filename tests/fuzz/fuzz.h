/* fuzz.h — the one entry point every fuzz target defines (libFuzzer's), and
 * the seed data they share. A target is built two ways (tests/fuzz/
 * CMakeLists.txt): with clang and -fsanitize=fuzzer under DCEM_FUZZ, where
 * libFuzzer drives it, and in every ordinary build with replay.c as main,
 * where CTest feeds it its seed corpus (tests/fuzz/corpus/<target>/, the
 * regression seeds included). docs/fuzzing.md tells the whole story. */
#ifndef DCEM_FUZZ_H
#define DCEM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs the project's code on one input. Returns 0; anything wrong (a crash,
 * a leak, undefined behaviour, or a broken invariant the target checks with
 * abort()) is reported by the sanitizers, never by the return value. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The shipped configs/ folder (compiled in): targets that need a ledger, a
 * policy or meter profiles to work with load them from here. */
#ifndef DCEM_FUZZ_CONFIGS
#error "DCEM_FUZZ_CONFIGS must name the source tree's configs/ folder"
#endif

/* An invariant of the code under test: on failure, says which and aborts, so
 * libFuzzer (or the replay) reports it as a crash with the input saved. */
#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                 \
    } while (0)

void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif

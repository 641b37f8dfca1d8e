/* table.h — table-driven cmocka tests: each row of a table is a struct whose
 * first member is its name, and becomes one cmocka test, so a failure names
 * the row. Include after <cmocka.h>. */
#ifndef DCEM_TEST_TABLE_H
#define DCEM_TEST_TABLE_H

#include <stdlib.h>

static inline int run_table(const char *group, CMUnitTestFunction fn, const void *rows, size_t n,
                            size_t size)
{
    struct CMUnitTest *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        const char *row = (const char *)rows + i * size;
        t[i].name = *(const char *const *)row;
        t[i].test_func = fn;
        t[i].initial_state = (void *)row;
    }
    int failed = _cmocka_run_group_tests(group, t, n, NULL, NULL);
    free(t);
    return failed;
}

#define RUN_TABLE(group, fn, rows)                                                                 \
    run_table(group, fn, rows, sizeof rows / sizeof rows[0], sizeof rows[0])

#endif

# The collector's store (gateway/store): migrations, idempotent batches,
# atomicity, interval revisions and exact rollups, retention, counter state,
# export order, a kill -9 loop, and the bulk insert rate (printed) — on
# SQLite (test_store) and on a PostgreSQL server of its own (test_store_pg:
# the same binary, the backend from the environment, plus the server
# restarted under load and several writers on one epoch).
dcem_unit_test(test_store unit/test_store.c 120)
target_link_libraries(test_store PRIVATE dcem_store dcem_io PkgConfig::SQLITE3 PkgConfig::LIBPQ
                      dcem_warnings)
add_test(NAME test_store_pg
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/store_pg.sh $<TARGET_FILE:test_store>)
set_tests_properties(test_store_pg PROPERTIES TIMEOUT 180 LABELS "unit;postgresql")

# dcem-store-ceiling: the ceiling of scripts/bench/collector.sh — the rows a
# collector stored, written again by a bare SQLite loop in the same
# transactions (docs/benchmarks.md).
add_executable(dcem-store-ceiling tools/dcem-store-ceiling.c)
target_link_libraries(dcem-store-ceiling PRIVATE PkgConfig::SQLITE3 dcem_warnings)

# dcem-pg-ceiling: the same on PostgreSQL — the rows a collector stored in
# one schema, written again into another (made by the store's migrations)
# by a bare libpq loop of COPY and multi-row upserts (docs/benchmarks.md).
add_executable(dcem-pg-ceiling tools/dcem-pg-ceiling.c)
target_link_libraries(dcem-pg-ceiling PRIVATE dcem_store dcem_io PkgConfig::SQLITE3 PkgConfig::LIBPQ
                      dcem_warnings)

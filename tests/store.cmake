# The collector's store (gateway/store): migrations, idempotent batches,
# atomicity, interval revisions and exact rollups, retention, counter state,
# export order, a kill -9 loop, and the bulk insert rate (printed).
dcem_unit_test(test_store unit/test_store.c 120)
target_link_libraries(test_store PRIVATE dcem_store dcem_io PkgConfig::SQLITE3 dcem_warnings)

# dcem-store-ceiling: the ceiling of scripts/bench/collector.sh — the rows a
# collector stored, written again by a bare SQLite loop in the same
# transactions (docs/benchmarks.md).
add_executable(dcem-store-ceiling tools/dcem-store-ceiling.c)
target_link_libraries(dcem-store-ceiling PRIVATE PkgConfig::SQLITE3 dcem_warnings)

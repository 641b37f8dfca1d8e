# The collector's HTTP API (docs/api.md): the pure parts — tokens found in
# constant time, routes, query parameters, dashboard paths — and the store
# reads it added as cmocka unit tests; the whole API against a running
# collector fed through the real ingest path (tests/integration/api.sh).
dcem_unit_test(test_api_query unit/test_api_query.c)
target_link_libraries(test_api_query PRIVATE dcem_api_pure dcem_warnings)

# The store's reads the API added (latest readings, alert pages) on a real
# SQLite file.
dcem_unit_test(test_api_store unit/test_api_store.c)
target_link_libraries(test_api_store PRIVATE dcem_store dcem_warnings)

add_test(NAME api_e2e
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/api.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(api_e2e PROPERTIES TIMEOUT 180 LABELS integration)

# Slow clients (slowloris) and idle connections do not stop the API: the
# thread pool, the per-address limit and the idle timeout (docs/api.md).
add_test(NAME api_slow
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/api_slow.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(api_slow PROPERTIES TIMEOUT 120 LABELS integration)

# Hostile input: token files others may read (or that are no regular file),
# and request targets with %00, invalid UTF-8 or dates out of range.
add_test(NAME api_input
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/api_input.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(api_input PROPERTIES TIMEOUT 60 LABELS integration)

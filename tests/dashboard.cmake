# The operators' dashboard (gateway/dashboard, docs/dashboard.md) driven by
# headless Chromium against a running collector fed through the real ingest
# path: every figure on the page equals the API's, the Chinese view, an
# operator's view, the public list. Screenshots: dashboard-*.png in this
# directory. Without chromium (scripts/deps.sh) the test reports itself
# skipped.
add_test(NAME dashboard_e2e
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/dashboard.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(dashboard_e2e PROPERTIES TIMEOUT 180 LABELS integration SKIP_RETURN_CODE 77)

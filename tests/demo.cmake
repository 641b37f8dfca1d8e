# The README's first command as a user runs it (scripts/demo.sh on this
# build, stopped with Ctrl-C). Not in the sanitizer suite: it backfills a year of three
# sites, minutes under ASan, through binaries the other tests run sanitized.
if(NOT DCEM_SANITIZE)
  add_test(NAME demo
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/demo.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(demo PROPERTIES TIMEOUT 600 LABELS system)
endif()

# The InfluxDB line-protocol encoder (common/lineproto.c): the reference's
# escaping, refusal, number and precision cases.
dcem_unit_test(test_lineproto unit/test_lineproto.c)

# The InfluxDB writer (gateway/influx) against this test's own HTTP listener
# on a free loopback port: the v1 and v2 request formats byte for byte,
# gzip, batching, 4xx / 5xx / timeouts, backoff on the tick clock, and the
# on-disk backlog (restarts, caps, corrupt files, lock).
find_package(Threads REQUIRED)
add_executable(test_influx_http integration/test_influx_http.c)
target_link_libraries(test_influx_http PRIVATE dcem_influx ${CMOCKA_LIB} Threads::Threads)
add_test(NAME test_influx_http COMMAND test_influx_http)
set_tests_properties(test_influx_http PROPERTIES TIMEOUT 120 LABELS integration)

# Against a real InfluxDB 1.6 (influxd from scripts/deps.sh) on free loopback
# ports: exact round trips with and without gzip, a 60 s outage with a
# writer restart (DCEM_INFLUX_OUTAGE_S shortens it for local runs), and the
# backlog cap. tests/integration/test_influx.c says what each one proves.
add_executable(test_influx integration/test_influx.c)
target_link_libraries(test_influx PRIVATE dcem_influx PkgConfig::CJSON ${CMOCKA_LIB})
if(DEFINED ENV{DCEM_INFLUX_OUTAGE_S})
  set(DCEM_INFLUX_OUTAGE_S $ENV{DCEM_INFLUX_OUTAGE_S})
else()
  set(DCEM_INFLUX_OUTAGE_S 60)
endif()
foreach(scenario roundtrip plain outage cap)
  add_test(NAME influx_${scenario}
    COMMAND test_influx ${scenario} ${CMAKE_CURRENT_BINARY_DIR}/influx-scratch ${DCEM_INFLUX_OUTAGE_S})
  set_tests_properties(influx_${scenario} PROPERTIES TIMEOUT 300 LABELS integration)
endforeach()

# The collector: end to end through a real mosquitto and a SQLite store, fed
# by dcem-replay (an agent's batches from a generated year of readings).
add_executable(dcem-replay tools/dcem-replay.c)
target_include_directories(dcem-replay PRIVATE ${PAHO_INCLUDE})
find_package(Threads REQUIRED)
target_link_libraries(dcem-replay PRIVATE dcem_core ${PAHO_MQTT3CS} Threads::Threads)

add_test(NAME collector_e2e
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_e2e PROPERTIES TIMEOUT 600 LABELS integration)

# Two collectors in one shared subscription on one store, one of them
# killed and restarted mid-stream: every reading stored once, figures equal
# to dcem-audit's.
add_test(NAME collector_share
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_share.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_share PROPERTIES TIMEOUT 300 LABELS integration)
# the same on one PostgreSQL: the issue's several collectors, one store
add_test(NAME collector_share_pg
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_share.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR} postgresql)
set_tests_properties(collector_share_pg PROPERTIES TIMEOUT 300 LABELS "integration;postgresql")

# Two collectors sharded by site (shard.sites) on one store over MQTT 3.1.1,
# one killed and restarted mid-stream: each stores its own site's batches
# only, every reading once, figures equal to dcem-audit's.
add_test(NAME collector_shard
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_shard.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_shard PROPERTIES TIMEOUT 300 LABELS integration)

# SIGHUP: a broken file refused with file:line, a good one applied whole
# (a ledger added, MQTT on another broker, the store in another file).
add_test(NAME collector_reload
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_reload.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_reload PROPERTIES TIMEOUT 120 LABELS integration)

# Payloads the collector must refuse (docs/wire-format.md, "Malformed
# payloads") while a good gateway's batches flow: counted, logged once, acked
# only when quarantined, the good data and figures untouched.
add_test(NAME collector_malformed
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_malformed.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_malformed PROPERTIES TIMEOUT 300 LABELS integration)

# dcem-blast: the collector benchmark's load generator (scripts/bench/
# collector.sh): pre-encoded batches from several gateways, QoS 1, paho's
# asynchronous client, publish-to-ack latency per batch, signed with the
# gateways' keys or not.
find_library(PAHO_MQTT3A paho-mqtt3a REQUIRED)
find_package(Threads REQUIRED)
add_executable(dcem-blast tools/dcem-blast.c)
target_include_directories(dcem-blast PRIVATE ${PAHO_INCLUDE})
target_link_libraries(dcem-blast PRIVATE dcem_io dcem_core dcem_warnings ${PAHO_MQTT3A} Threads::Threads)
# dcem-scale: the scale benchmark's (scripts/bench/scale.sh) many gateways
# reporting in real time, then an outage's backlog
add_executable(dcem-scale tools/dcem-scale.c)
target_include_directories(dcem-scale PRIVATE ${PAHO_INCLUDE})
target_link_libraries(dcem-scale PRIVATE dcem_core dcem_warnings ${PAHO_MQTT3A} Threads::Threads m)

# The whole chain with real parts on loopback: dcem-sim (Modbus TCP) ->
# dcem-agent -> mosquitto -> dcem-collector -> SQLite and InfluxDB, the
# collector killed with SIGKILL part-way: every poll stored once, energy
# exact against the readings and the simulator's integral, the figures equal
# dcem-audit's over the export, InfluxDB holds every interval.
add_test(NAME collector_sim
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_sim.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_sim PROPERTIES TIMEOUT 300 LABELS integration)

# Forged births, batches and acks from anyone on the broker change nothing;
# signatures checked against the openssl command line (docs/security.md).
add_test(NAME security
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/security.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(security PROPERTIES TIMEOUT 180 LABELS integration)

# The engine (gateway/collector/engine.c) on a real SQLite store per test,
# configured from a collector.yaml, ledgers and the shipped policy: group
# commit against one-by-one, duplicates / gaps / malformed in a group, a
# store failure rolled back and retried batch by batch, alerts after the
# commit only, a locked store failing the whole group.
dcem_unit_test(test_engine unit/test_engine.c 120)
target_link_libraries(test_engine PRIVATE dcem_collector_lib PkgConfig::SQLITE3 dcem_warnings)
target_compile_definitions(test_engine PRIVATE DCEM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# What no single message may do (docs/collector.md, "Hostile and broken
# input"): a clock that jumps to 9999, a hole the gateway cannot fill, values
# and batches the store would refuse, junk and floods.
foreach(case clock hole poison junk)
  add_test(NAME collector_hostile_${case}
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_hostile.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR} ${case})
  set_tests_properties(collector_hostile_${case} PROPERTIES TIMEOUT 180 LABELS integration)
endforeach()

# Late data (issue 11): a year of 2025 imported with dcem-agent --import after
# live 2026 readings: nothing refused, the 2025 and 2026 figures and every
# stored interval equal dcem-audit over the export; a replayed week changes
# nothing.
add_test(NAME collector_late
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_late.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_late PROPERTIES TIMEOUT 240 LABELS integration)

# The one meter pipeline (issue 11): random streams (rollovers, a reset, a
# glitch, gaps across the month end, a ratio change, late and duplicate
# deliveries) through dcem-audit, the collector (broker, store) and the
# agent's local figures: the same micro-kWh, interval by interval and period
# by period. DCEM_PROPERTY_SEED=N runs one seed.
add_test(NAME pipeline_property
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/pipeline_property.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(pipeline_property PROPERTIES TIMEOUT 180 LABELS integration)

# A hanging InfluxDB never delays an ack (the writer on its own thread), and
# once a real one answers on that port every line arrives (issue 12).
add_test(NAME collector_influx_slow
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_influx_slow.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_influx_slow PROPERTIES TIMEOUT 240 LABELS integration)

# The collector on a PostgreSQL store of its own: the store section checked
# by --check-config (a DSN that cannot connect, a newer schema), and a month
# of batches through a PostgreSQL restart, figures equal to dcem-audit's.
add_test(NAME collector_pg
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector_pg.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(collector_pg PROPERTIES TIMEOUT 180 LABELS "integration;postgresql")

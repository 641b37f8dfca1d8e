# The agent's tests: its config, its local figures, its half of the ack protocol
# (test_delivery), and the integration tests against a real
# mosquitto, dcem-sim over TCP and over a socat pty (RTU), with
# dcem-test-ack playing the collector's acknowledging role.
add_executable(dcem-test-ack tools/dcem-test-ack.c)
target_include_directories(dcem-test-ack PRIVATE ${PAHO_INCLUDE})
target_link_libraries(dcem-test-ack PRIVATE dcem_io dcem_core ${PAHO_MQTT3CS})

foreach(t test_agent_config test_local_figures test_delivery)
  add_executable(${t} unit/${t}.c)
  target_link_libraries(${t} PRIVATE dcem_agent_lib ${CMOCKA_LIB})
  add_test(NAME ${t} COMMAND ${t} ${PROJECT_SOURCE_DIR}/configs)
  set_tests_properties(${t} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()

# The integration tests: several need the collector, so they are the host
# build's; an agent-only build runs two of them (tests/agent_only.cmake).
if(DCEM_COLLECTOR)
  # End to end against mosquitto, dcem-sim (TCP and socat RTU) and
  # dcem-test-ack; tests/integration/agent.sh says what each scenario proves.
  set(agent_scenarios models profiles outage kill9 dead reload stale)
  list(APPEND agent_scenarios collector)
  foreach(scenario ${agent_scenarios})
    add_test(NAME agent_${scenario}
      COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent.sh ${scenario} ${PROJECT_BINARY_DIR}
              ${PROJECT_SOURCE_DIR})
    set_tests_properties(agent_${scenario} PROPERTIES TIMEOUT 240 LABELS integration)
  endforeach()

  # --import: a site's history through the agent's own path (spool, acks) into
  # a real collector, killed part-way; figures equal dcem-audit over the CSV.
  add_test(NAME agent_import
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_import.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_import PROPERTIES TIMEOUT 180 LABELS integration)

  # Commissioning: --once (JSON piped, the table on a pty, exit 1 for a dead
  # device) and --check-config against dcem-sim; a missing serial device and a
  # closed broker port in words.
  add_test(NAME agent_commission
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_commission.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_commission PROPERTIES TIMEOUT 120 LABELS integration)

  # Partial register maps: dcem-sim over TCP and over a pty, and pymodbus — a
  # refused register inside a read never costs the counter, and after the first
  # poll each poll takes the fewest requests the served map allows.
  add_test(NAME agent_partial
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_partial.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_partial PROPERTIES TIMEOUT 180 LABELS integration)

  # Meters behind CTs, end to end: ratios from the meter's registers and from the
  # config give primary-side energy; a ratio change mid-stream is one counter
  # epoch, and the collector's figures equal dcem-audit's over the export.
  add_test(NAME agent_ratio
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_ratio.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_ratio PROPERTIES TIMEOUT 240 LABELS integration)

  # Adversarial case 5: a batch cut off the spool's tail while the agent was
  # stopped; its birth says what is really held and a resend for the lost
  # batch is answered with a birth (tests/integration/agent_torn_spool.sh).
  add_test(NAME agent_torn_spool
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_torn_spool.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_torn_spool PROPERTIES TIMEOUT 120 LABELS integration)

  # Dropped data: a 1 MiB spool that nobody acknowledges fills and drops its
  # oldest batches; counted, logged once, in the stats line and in the metrics.
  add_test(NAME agent_dropped
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent_dropped.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_dropped PROPERTIES TIMEOUT 240 LABELS integration)
else()
  include(${CMAKE_CURRENT_SOURCE_DIR}/agent_only.cmake)
endif()

# dcem-local-figures: the agent's local figures over a readings CSV, one line
# per interval and role in micro-kWh (tests/integration/pipeline_property.sh).
add_executable(dcem-local-figures tools/dcem-local-figures.c)
target_link_libraries(dcem-local-figures PRIVATE dcem_agent_lib dcem_warnings)

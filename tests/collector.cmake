# The collector: end to end through a real mosquitto and a SQLite store, fed
# by dcem-replay (an agent's batches from a generated year of readings).
if(TARGET dcem-collector)
  add_executable(dcem-replay tools/dcem-replay.c)
  target_include_directories(dcem-replay PRIVATE ${PAHO_INCLUDE})
  target_link_libraries(dcem-replay PRIVATE dcem_core ${PAHO_MQTT3CS})
endif()

if(TARGET dcem-collector)
  add_test(NAME collector_e2e
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/collector.sh ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(collector_e2e PROPERTIES TIMEOUT 600 LABELS integration)
endif()

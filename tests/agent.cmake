# The agent's tests: its config, and the integration tests against a real
# mosquitto, dcem-sim over TCP and over a socat pty (RTU), with
# dcem-test-ack playing the collector's acknowledging role.
add_executable(dcem-test-ack tools/dcem-test-ack.c)
target_include_directories(dcem-test-ack PRIVATE ${PAHO_INCLUDE})
target_link_libraries(dcem-test-ack PRIVATE dcem_core ${PAHO_MQTT3CS})

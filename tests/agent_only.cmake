# An agent-only build (DCEM_COLLECTOR OFF), which every cross build for the
# gateways' ARM boards is (scripts/cross.sh): its unit tests are registered as
# on the host and run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR); here,
# two of agent.sh's scenarios with this build's dcem-sim, dcem-agent and
# dcem-test-ack, under qemu-user too, against the host's mosquitto:
#   models  three models over Modbus TCP and over RTU (a socat pty pair):
#           every reading that arrives equals what was served
#   outage  the broker stopped for OUTAGE_S s: every reading arrives once,
#           in order, no batch missing
list(JOIN CMAKE_CROSSCOMPILING_EMULATOR " " emulator)
foreach(scenario models outage)
  add_test(NAME agent_${scenario}
    COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/agent.sh ${scenario} ${PROJECT_BINARY_DIR}
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(agent_${scenario} PROPERTIES TIMEOUT 240 LABELS integration
                       ENVIRONMENT "DCEM_EMULATOR=${emulator};OUTAGE_S=15")
endforeach()

# dcem-sim, the Modbus meter simulator (firmware/sim, docs/sim.md).
# Unit: the power model, scenario files and meters/faults (pure, on the
# shipped profiles and scenarios). Integration: the real binary on loopback
# TCP and a socat pty pair, read by mbpoll, compared with its truth file.
add_executable(test_sim_model unit/test_sim_model.c)
target_link_libraries(test_sim_model PRIVATE dcem_sim_core ${CMOCKA_LIB})
add_test(NAME test_sim_model COMMAND test_sim_model)
set_tests_properties(test_sim_model PROPERTIES TIMEOUT 60 LABELS unit)

foreach(t test_sim_scenario test_sim_meter)
  add_executable(${t} unit/${t}.c)
  target_link_libraries(${t} PRIVATE dcem_sim_core dcem_io ${CMOCKA_LIB})
  add_test(NAME ${t} COMMAND ${t} ${PROJECT_SOURCE_DIR}/configs)
  set_tests_properties(${t} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()

# The integration tests below exec dcem-sim themselves, which qemu-user
# cannot follow into a second ARM program: a cross build leaves them to the
# host's build.
if(NOT CMAKE_CROSSCOMPILING)
  # The real binary over TCP and RTU (socat), read by mbpoll (scripts/deps.sh)
  # and by libmodbus as a client (exception codes, partial maps, ratios).
  pkg_check_modules(SIM_TEST_MODBUS REQUIRED IMPORTED_TARGET libmodbus)
  add_executable(test_sim_modbus integration/test_sim_modbus.c)
  target_link_libraries(test_sim_modbus PRIVATE dcem_core PkgConfig::CJSON
                        PkgConfig::SIM_TEST_MODBUS ${CMOCKA_LIB})
  add_dependencies(test_sim_modbus dcem-sim)
  add_test(NAME test_sim_modbus
    COMMAND test_sim_modbus $<TARGET_FILE:dcem-sim> ${PROJECT_SOURCE_DIR}/configs
            ${CMAKE_CURRENT_BINARY_DIR}/sim-scratch)
  set_tests_properties(test_sim_modbus PROPERTIES TIMEOUT 300 LABELS integration)

  # RTU wire time: reads over a socat pty take at least a real line's time
  # (docs/sim.md, "RTU timing"); libmodbus is the client, as in the agent.
  add_executable(test_sim_rtu_timing integration/test_sim_rtu_timing.c)
  target_link_libraries(test_sim_rtu_timing PRIVATE dcem_warnings PkgConfig::SIM_TEST_MODBUS
                        ${CMOCKA_LIB})
  add_dependencies(test_sim_rtu_timing dcem-sim)
  add_test(NAME test_sim_rtu_timing
    COMMAND test_sim_rtu_timing $<TARGET_FILE:dcem-sim> ${PROJECT_SOURCE_DIR}/configs
            ${CMAKE_CURRENT_BINARY_DIR}/sim-scratch)
  set_tests_properties(test_sim_rtu_timing PROPERTIES TIMEOUT 120 LABELS integration)
endif()

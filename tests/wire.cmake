# The wire format (common/wire.c): topics, batch / ack / ctl / state /
# metrics codecs, every malformed-payload reason, limits.
add_executable(test_wire unit/test_wire.c)
target_link_libraries(test_wire PRIVATE dcem_core ${CMOCKA_LIB})
add_test(NAME test_wire COMMAND test_wire)
set_tests_properties(test_wire PROPERTIES TIMEOUT 60 LABELS unit)
dcem_unit_test(test_sign unit/test_sign.c)

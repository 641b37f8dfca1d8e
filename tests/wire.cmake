# The wire format (common/wire.c): topics, batch / ack / ctl / state /
# metrics codecs, every malformed-payload reason, limits.
# test_wire compares the batch decoder with the cJSON one it replaced, kept
# beside the fuzz targets (tests/fuzz/wire_batch_cjson.c)
add_executable(test_wire unit/test_wire.c fuzz/wire_batch_cjson.c)
target_include_directories(test_wire PRIVATE fuzz)
target_link_libraries(test_wire PRIVATE dcem_core ${CMOCKA_LIB})
add_test(NAME test_wire COMMAND test_wire)
set_tests_properties(test_wire PROPERTIES TIMEOUT 60 LABELS unit)
dcem_unit_test(test_sign unit/test_sign.c)

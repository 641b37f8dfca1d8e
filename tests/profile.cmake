# Meter profiles (common/profile.c): decoding vectors, the read planner and
# the shipped profile library under configs/meters (the configs/ directory
# is the test's argument).
add_executable(test_profile unit/test_profile.c)
target_link_libraries(test_profile PRIVATE dcem_core ${CMOCKA_LIB})
add_test(NAME test_profile COMMAND test_profile ${PROJECT_SOURCE_DIR}/configs)
set_tests_properties(test_profile PROPERTIES TIMEOUT 60 LABELS unit)

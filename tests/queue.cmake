# The on-disk queue module (common/queue): its record codec and scanner on
# byte vectors and in-memory files, its directory on a temp directory.
dcem_unit_test(test_queue unit/test_queue.c)
target_link_libraries(test_queue PRIVATE dcem_queue dcem_warnings)

# Spool and backlog directories in the layout the code before common/queue
# wrote (byte images built from spool.h and backlog.h) open and are read.
if(DCEM_COLLECTOR)
  find_package(ZLIB REQUIRED)
  add_executable(test_queue_compat unit/test_queue_compat.c)
  target_link_libraries(test_queue_compat PRIVATE dcem_spool dcem_influx ZLIB::ZLIB ${CMOCKA_LIB}
                        dcem_warnings)
  add_test(NAME queue_compat_spool_backlog COMMAND test_queue_compat)
  set_tests_properties(queue_compat_spool_backlog PROPERTIES TIMEOUT 60 LABELS unit)
endif()

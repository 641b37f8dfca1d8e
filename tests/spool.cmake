# The agent's spool (firmware/spool): round trips, acks, capacity, torn
# tails, corrupt segments and metadata, and a kill -9 crash loop.
dcem_unit_test(test_spool unit/test_spool.c 120)
target_link_libraries(test_spool PRIVATE dcem_spool dcem_warnings)

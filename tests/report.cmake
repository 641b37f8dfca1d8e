# dcem-report (gateway/report/): a month, a month as of a date inside it and a
# year of two sample sites replayed through mosquitto into a collector; the
# JSON's figures equal dcem-audit's over the report's own readings.csv, the
# XLSX cells (read with openpyxl) and CSV fields equal the JSON's, the
# manifest passes sha256sum -c, bad input writes nothing.
add_test(NAME report_e2e
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/report.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(report_e2e PROPERTIES TIMEOUT 300 LABELS integration)

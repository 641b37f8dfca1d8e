# The broker as shipped (configs/mosquitto/dcem.conf) with the certificates
# and per-identity rules of scripts/mint-certs.sh: a gateway cannot write or
# read another's topics nor join the collector's shared subscription;
# clients without a certificate of the site CA, or with a revoked one, are
# refused; dcem-agent and dcem-collector store readings over TLS.
add_test(NAME broker_acl
  COMMAND ${PROJECT_SOURCE_DIR}/tests/integration/broker_acl.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR})
set_tests_properties(broker_acl PROPERTIES TIMEOUT 180 LABELS integration)

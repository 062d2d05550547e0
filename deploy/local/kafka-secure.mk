# A local single-node Kafka broker secured as the chart's Strimzi cluster (SASL_SSL with SCRAM-SHA-512,
# mutual TLS, ACLs enforced), and the proof that the chart's KafkaUser ACLs are enough and refuse the rest.
KAFKA_SECURE := deploy/local/kafka-secure.sh

.PHONY: kafka-secure-up kafka-secure-down test-kafka-security

help::
	@echo "make kafka-secure-up     start a local TLS broker with SCRAM (29092) and mTLS (29093) listeners and ACLs;"
	@echo "                         eval \"\$$($(KAFKA_SECURE) env)\" gives its super user (ACLs are yours to add)"
	@echo "make kafka-secure-down   stop it ('$(KAFKA_SECURE) clean' deletes its data and certificates)"
	@echo "make test-kafka-security careplan (SCRAM) and followup (mTLS) on that broker with only the chart's ACLs"

# The broker reuses the jars `make infra-up` fetched for the dev broker.
kafka-secure-up: install infra-up
	$(KAFKA_SECURE) up

kafka-secure-down:
	$(KAFKA_SECURE) down

# The test starts (and at the end deletes) its own broker; the services' databases live on the local
# PostgreSQL server.
test-kafka-security: install infra-up
	eval "$$($(INFRA) env)" && .venv/bin/python -m pytest tests/test_kafka_security.py -p no:cacheprovider $(PYTEST_ARGS)

# A local three-broker Kafka cluster (KRaft, SASL/SCRAM-SHA-512, replication factor 3, min.insync.replicas 2)
# beside the single dev broker, and the proof that careloop loses nothing when one of its brokers dies.
KAFKA_CLUSTER := deploy/local/kafka-cluster.sh
# The long form of tests/test_kafka_cluster.py: thousands of journeys, every broker killed in turn.
CLUSTER_TEST_EVENTS ?= 3000
CLUSTER_TEST_KILLS ?= 3

.PHONY: kafka-cluster-up kafka-cluster-down kafka-cluster-status cluster-test test-cluster

help::
	@echo "make kafka-cluster-up    start a local three-broker Kafka cluster (SASL/SCRAM) on ports 19092-19094;"
	@echo "                         eval \"\$$($(KAFKA_CLUSTER) env)\" points services at it"
	@echo "make kafka-cluster-down  stop it (its data is kept; '$(KAFKA_CLUSTER) clean' deletes it)"
	@echo "make cluster-test        (or test-cluster) the whole journey on a fresh cluster of its own: the five services,"
	@echo "                         $(CLUSTER_TEST_EVENTS) assessments accepted over HTTP (20 journeys a second, about 3 minutes)"
	@echo "                         while the busiest broker is SIGKILLed $(CLUSTER_TEST_KILLS) times: each followed up once, every"
	@echo "                         record verified, nothing lost or doubled (CLUSTER_TEST_EVENTS=... CLUSTER_TEST_KILLS=...;"
	@echo "                         results in .artifacts/kafka-cluster/)"

# The cluster reuses the jars `make infra-up` fetched for the single broker.
kafka-cluster-up: install infra-up
	$(KAFKA_CLUSTER) up

kafka-cluster-down:
	$(KAFKA_CLUSTER) down

kafka-cluster-status:
	$(KAFKA_CLUSTER) status

# The test starts (and at the end deletes) its own cluster; the services' databases live on the local
# PostgreSQL server.
cluster-test test-cluster: install infra-up
	eval "$$($(INFRA) env)" && CARELOOP_CLUSTER_TEST_EVENTS=$(CLUSTER_TEST_EVENTS) \
		CARELOOP_CLUSTER_TEST_KILLS=$(CLUSTER_TEST_KILLS) \
		.venv/bin/python -m pytest tests/test_kafka_cluster.py -s -p no:cacheprovider -o timeout=1800 $(PYTEST_ARGS)

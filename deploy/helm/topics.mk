# The chart's topic and ACL table, written from the services' code (tests/test_helm_topics.py checks it).
.PHONY: helm-topics

help::
	@echo "make helm-topics    rewrite deploy/helm/careloop/files/topics.json from the code (events, producers,"
	@echo "                    consumers, dead-letter topics, consumer groups)"

helm-topics: install
	.venv/bin/python deploy/helm/topics.py

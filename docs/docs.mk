# Pages written from the code; tests/test_event_catalogue.py fails when docs/events.md is out of date.
.PHONY: event-catalogue

help::
	@echo "make event-catalogue  rewrite docs/events.md, the event catalogue for analysts (types, topics,"
	@echo "                      producers, consumers, fields, examples), from the contracts and services"

event-catalogue: install
	.venv/bin/python -m careloop_shared.catalogue write

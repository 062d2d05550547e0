# Offline FHIR R4 validation (deploy/tools/fhir-validator): HAPI FHIR's instance validator, built with
# Maven on first use into ~/.cache/careloop/fhir-validator and run from there.
.PHONY: fhir-validate fhir-validator

FILES ?=

help::
	@echo "make fhir-validate FILES=\"a.json ...\"  validate FHIR resources as R4 4.0.1, offline (each file a"
	@echo "                 resource or a JSON array of them): a JSON report of every issue; fails on an error"
	@echo "make fhir-validator  build the validator with Maven into ~/.cache/careloop/fhir-validator (once)"

fhir-validator:
	deploy/tools/fhir-validator/run.sh build

fhir-validate:
	@test -n "$(strip $(FILES))" || { echo 'usage: make fhir-validate FILES="a.json b.json"' >&2; exit 2; }
	deploy/tools/fhir-validator/run.sh $(FILES)

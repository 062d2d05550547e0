# careloop: `make up` runs the platform, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
INFRA := deploy/local/infra.sh
AGENCY ?= agency-demo
ROLE ?= care-manager
PYTEST_ARGS ?=
SERVICES := $(notdir $(wildcard services/*))

.PHONY: help install up up-oncpu oncpu test test-unit infra-up infra-down infra-status browser token lint schemas clean bench bench-tiny fuzz chaos

help::
	@echo "make up          install, start Kafka + PostgreSQL (unless provided) and all services"
	@echo "make test        the whole suite against the real broker and database"
	@echo "make test-unit   the unit tests alone: seconds, no broker or database needed"
	@echo "make infra-up    start the local Kafka broker and PostgreSQL server only"
	@echo "make infra-down  stop them"
	@echo "make browser     what the browser tests need: Debian's chromium and axe-core (make test runs it)"
	@echo "make token AGENCY=<id> ROLE=<role>   print a development token (last line)"
	@echo "make lint        ruff and mypy"
	@echo "make schemas     regenerate the published event JSON Schemas"
	@echo "make bench       benchmark the running platform (needs make up): .artifacts/bench/results.json, bench.png"
	@echo "make bench-tiny  the same at a tiny size, in well under a minute; BENCH_ARGS=... passes options"
	@echo "make up-oncpu    the platform on CPython 3.13 with perf's JIT support, for make oncpu"
	@echo "make oncpu       on-CPU profiles of the running services by Python frame (perf); ONCPU_ARGS=..."
	@echo "make fuzz        fuzz every service's OpenAPI document as every role, then walk the workspace's pages"
	@echo "                 and forms with hostile input (needs make up): .artifacts/fuzz, .artifacts/fuzz-workspace"
	@echo "make chaos       10,000 assessments under SIGKILLs, broker and database restarts, a pause and poison:"
	@echo "                 .artifacts/chaos/report.md (its own services; restarts the local infrastructure)"

.venv/.installed: uv.lock pyproject.toml shared/pyproject.toml deploy/cli/pyproject.toml $(wildcard services/*/pyproject.toml)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

# Bytecode written ahead: where PYTHONDONTWRITEBYTECODE is set (as on our development machines) Python
# never writes it, and every process it starts compiles each module it imports again: 1.5 of the 3.2 s
# of CPU a service took to start, and a service killed on a busy machine came back that much later.
# The project's own sources are compiled again here when they change (a stale file is compiled in
# memory until then, as before).
install: .venv/.installed
	@.venv/bin/python -m compileall -q -j 0 shared services deploy/cli tests >/dev/null

up: install
	deploy/local/up.sh

infra-up:
	$(INFRA) up

infra-down:
	$(INFRA) down

infra-status:
	$(INFRA) status

# The browser tests drive Debian's chromium; this installs it (as root, with apt) and axe-core, or says
# what to run. CARELOOP_SKIP_BROWSER=1 skips those tests instead.
browser:
	deploy/local/browser.sh

test: install infra-up browser
	eval "$$($(INFRA) env)" && .venv/bin/python -m pytest $(PYTEST_ARGS)

# Unit tests need no broker or database: both are pointed at a closed port, so none can sneak in.
test-unit: install
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9 CARELOOP_PG_URL=postgresql://nobody@127.0.0.1:9 \
		.venv/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

token: install
	@.venv/bin/python -m careloop_shared.devtoken --agency "$(AGENCY)" --role "$(ROLE)"

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy shared/careloop_shared deploy/cli/careloop_cli $(foreach s,$(SERVICES),services/$(s)/$(s))

schemas: install
	.venv/bin/python -m careloop_shared.schemas write

# The benchmark measures the platform `make up` runs (it starts nothing and restarts nothing itself):
# the raw Kafka+PostgreSQL ceiling, the event chain, open-loop HTTP load and the follow-up scheduler.
BENCH_ARGS ?=
BENCH_INTAKE_URL = $${INTAKE_URL:-http://127.0.0.1:8001}

bench: BENCH_SIZE :=
bench-tiny: BENCH_SIZE := --tiny
bench bench-tiny:
	@test -x .venv/bin/python || { echo "no .venv: run 'make up' first (it installs and starts the platform)" >&2; exit 1; }
	@curl -fsS "$(BENCH_INTAKE_URL)/readyz" >/dev/null 2>&1 || { \
		echo "make $@: intake is not reachable at $(BENCH_INTAKE_URL)/readyz." >&2; \
		echo "Start the platform first with 'make up' (in another terminal), or set INTAKE_URL." >&2; exit 1; }
	eval "$$($(INFRA) env)" && .venv/bin/python -m tests.perf.bench $(BENCH_SIZE) $(BENCH_ARGS)

clean:
	$(INFRA) down || true
	rm -rf .run .venv .venv-oncpu

# On-CPU profiles by Python frame (tests/perf/oncpu.py): `perf` counts only time on a core, where py-spy
# also counts a process the kernel has set aside while it holds the interpreter. CPython 3.13 gives perf
# every Python frame of a sample (PYTHON_PERF_JIT_SUPPORT); the services run on it from their own venv.
ONCPU_PYTHON ?= python3.13
ONCPU_ARGS ?=
up-oncpu: install
	@py="$$("$(ONCPU_PYTHON)" -c 'import sys; assert sys.version_info >= (3, 13); print(sys.executable)' 2>/dev/null)" || { \
		echo "make up-oncpu needs CPython 3.13 or later: ONCPU_PYTHON=/path/to/python3.13 (uv python install 3.13)" >&2; \
		exit 1; }; \
	UV_PROJECT_ENVIRONMENT=.venv-oncpu $(UV) sync --frozen --python "$$py"
	PYTHON=.venv-oncpu/bin/python PYTHON_PERF_JIT_SUPPORT=1 deploy/local/up.sh

oncpu: install
	.venv/bin/python -m tests.perf.oncpu $(ONCPU_ARGS)

# Schemathesis over every service's OpenAPI document, as every role, with a fresh agency's tokens, against
# the platform `make up` runs (as an admin it edits the shared service directory: start afresh after it); then the workspace, which has no OpenAPI document, walked page by page and
# form by form as every role and as nobody (tests/fuzz/workspace.py); then every consumer fed events drawn
# from their contracts, hostile values included, and as patients' sequences in drawn orders (tests/fuzz/events.py). CI runs all three at a small size
# (tests/test_fuzz.py). FUZZ_ARGS=..., FUZZ_WORKSPACE_ARGS=... and FUZZ_EVENTS_ARGS=... pass options.
FUZZ_ARGS ?= --examples 300
FUZZ_WORKSPACE_ARGS ?= --cases 40
FUZZ_EVENTS_ARGS ?= --examples 200 --sequences 200
FUZZ_WORKSPACE_URL = $${WORKSPACE_URL:-http://127.0.0.1:8000}
fuzz:
	@test -x .venv/bin/python || { echo "no .venv: run 'make up' first (it installs and starts the platform)" >&2; exit 1; }
	@curl -fsS "$(BENCH_INTAKE_URL)/readyz" >/dev/null 2>&1 || { \
		echo "make fuzz: intake is not reachable at $(BENCH_INTAKE_URL)/readyz; start the platform with make up" >&2; exit 1; }
	@curl -fsS "$(FUZZ_WORKSPACE_URL)/readyz" >/dev/null 2>&1 || { \
		echo "make fuzz: the workspace is not reachable at $(FUZZ_WORKSPACE_URL)/readyz; start the platform with make up" >&2; exit 1; }
	.venv/bin/python -m tests.fuzz.fuzz $(FUZZ_ARGS)
	.venv/bin/python -m tests.fuzz.workspace $(FUZZ_WORKSPACE_ARGS)
	eval "$$($(INFRA) env)" && .venv/bin/python -m tests.fuzz.events $(FUZZ_EVENTS_ARGS)

# The chaos run starts five services of its own on the local Kafka and PostgreSQL (make infra-up), which it
# restarts: not to be run beside a platform you are using. CI runs a short form (tests/test_chaos.py).
CHAOS_ARGS ?=
chaos: install infra-up
	.venv/bin/python -m tests.chaos.chaos $(CHAOS_ARGS)

# Deployment targets (images, the Helm chart, a three-broker Kafka cluster) live beside what they build;
# each adds its lines to `make help`.
-include deploy/*/*.mk docs/*.mk

# The two commands of the README: `make run` and `make test`. Both create the virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint types unit corpus bench bench-store bench-topology bench-http vu clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Citadel needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	CITADEL_DEV=1 $(BIN)/citadel serve examples.shop:app

test: lint types unit

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	@# The docs site (mkdocs.yml): a broken link or anchor fails the build. --quiet would make --strict pass
	@# every warning (mkdocs/mkdocs#4126, open), so the output is kept and shown only when the build fails; the
	@# variable silences a notice Material for MkDocs prints on every build about its successor.
	@out=$$(NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d $(VENV)/site 2>&1) || { printf '%s\n' "$$out"; exit 1; }
	@# bandit warns "nosec encountered (B608), but no failed test" for every f-string that a `# nosec B608`
	@# rightly waives (PyCQA/bandit#1204, open): those lines alone are left out; its status is kept.
	@out=$$($(BIN)/bandit -c pyproject.toml -q -r src -ll 2>&1); status=$$?; \
		printf '%s\n' "$$out" | grep -v 'nosec encountered (B608), but no failed test' | grep -v '^$$' || true; \
		exit $$status

types: $(STAMP)
	$(BIN)/mypy src

# gunicorn's request corpus, for the HTTP server's conformance test. It ships only in gunicorn's sdist; the hash
# pins the files the test's allow-list was written against.
CORPUS_VERSION := 27.0.1
CORPUS_SHA256 := b1514965361c8b7e8107a80aa2a92636878df1ccfac6dd204a676426e04d9e3e
CORPUS := $(VENV)/corpus/gunicorn-$(CORPUS_VERSION)/tests/requests

corpus: $(CORPUS)

$(CORPUS): | $(STAMP)
	rm -rf $(VENV)/corpus.partial && mkdir -p $(VENV)/corpus.partial
	echo 'gunicorn==$(CORPUS_VERSION) --hash=sha256:$(CORPUS_SHA256)' | $(BIN)/python -m pip download --quiet \
		--no-deps --no-binary :all: --require-hashes -r /dev/stdin -d $(VENV)/corpus.partial
	tar -xzf $(VENV)/corpus.partial/gunicorn-$(CORPUS_VERSION).tar.gz -C $(VENV)/corpus.partial
	rm -rf $(VENV)/corpus && mv $(VENV)/corpus.partial $(VENV)/corpus

unit: $(STAMP) $(CORPUS)
	$(BIN)/pytest -q

# The benchmark environment also holds the peer library, which the project itself never depends on.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	@touch $(BENCH_STAMP)

# Every scenario, one after the other (about 8½ minutes): the event store, modules in other services, the HTTP
# server alone and the shop under 10,000 virtual users. Each also runs alone: make bench-store,
# make bench-topology, make bench-http, make vu.
bench: bench-store bench-topology bench-http vu

bench-store: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/store.py $(STORE_ARGS)

bench-topology: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/topology.py $(TOPOLOGY_ARGS)

# The HTTP server alone: Citadel's server, granian and uvicorn each meet the same hostile probes, then 10,000
# keep-alive virtual users (about 2½ minutes); HTTP_ARGS for options, e.g. HTTP_ARGS="--servers citadel,granian-rsgi"
bench-http: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/http_server.py $(HTTP_ARGS)

# The shop under 10,000 virtual users (wrk), baseline and Citadel side by side; VU_ARGS for options, e.g.
# make vu VU_ARGS="--connections 1000 --warmup 5 --duration 10"
vu: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/vu.py $(VU_ARGS)

# What telemetry costs: server CPU per answer under the shop's virtual users without telemetry, with metrics and
# unexported tracing, and with request log lines too, in alternating rounds (about 3½ minutes a round). It runs in
# the project's environment, which holds the otel extra; TELEMETRY_ARGS for options, e.g. TELEMETRY_ARGS="--rounds 2
# --profile B" (py-spy comes from .venv-bench).
.PHONY: telemetry-cost
telemetry-cost: $(STAMP)
	$(BIN)/python bench/telemetry_cost.py $(TELEMETRY_ARGS)

# The scale-out rig (as root): N nodes in network namespaces on PostgreSQL and a NATS cluster, behind HAProxy,
# under the shop's virtual users (about a minute); CLUSTER_ARGS for options, e.g. CLUSTER_ARGS="--nodes 2". It needs
# the postgres and nats extras, which the project's environment holds.
.PHONY: cluster
cluster: $(STAMP)
	$(BIN)/python bench/cluster.py $(CLUSTER_ARGS)

# Faults on that rig (as root), each while the virtual users run (about five minutes): netem between a node and
# PostgreSQL, a link cut, the NATS stream leader and a node killed, PostgreSQL restarted; FAULTS_ARGS for options.
.PHONY: cluster-faults
cluster-faults: $(STAMP)
	$(BIN)/python bench/cluster_faults.py $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) var .mypy_cache .ruff_cache .pytest_cache

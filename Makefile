# pyetcd developer entry points. `make run` and `make test` are the two commands in the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data/default.etcd
PYTEST_ARGS ?=

.PHONY: run test venv sysdeps etcd lint bench sim clean

# systemd-python (a dev extra) builds against libsystemd: install its headers first on a fresh machine.
$(STAMP): pyproject.toml | sysdeps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@pkg-config --exists libsystemd 2>/dev/null && command -v gcc >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsystemd-dev pkg-config gcc; }

# Debian's etcd 3.4 is the reference the differential tests and benchmarks compare against.
etcd:
	@command -v etcd >/dev/null 2>&1 && command -v discovery.etcd.io >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client etcd-discovery curl openssl; }

run: $(STAMP)
	@mkdir -p $(DATA_DIR)
	@echo "pyetcd: client API on http://127.0.0.1:2379, data in $(DATA_DIR) (Ctrl-C stops it)"
	exec $(VENV)/bin/pyetcd --name default --data-dir $(DATA_DIR) \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

test: $(STAMP) etcd
	$(VENV)/bin/ruff check daemon tests bench
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check daemon tests bench

bench: $(STAMP) etcd
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis

# Seeded whole-cluster simulation sweep (`make sim SEEDS=N`); a failure prints the replay command.
sim: $(STAMP)
	$(PY) -m pyetcd.testing.sim --seeds $(or $(SEEDS),1000)

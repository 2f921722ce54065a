# pyetcd developer entry points. `make run` and `make test` are the two commands in the README.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 2379
# `make run PORT=2479` beside a running `make run` gets a data dir of its own: two members never share one.
DATA_DIR ?= data/default$(if $(filter-out 2379,$(PORT)),-$(PORT)).etcd
DIST ?= dist
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: run test venv sysdeps etcd lint test-snapshot-send bench sim clean deb rpm package-test e2e e2e-fleet cloud-config-check vagrant-validate

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

# `make run PORT=2479`: another client port. pyetcd creates the data dir itself, once its port is bound.
run: $(STAMP)
	@mkdir -p $(dir $(DATA_DIR))
	@echo "pyetcd: client API on http://127.0.0.1:$(PORT), data in $(DATA_DIR) (Ctrl-C stops it)"
	exec $(VENV)/bin/pyetcd --name default --data-dir $(DATA_DIR) \
		--listen-client-urls http://127.0.0.1:$(PORT) --advertise-client-urls http://127.0.0.1:$(PORT)

test: $(STAMP) etcd
	$(VENV)/bin/ruff check daemon tests bench
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check daemon tests bench

# `make test` sends a 30k-key snapshot to a lagging follower (about 20 s); this sends a 300k-key one
# (SNAPSHOT_SEND_KEYS=1000000 for 1M keys; the fill runs at the 3-member write rate: several minutes).
SNAPSHOT_SEND_KEYS ?= 300000
test-snapshot-send: $(STAMP)
	PYETCD_SNAPSHOT_SEND_KEYS=$(SNAPSHOT_SEND_KEYS) $(PY) -m pytest -q -s tests/cluster/test_snapshot_send.py

bench: $(STAMP) etcd
	$(PY) -m bench.run $(BENCH_ARGS)

# The appliance. .deb with debhelper + dh-python/pybuild, .rpm with rpmbuild; each script installs its own
# tools with apt-get, lints its result (lintian / rpmlint, failing on anything not overridden with a reason)
# and prints the path.
deb:
	DIST=$(abspath $(DIST)) packaging/build-deb.sh

rpm:
	DIST=$(abspath $(DIST)) packaging/build-rpm.sh

# Build both, look inside, install each into a throwaway overlay of this machine (root, bookworm; ~80 s).
package-test: $(STAMP)
	PYETCD_PACKAGING_TESTS=1 $(PY) -m pytest -q tests/packaging

# End to end in real systemd: build the .deb, boot 3 systemd-nspawn containers (each in its own network
# namespace) seeded with the cloud-config, run the checks; prints one result line. Root; a few minutes.
e2e: deb
	/usr/bin/python3 tests/e2e/e2e.py

# A fleet under real systemd: 5 containers (own network namespaces on a bridge built with pyroute2) seeded
# with one byte-identical user-data; a size-3 token makes 3 members and 2 proxies. Checks: formation,
# replication through every host, locksmith reboots one at a time, the leader powered off, a proxy
# restarted without the token store. Prints one result line. Root; a few minutes.
e2e-fleet: deb
	/usr/bin/python3 tests/e2e/fleet.py

# cloud-init schema on the member template and its renderings.
cloud-config-check:
	bash cloud-config/validate.sh

vagrant-validate:
	@command -v vagrant >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vagrant; }
	cd vagrant && vagrant validate && VAGRANT_EXPERIMENTAL=cloud_init vagrant validate

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis $(DIST)

# Seeded whole-cluster simulation sweep (`make sim SEEDS=N`); a failure prints the replay command.
sim: $(STAMP)
	$(PY) -m pyetcd.testing.sim --seeds $(or $(SEEDS),1000)

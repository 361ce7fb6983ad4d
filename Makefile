# phiwatch: two commands do all set-up on a fresh machine.
#   make demo   install, start the lab on loopback, scan it, write the report
#   make test   install and run the whole test suite against the real lab servers
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= demo-output

.PHONY: install deps demo test lint lab-up lab-down bench bench-startup man clean lock

# Two distributions from this repository: phiwatch (with its cluster and dev extras) and the lab,
# phiwatch-lab (lab/pyproject.toml), which adds `phiwatch lab`. Their dependencies come hashed from
# the one lock file.
$(BIN)/phiwatch: pyproject.toml lab/pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e . -e ./lab
	touch $@

install: $(BIN)/phiwatch

deps:
	bash scripts/install-debian-deps.sh

# demo starts the lab with the further real implementations of each protocol (lab up --implementations) and
# scans every port a lab service listens on, on loopback and on its NFS server's address inside its own
# network namespace: hosts and ports are read from the lab's manifest, so a new lab server is scanned.
LAB_TARGETS = import phiwatch_lab as lab, phiwatch_lab.cli as c; hosts, ports = c.scan_targets(lab.manifest())
demo: deps install
	$(BIN)/phiwatch lab up --implementations
	hosts=$$($(BIN)/python -c '$(LAB_TARGETS); print(*hosts)') && \
	ports=$$($(BIN)/python -c '$(LAB_TARGETS); print(*ports, sep=",")') && \
	$(BIN)/phiwatch scan $$hosts -p $$ports --timeout 2 --output $(OUT) --progress rich
	@echo "Report: $(CURDIR)/$(OUT)/report.html; stored scans: phiwatch scans; stop the lab with: make lab-down"
	@echo "Watch the lab (a run every 10 minutes, alerts to syslog on udp://127.0.0.1:5514), with its dashboard:"
	@echo "  PHIWATCH_TOKEN=\$$(openssl rand -hex 16) $(BIN)/phiwatch watch docs/watch-lab.yaml --serve"
	@echo "  (--once: one run now, alerts sent, exit; the dashboard alone: $(BIN)/phiwatch serve docs/watch-lab.yaml)"

test: deps install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/phiwatch src/phiwatch_lab
	$(BIN)/python -m pytest -q

lab-up: install
	$(BIN)/phiwatch lab up

lab-down: install
	$(BIN)/phiwatch lab down

bench: deps install
	$(BIN)/python bench/dicom_vs_nmap.py

bench-startup: install
	$(BIN)/python bench/startup.py

# phiwatch(1), generated from the command line's own help (man -l build/phiwatch.1 to read it)
man: install
	mkdir -p build
	$(BIN)/phiwatch man -o build/phiwatch.1

lock:
	uv pip compile requirements.in --generate-hashes --python-version 3.11 -q \
		--no-emit-package phiwatch --no-emit-package phiwatch-lab -o requirements.lock

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache build

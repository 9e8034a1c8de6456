# dosekit: every target bootstraps what it needs from the pinned requirements.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STUBS  := $(VENV)/stubs
HEAP   ?= 192K
STAMP  := $(VENV)/.installed

.PHONY: all test pytest test-device mpy typecheck bench sim serve clean distclean venv

all: test

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-stubs.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .  # the pumpctl console command
	rm -rf $(STUBS)
	grep -v '^#' requirements-stubs.txt | while IFS='=' read -r port pkg; do \
	  [ -n "$$port" ] && $(BIN)/pip install -q --no-user --target $(STUBS)/$$port "$${pkg#=}" || exit 1; \
	done
	touch $@

test: $(STAMP)
	$(MAKE) pytest
	$(MAKE) test-device
	$(MAKE) mpy
	$(MAKE) typecheck
	@echo "make test: all checks passed"

pytest: $(STAMP)
	$(BIN)/pytest -q tests

test-device: $(STAMP)
	$(BIN)/python tools/run_device_tests.py --heap $(HEAP)

mpy: $(STAMP)
	$(BIN)/python tools/build_mpy.py

typecheck: $(STAMP)
	$(BIN)/python tools/typecheck.py

bench: $(STAMP)
	$(BIN)/python tools/bench.py

sim: $(STAMP)
	$(BIN)/python tools/sim_demo.py

serve: $(STAMP)
	$(BIN)/pumpctl sim serve

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV)

# Thin wrapper: every target runs inside .venv, which the first target creates and fills.
# Re-running is fast: the install step only repeats when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
BOARD ?= ulx3s-85f
CONFIG ?= default

# The venv's tools (verilator shim, cocotb-config, yowasp-*) must be found by subprocesses.
export PATH := $(BIN):$(PATH)

.PHONY: install demo test test-all lint format bench bench-fpga verilog bitstream ci-bitstream flash clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	# setuptools prints a fixed notice on every editable install; it says nothing about us.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m verdigris.toolchain
	@touch $@

demo: $(STAMP)
	$(BIN)/verdigris doctor
	$(BIN)/verdigris demo

# The default suite: unit tests plus the Verilator benches (each design is built once), a
# worker per core, each test file on one worker (its module fixtures are set up once).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not synth and not board and not slow" --durations=15

# Everything that can run without a board, including synthesis.
test-all: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not board"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	@for script in $(filter-out bench/fpga.py,$(wildcard bench/*.py)); do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# FPGA builds per board: minutes each, so apart from `make bench`.
bench-fpga: $(STAMP)
	$(BIN)/python bench/fpga.py

verilog: $(STAMP)
	$(BIN)/verdigris verilog --config $(CONFIG) -o build/verilog/$(CONFIG)

bitstream: $(STAMP)
	$(BIN)/verdigris bitstream --board $(BOARD) $(if $(CONFIG),--config $(CONFIG))

# The real bitstream CI builds (a 25F board's largest config, checked by unpacking it).
ci-bitstream: $(STAMP)
	$(BIN)/python -m pytest -m synth -s tests/boards/test_bitstream.py -k "real_bitstream or pll"

flash: $(STAMP)
	$(BIN)/verdigris flash --board $(BOARD) $(if $(BITSTREAM),--bitstream $(BITSTREAM))

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info

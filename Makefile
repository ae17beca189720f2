# Set-up is two commands on a fresh machine: `make demo` and `make test`.
# Each builds its own virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch: an unpinned torch would pull a CUDA build of several GB.
TORCH_PIN ?= torch==2.13.0

.PHONY: install test test-fast demo bench bench-pytest clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.pyx csrc/*.pxd)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Everything (what CI runs), the slow soak, crash, fuzz and demo tests included, on both cores.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# The quick loop while working: tests/ without the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 tests

demo: $(STAMP)
	$(BIN)/samplestore demo --root demo-store
	$(BIN)/samplestore verify demo-store

# The figures quoted in the README: `samplestore bench` at full size (JSON, markdown, PNG).
bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[plot]'
	$(BIN)/samplestore bench --out bench-out

bench-pytest: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks --benchmark-enable --benchmark-only

# Not bench-out/: it holds the committed results the README quotes (`make bench` rewrites them).
clean:
	rm -rf $(VENV) build src/samplestore/*.so src/samplestore/*.c csrc/*.c demo-store

# Set-up is two commands on a fresh machine: `make demo` and `make test`.
# Each builds its own virtual environment in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch: an unpinned torch would pull a CUDA build of several GB.
TORCH_PIN ?= torch==2.13.0

TORCHREC_STAMP := $(VENV)/.torchrec
# pytest keeps its assertion-rewritten test modules as bytecode (and Python the package's)
# unless PYTHONDONTWRITEBYTECODE is set; where an environment sets it, every run and every
# xdist worker would rewrite and compile them all again (seconds each).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

.PHONY: install torchrec-cpu lint-imports test test-fast demo bench bench-pytest clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.pyx csrc/*.pxd)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# TorchRec for Batch.to_kjt() on a CPU-only host: --no-deps, since torchrec declares the CUDA
# fbgemm-gpu; requirements/torchrec-cpu.txt pins every dependency instead. torch stays as pinned.
torchrec-cpu: $(TORCHREC_STAMP)

$(TORCHREC_STAMP): requirements/torchrec-cpu.txt $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements/torchrec-cpu.txt
	$(BIN)/python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if '$(TORCH_PIN)'.endswith(v) else 'torch was replaced: ' + torch.__version__)"
	touch $(TORCHREC_STAMP)

# Everything (what CI runs), the slow soak, crash, fuzz and demo tests included, on both cores.
# --dist loadgroup: the Ray tests (xdist_group "ray") share one worker, so one local Ray cluster starts.
test: $(STAMP) $(TORCHREC_STAMP)
	$(PYTEST) -q -n 2 --dist loadgroup

# The import contracts of pyproject.toml ([tool.importlinter]): no cycles, no upward imports.
# tests/test_layers.py runs them too, so `make test` (CI) and `make test-fast` fail on a broken one.
lint-imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

# The quick loop while working: tests/ without the tests marked slow.
test-fast: $(STAMP)
	$(PYTEST) -q -m "not slow" -n 2 tests

demo: $(STAMP)
	$(BIN)/samplestore demo --root demo-store
	$(BIN)/samplestore verify demo-store

# The figures quoted in the README: `samplestore bench` at full size (JSON, markdown, PNG), with
# Lance as a loader contender (pylance needs no torch of its own: the pinned one stays).
bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[plot,lance]'
	$(BIN)/samplestore bench --out bench-out

bench-pytest: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks --benchmark-enable --benchmark-only

# Not bench-out/: it holds the committed results the README quotes (`make bench` rewrites them).
clean:
	rm -rf $(VENV) build src/samplestore/*.so src/samplestore/*/*.so csrc/*.c demo-store

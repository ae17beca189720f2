"""Benchmarks run in two modes: as quick tests (the default: ``--benchmark-disable`` is in
pytest's options, small data) and as real measurements (``make bench-pytest``:
``--benchmark-enable --benchmark-only``, full size).

Sizes can be overridden with SAMPLESTORE_BENCH_ROWS / SAMPLESTORE_BENCH_WIDE_ROWS.
"""

import os

import pytest


@pytest.fixture(scope="session")
def quick(request) -> bool:
    """True when benchmarks run as quick tests (timing disabled, the default; see
    pyproject.toml), False with ``--benchmark-enable`` / ``--benchmark-only``."""
    cfg = request.config
    enabled = cfg.getoption("benchmark_enable", False) or cfg.getoption("benchmark_only", False)
    return bool(cfg.getoption("benchmark_disable", False)) and not enabled


@pytest.fixture(scope="session")
def bench_rows(quick) -> int:
    return int(os.environ.get("SAMPLESTORE_BENCH_ROWS", 20_000 if quick else 1_000_000))


@pytest.fixture(scope="session")
def wide_rows(quick) -> int:
    return int(os.environ.get("SAMPLESTORE_BENCH_WIDE_ROWS", 100 if quick else 100_000))

"""Benchmarks run in two modes: as quick tests (the default: ``--benchmark-disable`` is in
pytest's options, small data) and as real measurements (``make bench-pytest``:
``--benchmark-enable --benchmark-only``, full size).

Sizes can be overridden with SAMPLESTORE_BENCH_ROWS / SAMPLESTORE_BENCH_WIDE_ROWS.
"""

import os
import sys

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the Ray benchmark, which runs in the tests' "ray" xdist group (on their cluster
    where one is up): shut the cluster down unless the next test is of the group
    (tests/on_ray/conftest.py does the same after the Ray tests, and says why)."""
    try:
        return (yield)
    finally:
        def ray_group(it) -> bool:
            return any(m.args[:1] == ("ray",) for m in it.iter_markers("xdist_group"))

        if ray_group(item) and (nextitem is None or not ray_group(nextitem)):
            ray = sys.modules.get("ray")
            if ray is not None and ray.is_initialized():
                ray.shutdown()

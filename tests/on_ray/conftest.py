"""The Ray tests' cluster: a local Ray cluster (``ray.init(num_cpus=2)``) started by the first
test that needs one and shut down after the last of a run of consecutive tests of the "ray"
group, so that its processes do not take CPU from the tests after it. `make test` runs the
group in one xdist worker (``xdist_group("ray")``, ``--dist loadgroup``), one test after the
other: Ray's start-up is paid once. (A plain serial pytest runs benchmarks/bench_ray.py apart
from these tests, and it starts a cluster of its own.)

(The folder is not tests/ray/: tests/ is on sys.path, and a folder of that name would shadow
the ray package.)"""

import os
import pathlib
import sys

import pytest


@pytest.fixture
def ray_cluster(s3_server):
    """The local Ray cluster, started if it is not running (and shut down after the group)."""
    ray = pytest.importorskip("ray", reason="the Ray tests need the [ray] extra (pip install -e '.[ray]')")
    if not ray.is_initialized():
        _start(ray)
    return ray


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Once the test's fixtures are torn down, shut the cluster down if the next test is not
    of the "ray" group. Under xdist (--dist loadgroup) the group's tests run one after the
    other, and an idle cluster's processes would take ~10% of a core for the rest of the
    session. (benchmarks/conftest.py does the same after its Ray benchmark, of the group.)"""
    try:
        return (yield)
    finally:
        if nextitem is None or not in_ray_group(nextitem):
            ray = sys.modules.get("ray")
            if ray is not None and ray.is_initialized():
                ray.shutdown()


def in_ray_group(item) -> bool:
    return any(m.args[:1] == ("ray",) for m in item.iter_markers("xdist_group"))


def _start(ray) -> None:
    # The S3 server is started first: its fake credentials are in the environment the cluster's
    # workers inherit (without them a worker's uploads go unsigned, which moto stores garbled).
    # Ray's workers import the tests' functions by module (on_ray.test_ray, s3server) and
    # samplestore as this process does: they inherit PYTHONPATH from the cluster ray.init starts.
    paths = [str(pathlib.Path(__file__).parents[1]), *[os.path.abspath(p) for p in sys.path if p]]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False

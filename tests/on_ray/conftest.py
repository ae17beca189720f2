"""The Ray tests' cluster: one local Ray cluster per test process (``ray.init(num_cpus=2)``),
started on first use and shut down at the end, so Ray's own start-up is paid once. `make
test` runs these tests in one xdist worker (``xdist_group("ray")``, ``--dist loadgroup``).

(The folder is not tests/ray/: tests/ is on sys.path, and a folder of that name would shadow
the ray package.)"""

import os
import pathlib
import sys

import pytest


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    ray = pytest.importorskip("ray", reason="the Ray tests need the [ray] extra (pip install -e '.[ray]')")
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
    try:
        yield ray
    finally:
        ray.shutdown()

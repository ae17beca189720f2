"""Scan planning on a table of many small files (10,000 at full size, real files on disk).

Three plans: the whole table, one partition (partition pruning), and a user-id range
(min/max statistics pruning). Target: each under 1 s at 10,000 files.
"""

import pytest

from samplestore.bench.catalog import make_many_files, plan_cases


@pytest.fixture(scope="module")
def many_files(quick, tmp_path_factory):
    n_files = 500 if quick else 10_000
    table = make_many_files(str(tmp_path_factory.mktemp("plan")), n_files)
    assert len(table.files()) == n_files
    return table, n_files


@pytest.mark.parametrize("case", ["all", "one partition", "user range"])
def test_plan_scan(benchmark, many_files, case):
    table, n_files = many_files
    benchmark.group = f"plan a scan of {n_files:,} files"
    flt, expected = plan_cases(n_files)[case]
    plan = benchmark.pedantic(lambda: table.scan(filter=flt).plan(), rounds=5, iterations=1)
    assert plan.num_files == expected

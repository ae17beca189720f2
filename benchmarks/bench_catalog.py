"""Scan planning on a table of many small files (10,000 at full size, real files on disk).

Three plans: the whole table, one partition (partition pruning), and a user-id range
(min/max statistics pruning). Target: each under 1 s at 10,000 files.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import samplestore as ss

DAYS = 100


@pytest.fixture(scope="module")
def many_files(quick, tmp_path_factory):
    n_files = 500 if quick else 10_000
    schema = ss.Schema([ss.Scalar("user_id", "int64"), ss.Sparse("ids"), ss.Label("y"), ss.Scalar("ds", "string")])
    table = ss.open_store(tmp_path_factory.mktemp("plan")).create_table("t", schema, partition_by=["ds"])
    with table.writer(commit_every_rows=10_000, target_file_bytes=1) as w:
        for i in range(n_files):
            users = np.arange(i * 10, i * 10 + 10)
            w.write({"user_id": pa.array(users), "ids": pa.array([[1, 2]] * 10), "y": pa.array(np.zeros(10, np.float32)),
                     "ds": [f"day{i % DAYS:03d}"] * 10})
    assert len(table.files()) == n_files
    return table, n_files


@pytest.mark.parametrize("case", ["all", "one partition", "user range"])
def test_plan_scan(benchmark, many_files, case):
    table, n_files = many_files
    benchmark.group = f"plan a scan of {n_files:,} files"
    flt = {"all": None, "one partition": pc.field("ds") == "day007",
           "user range": (pc.field("user_id") >= n_files * 5) & (pc.field("user_id") < n_files * 5 + 100)}[case]
    plan = benchmark.pedantic(lambda: table.scan(filter=flt).plan(), rounds=5, iterations=1)
    expected = {"all": n_files, "one partition": n_files // DAYS, "user range": 10}[case]
    assert plan.num_files == expected

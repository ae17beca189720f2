"""Reading k of N columns does O(k) metadata work (counted, not timed)."""

import numpy as np
import pyarrow as pa

import samplestore as ss
from samplestore.format import FileReader, write_file


def test_reading_few_of_many_columns_parses_only_those(tmp_path):
    n_cols = 3000
    schema = ss.Schema([ss.Dense(f"f{i}") for i in range(n_cols)])
    rng = np.random.default_rng(0)
    table = pa.table({f"f{i}": rng.standard_normal(50).astype(np.float32) for i in range(n_cols)})
    path = tmp_path / "wide.ssf"
    write_file(path, table, schema, row_group_rows=20)
    with FileReader(path) as r:
        assert r.num_columns == n_cols and r.num_row_groups == 3
        got = r.read(["f2999", "f7", "f1500"])
        # Only the three requested column descriptors were decoded.
        assert sorted(r._features) == sorted([2999, 7, 1500])
    assert got.column_names == ["f2999", "f7", "f1500"]
    assert np.array_equal(got.column("f7").to_numpy(), table.column("f7").to_numpy())

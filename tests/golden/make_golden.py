"""Write tests/golden/v<N>.ssf for the writer's format version N, and the golden file of each
encoding added within it (``ENCODING_GOLDEN`` in test_golden.py, e.g. v2_cross_row.ssf).

Run once, when a new major version or encoding is introduced; it writes only the files that
do not exist yet, so every earlier file stays as committed.

The expected content is defined in tests/format/test_golden.py, independent of the writer.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "format")]

from test_golden import ENCODING_GOLDEN, SCHEMA, expected_table  # noqa: E402

from samplestore.format import VERSION_MAJOR, write_file  # noqa: E402

if __name__ == "__main__":
    wanted = {f"v{VERSION_MAJOR}.ssf": (SCHEMA, expected_table, 64)} | ENCODING_GOLDEN
    for name, (schema, table, row_group_rows) in wanted.items():
        path = os.path.join(HERE, name)
        if os.path.exists(path):
            print(f"{path} exists: a released golden file is never rewritten")
            continue
        write_file(path, table(), schema, row_group_rows=row_group_rows, metadata={"golden": name.removesuffix(".ssf")})
        print(path)

"""Regenerate tests/golden/v1.ssf. Run only for a new format version; v1.ssf stays as committed.

The expected content is defined in tests/format/test_golden.py, independent of the writer.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "format")]

from test_golden import SCHEMA, expected_table  # noqa: E402

from samplestore.format import write_file  # noqa: E402

if __name__ == "__main__":
    write_file(os.path.join(os.path.dirname(__file__), "v1.ssf"), expected_table(), SCHEMA, row_group_rows=64,
               metadata={"golden": "v1"})

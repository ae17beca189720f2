"""Write tests/golden/v<N>.ssf for the writer's format version N.

Run once, when a new major version is introduced; every earlier file stays as committed.

The expected content is defined in tests/format/test_golden.py, independent of the writer.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "format")]

from test_golden import SCHEMA, expected_table  # noqa: E402

from samplestore.format import VERSION_MAJOR, write_file  # noqa: E402

if __name__ == "__main__":
    path = os.path.join(HERE, f"v{VERSION_MAJOR}.ssf")
    if os.path.exists(path):
        sys.exit(f"{path} exists: a released version's golden file is never rewritten")
    write_file(path, expected_table(), SCHEMA, row_group_rows=64, metadata={"golden": f"v{VERSION_MAJOR}"})
    print(path)

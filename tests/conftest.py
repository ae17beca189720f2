import os
import sys

# Make tests/helpers.py importable as `helpers` from every test package.
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

from s3server import start_server  # noqa: E402


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-API server (moto) on 127.0.0.1, for this test process."""
    yield from start_server()


@pytest.fixture
def s3_uri(s3_server):
    """``s3://BUCKET/samples`` in a fresh bucket, and its storage options."""
    return f"s3://{s3_server.new_bucket()}/samples", s3_server.options


"""Remote-read benchmark (see samplestore.bench.remote) over moto's S3 server on 127.0.0.1.

Its targets are counts (requests, bytes), not timings, so the quick run asserts them too."""

import pytest

from samplestore.bench.remote import format_markdown, run_remote_bench


@pytest.mark.slow  # ~40 s even quick: the S3 server is a Python web server
def test_remote_reads(benchmark, quick, tmp_path):
    pytest.importorskip("moto.server")
    rows, wide_rows = (100_000, 100) if quick else (1_000_000, 5_000)
    res = benchmark.pedantic(lambda: run_remote_bench(str(tmp_path), rows=rows, wide_rows=wide_rows),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    e, p, w = res["epoch"], res["epoch_projected"], res["wide"]
    assert e["requests_per_row_group"] <= 2 and e["bytes_ratio"] <= 1.1
    # A few spread columns: within the over-read bound, and never more than a request per chunk.
    assert p["bytes_ratio"] <= 1.1 and p["get_requests"] <= p["row_groups"] * len(p["features"])
    assert w["adjacent"]["requests"] <= 3

"""Loader benchmark: SampleDataset against a careful Parquet + pyarrow loader (same Batch).

Full size (``make bench`` or ``samplestore bench loader``): 2,000,000 Criteo-like rows,
num_workers 0 and 2, each configuration in a fresh process: samples/s, time to first
batch, CPU cores used, peak RSS (also with a 4x larger buffer), Spearman and neighbour rate
of the output order. As a quick test it runs
the same path on a small table and checks that both loaders deliver every row once.
"""

from samplestore.bench.loader import format_markdown, run_loader_bench


def test_loader_against_parquet(benchmark, quick, tmp_path):
    rows = 20_000 if quick else 2_000_000
    res = benchmark.pedantic(lambda: run_loader_bench(str(tmp_path), rows=rows, batch_size=4096 if not quick else 1024,
                                                      repeats=1 if quick else 3), rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    for r in res["results"] + res["large_buffer"]["results"]:
        assert r["rows"] == rows and r["unique_rows"] == rows, r
    benchmark.extra_info.update({k: v for k, v in res["ratios"].items()})

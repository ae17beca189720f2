"""Compaction benchmark (see samplestore.bench.compaction): 1,000 small files at full size."""

from samplestore.bench.compaction import format_markdown, run_compaction_bench


def test_compaction(benchmark, quick, tmp_path):
    files = 60 if quick else 1000
    res = benchmark.pedantic(lambda: run_compaction_bench(str(tmp_path), files=files), rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    assert res["files_before"] == files and res["files_after"] < files
    # Deterministic figures: merged files are smaller, and clustering by user shrinks them further.
    b = res["bytes_per_sample"]
    assert b["compacted"] < b["small_files"] and b["compacted_sorted"] < b["compacted"]

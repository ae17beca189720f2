"""Sequence benchmark (see samplestore.bench.sequence): histories of up to 200 ids per sample."""

from samplestore.bench.sequence import format_markdown, run_sequence_bench


def test_sequence(benchmark, quick, tmp_path):
    rows = 8_000 if quick else 400_000
    res = benchmark.pedantic(lambda: run_sequence_bench(str(tmp_path), rows=rows, samples_per_user=200),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    assert res["files"] == {"appended": 1, "compacted": 1} and res["sort_keys"] == ["['user_id', 'ts']"]
    b, h = res["bytes_per_sample"], res["history_bytes_per_sample"]
    # Deterministic figures: the history is stored once across rows, sorted or not (found by
    # content when users interleave), and sorting by (user, ts) shrinks it further.
    assert b["ssf_time_order"] <= b["parquet_time_order"]
    assert h["ssf_sorted"] < h["ssf_time_order"] and h["ssf_sorted"] < 0.4 * h["parquet_sorted"]
    assert b["ssf_sorted"] < b["parquet_sorted"]

"""Sequence benchmark (see samplestore.bench.sequence): histories of up to 200 ids per sample."""

import pytest

from samplestore.bench.sequence import STEP_CONFIGS, fastest_full, format_markdown, run_sequence_bench


def test_sequence(benchmark, quick, tmp_path):
    small = dict(rows=8_000, train_batches=1, loader_epochs=1, dense_rows=2_000, repeats=1, batch_size=1_024,
                 embedding_rows=100_003)
    size = small if quick else dict(rows=400_000)
    res = benchmark.pedantic(lambda: run_sequence_bench(str(tmp_path), samples_per_user=200, **size),
                             rounds=1, iterations=1)
    md = format_markdown(res)
    print("\n" + md)
    assert res["files"] == {"appended": 1, "compacted": 1} and res["sort_keys"] == ["['user_id', 'ts']"]
    b, h, cols = res["bytes_per_sample"], res["history_bytes_per_sample"], res["column_bytes_per_sample"]
    # Deterministic figures: the history is stored once across rows, sorted or not (found by
    # content when users interleave), and sorting by (user, ts) shrinks it further.
    assert b["ssf_time_order"] <= b["parquet_time_order"]
    assert h["ssf_sorted"] < h["ssf_time_order"] and h["ssf_sorted"] < 0.4 * h["parquet_sorted"]
    assert b["ssf_sorted"] < b["parquet_sorted"]
    # The bound is sorted Parquet without its history, and the column groups add up to the columns.
    assert res["ratios"]["bound_zero_byte_history"] == pytest.approx(1 - h["parquet_sorted"] / b["parquet_sorted"])
    assert abs(sum(cols["ssf_sorted"].values()) - b["ssf_sorted"]) < 0.05 * b["ssf_sorted"]
    d = res["dedup"]
    # Every batch of a user-sorted table repeats history ids: deduplication delivers fewer,
    # and every configuration was timed on every batch.
    assert d["history_ids"]["dedup"] * 2 < d["history_ids"]["full"] and d["factor"] > 2
    assert [(s["optimizer"], s["form"]) for s in d["steps"]] == list(STEP_CONFIGS)
    assert d["batches"] == size.get("train_batches", 20)
    # "vs full" is against the fastest full form of each optimizer (sparse or dense gradient).
    fastest = fastest_full(d["steps"])
    assert {s["form"] for s in fastest.values()} <= {"full", "full, dense gradient"}
    assert fastest["SparseAdam"]["form"] == "full"  # it takes sparse gradients only
    for opt, s in fastest.items():
        assert s["step_ms"] == min(x["step_ms"] for x in d["steps"]
                                   if x["optimizer"] == opt and x["form"].startswith("full"))
        assert f"`{s['form']}`) | " in md
    ds = res["dense_storage"]["bytes_per_sample"]
    assert ds["float16"] < 0.55 * ds["float32"] and ds["bfloat16"] < 0.55 * ds["float32"]
    assert set(res["loader"]["samples_per_s"]) == {"samplestore", "samplestore_dedup", "parquet"}

"""Training quality by loader (see samplestore.bench.train_quality): held-out AUC and log-loss
after one epoch from SampleDataset defaults, a full permutation, a row-group shuffle and
SampleDataset defaults on the rows compacted with layout="shuffled".

Full size (``samplestore bench train-quality``): 1,000,000 drifting rows, 3 seeds. As a
quick test: a small table, one seed, and checks that the figures are present and sane.
"""

import math

from samplestore.bench.train_quality import ARMS, format_markdown, log_loss, run_train_quality_bench


def test_train_quality(benchmark, quick, tmp_path):
    # Quick: 12,000 rows in 2,048-row groups, so that a row-group shuffle still keeps batches in
    # fewer periods than a permutation (the bench's 8,192-row groups need ~30,000 rows for that).
    rows, seeds, group = (12_000, 1, 2_048) if quick else (1_000_000, 3, 8_192)
    res = benchmark.pedantic(lambda: run_train_quality_bench(str(tmp_path), rows=rows, seeds=seeds,
                                                             row_group_rows=group),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    assert set(res["arms"]) == set(ARMS) and res["train_rows"] + res["test_rows"] == rows
    for arm, r in res["arms"].items():
        assert 0.0 <= r["auc"] <= 1.0 and len(r["auc_runs"]) == seeds, (arm, r)
        assert 0.0 < r["logloss"] < 2.0 and math.isfinite(r["train_loss"]), (arm, r)
        assert 1.0 <= r["periods_per_batch"] <= res["periods"]
    # The row-group shuffle keeps most batches inside one period; a permutation mixes them all.
    assert res["arms"]["row-group shuffle"]["periods_per_batch"] < res["arms"]["permutation"]["periods_per_batch"]
    # The shuffled layout puts rows of every period in each stretch the loader reads.
    assert res["arms"]["shuffled layout"]["periods_per_batch"] > res["arms"]["row-group shuffle"]["periods_per_batch"]
    benchmark.extra_info.update({arm: r["auc"] for arm, r in res["arms"].items()})


def test_log_loss_matches_definition():
    y = [0.0, 1.0, 1.0]
    s = [0.3, -1.2, 2.0]
    p = [1 / (1 + math.exp(-v)) for v in s]
    expect = -sum(t * math.log(q) + (1 - t) * math.log(1 - q) for t, q in zip(y, p)) / 3
    assert abs(log_loss(y, s) - expect) < 1e-12

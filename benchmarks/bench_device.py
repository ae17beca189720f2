"""Device benchmark (see samplestore.bench.device): the GPU input path, skipped without CUDA."""

import torch

from samplestore.bench.device import format_markdown, run_device_bench


def test_device(benchmark, quick, tmp_path):
    rows = 20_000 if quick else 1_000_000
    res = benchmark.pedantic(lambda: run_device_bench(str(tmp_path), rows=rows, workers=(0, 2),
                                                      repeats=1 if quick else 3),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    if not torch.cuda.is_available():
        assert "no CUDA device" in res["skipped"] and format_markdown(res).startswith("Skipped")
        return
    # Every path delivers every row of the epoch, and the GPU paths move the batch's bytes.
    assert all(r["rows"] == rows for r in res["epochs"] + res["with_step"])
    assert {(r["workers"], r["mode"]) for r in res["epochs"]} == {(w, m) for w in (0, 2) for m in ("cpu", "sync", "prefetch")}
    assert res["copy_gb_s"]["pinned"] > 0 and res["batch_mb"] > 0

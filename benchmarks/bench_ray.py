"""Ray scaling benchmark (see samplestore.bench.ray_scaling): ingest and compaction rows/s with
Ray at 1 and 2 tasks in flight against the single-process path, on the same data."""

import pytest

pytest.importorskip("ray", reason="the Ray benchmark needs the [ray] extra")

from samplestore.bench.ray_scaling import format_markdown, run_ray_bench  # noqa: E402

# It starts its own Ray cluster unless the process has one: in the Ray tests' xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def test_ray_scaling(benchmark, quick, tmp_path):
    files, rows = (8, 2_500) if quick else (16, 50_000)
    res = benchmark.pedantic(lambda: run_ray_bench(str(tmp_path), files=files, rows_per_file=rows),
                             rounds=1, iterations=1)
    print("\n" + format_markdown(res))
    assert set(res["ingest_rows_per_s"]) == set(res["compaction_rows_per_s"]) == {
        "single process", "ray, 1 task", "ray, 2 tasks"}
    assert all(r > 0 for r in res["ingest_rows_per_s"].values())
    assert res["files_after_compaction"] < files

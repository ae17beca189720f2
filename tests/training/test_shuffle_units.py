"""The shuffle-unit bench part: its same-user measure, and one small run end to end."""

import numpy as np
import pytest

from samplestore.bench.shuffle_units import format_markdown, run_shuffle_units_bench, same_group_figures


def test_same_group_figures_counts_consecutive_pairs_and_a_random_orders_rate():
    groups = np.array([1, 1, 2, 2, 2, 3])
    got = same_group_figures(groups)
    # Pairs (1,1), (2,2), (2,2) of 5 consecutive pairs; at random: (2*1 + 3*2 + 1*0) / (6*5).
    assert got["same_group_rate"] == pytest.approx(3 / 5)
    assert got["random_same_group_rate"] == pytest.approx(8 / 30)
    assert same_group_figures(np.array([7])) == {"same_group_rate": 0.0, "random_same_group_rate": 0.0}


@pytest.mark.slow
def test_shuffle_units_bench_measures_each_row_group_size(tmp_path):
    res = run_shuffle_units_bench(str(tmp_path), rows=12_000, unit_rows=(4_096, 512), batch_size=512,
                                  buffer_rows=4_096, repeats=1, samples_per_user=20,
                                  fresh_processes=False)  # a fresh process imports torch: seconds
    by = {r["row_group_rows"]: r for r in res["results"]}
    assert set(by) == {4_096, 512}
    # Windows of 2,048 rows: one 4,096-row unit's half per window against four 512-row units.
    assert by[4_096]["loader"]["units_per_batch"] < 1.5  # 2 where a window straddles two units
    assert by[512]["loader"]["units_per_batch"] > 3.0
    assert by[512]["loader"]["batch_neighbour_rate"] < by[4_096]["loader"]["batch_neighbour_rate"]
    assert by[512]["bytes_per_sample"] > by[4_096]["bytes_per_sample"]  # dictionaries repeated per row group
    shuffled = res["shuffled_layout"]
    # A random layout: consecutive samples are neighbours in arrival order as often as at random.
    random_rate = shuffled["loader"]["random_order"]["batch_neighbour_rate"]
    assert shuffled["loader"]["batch_neighbour_rate"] == pytest.approx(random_rate, abs=0.02)
    assert by[4_096]["loader"]["batch_neighbour_rate"] > 3 * random_rate
    assert "offline shuffled layout" in format_markdown(res)

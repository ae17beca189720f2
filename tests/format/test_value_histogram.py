"""The value histograms written with dense features and labels (for the quality report's
PSI): every non-missing value counted once, in its fixed bin, for chunks of any size."""

from collections import Counter

import numpy as np
import pytest

import samplestore as ss
from samplestore.format.kinds.vector import HIST_MAX_BIN, HIST_SPAN, _value_stats, value_bins


def _by_hand(v: np.ndarray, dim: int) -> Counter:
    out = Counter()
    for i, x in enumerate(v.tolist()):
        if np.isnan(x):
            continue
        m, e = np.frexp(np.float32(1.0) + np.float32(abs(x)))  # 1 + |x| = m * 2**e, 0.5 <= m < 1
        k = 8 * (int(e) - 1) + int(np.floor(8 * (2 * float(m) - 1)))
        out[(i % dim) * HIST_SPAN + (k if x >= 0 else -1 - k) + HIST_MAX_BIN] += 1
    return out


@pytest.mark.parametrize("rows, dim", [(3, 1), (20, 1), (5000, 1), (7, 4), (3000, 4)])
def test_histogram_counts_each_value_once_in_its_bin(rows, dim):
    rng = np.random.default_rng(rows * dim)
    v = (rng.standard_normal(rows * dim) * rng.choice([0.01, 1, 100, 1e6], rows * dim)).astype(np.float32)
    v[rng.random(rows * dim) < 0.1] = np.nan
    v[:2] = [0.0, -3.0]
    keys, counts = _value_stats(ss.Dense("d", dim=dim) if dim > 1 else ss.Label("y"), v, np.isnan(v), dim)
    assert dict(zip(keys.tolist(), counts.tolist())) == _by_hand(v, dim)
    assert keys.dtype == counts.dtype == np.int64


def test_bins_of_known_values():
    assert value_bins(np.array([0.0, 1.0, 3.0, -1.0, np.inf], np.float32)).tolist() == [0, 8, 16, -9, 1024]

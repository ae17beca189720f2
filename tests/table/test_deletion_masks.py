"""The two deletion-mask helpers agree with a plain set membership on any input."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from samplestore.table.scan import deleted_among, live_mask

positions = st.lists(st.integers(0, 200), max_size=40)


@given(positions, st.lists(st.integers(-10, 220), max_size=60))
def test_deleted_among_is_membership_in_the_deletion_vector(deleted, asked):
    dv = np.unique(np.asarray(deleted, dtype=np.int64))
    assert deleted_among(dv, np.asarray(asked, dtype=np.int64)).tolist() == np.isin(asked, dv).tolist()


@given(positions, st.integers(0, 200), st.integers(0, 60))
def test_live_mask_keeps_exactly_the_rows_not_deleted(deleted, start, n):
    dv = np.unique(np.asarray(deleted, dtype=np.int64))
    mask = live_mask(dv, start, n)
    expected = ~np.isin(np.arange(start, start + n), dv)
    assert (mask is None and expected.all()) or mask.tolist() == expected.tolist()

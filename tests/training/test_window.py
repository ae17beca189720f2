"""Batch assembly from a window, below the dataset: the window's jagged features taken for
whichever layout a gather asks for."""

import numpy as np

import samplestore as ss
from samplestore.torch.kinds import Column
from samplestore.torch.window import FeatureLayout, Window, gather


def _window() -> Window:
    # Two pieces of two rows; feature a's ids are 1xx, b's 2xx (piece p, row r: lists of r + 1).
    cols = {}
    for name, base in (("a", 100), ("b", 200)):
        offsets = [np.array([0, 1, 3], np.int32), np.array([0, 1, 3], np.int32)]
        pieces = [(base + np.arange(3, dtype=np.int64) + 10 * p).view(np.uint8) for p in range(2)]
        cols[name] = Column(pieces, offsets, [np.empty(0, np.uint8)] * 2)
    return Window(4, np.array([0, 2, 4], np.int64), cols)


def test_a_window_gathers_the_sparse_features_of_the_layout_asked_for():
    win = _window()
    a, b = ss.Sparse("a"), ss.Sparse("b")
    rows = np.array([3, 0], np.int64)  # piece 1 row 1, piece 0 row 0
    ab = gather(win, rows, FeatureLayout.of([a, b]))
    assert ab["values"].tolist() == [111, 112, 100, 211, 212, 200]
    assert ab["lengths"].tolist() == [2, 1, 2, 1]
    # The same window, the features the other way round, then one of them alone.
    ba = gather(win, rows, FeatureLayout.of([b, a]))
    assert ba["values"].tolist() == [211, 212, 200, 111, 112, 100]
    only_b = gather(win, rows, FeatureLayout.of([b]))
    assert only_b["values"].tolist() == [211, 212, 200]
    assert only_b["lengths"].tolist() == [2, 1]

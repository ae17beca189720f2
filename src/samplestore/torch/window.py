"""Shuffle windows: decoded rows of several row-group pieces, and batch assembly from them.

A window holds, per feature, contiguous numpy buffers (vectors as ``[n, dim]`` float32,
jagged features as int64 offsets + values). Batches are gathered from a window by row
indices with Cython kernels writing straight into the output arrays, in KeyedJaggedTensor
layout for jagged features. No per-row Python anywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import _gather
from ..format import FileReader
from ..format.columns import ColumnData, _bf16_to_f32
from ..schema import Dense, Embedding, Feature, Label, Scalar, Sequence as SequenceFeature, Sparse

__all__ = ["FeatureLayout", "ReaderCache", "Window", "load_window", "gather", "concat_parts"]


@dataclass(frozen=True)
class FeatureLayout:
    """Which features go where in a batch (decided once per dataset)."""

    dense: tuple[Feature, ...]
    sparse: tuple[Feature, ...]
    labels: tuple[Feature, ...]
    embeddings: tuple[Feature, ...]
    extras: tuple[Feature, ...]

    @classmethod
    def of(cls, features: Sequence[Feature]) -> "FeatureLayout":
        return cls(
            tuple(f for f in features if isinstance(f, Dense)),
            tuple(f for f in features if isinstance(f, (Sparse, SequenceFeature))),
            tuple(f for f in features if isinstance(f, Label)),
            tuple(f for f in features if isinstance(f, Embedding)),
            tuple(f for f in features if isinstance(f, Scalar)),
        )

    @property
    def all(self) -> tuple[Feature, ...]:
        return self.dense + self.sparse + self.labels + self.embeddings + self.extras

    @property
    def weighted(self) -> bool:
        return any(isinstance(f, Sparse) and f.weighted for f in self.sparse)


class ReaderCache:
    """Open file readers of one worker, least recently used closed first."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._open: OrderedDict[str, FileReader] = OrderedDict()

    def get(self, path: str) -> FileReader:
        r = self._open.get(path)
        if r is None:
            r = FileReader(path)
            self._open[path] = r
            while len(self._open) > self.capacity:
                self._open.popitem(last=False)[1].close()
        else:
            self._open.move_to_end(path)
        return r

    def close(self) -> None:
        for r in self._open.values():
            r.close()
        self._open.clear()


@dataclass
class Column:
    """A feature's rows in a window: ``values`` ([n, dim] or flat) and, if jagged, offsets."""

    values: np.ndarray
    offsets: np.ndarray | None = None
    second: np.ndarray | None = None
    valid: np.ndarray | None = None


@dataclass
class Window:
    """Decoded rows of a shuffle window, feature by feature."""

    num_rows: int
    columns: dict[str, Column]


def _slice(feat: Feature, cd: ColumnData | None, n_rg: int, lo: int, hi: int) -> Column:
    n = hi - lo
    if cd is None:  # feature added after this file was written: its default
        if isinstance(feat, (Dense, Embedding)):
            return Column(np.zeros((n, feat.dim), np.float32))
        if isinstance(feat, Label):
            return Column(np.full((n, 1), np.nan, np.float32))
        if isinstance(feat, (Sparse, SequenceFeature)):
            has2 = (isinstance(feat, Sparse) and feat.weighted) or (isinstance(feat, SequenceFeature) and feat.timestamps)
            return Column(np.empty(0, np.int64), np.zeros(n + 1, np.int64),
                          np.empty(0, np.float32 if isinstance(feat, Sparse) else np.int64) if has2 else None)
        return Column(np.zeros(n, feat.arrow_type().to_pandas_dtype() if feat.dtype != "string" else object),
                      valid=np.zeros(n, bool))
    if isinstance(feat, (Dense, Embedding, Label)):
        v = cd.values
        if v.dtype == np.float16:
            v = v.astype(np.float32)
        elif v.dtype == np.uint16:
            v = _bf16_to_f32(v)
        dim = getattr(feat, "dim", 1)
        return Column(v.reshape(n_rg, dim)[lo:hi])
    if isinstance(feat, (Sparse, SequenceFeature)):
        off = cd.offsets
        a, b = int(off[lo]), int(off[hi])
        offsets = off[lo: hi + 1].astype(np.int64) - a
        return Column(cd.values[a:b], offsets, cd.second[a:b] if cd.second is not None else None)
    # scalar
    valid = None
    if cd.validity is not None:
        valid = np.unpackbits(cd.validity, bitorder="little", count=n_rg)[lo:hi].astype(bool)
    if feat.dtype == "string":
        off = cd.offsets
        data = cd.values.tobytes()
        vals = np.array([data[off[i]:off[i + 1]].decode() for i in range(lo, hi)], dtype=object)
        return Column(vals, valid=valid)
    if feat.dtype == "bool":
        return Column(np.unpackbits(cd.values, bitorder="little", count=n_rg)[lo:hi].astype(bool), valid=valid)
    v = cd.values[lo:hi]
    if feat.dtype == "timestamp":
        v = v.view("datetime64[us]").astype(np.int64)
    return Column(v, valid=valid)


def _concat(feat: Feature, parts: list[Column]) -> Column:
    if len(parts) == 1:
        return parts[0]
    if parts[0].offsets is None:
        valid = None
        if any(p.valid is not None for p in parts):
            valid = np.concatenate([p.valid if p.valid is not None else np.ones(len(p.values), bool) for p in parts])
        return Column(np.concatenate([p.values for p in parts]), valid=valid)
    sizes = [len(p.values) for p in parts]
    shift = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shift)])
    second = np.concatenate([p.second for p in parts]) if parts[0].second is not None else None
    return Column(np.concatenate([p.values for p in parts]), offsets, second)


def load_window(pieces: np.ndarray, paths: Sequence[str], unit_file: np.ndarray, unit_rg: np.ndarray,
                layout: FeatureLayout, readers: ReaderCache) -> Window:
    """Decode the rows of a window's pieces (unit, first row, end row) into contiguous buffers."""
    per_feature: dict[str, list[Column]] = {f.name: [] for f in layout.all}
    total = 0
    names = [f.name for f in layout.all]
    for unit, lo, hi in pieces.tolist():
        reader = readers.get(paths[unit_file[unit]])
        rg = int(unit_rg[unit])
        present = [n for n in names if reader.has_column(n)]
        raw = reader.read_raw(rg, present)
        n_rg = int(reader.row_group_rows[rg])
        for f in layout.all:
            per_feature[f.name].append(_slice(f, raw.get(f.name), n_rg, lo, hi))
        total += hi - lo
    return Window(total, {f.name: _concat(f, per_feature[f.name]) for f in layout.all})


def gather(win: Window, idx: np.ndarray, layout: FeatureLayout) -> dict[str, Any]:
    """Rows ``idx`` of a window as batch arrays (numpy), KeyedJaggedTensor layout for ids."""
    b = len(idx)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    dim_total = sum(f.dim for f in layout.dense)
    dense = np.empty((b, dim_total), dtype=np.float32)
    col = 0
    for f in layout.dense:
        dense[:, col: col + f.dim] = win.columns[f.name].values[idx]
        col += f.dim
    labels = np.empty((b, len(layout.labels)), dtype=np.float32)
    for j, f in enumerate(layout.labels):
        labels[:, j] = win.columns[f.name].values[idx, 0]
    totals = [_gather.jagged_total(win.columns[f.name].offsets, idx) for f in layout.sparse]
    values = np.empty(sum(totals), dtype=np.int64)
    lengths = np.empty(b * len(layout.sparse), dtype=np.int32)
    weights = np.ones(sum(totals), dtype=np.float32) if layout.weighted else None
    pos = 0
    for k, (f, t) in enumerate(zip(layout.sparse, totals)):
        c = win.columns[f.name]
        out_v = values[pos: pos + t]
        _gather.gather_jagged(c.offsets, c.values.view(np.uint8), 8, idx, lengths[k * b:(k + 1) * b], out_v.view(np.uint8))
        if weights is not None and isinstance(f, Sparse) and f.weighted:
            _gather.gather_jagged(c.offsets, c.second.view(np.uint8), 4, idx, np.empty(b, np.int32),
                                  weights[pos: pos + t].view(np.uint8))
        pos += t
    out: dict[str, Any] = {"dense": dense, "labels": labels, "values": values, "lengths": lengths, "weights": weights,
                           "embeddings": {f.name: win.columns[f.name].values[idx] for f in layout.embeddings},
                           "extras": {}}
    for f in layout.extras:
        c = win.columns[f.name]
        out["extras"][f.name] = c.values[idx]
        if c.valid is not None:
            out["extras"][f"{f.name}.valid"] = c.valid[idx]
    return out


def concat_parts(parts: list[dict[str, Any]], num_keys: int) -> dict[str, Any]:
    """Join partial batches (a batch that spans two windows) keeping the key-major layout."""
    if len(parts) == 1:
        return parts[0]
    sizes = [len(p["labels"]) for p in parts]
    out: dict[str, Any] = {
        "dense": np.concatenate([p["dense"] for p in parts]),
        "labels": np.concatenate([p["labels"] for p in parts]),
        "embeddings": {k: np.concatenate([p["embeddings"][k] for p in parts]) for k in parts[0]["embeddings"]},
        "extras": {k: np.concatenate([p["extras"][k] for p in parts]) for k in parts[0]["extras"]},
    }
    lengths, values, weights = [], [], []
    for key in range(num_keys):
        for p, b in zip(parts, sizes):
            ln = p["lengths"][key * b:(key + 1) * b]
            start = int(p["lengths"][: key * b].sum())
            lengths.append(ln)
            values.append(p["values"][start: start + int(ln.sum())])
            if p["weights"] is not None:
                weights.append(p["weights"][start: start + int(ln.sum())])
    out["lengths"] = np.concatenate(lengths) if lengths else np.empty(0, np.int32)
    out["values"] = np.concatenate(values) if values else np.empty(0, np.int64)
    out["weights"] = np.concatenate(weights) if weights else None
    return out

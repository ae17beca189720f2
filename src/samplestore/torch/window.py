"""Shuffle windows: decoded rows of several row-group pieces, and batch assembly from them.

A window holds, per feature, contiguous numpy buffers (vectors as ``[n, dim]`` float32,
jagged features as int64 offsets + values). Batches are gathered from a window by row
indices with Cython kernels writing straight into the output arrays, in KeyedJaggedTensor
layout for jagged features. No per-row Python anywhere.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from . import _gather
from ..format import FileReader, RowGroupBytes
from ..format.columns import ColumnData, default_column
from ..schema import Feature
from ..storage import Storage
from .impute import DenseImputation
from .kinds import SLOTS, Column, assembler_for

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
        """Group ``features`` by the batch slot their kind's assembler names (schema order kept)."""
        slots = [assembler_for(f).slot for f in features]
        return cls(*(tuple(f for f, s in zip(features, slots) if s == slot)
                     for slot in SLOTS))

    @property
    def all(self) -> tuple[Feature, ...]:
        return self.dense + self.sparse + self.labels + self.embeddings + self.extras

    @property
    def weighted(self) -> bool:
        return any(getattr(f, "weighted", False) for f in self.sparse)


class ReaderCache:
    """Open file readers of one worker, least recently used closed first; files are read
    through ``storage`` (the local file system by default).

    Attributes:
        in_flight: how many files :func:`load_window` opens and fetches from at once: 8 on a
            remote storage (each request is a round trip), 1 on a local one.
    """

    def __init__(self, capacity: int = 64, storage: Storage | None = None, in_flight: int | None = None) -> None:
        self.capacity = capacity
        self.storage = storage
        remote = storage is not None and storage.remote
        self.in_flight = max(1, in_flight if in_flight is not None else (8 if remote else 1))
        self._open: OrderedDict[str, FileReader] = OrderedDict()
        self._lock = threading.Lock()  # the prefetch opens files from several threads
        # The last row group of the previous window, fetched: a row group split between two
        # windows is fetched once (one row group of compressed bytes kept, no more).
        self.carried: tuple[tuple[str, int], RowGroupBytes] | None = None

    def get(self, path: str) -> FileReader:
        with self._lock:
            r = self._open.get(path)
            if r is not None:
                self._open.move_to_end(path)
                return r
        r = FileReader(path, self.storage)  # outside the lock: opens overlap (each is a request)
        with self._lock:
            had = self._open.get(path)
            if had is not None:  # another thread opened it meanwhile: keep one
                r.close()
                return had
            self._open[path] = r
            while len(self._open) > self.capacity:
                self._open.popitem(last=False)[1].close()
        return r

    def close(self) -> None:
        with self._lock:
            for r in self._open.values():
                r.close()
            self._open.clear()


@dataclass
class Window:
    """Decoded rows of a shuffle window: pieces of row groups, and where each piece starts."""

    num_rows: int
    starts: np.ndarray  # int64, first window row of each piece (+ total at the end)
    columns: dict[str, Column]
    maps: list[np.ndarray | None] | None = None  # live row -> row of the piece, where rows were deleted
    dropped: np.ndarray | None = None  # rows deleted after the window was planned (not delivered)
    # (sparse feature names, _gather.JaggedPieces over their pieces), made by load_window
    jagged: tuple[tuple[str, ...], Any] | None = None


def load_window(pieces: np.ndarray, paths: Sequence[str], unit_file: np.ndarray, unit_rg: np.ndarray,
                layout: FeatureLayout, readers: ReaderCache, live: dict[int, np.ndarray] | None = None) -> Window:
    """Decode the row groups of a window's pieces (unit, first row, end row); no copies of ids.

    ``live`` maps a unit with deleted rows to its live rows (sorted); piece rows then count
    live rows only.
    """
    assemblers = [(f, assembler_for(f)) for f in layout.all]
    cols: dict[str, Column] = {f.name: a.new_column() for f, a in assemblers}
    names = [f.name for f in layout.all]
    fetched = _fetch_window(pieces, paths, unit_file, unit_rg, names, readers)
    defaults: dict[tuple[str, int], ColumnData] = {}
    starts = [0]
    maps: list[np.ndarray | None] = []
    for unit, lo, hi in pieces.tolist():
        n_live = hi - lo
        sel = live.get(unit) if live else None
        if sel is not None:
            phys = sel[lo:hi]
            lo, hi = int(phys[0]), int(phys[-1]) + 1
            maps.append(phys - lo)
        else:
            maps.append(None)
        reader = readers.get(paths[unit_file[unit]])
        rg = int(unit_rg[unit])
        raw = reader.read_raw(rg, [n for n in names if reader.has_column(n)], fetched.get(unit))
        n_rg = int(reader.row_group_rows[rg])
        for f, a in assemblers:
            cd = raw.get(f.name)
            if cd is None:  # feature added after this file was written: its default
                cd = defaults.get((f.name, n_rg))
                if cd is None:
                    cd = defaults[(f.name, n_rg)] = default_column(f, n_rg)
            a.add_piece(f, cols[f.name], cd, n_rg, lo, hi, maps[-1])
        starts.append(starts[-1] + n_live)
        raw = cd = None  # type: ignore[assignment]  # the whole decoded row group: freed before the next
    for f, a in assemblers:
        a.finish(f, cols[f.name])
    win = Window(starts[-1], np.asarray(starts, dtype=np.int64), cols,
                 maps if any(m is not None for m in maps) else None)
    _jagged_pieces(win, layout)  # here, on the loading thread, not on the one cutting batches
    return win


def _jagged_pieces(win: Window, layout: FeatureLayout) -> Any:
    """The layout's sparse features of the window as one :class:`_gather.JaggedPieces` (ids,
    8 bytes each), kept on the window for the layout it was made for."""
    names = tuple(f.name for f in layout.sparse)
    if win.jagged is None or win.jagged[0] != names:
        cols = [win.columns[name] for name in names]
        win.jagged = (names, _gather.JaggedPieces([c.offsets for c in cols], [c.pieces for c in cols], 8))
    return win.jagged[1]


def _fetch_window(pieces: np.ndarray, paths: Sequence[str], unit_file: np.ndarray, unit_rg: np.ndarray,
                  names: Sequence[str], readers: ReaderCache) -> dict[int, RowGroupBytes]:
    """On a remote storage, open the files of a window, then fetch the stored chunks of its
    row groups, ``readers.in_flight`` requests in flight; nothing on a local one (a pread
    costs no round trip). Memory stays bounded: only this window's row groups, compressed,
    of the shuffle buffer's size."""
    if readers.in_flight <= 1:
        return {}
    units = list(dict.fromkeys(int(u) for u in pieces[:, 0]))
    files = list(dict.fromkeys(int(unit_file[u]) for u in units))
    # Every file of the window stays open until it is decoded: none is closed under a fetch.
    readers.capacity = max(readers.capacity, len(files))

    key = lambda u: (paths[unit_file[u]], int(unit_rg[u]))  # noqa: E731
    carried = readers.carried

    def fetch(unit: int) -> RowGroupBytes:
        if carried is not None and carried[0] == key(unit):
            return carried[1]
        reader = readers.get(paths[unit_file[unit]])
        return reader.fetch(int(unit_rg[unit]), [n for n in names if reader.has_column(n)])

    with ThreadPoolExecutor(max_workers=min(readers.in_flight, len(units))) as pool:
        list(pool.map(lambda f: readers.get(paths[f]), files))  # open each file once (HEAD + tail)
        fetched = dict(zip(units, pool.map(fetch, units)))
    readers.carried = (key(units[-1]), fetched[units[-1]])
    return fetched


class _Arena:
    """Carves a batch's arrays out of one buffer.

    In a DataLoader worker the buffer is a reusable slot of the dataset's
    :class:`~samplestore.torch.ring.SlotRing` where one is free, else one shared-memory torch
    storage, so the batch crosses to the main process as offsets into a mapping both already
    have, or as a single shared segment (not one per tensor).
    """

    def __init__(self, nbytes: int, shared: bool, claim: Callable[[int], Any] | None = None) -> None:
        import torch

        self.shared = shared
        self.slot = claim(max(nbytes, 1)) if shared and claim is not None else None
        self.tensor = None
        if self.slot is not None:
            self.buf = self.slot.buf
        elif shared:
            # Allocated in shared memory from the start: no private copy to move there later.
            storage = torch.UntypedStorage._new_shared(max(nbytes, 1))
            self.tensor = torch.empty(0, dtype=torch.uint8).set_(storage)
            self.buf = self.tensor.numpy()
        self.pos = 0

    def take(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dt = np.dtype(dtype)
        if not self.shared:  # in-process: separate arrays, freed one by one
            return np.empty(shape, dtype=dt)
        self.pos = -(-self.pos // 8) * 8  # 8-byte alignment for every array
        n = int(np.prod(shape)) * dt.itemsize
        out = self.buf[self.pos: self.pos + n].view(dt).reshape(shape)
        self.pos += n
        return out


def _nbytes(shape: tuple[int, ...], dtype: Any) -> int:
    return -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 8) * 8


def gather(win: Window, idx: np.ndarray, layout: FeatureLayout, shared: bool = False,
           claim: Callable[[int], Any] | None = None, dedup_keys: int = 0,
           impute: DenseImputation | None = None) -> dict[str, Any]:
    """Rows ``idx`` of a window as batch arrays (numpy), KeyedJaggedTensor layout for ids.

    With ``shared``, every numeric array is a view of one shared-memory buffer: a ring slot
    from ``claim(nbytes)`` where it returns one, else a fresh shared torch storage.
    ``dedup_keys``: the last that many jagged keys will be deduplicated; an int32 ``inverse``
    array as long as their ids is reserved beside them (in the same buffer).
    ``impute``: fill the dense NaNs it names and write its indicator columns, which widen
    ``dense`` by ``impute.extra_columns``.
    """
    b = len(idx)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    piece = (np.searchsorted(win.starts, idx, side="right") - 1).astype(np.int32)
    local = idx - win.starts[piece]
    if win.maps is not None:  # pieces with deleted rows: live row -> row of the piece
        for p, m in enumerate(win.maps):
            if m is not None:
                sel = piece == p
                local[sel] = m[local[sel]]
    dim_total = sum(f.dim for f in layout.dense)
    width = dim_total + (impute.extra_columns if impute is not None else 0)
    nl, nk = len(layout.labels), len(layout.sparse)
    # One pass over every sparse feature's offsets: each chosen list's length and where its
    # ids start, key-major (the lengths are the batch's KJT lengths, copied into the arena below).
    jagged = _jagged_pieces(win, layout)
    list_lengths = np.empty(b * nk, np.int32)
    list_starts = np.empty(b * nk, np.int32)
    totals_arr = np.empty(nk, np.int64)
    total = jagged.lengths(piece, local, list_lengths, list_starts, totals_arr)
    totals = totals_arr.tolist()
    extra_src = {f.name: win.columns[f.name] for f in layout.extras if win.columns[f.name].flat.dtype != object}
    n_inverse = sum(totals[nk - dedup_keys:]) if dedup_keys else 0
    shapes = [((b, width), np.float32), ((b, nl), np.float32), ((total,), np.int64), ((b * nk,), np.int32),
              ((n_inverse,), np.int32)]
    shapes += [((total,), np.float32)] if layout.weighted else []
    shapes += [((b, f.dim), np.float32) for f in layout.embeddings]
    shapes += [((b,), c.flat.dtype) for c in extra_src.values()]
    arena = _Arena(sum(_nbytes(s, d) for s, d in shapes) if shared else 0, shared, claim)
    dense = arena.take((b, width), np.float32)
    col = 0
    for f in layout.dense:
        _gather.gather_rows_pieces(win.columns[f.name].pieces, f.dim * 4, piece, local, dense.view(np.uint8).reshape(-1),
                                   width * 4, col * 4)
        col += f.dim
    if impute is not None:
        impute.apply(dense)
    labels = arena.take((b, nl), np.float32)
    for j, f in enumerate(layout.labels):
        _gather.gather_rows_pieces(win.columns[f.name].pieces, 4, piece, local, labels.view(np.uint8).reshape(-1), nl * 4, j * 4)
    values = arena.take((total,), np.int64)
    lengths = arena.take((b * nk,), np.int32)
    inverse = arena.take((n_inverse,), np.int32)
    weights = None
    if layout.weighted:
        weights = arena.take((total,), np.float32)
        weights[:] = 1.0
    lengths[:] = list_lengths
    jagged.copy(piece, list_lengths, list_starts, values.view(np.uint8))
    if weights is not None:
        pos = 0
        for f, t in zip(layout.sparse, totals):
            if getattr(f, "weighted", False):
                c = win.columns[f.name]
                _gather.gather_jagged_pieces(c.offsets, c.second, 4, piece, local, np.empty(b, np.int32),
                                             weights[pos: pos + t].view(np.uint8))
            pos += t
    embeddings = {}
    for f in layout.embeddings:
        out = arena.take((b, f.dim), np.float32)
        _gather.gather_rows_pieces(win.columns[f.name].pieces, f.dim * 4, piece, local, out.view(np.uint8).reshape(-1),
                                   f.dim * 4, 0)
        embeddings[f.name] = out
    extras: dict[str, Any] = {}
    for f in layout.extras:
        c = win.columns[f.name]
        if f.name in extra_src:
            out = arena.take((b,), c.flat.dtype)
            np.take(c.flat, idx, out=out)
            extras[f.name] = out
        else:
            extras[f.name] = c.flat[idx]
        if c.valid is not None:
            extras[f"{f.name}.valid"] = c.valid[idx]
    out = {"dense": dense, "labels": labels, "values": values, "lengths": lengths, "weights": weights,
           "embeddings": embeddings, "extras": extras, "inverse": inverse}
    if shared:
        out["arena"] = arena
    return out


def concat_parts(parts: list[dict[str, Any]], num_keys: int) -> dict[str, Any]:
    """Join partial batches (a batch that spans two windows) keeping the key-major layout.

    The joined arrays are copies: ring slots the parts were gathered into go back unsent.
    The joined batch has no ``inverse`` buffer (deduplication then allocates its own).
    """
    if len(parts) == 1:
        return parts[0]
    # Joined parts are fresh arrays, no longer views of one arena.
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
    for p in parts:
        arena = p.get("arena")
        if arena is not None and arena.slot is not None:
            arena.slot.release()
    return out

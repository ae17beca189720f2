"""How the batch assembler takes each feature kind: one :class:`Assembler` per kind name.

An assembler names the part of a batch its features go to (:attr:`Assembler.slot`:
``dense`` columns of ``Batch.dense``, ``labels``, ``sparse`` KeyedJaggedTensor keys,
``embeddings``, or ``extras``) and turns a decoded chunk (``format.ColumnData``) into the
window column that :func:`~samplestore.torch.window.gather` reads for that slot. Assemblers
are registered by ``Feature.kind`` (:func:`register_assembler`), as storage codecs are in
``samplestore.format.kinds``; the window code holds no per-kind branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..format.columns import ColumnData, bf16_to_f32, default_column
from ..registry import Registry
from ..schema import Feature

__all__ = [
    "SLOTS",
    "Column",
    "Assembler",
    "VectorAssembler",
    "JaggedAssembler",
    "ScalarAssembler",
    "register_assembler",
    "unregister_assembler",
    "assembler_for",
]

#: The parts of a batch, in the order FeatureLayout lists them.
SLOTS = ("dense", "sparse", "labels", "embeddings", "extras")

_EMPTY_BYTES = np.empty(0, np.uint8)


@dataclass
class Column:
    """One feature's rows in a window, kept as the decoded pieces (no copy into one buffer).

    Vectors: ``pieces`` holds a byte view of each piece's ``[rows, dim]`` float32 rows.
    Jagged features: ``offsets`` (int32, rows + 1 per piece) into ``pieces`` (byte views of
    the piece's values) and ``second`` (weights / timestamps). Scalars: ``flat`` values of
    the whole window (small), ``valid`` where the column has nulls; ``parts`` holds the
    pieces' values and validity until the window is complete.
    """

    pieces: list[np.ndarray]
    offsets: list[np.ndarray] | None = None
    second: list[np.ndarray] | None = None
    flat: np.ndarray | None = None
    valid: np.ndarray | None = None
    parts: list[tuple[np.ndarray, np.ndarray | None]] | None = None


class Assembler:
    """How a window holds one feature kind's rows, and which part of a batch they go to."""

    slot: ClassVar[str]

    def new_column(self) -> Column:
        """An empty window column."""
        return Column([])

    def add_piece(self, feat: Feature, col: Column, cd: ColumnData, n_rg: int, lo: int, hi: int,
                  rowmap: np.ndarray | None) -> None:
        """Add rows ``[lo, hi)`` of a decoded row group of ``n_rg`` rows to ``col``.

        ``rowmap``: where the piece has deleted rows, the live rows relative to ``lo``
        (assemblers that copy rows apply it; gather applies it to the others).
        """
        raise NotImplementedError

    def finish(self, feat: Feature, col: Column) -> None:
        """Called once every piece was added."""


class VectorAssembler(Assembler):
    """Dense, label and embedding rows as byte views of ``[rows, dim]`` float32."""

    def __init__(self, slot: str) -> None:
        self.slot = slot  # type: ignore[misc]

    def add_piece(self, feat: Feature, col: Column, cd: ColumnData, n_rg: int, lo: int, hi: int,
                  rowmap: np.ndarray | None) -> None:
        dim = getattr(feat, "dim", 1)
        v = cd.values
        if v.dtype == np.float16:
            v = v.reshape(n_rg, dim)[lo:hi].astype(np.float32)
        elif v.dtype == np.uint16:
            v = bf16_to_f32(v.reshape(n_rg, dim)[lo:hi])
        else:
            v = v.reshape(n_rg, dim)[lo:hi]
            if hi - lo < n_rg:  # part of a row group: a copy, so the whole group is not kept
                v = v.copy()
        col.pieces.append(np.ascontiguousarray(v).reshape(-1).view(np.uint8))


class JaggedAssembler(Assembler):
    """Sparse and sequence rows: int32 offsets into the piece's ids (and weights/timestamps)."""

    slot = "sparse"

    def new_column(self) -> Column:
        return Column([], [], [])

    def add_piece(self, feat: Feature, col: Column, cd: ColumnData, n_rg: int, lo: int, hi: int,
                  rowmap: np.ndarray | None) -> None:
        offsets, values, second = cd.offsets[lo: hi + 1], cd.values, cd.second  # type: ignore[index]
        if hi - lo < n_rg:
            # Part of a row group (a window's first or last piece, or a shard's share): its
            # values copied, so the window does not keep the whole group's ids alive.
            first, end = int(offsets[0]), int(offsets[-1])
            values = values[first:end].copy()
            second = second[first:end].copy() if second is not None else None
            offsets = offsets - np.int32(first)
        col.offsets.append(offsets)  # type: ignore[union-attr]
        col.pieces.append(values.view(np.uint8))
        col.second.append(second.view(np.uint8) if second is not None else _EMPTY_BYTES)  # type: ignore[union-attr]


class ScalarAssembler(Assembler):
    """Scalar values of the whole window in one array (numbers, bools, or str objects)."""

    slot = "extras"

    def new_column(self) -> Column:
        return Column([], parts=[])

    @staticmethod
    def _piece(feat: Feature, cd: ColumnData, n_rg: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        valid = None
        if cd.validity is not None:
            valid = np.unpackbits(cd.validity, bitorder="little", count=n_rg)[lo:hi].astype(bool)
        dtype = feat.dtype  # type: ignore[attr-defined]
        if dtype == "string":
            off, data = cd.offsets, cd.values.tobytes()
            return np.array([data[off[i]:off[i + 1]].decode() for i in range(lo, hi)], dtype=object), valid
        if dtype == "bool":
            return np.unpackbits(cd.values, bitorder="little", count=n_rg)[lo:hi].astype(bool), valid
        return cd.values[lo:hi], valid

    def add_piece(self, feat: Feature, col: Column, cd: ColumnData, n_rg: int, lo: int, hi: int,
                  rowmap: np.ndarray | None) -> None:
        v, m = self._piece(feat, cd, n_rg, lo, hi)
        if rowmap is not None:
            v, m = v[rowmap], (m[rowmap] if m is not None else None)
        col.parts.append((v, m))  # type: ignore[union-attr]

    def finish(self, feat: Feature, col: Column) -> None:
        parts = col.parts or []
        col.flat = np.concatenate([v for v, _ in parts]) if parts else self._piece(feat, default_column(feat, 0), 0, 0, 0)[0]
        if any(m is not None for _, m in parts):
            col.valid = np.concatenate([m if m is not None else np.ones(len(v), bool) for v, m in parts])
        col.parts = None


_REGISTRY: Registry[str, Assembler] = Registry("batch assembler of feature kind")


def register_assembler(kind: str, assembler: Assembler, *, replace: bool = False) -> Assembler:
    """Batch features of ``kind`` (``Feature.kind``) with ``assembler``; returns it.

    Raises:
        ValueError: the assembler's slot is not one of :data:`SLOTS`, or ``kind`` has one
            already and ``replace`` is false.
    """
    if assembler.slot not in SLOTS:
        raise ValueError(f"an assembler's slot is one of {SLOTS}, found {assembler.slot!r}")
    return _REGISTRY.register(kind, assembler, replace=replace)


def unregister_assembler(kind: str) -> Assembler:
    """Forget the assembler of ``kind``; returns it.

    Raises:
        KeyError: ``kind`` has none.
    """
    return _REGISTRY.unregister(kind)


def assembler_for(feat: Feature) -> Assembler:
    """The assembler of ``feat``'s kind.

    Raises:
        TypeError: the kind has no assembler registered.
    """
    a = _REGISTRY.get(feat.kind)
    if a is None:
        raise TypeError(f"feature {feat.name!r} is of kind {feat.kind!r}, which has no batch assembler; "
                        f"kinds with one: {_REGISTRY.keys()} (samplestore.torch.kinds.register_assembler)")
    return a


register_assembler("dense", VectorAssembler("dense"))
register_assembler("label", VectorAssembler("labels"))
register_assembler("embedding", VectorAssembler("embeddings"))
_JAGGED = JaggedAssembler()
register_assembler("sparse", _JAGGED)
register_assembler("sequence", _JAGGED)
register_assembler("scalar", ScalarAssembler())

"""What a trainer receives: a :class:`Batch` of tensors, sparse features in KeyedJaggedTensor layout."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import MissingDependency
from . import _gather

__all__ = ["Batch", "SparseFeatures", "DedupIds"]


@dataclass
class SparseFeatures:
    """Jagged id features of a batch in KeyedJaggedTensor layout.

    Attributes:
        keys: feature names, in schema order (sparse, then sequence features).
        values: int64 ids, key-major: all rows of ``keys[0]``, then of ``keys[1]``, ...
        lengths: int32 ``[len(keys) * B]``, key-major.
        weights: float32 parallel to ``values`` when any key is weighted (1.0 for the
            unweighted keys), else None.
    """

    keys: list[str]
    values: torch.Tensor
    lengths: torch.Tensor
    weights: torch.Tensor | None = None

    @property
    def offsets(self) -> torch.Tensor:
        """int64 ``[len(keys) * B + 1]`` offsets into ``values``."""
        out = torch.zeros(self.lengths.numel() + 1, dtype=torch.int64)
        torch.cumsum(self.lengths, 0, out=out[1:])
        return out

    def length_per_key(self) -> list[int]:
        """Number of values of each key."""
        b = self.lengths.numel() // max(1, len(self.keys))
        return [int(x) for x in self.lengths.view(len(self.keys), b).sum(1)] if self.keys else []

    def __getitem__(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, lengths) of one key."""
        i = self.keys.index(key)
        b = self.lengths.numel() // len(self.keys)
        per = self.length_per_key()
        start = sum(per[:i])
        return self.values[start: start + per[i]], self.lengths[i * b:(i + 1) * b]

    def map_tensors(self, fn: Any) -> "SparseFeatures":
        """A copy with ``fn`` applied to every tensor (values, lengths, weights)."""
        return SparseFeatures(self.keys, fn(self.values), fn(self.lengths),
                              fn(self.weights) if self.weights is not None else None)


@dataclass
class DedupIds:
    """One jagged feature of a batch, deduplicated: each distinct id once, and per position
    an index into them (RecD's inverse KeyedJaggedTensor, at the level of ids).

    A model looks each embedding row up once per batch and gathers per position::

        d = batch.dedup["history"]
        rows = F.embedding(d.unique, weight, sparse=True)          # [U, dim]: one lookup per distinct id
        pooled = d.pool(rows)                                       # [B, dim]: sum over each sample's ids
        # or per position: rows.index_select(0, d.inverse)          # [N, dim]

    Attributes:
        unique: int64 ``[U]``: the distinct ids of the feature in the batch, in order of
            first appearance.
        inverse: int32 ``[N]``: for each of the feature's ids, row by row, its index in
            ``unique`` (``unique[inverse]`` is the feature's ids).
        lengths: int32 ``[B]``: ids per sample.
        weights: float32 ``[N]`` parallel to the ids when the batch has weights, else None.
        position: where the feature sits among the batch's jagged keys in schema order
            (what :meth:`Batch.full_sparse` restores).
    """

    unique: torch.Tensor
    inverse: torch.Tensor
    lengths: torch.Tensor
    weights: torch.Tensor | None = None
    position: int = 0

    def values(self) -> torch.Tensor:
        """The feature's ids, row by row (``unique[inverse]``), as a new int64 tensor."""
        return self.unique.index_select(0, self.inverse)

    @property
    def offsets(self) -> torch.Tensor:
        """int64 ``[B + 1]`` offsets of each sample's ids in :meth:`values` (and ``inverse``)."""
        out = torch.zeros(self.lengths.numel() + 1, dtype=torch.int64, device=self.lengths.device)
        torch.cumsum(self.lengths, 0, out=out[1:])
        return out

    def pool(self, rows: torch.Tensor, mode: str = "sum") -> torch.Tensor:
        """``[B, dim]``: per sample, the sum (or ``mode="mean"``) of ``rows[inverse]`` over its
        ids, where ``rows`` ``[U, dim]`` holds one row per entry of ``unique`` (weighted by
        ``weights`` when the batch has them; the weighted mean is the weighted sum divided by
        the sample's number of ids, as in ``F.embedding_bag``).

        The same values as ``F.embedding_bag(inverse, rows, offsets[:-1], mode=mode)``, with a
        cheaper backward: the gradient of ``rows`` is pooled per distinct id, over the
        positions grouped by id (a counting sort of ``inverse`` on CPU), instead of by
        embedding_bag's dense backward, which on CPU sorts and scatters every position and
        costs more than the lookups deduplication saved. ``weights`` that require grad get
        their gradient too. ``inverse`` may be int32 or int64 (what ``torch.unique(...,
        return_inverse=True)`` gives); int64 is narrowed to int32 for the backward.
        """
        if mode not in ("sum", "mean"):
            raise ValueError(f"pool mode {mode!r}, expected 'sum' or 'mean'")
        inverse = _int32_inverse(self.inverse, rows.shape[0])
        w = self.weights
        if mode == "mean":
            n = self.lengths.to(rows.dtype).clamp(min=1)
            w = (1.0 / n).repeat_interleave(self.lengths.long()) * (1.0 if w is None else w)
        return _PoolByInverse.apply(rows, inverse, self.lengths, self.offsets, w)

    def map_tensors(self, fn: Any) -> "DedupIds":
        """A copy with ``fn`` applied to every tensor."""
        return DedupIds(fn(self.unique), fn(self.inverse), fn(self.lengths),
                        fn(self.weights) if self.weights is not None else None, self.position)


def _int32_inverse(inverse: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``inverse`` as int32 (what the CPU backward's kernel reads); int64 is accepted when
    its values fit, any other dtype is a TypeError."""
    if inverse.dtype == torch.int32:
        return inverse
    if inverse.dtype != torch.int64:
        raise TypeError(f"DedupIds.inverse has dtype {inverse.dtype}, expected torch.int32 or torch.int64")
    if inverse.numel() and (int(inverse.min()) < 0 or int(inverse.max()) >= min(num_rows, 2**31)):
        raise IndexError(f"DedupIds.inverse holds values in [{int(inverse.min())}, {int(inverse.max())}], "
                         f"expected indices into the {num_rows} rows passed to pool")
    return inverse.to(torch.int32)


class _PoolByInverse(torch.autograd.Function):
    """Sum of ``rows[inverse]`` per sample; backward pools the output gradient per row."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, inverse: torch.Tensor, lengths: torch.Tensor,
                offsets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        # rows are kept only for the weights' gradient (dot products of rows and output gradients).
        ctx.save_for_backward(inverse, lengths, weights, rows if ctx.needs_input_grad[4] else None)
        ctx.num_rows = rows.shape[0]
        return torch.nn.functional.embedding_bag(inverse, rows, offsets[:-1], mode="sum",
                                                 per_sample_weights=weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        inverse, lengths, weights, rows = ctx.saved_tensors
        grad = grad.contiguous()
        grad_rows = grad_weights = None
        if ctx.needs_input_grad[0]:
            order, sample, per_row = _transpose(inverse, lengths, ctx.num_rows)
            # Each row's gradient: the sum of the output gradients of the samples that used it.
            grad_rows = torch.nn.functional.embedding_bag(
                sample, grad, per_row[:-1], mode="sum",
                per_sample_weights=None if weights is None else weights[order])
        if ctx.needs_input_grad[4]:
            # Position i of sample s, row r = inverse[i]: d out[s] / d w_i = rows[r].
            sample = _sample_of_positions(lengths)
            grad_weights = (grad.index_select(0, sample) * rows.index_select(0, inverse)).sum(1)
        return grad_rows, None, None, None, grad_weights


def _transpose(inverse: torch.Tensor, lengths: torch.Tensor, num_rows: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions grouped by the row they index: (positions, their samples, int64 ``[U + 1]``
    offsets per row). On CPU a counting sort (``_gather.transpose_inverse``); elsewhere a
    stable sort of ``inverse``."""
    if inverse.device.type == "cpu":
        n = inverse.numel()
        per_row = torch.empty(num_rows + 1, dtype=torch.int64)
        order, sample = torch.empty(n, dtype=torch.int64), torch.empty(n, dtype=torch.int64)
        _gather.transpose_inverse(inverse.contiguous().numpy(), lengths.to(torch.int32).contiguous().numpy(),
                                  per_row.numpy(), order.numpy(), sample.numpy())
        return order, sample, per_row
    return _transpose_by_sort(inverse, lengths, num_rows)


def _sample_of_positions(lengths: torch.Tensor) -> torch.Tensor:
    """The sample each position of a jagged feature belongs to (int64, on ``lengths``' device)."""
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths.long())


def _transpose_by_sort(inverse: torch.Tensor, lengths: torch.Tensor, num_rows: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_transpose` by torch operations on any device."""
    order = torch.sort(inverse, stable=True).indices
    sample = _sample_of_positions(lengths)
    per_row = torch.zeros(num_rows + 1, dtype=torch.int64, device=inverse.device)
    torch.cumsum(torch.bincount(inverse, minlength=num_rows), 0, out=per_row[1:])
    return order, sample[order], per_row


@dataclass
class Batch:
    """One training batch.

    Attributes:
        dense: float32 ``[B, D]``: every dense feature, concatenated in schema order, then
            the 0/1 indicator columns of imputed features (``SampleDataset(impute=...,
            missing_indicators=True)``, see :mod:`samplestore.torch.impute`).
        dense_names: the dense feature names with their column ranges in ``dense``
            (indicators as ``"<name>_missing"``).
        sparse: sparse and sequence features (:class:`SparseFeatures`).
        labels: float32 ``[B, T]`` (one column per label feature, schema order).
        embeddings: float32 ``[B, dim]`` per embedding feature.
        extras: requested scalar columns by name (tensors; strings as lists).
        epoch / index: which epoch and which batch of this rank's epoch this is (for resume).
        follow_round: in follow mode, the round the batch belongs to: (the snapshot the
            round's appends come after, the index of the round's first batch); None otherwise.
        dedup: the features asked for deduplicated (``SampleDataset(dedup=[...])``) by name,
            as :class:`DedupIds`; they are then not in ``sparse`` (see :meth:`full_sparse`).
    """

    dense: torch.Tensor
    sparse: SparseFeatures
    labels: torch.Tensor
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    dense_names: dict[str, tuple[int, int]] = field(default_factory=dict)
    epoch: int = 0
    index: int = 0
    follow_round: tuple[int, int] | None = None
    dedup: dict[str, DedupIds] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A batch made in a DataLoader worker inside a shared ring slot crosses to the
        # trainer as offsets into that slot (samplestore.torch.ring), not as tensors.
        slot = self.__dict__.get("_shared_slot")
        if slot is not None:
            return slot.reduce(self)
        return super().__reduce_ex__(protocol)

    @property
    def batch_size(self) -> int:
        return len(self)

    def dense_feature(self, name: str) -> torch.Tensor:
        """The columns of one dense feature (a view of ``dense``)."""
        a, b = self.dense_names[name]
        return self.dense[:, a:b]

    def map_tensors(self, fn: Any) -> "Batch":
        """A copy with ``fn`` applied to every tensor of the batch (what :meth:`to` and
        :meth:`pin_memory` do); scalar extras that are lists stay as they are."""
        return replace(
            self,
            dense=fn(self.dense),
            sparse=self.sparse.map_tensors(fn),
            labels=fn(self.labels),
            embeddings={k: fn(v) for k, v in self.embeddings.items()},
            extras={k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in self.extras.items()},
            dedup={k: d.map_tensors(fn) for k, d in self.dedup.items()},
        )

    def pin_memory(self) -> "Batch":
        """A copy in page-locked memory (DataLoader's ``pin_memory=True`` calls this)."""
        return self.map_tensors(lambda t: t.pin_memory())

    def to(self, device: Any, non_blocking: bool = False) -> "Batch":
        """A copy on ``device`` (asynchronous from pinned memory with ``non_blocking=True``)."""
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def full_sparse(self) -> SparseFeatures:
        """Every jagged feature in schema order, deduplicated ones expanded back
        (``unique[inverse]``): exactly what ``sparse`` is without ``dedup``."""
        if not self.dedup:
            return self.sparse
        sp, b = self.sparse, len(self)
        at = sorted(self.dedup.items(), key=lambda kv: kv[1].position)
        keys, values, lengths, weights = [], [], [], []
        rest = iter(range(len(sp.keys)))
        per = sp.length_per_key()
        starts = [sum(per[:i]) for i in range(len(per))]
        for pos in range(len(sp.keys) + len(at)):
            if at and at[0][1].position == pos:
                name, d = at.pop(0)
                keys.append(name)
                values.append(d.values())
                lengths.append(d.lengths)
                weights.append(d.weights)
            else:
                i = next(rest)
                keys.append(sp.keys[i])
                values.append(sp.values[starts[i]: starts[i] + per[i]])
                lengths.append(sp.lengths[i * b:(i + 1) * b])
                weights.append(sp.weights[starts[i]: starts[i] + per[i]] if sp.weights is not None else None)
        has_weights = any(w is not None for w in weights)
        return SparseFeatures(keys, torch.cat(values), torch.cat(lengths),
                              torch.cat([w for w in weights if w is not None]) if has_weights else None)

    def to_kjt(self) -> Any:
        """Every jagged feature (deduplicated ones expanded, :meth:`full_sparse`) as a
        ``torchrec.KeyedJaggedTensor`` (needs torchrec)."""
        try:
            from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
        except ImportError as exc:
            raise MissingDependency(
                "Batch.to_kjt() needs torchrec: pip install 'samplestore[torchrec]' "
                "(batch.sparse.keys/values/lengths/weights hold the same data without it)"
            ) from exc
        sp = self.full_sparse()
        return KeyedJaggedTensor(keys=sp.keys, values=sp.values, lengths=sp.lengths, weights=sp.weights)

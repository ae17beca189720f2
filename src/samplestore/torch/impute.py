"""Imputation at read: missing (NaN) dense values filled per dimension as batches are made.

``SampleDataset(impute={"dense": "mean"}, missing_indicators=True)`` plans a
:class:`DenseImputation` once, when the dataset is made: the fill value of every dimension of
each named dense feature, from the pinned snapshot's catalog statistics for ``"mean"``
(:func:`samplestore.table.stats.vector_means`: no data is read), and where the 0/1
indicator columns go. Every batch then goes through :meth:`DenseImputation.apply`: one pass
of a Cython kernel (``impute_columns`` in ``csrc/gather.pyx``) over the batch's dense block
per imputed feature, no per-row Python. The fill values are fixed for the dataset's life:
appends after the pinned snapshot (and follow-mode rounds) are filled with the same values.

Layout in a :class:`~samplestore.torch.batch.Batch`: the indicators are extra float32 columns
of ``batch.dense``, after every dense feature's own columns (which keep their positions), one
per dimension of each imputed feature in schema order, named ``"<name>_missing"`` in
``batch.dense_names`` (so ``batch.dense_feature("dense_missing")`` is ``[B, dim]``): 1.0
where the value was NaN and was filled, 0.0 elsewhere. Float32, because a trainer feeds them
to the same dense layers as the values. Jagged features, and so ``Batch.to_kjt()``, are not
affected.

What counts as missing: NaN. A dense feature has no nulls (the schema refuses them); rows of
files written before the feature was added read its default, zeros, which are not missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SchemaError
from ..schema import Feature, Schema
from ..table.stats import vector_means
from . import _gather

__all__ = ["DenseImputation", "plan_imputation", "STRATEGIES", "INDICATOR_SUFFIX"]

#: The strategies named by a string; a number, or ``dim`` numbers, is a constant fill.
STRATEGIES = ("mean", "zero")
#: ``"<feature>" + INDICATOR_SUFFIX`` names a feature's indicator columns in ``batch.dense_names``.
INDICATOR_SUFFIX = "_missing"


@dataclass(frozen=True)
class DenseImputation:
    """How a dataset fills the NaNs of its dense features in each batch.

    Attributes:
        names: the imputed features, in the order of ``batch.dense``.
        starts: their first column in ``batch.dense``.
        fills: float32 ``[dim]`` per feature: the value each dimension's NaNs become.
        indicator_starts: the first of each feature's ``dim`` indicator columns in
            ``batch.dense``, or -1 without indicators.
        extra_columns: indicator columns appended to ``batch.dense`` (0 without).
    """

    names: tuple[str, ...]
    starts: tuple[int, ...]
    fills: tuple[np.ndarray, ...]
    indicator_starts: tuple[int, ...]
    extra_columns: int

    def apply(self, dense: np.ndarray) -> None:
        """Fill NaNs of ``dense`` (``[B, D + extra_columns]`` float32) in place and write the
        indicator columns (every one of them: ``dense`` may come uninitialised there)."""
        for start, fill, ind in zip(self.starts, self.fills, self.indicator_starts):
            # One pass in C over the batch's rows (numpy's strided isnan/copyto/assign took
            # ~10x longer: enough to show in the loader's throughput).
            _gather.impute_columns(dense, start, fill, ind)

    def dense_names(self) -> dict[str, tuple[int, int]]:
        """The indicator column ranges by name (``"<feature>_missing"``), for ``batch.dense_names``."""
        return {n + INDICATOR_SUFFIX: (i, i + len(f))
                for n, f, i in zip(self.names, self.fills, self.indicator_starts) if i >= 0}


def _constant(name: str, dim: int, how: Any) -> np.ndarray:
    """A constant fill: one number for every dimension, or ``dim`` numbers."""
    bad = SchemaError(f"impute[{name!r}]: expected one of {list(STRATEGIES)}, a finite number or {dim} finite "
                      f"numbers (one per dimension), found {how!r}")
    if isinstance(how, Real) and not isinstance(how, bool):
        values = [how]
    elif isinstance(how, (Sequence, np.ndarray)) and not isinstance(how, str):
        values = list(how)
        if len(values) != dim or not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
            raise bad
    else:
        raise bad
    if not all(math.isfinite(float(v)) for v in values):
        raise bad
    return np.broadcast_to(np.asarray(values, dtype=np.float32), (dim,)).copy()


def plan_imputation(table: Any, snapshot_id: int, dense: Sequence[Feature], impute: Mapping[str, Any] | None,
                    missing_indicators: bool) -> DenseImputation | None:
    """Check ``impute`` / ``missing_indicators`` against a dataset and resolve the fills.

    Args:
        table: the dataset's table.
        snapshot_id: the pinned snapshot, whose statistics give the means.
        dense: the dense features the dataset delivers, in ``batch.dense`` order.
        impute: dense feature name -> ``"mean"``, ``"zero"``, a number or ``dim`` numbers.
        missing_indicators: append 0/1 indicator columns for the imputed features.

    Returns:
        The plan, or None when nothing is imputed.

    Raises:
        SchemaError: a name is not a feature of the table, not a dense feature, or not
            delivered by the dataset; a strategy is not one of the above; indicators were
            asked for with nothing to impute; an indicator name is a dense feature's; a mean
            is asked for a dimension that holds no value in the snapshot.
        CatalogError: a file of the snapshot has no per-dimension sums (written before
            samplestore recorded them; the message names the file and what rewrites it).
    """
    if impute is not None and not isinstance(impute, Mapping):
        raise SchemaError(f"impute is a mapping of dense feature name -> strategy (e.g. {{'dense': 'mean'}}), "
                          f"found {impute!r}")
    impute = dict(impute or {})
    if not impute:
        if missing_indicators:
            raise SchemaError("missing_indicators=True needs impute={dense feature: strategy}: indicators mark the "
                              "values imputation filled, and nothing is imputed")
        return None
    schema: Schema = table.schema_at(snapshot_id)
    delivered = {f.name: f for f in dense}
    for name in impute:
        if name in delivered:
            continue
        if name not in schema.names:
            raise SchemaError(f"impute names {name!r}, which is not a feature of table {table.name!r}; its dense "
                              f"features are {[f.name for f in schema if f.kind == 'dense']}")
        kind = schema[name].kind
        if kind != "dense":
            raise SchemaError(f"impute names {name!r}, a {kind} feature; only dense features are imputed (NaN is "
                              f"their missing value); dense features of table {table.name!r}: "
                              f"{[f.name for f in schema if f.kind == 'dense']}")
        raise SchemaError(f"impute names {name!r}, which this dataset does not deliver (see features=); it delivers "
                          f"the dense features {list(delivered)}")
    means_of = [n for n, how in impute.items() if isinstance(how, str) and how == "mean"]
    means: dict[str, np.ndarray] = {}
    if means_of:
        means = vector_means(table, snapshot_id, means_of)
    names, starts, fills = [], [], []
    col = 0
    for f in dense:
        if f.name in impute:
            how = impute[f.name]
            if isinstance(how, str) and how == "mean":
                empty = np.flatnonzero(np.isnan(means[f.name])).tolist()
                if empty:
                    raise SchemaError(f"impute[{f.name!r}] = 'mean': dimension(s) {empty} have no mean in snapshot "
                                      f"{snapshot_id} of table {table.name!r} (every stored value is NaN there, or "
                                      "they include both +inf and -inf); impute with 'zero' or a value")
                fill = means[f.name].astype(np.float32)
            elif isinstance(how, str) and how == "zero":
                fill = np.zeros(f.dim, np.float32)
            else:
                fill = _constant(f.name, f.dim, how)
            names.append(f.name)
            starts.append(col)
            fills.append(fill)
        col += f.dim
    indicator_starts, extra = [], 0
    for fill in fills:
        indicator_starts.append(col + extra if missing_indicators else -1)
        extra += len(fill) if missing_indicators else 0
    if missing_indicators:
        clash = [n + INDICATOR_SUFFIX for n in names if n + INDICATOR_SUFFIX in delivered]
        if clash:
            raise SchemaError(f"missing_indicators would name columns {clash}, which are dense features of this "
                              "dataset already; rename the feature or leave missing_indicators off")
    return DenseImputation(tuple(names), tuple(starts), tuple(fills), tuple(indicator_starts), extra)

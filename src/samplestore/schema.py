"""Feature kinds of a recommendation training sample, and the :class:`Schema` that holds them.

A schema is an ordered list of features. Each feature kind has one Arrow form (what
``table.scan().to_arrow()`` returns) and one validation rule set; :meth:`Schema.conform`
checks incoming Arrow data against it and returns data in exactly that form, or raises a
:class:`~samplestore.errors.SchemaError` that names the column, the first bad row, what was
expected and what was found.

========== ===================================================== =======================
kind       Arrow form                                            nulls
========== ===================================================== =======================
dense      ``fixed_size_list<float32>[dim]`` (``float32`` if 1)   no (use NaN for missing)
sparse     ``list<int64>``; weighted: struct of ``ids``/``weights`` no (use an empty list)
sequence   ``list<int64>``; with timestamps: struct ``ids``/``ts`` no (use an empty list)
embedding  ``fixed_size_list<float32>[dim]``                      no
label      ``float32``                                           no
scalar     its own type (int32/int64/float32/float64/bool/        yes, unless
           string/timestamp[us])                                 ``nullable=False``
========== ===================================================== =======================

An unweighted sparse feature also accepts a plain integer column (one id per row, such as a
user or item id) and stores it as one-element lists. :meth:`Schema.infer` builds a schema
from an Arrow schema (a Parquet or CSV file's columns).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, Mapping, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import SchemaError

__all__ = [
    "Feature",
    "Dense",
    "Sparse",
    "Sequence",
    "Embedding",
    "Label",
    "Scalar",
    "Schema",
    "SCALAR_TYPES",
    "EMBEDDING_STORAGE",
    "MAX_DIM",
    "feature_from_dict",
    "register_feature_kind",
    "unregister_feature_kind",
]

#: Scalar dtype name -> Arrow type.
SCALAR_TYPES: dict[str, pa.DataType] = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
}

#: Storage dtypes an embedding may be kept in on disk (it is always read back as float32).
EMBEDDING_STORAGE = ("float32", "float16", "bfloat16")

# Used with fullmatch: ``$`` would also match before a final newline ("c0\n" passed).
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,254}")

#: The largest ``dim`` of a dense or embedding feature. Arrow's fixed_size_list takes at most
#: 2**31 - 1 values per row, and a row of 2**20 float32 values (4 MiB) is far beyond any
#: real feature; a bigger number is a mistake (a float, a product of the wrong numbers).
MAX_DIM = 1 << 20

ArrowData = Union[pa.Table, pa.RecordBatch]


@dataclass(frozen=True, slots=True)
class Feature:
    """Base of all feature kinds: a named column of a training sample."""

    name: str
    kind: ClassVar[str] = "feature"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise SchemaError(
                f"feature name must start with a letter or '_' and hold only letters, digits, "
                f"'_', '.', '-' (at most 255 characters); found {self.name!r}"
            )

    # -- description -------------------------------------------------------------------
    def arrow_type(self) -> pa.DataType:
        """The Arrow type this feature has when read."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :func:`feature_from_dict` inverts it."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        for f in self.__dataclass_fields__:  # type: ignore[attr-defined]
            if f != "name":
                out[f] = getattr(self, f)
        return out

    @property
    def nullable(self) -> bool:
        """Whether a row may hold a null for this feature."""
        return False

    @property
    def jagged(self) -> bool:
        """Whether rows hold variable-length lists (KeyedJaggedTensor features)."""
        return False

    def default_array(self, n: int) -> pa.Array:
        """``n`` rows of this feature's default (what files written before it existed read).

        The one definition of a kind's default: scans, compaction and the training path
        (through ``format.kinds.default_column``) all fill missing features from it.
        """
        raise NotImplementedError

    # -- validation --------------------------------------------------------------------
    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Check ``arr`` against this feature and return it in the feature's Arrow form."""
        raise NotImplementedError

    def _fail(self, expected: str, found: str, row: int | None = None) -> SchemaError:
        where = f" at row {row}" if row is not None else ""
        return SchemaError(
            f"column {self.name!r} ({self.kind}){where}: expected {expected}, found {found}"
        )


def _check_dim(feat: Feature) -> None:
    dim = feat.dim  # type: ignore[attr-defined]
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIM:
        raise SchemaError(
            f"feature {feat.name!r} ({feat.kind}): dim must be an integer from 1 to {MAX_DIM}, found {dim!r} "
            f"({type(dim).__name__}); give the vector's length as a plain int")


def _check_flag(feat: Feature, attr: str) -> None:
    value = getattr(feat, attr)
    if not isinstance(value, bool):
        raise SchemaError(
            f"feature {feat.name!r} ({feat.kind}): {attr} must be true or false, found {value!r} "
            f"({type(value).__name__})")


def _first_true(mask: pa.Array | np.ndarray) -> int:
    m = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array) else mask
    return int(np.argmax(m))


def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 1:
            return arr.chunk(0)
        return arr.combine_chunks() if arr.num_chunks else pa.array([], type=arr.type)
    return arr


def _check_no_nulls(feat: Feature, arr: pa.Array, what: str = "a value", hint: str = "") -> None:
    if arr.null_count:
        row = _first_true(pc.is_null(arr))
        raise feat._fail(f"{what} in every row{hint}", "null", row)


def _list_lengths(arr: pa.Array) -> np.ndarray:
    offsets = arr.offsets.to_numpy()
    return np.diff(offsets)


def _conform_float_vector(feat: Feature, arr: pa.Array, dim: int) -> pa.Array:
    """Shared by dense and embedding: float vectors of a fixed dim, no nulls."""
    t = arr.type
    expected = "float32" if dim == 1 else f"fixed_size_list<float32>[{dim}]"
    _check_no_nulls(feat, arr, "a vector", " (use NaN for a missing value)")
    if dim == 1 and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        return arr.cast(pa.float32()) if t != pa.float32() else arr
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise feat._fail(expected, f"vectors of length {t.list_size}", 0 if len(arr) else None)
        values = arr.flatten()
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = _list_lengths(arr)
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise feat._fail(expected, f"a vector of length {int(lengths[bad[0]])}", int(bad[0]))
        values = arr.flatten()
    else:
        raise feat._fail(expected, str(t))
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise feat._fail(expected, str(t))
    _check_no_nulls(feat, values, "a number", " (use NaN for a missing value)")
    values = values.cast(pa.float32()) if values.type != pa.float32() else values
    if dim == 1:
        return values
    return pa.FixedSizeListArray.from_arrays(values, dim)


def _conform_id_list(feat: Feature, arr: pa.Array, what: str, value_type: pa.DataType) -> pa.Array:
    """A list of ids (or of float weights / int timestamps) with no nulls at any level."""
    t = arr.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise feat._fail(f"list<{value_type}> ({what})", str(t))
    _check_no_nulls(feat, arr, "a list", " (use an empty list for a missing value)")
    vt = t.value_type
    ok = pa.types.is_integer(vt) if pa.types.is_integer(value_type) else (
        pa.types.is_floating(vt) or pa.types.is_integer(vt)
    )
    if not ok:
        raise feat._fail(f"list<{value_type}> ({what})", str(t))
    if pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        arr = pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(_lengths_any(arr))]).astype(np.int32)),
            arr.flatten(),
        )
    values = arr.flatten()
    if values.null_count:
        # Name the row whose list holds the null element.
        pos = _first_true(pc.is_null(values))
        row = int(np.searchsorted(arr.offsets.to_numpy()[1:] - arr.offsets.to_numpy()[0], pos, side="right"))
        raise feat._fail(f"{what} without null elements", "a null element", row)
    if values.type != value_type:
        try:
            values = values.cast(value_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise feat._fail(f"list<{value_type}> ({what})", f"{t} ({exc})") from exc
    offsets = arr.offsets
    if offsets.offset or offsets[0].as_py() != 0:
        offsets = pc.subtract(offsets, offsets[0])
    return pa.ListArray.from_arrays(offsets, values)


def _lengths_any(arr: pa.Array) -> np.ndarray:
    if pa.types.is_fixed_size_list(arr.type):
        return np.full(len(arr), arr.type.list_size, dtype=np.int64)
    return _list_lengths(arr)


def _one_id_per_row(feat: Feature, arr: pa.Array) -> pa.Array:
    """An integer column (one id per row) as one-element ``list<int64>``; a null -> ``[]``."""
    try:
        values = arr.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        # Only uint64 ids above 2**63 - 1 get here.
        raise feat._fail("ids that fit in int64", f"{arr.type} values out of range ({exc})") from exc
    n = len(values)
    if values.null_count:
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(valid, out=offsets[1:])
        values = values.drop_null()
    else:
        offsets = np.arange(n + 1, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _conform_pair(
    feat: Feature, arr: pa.Array, first: str, second: str, second_type: pa.DataType
) -> pa.Array:
    """Struct of two parallel lists (ids + weights, ids + timestamps) of equal lengths."""
    t = arr.type
    expected = f"struct<{first}: list<int64>, {second}: list<{second_type}>>"
    if not pa.types.is_struct(t) or t.get_field_index(first) < 0 or t.get_field_index(second) < 0:
        raise feat._fail(expected, str(t))
    _check_no_nulls(feat, arr, "a value", " (use empty lists for a missing value)")
    a = _conform_id_list(feat, arr.field(first), first, pa.int64())
    b = _conform_id_list(feat, arr.field(second), second, second_type)
    la, lb = _list_lengths(a), _list_lengths(b)
    bad = np.flatnonzero(la != lb)
    if bad.size:
        r = int(bad[0])
        raise feat._fail(
            f"as many {second} as {first} in every row",
            f"{int(la[r])} {first} and {int(lb[r])} {second}",
            r,
        )
    return pa.StructArray.from_arrays([a, b], names=[first, second])


def _check_storage(feat: Feature) -> None:
    storage = getattr(feat, "storage")
    if storage not in EMBEDDING_STORAGE:
        raise SchemaError(f"feature {feat.name!r}: storage must be one of {EMBEDDING_STORAGE}, found {storage!r}")


@dataclass(frozen=True, slots=True)
class Dense(Feature):
    """A fixed-size float vector (``dim`` >= 1), e.g. the 13 numeric Criteo features.

    ``storage`` (``"float32"``, ``"float16"`` or ``"bfloat16"``) is how the values are kept
    on disk, as for :class:`Embedding`; they are always read (and batched) as float32.
    """

    dim: int = 1
    storage: str = "float32"
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        _check_dim(self)
        _check_storage(self)

    def to_dict(self) -> dict[str, Any]:
        out = Feature.to_dict(self)
        if self.storage == "float32":  # the default: descriptors and catalogs stay as before it existed
            del out["storage"]
        return out

    def arrow_type(self) -> pa.DataType:
        return pa.float32() if self.dim == 1 else pa.list_(pa.float32(), self.dim)

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        return _conform_float_vector(self, _combine(arr), self.dim)

    def default_array(self, n: int) -> pa.Array:
        values = pa.array(np.zeros(n * self.dim, dtype=np.float32))
        return values if self.dim == 1 else pa.FixedSizeListArray.from_arrays(values, self.dim)


@dataclass(frozen=True, slots=True)
class Embedding(Feature):
    """A pretrained vector, optionally stored as float16 or bfloat16 on disk (read as float32)."""

    dim: int = 1
    storage: str = "float32"
    kind: ClassVar[str] = "embedding"

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        _check_dim(self)
        _check_storage(self)

    def arrow_type(self) -> pa.DataType:
        return pa.list_(pa.float32(), self.dim)

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        out = _conform_float_vector(self, _combine(arr), self.dim)
        if self.dim == 1:
            out = pa.FixedSizeListArray.from_arrays(out, 1)
        return out

    def default_array(self, n: int) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * self.dim, np.float32)), self.dim)


@dataclass(frozen=True, slots=True)
class Sparse(Feature):
    """A variable-length list of categorical ids; ``weighted=True`` pairs each id with a weight."""

    weighted: bool = False
    kind: ClassVar[str] = "sparse"

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        _check_flag(self, "weighted")

    @property
    def jagged(self) -> bool:
        return True

    def arrow_type(self) -> pa.DataType:
        if self.weighted:
            return pa.struct([("ids", pa.list_(pa.int64())), ("weights", pa.list_(pa.float32()))])
        return pa.list_(pa.int64())

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Check ``arr`` and return it as ``list<int64>`` (weighted: struct of ids/weights).

        An unweighted sparse feature also takes a plain integer column, one id per row (a
        user or item id), and stores it as one-element lists; a null there is a missing
        id and becomes an empty list.
        """
        arr = _combine(arr)
        if self.weighted:
            return _conform_pair(self, arr, "ids", "weights", pa.float32())
        if pa.types.is_integer(arr.type):
            # An accepted input form, not a flag of the feature: what is stored and read is
            # list<int64> either way, as for the large and fixed-size lists conform takes.
            return _one_id_per_row(self, arr)
        return _conform_id_list(self, arr, "ids", pa.int64())

    def default_array(self, n: int) -> pa.Array:
        empty = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.int64()))
        if self.weighted:
            w = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.float32()))
            return pa.StructArray.from_arrays([empty, w], names=["ids", "weights"])
        return empty


@dataclass(frozen=True, slots=True)
class Sequence(Feature):
    """A long behaviour history of ids, optionally with an int64 timestamp per event."""

    timestamps: bool = False
    kind: ClassVar[str] = "sequence"

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        _check_flag(self, "timestamps")

    @property
    def jagged(self) -> bool:
        return True

    def arrow_type(self) -> pa.DataType:
        if self.timestamps:
            return pa.struct([("ids", pa.list_(pa.int64())), ("ts", pa.list_(pa.int64()))])
        return pa.list_(pa.int64())

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        arr = _combine(arr)
        if self.timestamps:
            return _conform_pair(self, arr, "ids", "ts", pa.int64())
        return _conform_id_list(self, arr, "ids", pa.int64())

    def default_array(self, n: int) -> pa.Array:
        empty = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.int64()))
        if self.timestamps:
            ts = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.int64()))
            return pa.StructArray.from_arrays([empty, ts], names=["ids", "ts"])
        return empty


@dataclass(frozen=True, slots=True)
class Label(Feature):
    """A training target (one float32 per row); several labels form ``Batch.labels [B, T]``."""

    kind: ClassVar[str] = "label"

    def arrow_type(self) -> pa.DataType:
        return pa.float32()

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        arr = _combine(arr)
        t = arr.type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)):
            raise self._fail("float32 (a number per row)", str(t))
        _check_no_nulls(self, arr, "a label")
        return arr.cast(pa.float32()) if t != pa.float32() else arr

    def default_array(self, n: int) -> pa.Array:
        return pa.array(np.full(n, np.nan, dtype=np.float32))


@dataclass(frozen=True, slots=True)
class Scalar(Feature):
    """An id, timestamp, number or string used for filtering, partitioning and joins."""

    dtype: str = "int64"
    nullable: bool = True  # type: ignore[misc]
    kind: ClassVar[str] = "scalar"

    def __post_init__(self) -> None:
        Feature.__post_init__(self)
        if self.dtype not in SCALAR_TYPES:
            raise SchemaError(
                f"feature {self.name!r}: scalar dtype must be one of {sorted(SCALAR_TYPES)}, found {self.dtype!r}"
            )
        if self.dtype == "float":
            object.__setattr__(self, "dtype", "float64")
        # A string "false" from a hand-written JSON schema is truthy: it must not pass as True.
        _check_flag(self, "nullable")

    def arrow_type(self) -> pa.DataType:
        return SCALAR_TYPES[self.dtype]

    def conform(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        arr = _combine(arr)
        want = self.arrow_type()
        t = arr.type
        if not self.nullable:
            _check_no_nulls(self, arr)
        if t == want:
            return arr
        ok = (
            (pa.types.is_integer(want) and pa.types.is_integer(t))
            or (pa.types.is_floating(want) and (pa.types.is_floating(t) or pa.types.is_integer(t)))
            or (pa.types.is_string(want) and (pa.types.is_large_string(t) or pa.types.is_dictionary(t)))
            or (pa.types.is_timestamp(want) and (pa.types.is_timestamp(t) or pa.types.is_date(t)))
            or (pa.types.is_boolean(want) and pa.types.is_boolean(t))
            or pa.types.is_null(t)
        )
        if not ok:
            raise self._fail(str(want), str(t))
        try:
            if pa.types.is_timestamp(t) and t.tz is not None:
                arr = arr.cast(pa.timestamp(t.unit))
            return arr.cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise self._fail(str(want), f"{t} that does not convert ({exc})") from exc

    def default_array(self, n: int) -> pa.Array:
        return pa.nulls(n, type=self.arrow_type())


#: Feature classes by kind name, for JSON (:func:`feature_from_dict`); see :func:`register_feature_kind`.
_KINDS: dict[str, type[Feature]] = {
    cls.kind: cls for cls in (Dense, Sparse, Sequence, Embedding, Label, Scalar)
}


def register_feature_kind(cls: type[Feature], *, replace: bool = False) -> type[Feature]:
    """Make a new :class:`Feature` subclass known by its ``kind`` name (for JSON); returns it.

    A kind also needs a storage codec (``samplestore.format.kinds.register_kind``) and, for
    training, an assembler (``samplestore.torch.register_assembler``).

    Raises:
        SchemaError: ``cls`` is not a Feature subclass, or its kind name is taken and
            ``replace`` is false.
    """
    if not (isinstance(cls, type) and issubclass(cls, Feature)) or cls.kind == Feature.kind:
        raise SchemaError(f"a feature kind is a Feature subclass with its own 'kind' name; found {cls!r}")
    other = _KINDS.get(cls.kind)
    if other is not None and other is not cls and not replace:
        raise SchemaError(f"feature kind {cls.kind!r} is already registered to {other.__name__}; "
                          "choose another kind name or pass replace=True")
    _KINDS[cls.kind] = cls
    return cls


def unregister_feature_kind(kind: str) -> type[Feature]:
    """Forget the feature class registered under ``kind``; returns it.

    Raises:
        SchemaError: no class is registered under ``kind``.
    """
    cls = _KINDS.pop(kind, None)
    if cls is None:
        raise SchemaError(f"no feature kind {kind!r} is registered; known: {sorted(_KINDS)}")
    return cls


def feature_from_dict(d: Mapping[str, Any]) -> Feature:
    """Build a feature from its :meth:`Feature.to_dict` form."""
    if not isinstance(d, Mapping) or "kind" not in d or "name" not in d:
        raise SchemaError(f"a feature needs 'kind' and 'name'; found {d!r}")
    kind = d["kind"]
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"feature {d.get('name')!r}: unknown kind {kind!r}; known: {sorted(_KINDS)}")
    args = {k: v for k, v in d.items() if k != "kind"}
    try:
        return cls(**args)
    except TypeError as exc:
        raise SchemaError(f"feature {d.get('name')!r} of kind {kind!r}: {exc}") from exc


class Schema:
    """An ordered, immutable set of features with unique names.

    Args:
        features: the features, in the order trainers see them (dense features are
            concatenated in this order into ``Batch.dense``).
    """

    __slots__ = ("features", "_index")
    features: tuple[Feature, ...]

    def __init__(self, features: Iterable[Feature] = ()) -> None:
        feats = tuple(features)
        seen: set[str] = set()
        for f in feats:
            if not isinstance(f, Feature):
                raise SchemaError(f"a schema holds features (ss.Dense, ss.Sparse, ...); found {f!r}")
            if f.name in seen:
                raise SchemaError(f"feature name {f.name!r} appears twice in the schema")
            seen.add(f.name)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "_index", {f.name: i for i, f in enumerate(feats)})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Schema is immutable; use add() or select() to derive a new one")

    def __reduce__(self) -> tuple[type, tuple[tuple[Feature, ...]]]:
        # Rebuilt through __init__ (which validates), as the slots cannot be set afterwards.
        return Schema, (tuple(self.features),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.features == other.features

    def __hash__(self) -> int:
        return hash(self.features)

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]

    def __getitem__(self, name: str) -> Feature:
        return self.field(name)

    def __repr__(self) -> str:
        inner = ", ".join(repr(f) for f in self.features)
        return f"Schema([{inner}])"

    @property
    def names(self) -> list[str]:
        """Feature names in schema order."""
        return [f.name for f in self.features]

    def field(self, name: str) -> Feature:
        """The feature called ``name``; :class:`SchemaError` listing the names if absent."""
        i = self._index.get(name)  # type: ignore[attr-defined]
        if i is None:
            raise SchemaError(f"no feature {name!r} in the schema; features: {self.names}")
        return self.features[i]

    def select(self, names: Iterable[str]) -> "Schema":
        """A schema of just these features, in the order given."""
        return Schema([self.field(n) for n in names])

    def of_kind(self, *kinds: str) -> list[Feature]:
        """The features of the given kinds, in schema order."""
        return [f for f in self.features if f.kind in kinds]

    def add(self, features: Iterable[Feature]) -> "Schema":
        """A new schema with ``features`` appended (schema evolution)."""
        return Schema([*self.features, *features])

    # -- Arrow and JSON ------------------------------------------------------------------
    def to_arrow(self) -> pa.Schema:
        """The Arrow schema of data read from a table with this schema."""
        return pa.schema(
            [pa.field(f.name, f.arrow_type(), nullable=f.nullable) for f in self.features]
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the schema."""
        return {"features": [f.to_dict() for f in self.features]}

    def to_json(self, indent: int | None = None) -> str:
        """The schema as JSON text; :meth:`from_json` inverts it."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Schema":
        """Build a schema from :meth:`to_dict` output."""
        if not isinstance(d, Mapping) or not isinstance(d.get("features"), list):
            raise SchemaError("a schema document is an object with a 'features' list")
        return cls(feature_from_dict(f) for f in d["features"])

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        """Parse a schema from JSON text."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema JSON does not parse: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def infer(
        cls,
        arrow_schema: pa.Schema | ArrowData,
        *,
        labels: Iterable[str] | str = (),
        dense: Iterable[str] | str = (),
        ids: Iterable[str] | str = (),
    ) -> "Schema":
        """A schema for data of this Arrow schema, one feature per column, in column order.

        Column types map to feature kinds:

        - a list of integers (``list<int64>``, any integer width) -> :class:`Sparse`;
        - ``fixed_size_list<float>[dim]`` -> :class:`Dense` of that ``dim``;
        - ``struct<ids: list<int>, weights: list<float>>`` -> weighted :class:`Sparse`, and
          ``struct<ids: list<int>, ts: list<int>>`` -> :class:`Sequence` with timestamps
          (the schema's own Arrow forms, so a table's ``scan().to_arrow()`` infers back);
        - every other column -> :class:`Scalar` of its type: int32 (narrower integers too),
          int64, float32, float64, bool, string (also dictionary-encoded), timestamp (also
          dates).

        Columns named in the keyword arguments are taken otherwise:

        Args:
            arrow_schema: a ``pyarrow.Schema`` (e.g. ``pyarrow.parquet.read_schema(path)``),
                or a table or record batch whose schema is used.
            labels: number or bool columns that are training targets -> :class:`Label`.
            dense: float (or integer) columns -> ``Dense(dim=1)``; a fixed-size list keeps its dim.
            ids: integer columns holding one id per row (user id, item id) -> :class:`Sparse`:
                appended rows are stored as one-element lists (a null as an empty list), so
                the trainer gets them as KeyedJaggedTensor keys.

        Returns:
            The schema. Names must be valid feature names.

        Raises:
            SchemaError: a name in ``labels``/``dense``/``ids`` is not a column or is given
                twice, a named column does not have a type its kind holds, or a column's type
                maps to no feature kind (variable-length float lists, other structs, maps,
                binary, decimals, all-null columns); the message names the column, its type
                and what to do.

        Example::

            >>> import pyarrow as pa, samplestore as ss
            >>> ratings = pa.schema([("user", pa.int64()), ("movie", pa.int64()),
            ...                      ("liked", pa.bool_()), ("genres", pa.list_(pa.int64())),
            ...                      ("ds", pa.string())])
            >>> schema = ss.Schema.infer(ratings, labels=["liked"], ids=["user", "movie"])
            >>> [(f.name, f.kind) for f in schema]
            [('user', 'sparse'), ('movie', 'sparse'), ('liked', 'label'), ('genres', 'sparse'), ('ds', 'scalar')]
            >>> store.create_table("ratings", schema, partition_by=["ds"])  # doctest: +SKIP
        """
        if isinstance(arrow_schema, (pa.Table, pa.RecordBatch)):
            arrow_schema = arrow_schema.schema
        if not isinstance(arrow_schema, pa.Schema):
            raise SchemaError(
                f"Schema.infer expects a pyarrow.Schema (or a pyarrow Table/RecordBatch); found "
                f"{type(arrow_schema).__name__}; for a file use pyarrow.parquet.read_schema(path)")
        columns = list(arrow_schema.names)
        roles: dict[str, str] = {}
        for role, names in (("labels", labels), ("dense", dense), ("ids", ids)):
            for name in [names] if isinstance(names, str) else list(names):
                if name not in columns:
                    raise SchemaError(f"{role}= names {name!r}, which is not a column; columns: {columns}")
                if name in roles:
                    raise SchemaError(
                        f"column {name!r} is named in both {roles[name]}= and {role}=; give it one kind")
                roles[name] = role
        return cls(_infer_feature(f, roles.get(f.name)) for f in arrow_schema)

    def fill_missing(self, data: ArrowData) -> ArrowData:
        """``data`` with this schema's features in order, those it lacks filled with their defaults.

        What a file written before a feature was added reads as (``Feature.default_array``):
        scans and compaction both fill through here. ``data`` (a table or record batch) holds
        a subset of the features, in schema order; it is returned as is when it holds all.
        """
        if data.schema.names == self.names:
            return data
        present = set(data.schema.names)
        n = data.num_rows
        arrays = [data.column(f.name) if f.name in present else f.default_array(n) for f in self.features]
        if isinstance(data, pa.RecordBatch):
            return pa.RecordBatch.from_arrays(arrays, schema=self.to_arrow())
        return pa.Table.from_arrays(arrays, schema=self.to_arrow())

    # -- validation ----------------------------------------------------------------------
    def conform(self, data: Any, *, allow_missing: bool = False) -> pa.Table:
        """Validate ``data`` against the schema and return it in the schema's Arrow form.

        Args:
            data: a ``pyarrow.Table``/``RecordBatch``, a list of record batches, a pandas or
                polars DataFrame, or a dict of column name -> numpy array / list / Arrow array.
                For a sparse feature a dict may give ``(values, lengths)`` numpy arrays.
            allow_missing: fill absent features with their defaults instead of failing.

        Returns:
            A ``pyarrow.Table`` whose schema equals :meth:`to_arrow`.

        Raises:
            SchemaError: a column is missing, unexpected, of the wrong type, holds a null
                where the kind forbids it, a vector of the wrong length, or a negative length.
        """
        table = to_arrow_table(data, self)
        present = set(table.column_names)
        extra = [c for c in table.column_names if c not in self._index]  # type: ignore[attr-defined]
        if extra:
            raise SchemaError(
                f"unexpected column(s) {extra}: not in the schema; schema features: {self.names}"
            )
        n = table.num_rows
        cols = []
        for f in self.features:
            if f.name in present:
                cols.append(f.conform(table.column(f.name)))
            elif allow_missing:
                cols.append(f.default_array(n))
            else:
                raise SchemaError(
                    f"column {f.name!r} ({f.kind}) expected but not found; columns present: "
                    f"{table.column_names}"
                )
        return pa.Table.from_arrays(cols, schema=self.to_arrow())


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_id_list(t: pa.DataType) -> bool:
    return _is_list(t) and pa.types.is_integer(t.value_type)


def _scalar_dtype(t: pa.DataType) -> str | None:
    """The :class:`Scalar` dtype that holds Arrow type ``t`` without loss, or None."""
    if pa.types.is_dictionary(t):
        # Scalar.conform decodes dictionary-encoded strings (pandas categoricals) only.
        return "string" if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type) else None
    if pa.types.is_integer(t):
        # Narrower integers widen to int32; uint32/uint64 need int64 (uint64 ids above
        # 2**63 - 1 are refused by conform, naming the row).
        return "int32" if t.bit_width < 32 or t == pa.int32() else "int64"
    if pa.types.is_floating(t):
        return "float64" if t == pa.float64() else "float32"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "timestamp"
    return None


def _infer_feature(field: pa.Field, role: str | None) -> Feature:
    """The feature for one column (see :meth:`Schema.infer`); ``role``: the keyword naming it."""
    name, t = field.name, field.type
    where = f"column {name!r} has type {t}"
    if role == "labels":
        if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
            return Label(name)
        raise SchemaError(f"{where}, but labels= takes a number or bool per row; convert it to "
                          f"float32 (e.g. a 0/1 target) or leave it out of labels=")
    if role == "dense":
        if pa.types.is_floating(t) or pa.types.is_integer(t):
            return Dense(name, dim=1)
        if pa.types.is_fixed_size_list(t) and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
            return Dense(name, dim=t.list_size)
        raise SchemaError(f"{where}, but dense= takes a float column or a fixed_size_list<float32>[dim]; "
                          f"cast it to float32 or leave it out of dense=")
    if role == "ids":
        if pa.types.is_integer(t) or _is_id_list(t):
            return Sparse(name)
        raise SchemaError(f"{where}, but ids= takes integer id columns; map the values to int64 ids "
                          f"first (e.g. pyarrow.compute.dictionary_encode(col).indices, or a hash) or "
                          f"leave it out of ids= to keep it as a Scalar")
    if _is_id_list(t):
        return Sparse(name)
    if pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type):
        return Dense(name, dim=t.list_size)
    if _is_list(t) and pa.types.is_floating(t.value_type):
        raise SchemaError(
            f"{where}: a variable-length float list maps to no feature kind; if every row holds "
            f"the same number of floats, cast it to fixed_size_list<float32>[dim] (a Dense feature); "
            f"if the floats weigh ids, store struct<ids: list<int64>, weights: list<float32>>")
    if pa.types.is_struct(t):
        fields = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        if set(fields) == {"ids", "weights"} and _is_id_list(fields["ids"]) and _is_list(fields["weights"]) \
                and pa.types.is_floating(fields["weights"].value_type):
            return Sparse(name, weighted=True)
        if set(fields) == {"ids", "ts"} and _is_id_list(fields["ids"]) and _is_id_list(fields["ts"]):
            return Sequence(name, timestamps=True)
        raise SchemaError(
            f"{where}: a struct is a feature only as struct<ids: list<int64>, weights: list<float32>> "
            f"(weighted sparse) or struct<ids: list<int64>, ts: list<int64>> (sequence with timestamps); "
            f"flatten other structs into columns first (pyarrow.Table.flatten())")
    dtype = _scalar_dtype(t)
    if dtype is not None:
        return Scalar(name, dtype)
    if pa.types.is_null(t):
        raise SchemaError(f"{where}: every value is null, so its kind cannot be inferred; cast the column "
                          f"to its real type, drop it, or build the schema by hand")
    raise SchemaError(
        f"{where}, which maps to no feature kind; cast it to int64, float64, string or timestamp "
        f"(or a list of int64 ids), drop it, or build the schema by hand")


def to_arrow_table(data: Any, schema: Schema | None = None) -> pa.Table:
    """Turn supported inputs (Arrow, pandas, polars, dict of arrays) into a ``pyarrow.Table``."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, list) and data and all(isinstance(b, pa.RecordBatch) for b in data):
        return pa.Table.from_batches(data)
    if isinstance(data, Mapping):
        arrays = {}
        for name, col in data.items():
            arrays[name] = _column_from_python(name, col, schema)
        return pa.table(arrays)
    if type(data).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"pandas data does not convert to Arrow: {exc}") from exc
    # Recognised by module, as pandas is: polars need not be installed to import samplestore.
    if type(data).__module__.startswith("polars"):
        if type(data).__name__ == "LazyFrame":
            raise SchemaError("expected a polars DataFrame, found a LazyFrame (a query, not rows); "
                              "pass lazy_frame.collect()")
        if type(data).__name__ == "DataFrame":
            return data.to_arrow()
    raise SchemaError(
        "expected a pyarrow Table/RecordBatch, a list of record batches, a pandas or polars "
        f"DataFrame or a dict of columns; found {type(data).__name__}"
    )


def _column_from_python(name: str, col: Any, schema: Schema | None) -> pa.Array | pa.ChunkedArray:
    if isinstance(col, (pa.Array, pa.ChunkedArray)):
        return col
    feat = schema.field(name) if schema is not None and name in schema else None
    if isinstance(col, tuple) and len(col) == 2 and feat is not None and feat.jagged:
        values, lengths = (np.asarray(c) for c in col)
        if lengths.ndim != 1 or values.ndim != 1:
            raise SchemaError(f"column {name!r}: (values, lengths) must be 1-d arrays")
        neg = np.flatnonzero(lengths < 0)
        if neg.size:
            r = int(neg[0])
            raise SchemaError(
                f"column {name!r} ({feat.kind}) at row {r}: expected a length >= 0, found {int(lengths[r])}"
            )
        total = int(lengths.sum())
        if total != len(values):
            raise SchemaError(
                f"column {name!r} ({feat.kind}): expected lengths summing to the {len(values)} values, "
                f"found a sum of {total}"
            )
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if total < 2**31:
            return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
        return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))
    if isinstance(col, np.ndarray) and col.ndim == 2:
        flat = pa.array(np.ascontiguousarray(col).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, col.shape[1])
    try:
        return pa.array(col)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise SchemaError(f"column {name!r} does not convert to Arrow: {exc}") from exc

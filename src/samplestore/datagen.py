"""Deterministic generators of Criteo-like recommendation samples with a learnable signal.

* :func:`criteo_schema` / :func:`criteo_like`: 13 dense features (log-counts), 26 sparse id
  lists (zipf ids, variable lengths), one click label that depends on both.
* :func:`sessions_schema` / :func:`sessions_like`: the same plus users with sessions over
  time, a behaviour-history sequence whose consecutive samples of one user overlap, a
  timestamp and a day partition column.
* :func:`drifting_schema` / :func:`drifting_like`: Criteo-like samples in time order whose
  click rule changes from one period to the next (which features matter drifts).

Everything is vectorised numpy and deterministic by ``seed``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa

from .schema import Dense, Label, Scalar, Schema, Sequence, Sparse

__all__ = ["criteo_schema", "criteo_like", "sessions_schema", "sessions_like", "drifting_schema", "drifting_like",
           "sequence_schema", "sequence_like",
           "NUM_DENSE", "NUM_SPARSE"]

NUM_DENSE = 13
NUM_SPARSE = 26
_MIX = np.uint64(0x9E3779B97F4A7C15)


def criteo_schema(num_sparse: int = NUM_SPARSE, dense_dim: int = NUM_DENSE) -> Schema:
    """The schema of :func:`criteo_like`: ``dense`` [13], ``c0``..``c25``, ``click``."""
    return Schema([Dense("dense", dim=dense_dim), *[Sparse(f"c{i}") for i in range(num_sparse)], Label("click")])


def _vocab_sizes(num_sparse: int) -> np.ndarray:
    # Criteo's categorical columns span 3 to ~10M distinct values; spread ours log-uniformly.
    return np.unique(np.logspace(1, 6.3, num_sparse).astype(np.int64)) if num_sparse > 1 else np.array([1000])


def _id_effect(ids: np.ndarray, salt: int) -> np.ndarray:
    """A fixed pseudo-random effect in [-1, 1) per id (what a model can learn)."""
    h = (ids.astype(np.uint64) + np.uint64(salt)) * _MIX
    return ((h >> np.uint64(40)).astype(np.float64) / float(1 << 24)) * 2.0 - 1.0


def _jagged_ids(rng: np.random.Generator, n: int, vocab: int, max_len: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Lengths in 1..max_len (geometric, mean ~4) and zipf-distributed hashed ids."""
    lengths = np.minimum(rng.geometric(0.25, n), max_len).astype(np.int64)
    total = int(lengths.sum())
    ranks = (rng.zipf(1.15, total) - 1) % vocab
    # Hash ranks into sparse 40-bit ids, as production id columns look after feature hashing.
    ids = ((ranks.astype(np.uint64) + np.uint64(salt)) * _MIX >> np.uint64(24)).astype(np.int64)
    return lengths, ids


def _list_array(lengths: np.ndarray, values: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _features(rng: np.random.Generator, n: int, num_sparse: int, max_len: int) -> tuple[np.ndarray, dict[str, pa.Array], np.ndarray]:
    """Dense log-counts, the ``dense`` and ``c0``.. columns, and the effect of each sparse
    column's first id in every row (``[num_sparse, n]``: what a click rule can use)."""
    counts = np.floor(rng.lognormal(1.0, 1.5, (n, NUM_DENSE)))
    dense = np.log1p(counts).astype(np.float32)
    vocabs = np.resize(_vocab_sizes(num_sparse), num_sparse)
    columns: dict[str, pa.Array] = {"dense": pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1)), NUM_DENSE)}
    first_effect = np.empty((num_sparse, n))
    for i in range(num_sparse):
        lengths, ids = _jagged_ids(rng, n, int(vocabs[i]), max_len, salt=i * 7919)
        first = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=first[1:])
        first_effect[i] = _id_effect(ids[first[:-1]], salt=i)
        columns[f"c{i}"] = _list_array(lengths, ids)
    return dense, columns, first_effect


def criteo_like(n: int, seed: int = 0, num_sparse: int = NUM_SPARSE, max_len: int = 20) -> pa.Table:
    """``n`` Criteo-like samples as a ``pyarrow.Table`` in :func:`criteo_schema` form."""
    rng = np.random.default_rng(seed)
    dense, columns, first_effect = _features(rng, n, num_sparse, max_len)
    logit = (dense[:, :4] - 1.0) @ np.array([0.8, -0.6, 0.5, 0.4])
    for i in range(min(6, num_sparse)):  # the first ids of a few columns carry signal
        logit += 1.2 * first_effect[i]
    p = 1.0 / (1.0 + np.exp(-(logit - 1.0)))
    columns["click"] = pa.array((rng.random(n) < p).astype(np.float32))
    return pa.table(columns)


def drifting_schema(num_sparse: int = 8) -> Schema:
    """The schema of :func:`drifting_like`: ``row_id``, ``period``, ``dense`` [13], ``c0``.., ``click``."""
    return Schema([Scalar("row_id", "int64", nullable=False), Scalar("period", "int64", nullable=False),
                   *criteo_schema(num_sparse).features])


def drifting_like(n: int, seed: int = 0, periods: int = 4, num_sparse: int = 8, max_len: int = 20) -> pa.Table:
    """``n`` samples in time order whose click rule drifts, in :func:`drifting_schema` form.

    The rows are cut into ``periods`` equal consecutive periods (``period``; ``row_id`` is the
    position). In period ``p`` the click depends on a different subset of the features:
    three dense dimensions starting at ``3p`` and the first ids of sparse columns ``2p`` and
    ``2p + 1`` (both modulo their counts). A model that sees the periods mixed learns every
    rule; one fed long runs of a single period drifts towards the period it saw last.
    """
    rng = np.random.default_rng(seed)
    dense, features, first_effect = _features(rng, n, num_sparse, max_len)
    period = (np.arange(n) * periods // max(n, 1)).astype(np.int64)
    columns = {"row_id": pa.array(np.arange(n, dtype=np.int64)), "period": pa.array(period), **features}
    rows = np.arange(n)
    dims = (3 * period[:, None] + np.arange(3)) % NUM_DENSE
    logit = (dense[rows[:, None], dims] - 1.0) @ np.array([0.8, -0.6, 0.5])
    for k in range(2):
        logit += 1.5 * first_effect[(2 * period + k) % num_sparse, rows]
    p = 1.0 / (1.0 + np.exp(-(logit - 1.0)))
    columns["click"] = pa.array((rng.random(n) < p).astype(np.float32))
    return pa.table(columns)


def sessions_schema(num_sparse: int = 8, history_len: int = 50) -> Schema:
    """The schema of :func:`sessions_like`."""
    return Schema([
        Dense("dense", dim=NUM_DENSE),
        *[Sparse(f"c{i}") for i in range(num_sparse)],
        Sequence("history"),
        Label("click"),
        Scalar("user_id", "int64"),
        Scalar("ts", "timestamp"),
        Scalar("ds", "string"),
    ])


def sessions_like(
    n: int,
    seed: int = 0,
    num_users: int | None = None,
    num_sparse: int = 8,
    days: int = 4,
    history_len: int = 50,
    start_day: str = "2026-11-01",
) -> pa.Table:
    """``n`` samples from users browsing in sessions over ``days`` days, in time order.

    Each user's ``history`` is the list of items they clicked before the sample (at most
    ``history_len``), so consecutive samples of one user share most of their history. The
    click depends on dense features, the first ids of a few sparse columns, and whether the
    candidate item (``c0``) matches the user's taste, which the history reveals.
    """
    rng = np.random.default_rng(seed)
    num_users = num_users or max(10, n // 40)
    base = criteo_like(n, seed=seed + 1, num_sparse=num_sparse)
    user = np.sort(rng.zipf(1.3, n) % num_users).astype(np.int64)
    rng.shuffle(user)
    seconds = np.sort(rng.integers(0, days * 86_400, n))
    day0 = np.datetime64(start_day, "s")
    ts = (day0 + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    ds = np.datetime_as_string((day0 + seconds.astype("timedelta64[s]")).astype("datetime64[D]"))
    # Each user has a taste (a group of items); items they click come from it.
    taste = (user * 2654435761) % 97
    item = taste * 1000 + rng.integers(0, 50, n)
    candidate_match = rng.random(n) < 0.5
    candidate = np.where(candidate_match, item, rng.integers(0, 97_000, n))
    # Histories: per user, the items of that user's earlier samples (bounded window).
    order = np.lexsort((seconds, user))
    hist_lengths = np.zeros(n, dtype=np.int64)
    hist_values: list[np.ndarray] = []
    u_sorted = user[order]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    pos_in_user = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    hist_lengths[order] = np.minimum(pos_in_user, history_len)
    items_sorted = item[order]
    hist_by_row: list[np.ndarray] = [np.empty(0, np.int64)] * n
    for k, row in enumerate(order):
        L = hist_lengths[row]
        if L:
            hist_by_row[row] = items_sorted[k - L:k][::-1]
    hist_values = [h for h in hist_by_row]
    flat_hist = np.concatenate(hist_values) if n else np.empty(0, np.int64)
    logit = np.where(candidate_match, 1.5, -1.5) + 0.5 * (base.column("click").to_numpy() * 2 - 1)
    p = 1.0 / (1.0 + np.exp(-logit))
    click = (rng.random(n) < p).astype(np.float32)
    cols = {name: base.column(name) for name in base.column_names if name != "click"}
    c0 = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(candidate.astype(np.int64)))
    cols["c0"] = c0
    cols["history"] = _list_array(hist_lengths, flat_hist.astype(np.int64))
    cols["click"] = pa.array(click)
    cols["user_id"] = pa.array(user)
    cols["ts"] = pa.array(ts)
    cols["ds"] = pa.array(ds.astype(str))
    return sessions_schema(num_sparse, history_len).conform(pa.table(cols))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex8(ids: np.ndarray, null: np.ndarray) -> pa.Array:
    """uint32 ids as 8-digit lower-case hex strings (null where ``null``), vectorised."""
    n = len(ids)
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    chars = _HEX_DIGITS[(ids[:, None] >> shifts) & 0xF].reshape(-1)
    offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
    validity = pa.array(~null).buffers()[1]
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(chars)],
                                 null_count=int(null.sum()))


def write_criteo_tsv(path: str, n: int, seed: int = 0, missing_rate: float = 0.1,
                     rates: Mapping[str, float] | None = None, click_rate: float | None = None) -> dict[str, int]:
    """Write ``n`` lines in the Criteo click-log TSV layout; return missing fields per column.

    Layout per line: label, 13 integer fields, 26 hex categorical fields, tab-separated;
    a missing value is an empty field. Column names in the result: ``i1``..``i13``, ``c0``..``c25``.
    ``rates`` sets the missing rate of some columns by those names (the others follow
    ``missing_rate``); ``click_rate`` the share of labels that are 1 (default: half, at random).
    """
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n) if click_rate is None else (rng.random(n) < click_rate).astype(np.int64)
    cols: dict[str, pa.Array] = {"label": pa.array(labels)}
    missing: dict[str, int] = {}
    rates = rates or {}
    for k in range(1, NUM_DENSE + 1):
        rate = rates.get(f"i{k}", missing_rate * (k % 4) / 2)  # some columns miss more than others, one never
        mask = rng.random(n) < rate
        vals = np.floor(rng.lognormal(1.0, 1.5, n)).astype(np.int64)
        cols[f"i{k}"] = pa.array(vals, mask=mask)
        missing[f"i{k}"] = int(mask.sum())
    for k in range(NUM_SPARSE):
        rate = rates.get(f"c{k}", missing_rate * (k % 3) / 2)
        mask = rng.random(n) < rate
        ids = (rng.zipf(1.2, n) % 100_000 + k * 1_000_003).astype(np.uint32)
        cols[f"c{k}"] = _hex8(ids, mask)
        missing[f"c{k}"] = int(mask.sum())
    pacsv.write_csv(pa.table(cols), path, write_options=pacsv.WriteOptions(
        include_header=False, delimiter="\t", quoting_style="none"))
    return missing


def sequence_schema(num_sparse: int = NUM_SPARSE) -> Schema:
    """The schema of :func:`sequence_like`: Criteo-like columns, a behaviour history, user and
    time (:func:`sessions_schema` without the day column)."""
    return Schema([f for f in sessions_schema(num_sparse) if f.name != "ds"])


def sequence_like(n: int, seed: int = 0, samples_per_user: int = 400, history_len: int = 200,
                  num_sparse: int = NUM_SPARSE) -> pa.Table:
    """``n`` samples of a ranking workload with long behaviour histories, in time order.

    Criteo-like columns (13 dense, ``num_sparse`` single-id columns, a click), plus each
    user's ``history``: the last ``history_len`` items they touched (up to), oldest first,
    one item further than in their previous sample. Users start with a past of 3/4 to all of
    ``history_len`` items, so histories are mostly full (about ``history_len + num_sparse``
    ids per sample in all). Rows of about ``n / samples_per_user`` users are interleaved in
    time order, as a stream writes them; sorting by (``user_id``, ``ts``) makes each user's
    windows adjacent.
    """
    rng = np.random.default_rng(seed)
    base = criteo_like(n, seed=seed + 1, num_sparse=num_sparse, max_len=1)
    users = max(1, n // samples_per_user)
    user = rng.integers(0, users, n).astype(np.int64)
    ts = np.sort(rng.integers(0, 30 * 86_400_000_000, n)).astype(np.int64)  # 30 days, microseconds
    # Sample index of each row within its user, in time order.
    order = np.argsort(user, kind="stable")
    counts = np.bincount(user, minlength=users)
    starts = np.zeros(users + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n) - np.repeat(starts[:-1], counts)
    past = rng.integers(history_len * 3 // 4, history_len + 1, users)
    # Each user's items: their past, then one item per sample; hashed 40-bit zipf ids.
    item_base = np.zeros(users + 1, np.int64)
    np.cumsum(past + counts, out=item_base[1:])
    ranks = (rng.zipf(1.1, int(item_base[-1])) - 1) % 5_000_000
    items = ((ranks.astype(np.uint64) + np.uint64(977)) * _MIX >> np.uint64(24)).astype(np.int64)
    end = past[user] + pos  # the row's history is items[end - length, end) of its user
    lengths = np.minimum(end, history_len)
    first = item_base[user] + end - lengths
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(first - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
    columns = {name: base.column(name) for name in base.column_names}
    columns["history"] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(items[index]))
    columns["user_id"] = pa.array(user)
    columns["ts"] = pa.array(ts, pa.timestamp("us"))
    return pa.table(columns)

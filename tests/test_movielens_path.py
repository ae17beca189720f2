"""A new user's first hour: MovieLens-shaped ratings in Parquet -> `ingest --create` -> training.

The Parquet file has MovieLens-100k's shape at a small size (users, movies, ratings), as a user
prepares it: one row per rating with the user and movie ids as plain integers, a ``liked``
target (rating >= 4), the movie's genres and the user's earlier movies as id lists, and a
``ds`` day. The command line makes the table from it; a SampleDataset must then deliver every
rating exactly once, with the ids as KeyedJaggedTensor keys.
"""

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

import samplestore as ss
from samplestore.torch import SampleDataset

N_USERS, N_MOVIES, N_GENRES, N_RATINGS = 60, 90, 19, 1500


def movielens_like(seed: int = 0) -> pa.Table:
    """Ratings of MovieLens-100k's shape: every (user, movie) pair at most once, in time order."""
    rng = np.random.default_rng(seed)
    genres = [sorted(rng.choice(N_GENRES, size=rng.integers(1, 4), replace=False).tolist())
              for _ in range(N_MOVIES)]
    pairs = rng.choice(N_USERS * N_MOVIES, size=N_RATINGS, replace=False)
    user, movie = (pairs // N_MOVIES) + 1, (pairs % N_MOVIES) + 1  # MovieLens ids start at 1
    ts = np.sort(rng.integers(0, 4 * 86_400, size=N_RATINGS))  # four days
    rating = rng.integers(1, 6, size=N_RATINGS)
    seen: dict[int, list[int]] = {}
    history = []
    for u, m in zip(user.tolist(), movie.tolist()):
        history.append(list(seen.get(u, [])))  # the user's earlier movies; [] for the first
        seen.setdefault(u, []).append(m)
    day0 = dt.date(2026, 11, 1)
    return pa.table({
        "user": pa.array(user, pa.int64()),
        "movie": pa.array(movie, pa.int64()),
        "rating": pa.array(rating, pa.int8()),
        "liked": pa.array(rating >= 4),
        "genres": pa.array([genres[m - 1] for m in movie.tolist()], pa.list_(pa.int64())),
        "history": pa.array(history, pa.list_(pa.int64())),
        "ds": pa.array([(day0 + dt.timedelta(seconds=int(s))).isoformat() for s in ts]),
    })


@pytest.mark.slow  # ~4 s (an ingest subprocess, then training): `make test` runs it, `make test-fast` does not
def test_movielens_parquet_to_training(tmp_path):
    ratings = movielens_like()
    pq.write_table(ratings, tmp_path / "ratings.parquet", row_group_size=400)
    root = tmp_path / "store"
    r = subprocess.run([sys.executable, "-m", "samplestore", "ingest", str(root), "ratings",
                        str(tmp_path / "ratings.parquet"), "--create", "--label", "liked", "--ids", "user,movie",
                        "--partition-by", "ds", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"ingested {N_RATINGS:,} rows" in r.stdout

    table = ss.open_store(root).table("ratings")
    assert list(table.schema) == [ss.Sparse("user"), ss.Sparse("movie"), ss.Scalar("rating", "int32"),
                                  ss.Label("liked"), ss.Sparse("genres"), ss.Sparse("history"),
                                  ss.Scalar("ds", "string")]
    assert len({f.partition["ds"] for f in table.files()}) == 4

    expected = {(u, m): (g, h, float(liked)) for u, m, g, h, liked in zip(
        *(ratings.column(c).to_pylist() for c in ("user", "movie", "genres", "history", "liked")))}
    keys = ["user", "movie", "genres", "history"]
    # What a trainer reads: the ids and the label (not the rating the label was made from).
    ds = SampleDataset(table, features=[*keys, "liked"], batch_size=128, shuffle=True, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)
    tables = {k: torch.nn.EmbeddingBag(128, 8, mode="mean") for k in keys}
    head = torch.nn.Linear(8 * len(keys), 1)
    opt = torch.optim.SGD([p for m in [*tables.values(), head] for p in m.parameters()], lr=0.1)

    delivered: list[tuple[int, int]] = []
    for batch in loader:
        b = len(batch)
        assert batch.sparse.keys == keys and batch.labels.shape == (b, 1)
        assert batch.dense.shape[1] == 0
        rows = {}
        for k in keys:
            values, lengths = batch.sparse[k]
            offsets = [0, *np.cumsum(lengths.numpy()).tolist()]
            rows[k] = [values[offsets[i]:offsets[i + 1]].tolist() for i in range(b)]
        assert all(len(u) == 1 for u in rows["user"]) and all(len(m) == 1 for m in rows["movie"])
        for i in range(b):
            key = (rows["user"][i][0], rows["movie"][i][0])
            genres, history, liked = expected[key]
            assert rows["genres"][i] == genres and rows["history"][i] == history, key
            assert batch.labels[i, 0].item() == liked, key
            delivered.append(key)
        # One training step on the delivered layout (KeyedJaggedTensor parts -> EmbeddingBag).
        emb = []
        for k in keys:
            values, lengths = batch.sparse[k]
            offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.long().cumsum(0)[:-1]])
            emb.append(tables[k](values, offsets))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(torch.cat(emb, 1)), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)

    assert len(delivered) == N_RATINGS and set(delivered) == set(expected)  # every rating once


def _cli(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "samplestore", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def _epoch(table: ss.Table, **kw) -> list[tuple[int, int]]:
    """The (user, movie) pairs of one shuffled epoch, in the order a trainer gets them."""
    ds = SampleDataset(table, features=["user", "movie", "liked"], batch_size=100, shuffle=True, seed=7, **kw)
    out = []
    for batch in ds:
        users, movies = batch.sparse["user"][0].tolist(), batch.sparse["movie"][0].tolist()
        out.extend(zip(users, movies))
    return out


@pytest.mark.slow
def test_movielens_training_run_reproduced_by_tag_after_compaction_and_daemon(tmp_path):
    """Ingest, tag what a training run read, let the table move on (more days, a day's ratings erased,
    compaction, the daemon, a retention that keeps only the last snapshot); the tag still gives
    the same rows in the same order."""
    ratings = movielens_like(seed=1)
    first, later = ratings.slice(0, 1000), ratings.slice(1000)
    pq.write_table(first, tmp_path / "first.parquet", row_group_size=200)
    pq.write_table(later, tmp_path / "later.parquet", row_group_size=200)
    root = str(tmp_path / "store")
    _cli("ingest", root, "ratings", str(tmp_path / "first.parquet"), "--create", "--label", "liked",
         "--ids", "user,movie", "--partition-by", "ds", "--quiet")
    _cli("tag", root, "ratings", "train-v1")
    table = ss.open_store(root).table("ratings")
    trained_on = _epoch(table, snapshot="train-v1")
    assert len(trained_on) == 1000 and len(set(trained_on)) == 1000

    # The table moves on: more days arrive, a day's ratings are erased, and maintenance runs
    # with the most aggressive retention (only the last snapshot) — tags are kept regardless.
    _cli("ingest", root, "ratings", str(tmp_path / "later.parquet"), "--quiet")
    first_day = first.column("ds")[0].as_py()
    erased = table.scan(filter=pc.field("ds") == first_day).count()
    assert erased > 0 and table.delete(pc.field("ds") == first_day) is not None
    table.set_retention(retain_last=1, older_than=0)
    _cli("compact", root, "ratings", "--grace", "0")
    from samplestore.compaction import run_once
    reports = run_once(ss.open_store(root), grace_seconds=0)
    assert [r["table"] for r in reports] == ["ratings"], reports

    table = ss.open_store(root).table("ratings")
    current = table.snapshot()
    tagged = dict((t.name, t.snapshot_id) for t in table.tags())["train-v1"]
    assert tagged < current.snapshot_id
    assert [s.snapshot_id for s in table.snapshots()] == [tagged, current.snapshot_id]  # all else expired
    replaced = {f.path for f in table.files("train-v1")} - {f.path for f in table.files()}
    assert replaced  # compaction rewrote files the tag reads (the erased day's at least)...
    assert all(os.path.exists(os.path.join(table.dir, p)) for p in replaced)  # ...and GC kept them
    assert table.scan().count() == N_RATINGS - erased  # the erased day is gone from the current rows...
    assert _epoch(table, snapshot="train-v1") == trained_on  # ...but the tagged run reads as it did

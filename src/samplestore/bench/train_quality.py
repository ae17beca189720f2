"""Training quality by loader: what the order a loader delivers does to the model trained on it.

``samplestore bench train-quality``. A table in time order whose click rule drifts
(:func:`samplestore.datagen.drifting_like`: the features that decide a click change from one
period to the next), as streaming data is. The demo's DLRM-style model
(:class:`samplestore.demo.DLRM`, trained by :class:`samplestore.demo.Trainer`) is trained for
one epoch on the same rows by each loader, then scored on held-out rows drawn at random
from the whole time range, the mixture every loader should teach:

* ``samplestore``: ``SampleDataset`` with its defaults (shuffle buffer included);
* ``permutation``: a full random permutation in memory (the Parquet loader of the loader
  bench with a buffer of every row);
* ``row-group shuffle``: the same Parquet loader with one row group in its buffer (row
  groups in random order, rows shuffled within one), the cheap shuffle;
* ``shuffled layout``: ``SampleDataset`` with its defaults on the same rows compacted with
  ``layout="shuffled"`` (the offline alternative: each rewritten group's rows written in a
  random order, so the bounded shuffle draws from rows of the whole time range).

Reported per loader: held-out AUC and log-loss (medians over seeds; a seed sets the model's
initialisation and the loader's order), and what the epoch's order looked like (neighbour
rate within a batch size, distinct periods per batch). Torch runs on one thread while
training: the figures are about quality, not speed, and one thread is also the fastest on a
2-core machine shared with the loaders' own threads.
"""

from __future__ import annotations

import os
import statistics
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import datagen

__all__ = ["ARMS", "make_drift_tables", "log_loss", "train_once", "run_train_quality_bench", "format_markdown"]

#: The loaders compared, in the order they are reported.
ARMS = ("samplestore", "permutation", "row-group shuffle", "shuffled layout")
_NUM_SPARSE = 8


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of ``logits`` against 0/1 ``labels`` (computed stably)."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(logits, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, s) - y * s))


def make_drift_tables(workdir: str, rows: int, row_group_rows: int = 8192, holdout: float = 0.1,
                      periods: int = 4, seed: int = 0) -> dict[str, Any]:
    """Generate ``rows`` drifting rows; hold out a random ``holdout`` share of them; write the
    rest, in time order, as a samplestore table (``drift``), as one Parquet file of
    ``row_group_rows`` row groups, and as a second table (``drift_shuffled``) compacted with
    ``layout="shuffled"``. ``row_id`` is renumbered in each part (the training position, in
    time order, in every copy)."""
    import samplestore as ss

    schema = datagen.drifting_schema(_NUM_SPARSE)
    data = schema.conform(datagen.drifting_like(rows, seed=seed, periods=periods, num_sparse=_NUM_SPARSE))
    test_mask = np.random.default_rng(seed + 1).random(rows) < holdout
    parts = {}
    for name, mask in (("train", ~test_mask), ("test", test_mask)):
        part = data.filter(pa.array(mask))
        parts[name] = part.set_column(0, "row_id", pa.array(np.arange(part.num_rows, dtype=np.int64)))
    store = ss.open_store(os.path.join(workdir, "store"), create=True)
    for name in ("drift", "drift_shuffled"):
        if name in store.tables():
            store.drop_table(name)
        store.create_table(name, schema).append(parts["train"])
    store.table("drift_shuffled").compact(layout="shuffled")
    path = os.path.join(workdir, "drift-train.parquet")
    pq.write_table(parts["train"], path, compression="zstd", row_group_size=row_group_rows)
    period = parts["train"].column("period").to_numpy()
    return {"store": store.root, "parquet": path, "rows": rows, "train_rows": parts["train"].num_rows,
            "test": parts["test"], "row_group_rows": row_group_rows, "periods": periods,
            # Training positions where each period begins: the "unit" of distinct periods per batch.
            "period_starts": np.searchsorted(period, np.arange(periods))}


def _loader(arm: str, info: dict[str, Any], batch_size: int, seed: int) -> Any:
    from .loader import ParquetLoader

    schema = datagen.drifting_schema(_NUM_SPARSE)
    if arm in ("samplestore", "shuffled layout"):
        import samplestore as ss
        from ..torch import SampleDataset

        name = "drift" if arm == "samplestore" else "drift_shuffled"
        return SampleDataset(ss.open_store(info["store"]).table(name), batch_size=batch_size, seed=seed)
    buffer_rows = info["train_rows"] if arm == "permutation" else info["row_group_rows"]
    return ParquetLoader([info["parquet"]], schema, batch_size, buffer_rows, seed=seed)


def train_once(arm: str, info: dict[str, Any], test_batches: list[Any], batch_size: int, seed: int) -> dict[str, float]:
    """One epoch of the demo's model from loader ``arm``; held-out AUC and log-loss, and the
    order figures of the epoch."""
    import torch

    from ..demo import DLRM, Trainer, auc, predict
    from .loader import order_figures

    torch.manual_seed(seed)
    model = DLRM([f"c{i}" for i in range(_NUM_SPARSE)], num_dense=datagen.NUM_DENSE)
    ds = _loader(arm, info, batch_size, seed)
    positions: list[np.ndarray] = []

    def noted() -> Iterator[Any]:
        for batch in ds:
            positions.append(batch.extras["row_id"].numpy().copy())
            yield batch

    train_loss, _ = Trainer(model).epoch(noted())
    if hasattr(ds, "close"):
        ds.close()
    labels, logits = predict(model, test_batches)
    order = order_figures(np.concatenate(positions), [len(p) for p in positions], batch_size, info["period_starts"])
    return {"auc": auc(labels, logits), "logloss": log_loss(labels, logits), "train_loss": train_loss,
            "batch_neighbour_rate": order["batch_neighbour_rate"], "periods_per_batch": order["units_per_batch"]}


def run_train_quality_bench(workdir: str, rows: int = 1_000_000, seeds: int = 3, batch_size: int = 1024,
                            row_group_rows: int = 8192, holdout: float = 0.1, periods: int = 4) -> dict[str, Any]:
    """Train once per loader and seed (see the module docstring); medians over the seeds."""
    import torch

    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS
    from .loader import ArrowBatches

    info = make_drift_tables(workdir, rows, row_group_rows, holdout, periods)
    test = info.pop("test")
    convert = ArrowBatches(datagen.drifting_schema(_NUM_SPARSE))
    cols = convert.columns(test)
    test_batches = [convert.batch(cols, np.arange(s, min(s + 8192, test.num_rows))) for s in range(0, test.num_rows, 8192)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {arm: [train_once(arm, info, test_batches, batch_size, seed) for seed in range(seeds)] for arm in ARMS}
    finally:
        torch.set_num_threads(threads)
    arms = {}
    for arm, each in runs.items():
        arms[arm] = {k: float(statistics.median(r[k] for r in each)) for k in each[0]}
        arms[arm]["auc_runs"] = [r["auc"] for r in each]
        arms[arm]["logloss_runs"] = [r["logloss"] for r in each]
    perm = arms["permutation"]["auc_runs"]
    return {"rows": rows, "train_rows": info["train_rows"], "test_rows": test.num_rows, "periods": periods,
            "batch_size": batch_size, "seeds": seeds, "row_group_rows": row_group_rows,
            "shuffle_buffer_rows": DEFAULT_SHUFFLE_BUFFER_ROWS, "arms": arms,
            "auc_samplestore_minus_permutation": arms["samplestore"]["auc"] - arms["permutation"]["auc"],
            "permutation_auc_range": max(perm) - min(perm)}


def format_markdown(res: dict[str, Any]) -> str:
    """The training-quality benchmark as a markdown table."""
    share = min(1.0, res["shuffle_buffer_rows"] / res["train_rows"])
    lines = [
        f"{res['rows']:,} rows in time order in {res['periods']} periods, the click rule changing each period; "
        f"{res['train_rows']:,} train the demo's DLRM-style model for one epoch (batch {res['batch_size']:,}), "
        f"{res['test_rows']:,} held out at random over the whole time range; medians of {res['seeds']} seeds. "
        f"samplestore: SampleDataset defaults (a {res['shuffle_buffer_rows']:,}-row shuffle buffer, {share:.0%} of "
        "the training rows); permutation: a full random permutation in memory; row-group shuffle: "
        f"{res['row_group_rows']:,}-row row groups in random order, one in the buffer; shuffled layout: "
        "SampleDataset defaults on the same rows compacted with layout=\"shuffled\" (rows written in a random "
        f"order, drawn once for every seed). Neighbour rate: consecutive rows at most {res['batch_size']:,} apart "
        "in time order.",
        "",
        "| loader | held-out AUC | held-out log-loss | training loss | neighbour rate | periods per batch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for arm, r in res["arms"].items():
        lines.append(f"| {arm} | {r['auc']:.4f} | {r['logloss']:.4f} | {r['train_loss']:.4f} | "
                     f"{r['batch_neighbour_rate']:.3f} | {r['periods_per_batch']:.2f} |")
    lines += ["", f"samplestore - permutation, held-out AUC: {res['auc_samplestore_minus_permutation']:+.4f}; "
              f"the permutation's AUC moves by {res['permutation_auc_range']:.4f} from seed to seed."]
    return "\n".join(lines)

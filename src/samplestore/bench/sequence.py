"""Sequence benchmark: long behaviour histories, stored once across rows; every figure of
the sequence issue from one run.

The workload (:func:`samplestore.datagen.sequence_like`): Criteo-like columns plus a history
of up to 200 ids per sample, each user's samples sliding one item, rows in time order as a
stream writes them. Figures:

* bytes per sample of the table as appended (time order, one file) and after
  ``compact(sort_by=["user_id", "ts"])``, against Parquet (zstd) on the same rows in the
  same orders, in total, for the history column and per column group (also Parquet in the
  table's 8,192-row row groups), and the bound of the 0.4x target: sorted Parquet without its
  history over its total;
* loader samples/s (one process, median of interleaved epochs) of ``SampleDataset`` on the
  sorted table, without and with ``dedup=["history"]``, against the careful Parquet loader of
  ``samplestore.bench.loader`` on the same sorted rows, same batch layout and shuffle buffer;
* history ids per batch with and without ``dedup=["history"]``, and the median CPU time
  (forward, backward, optimizer step) of a training step over the history for each of
  :data:`STEP_CONFIGS` (SGD, Adagrad, SparseAdam on the embedding table; every id vs
  deduplicated), interleaved batch by batch;
* a 64-float ``Dense`` feature stored as float32, float16 and bfloat16: bytes per sample
  and full-read samples/s (:func:`samplestore.bench.format.dense_storage_figures`).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import datagen
from ..schema import Schema
from .format import dense_read_spread, dense_storage_figures

__all__ = ["run_sequence_bench", "format_markdown", "fastest_full", "SORT_BY"]

SORT_BY = ["user_id", "ts"]


def _group(column: str) -> str:
    """The column group a per-column figure is reported under."""
    if column[0] == "c" and column[1:].isdigit():
        return "26 id columns (c0..c25)"
    return "user_id, click" if column in ("user_id", "click") else column


def _parquet(table: pa.Table, path: str, row_group_rows: int | None = None) -> tuple[int, dict[str, int]]:
    """(file bytes, compressed bytes per column group) of ``table`` as Parquet (zstd)."""
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_rows)
    meta = pq.ParquetFile(path).metadata
    groups: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            col = meta.row_group(g).column(c)
            name = _group(col.path_in_schema.split(".")[0])
            groups[name] = groups.get(name, 0) + col.total_compressed_size
    return os.path.getsize(path), groups


def _ssf(table: Any) -> tuple[int, dict[str, int]]:
    """(bytes of the live files, their bytes per column group) of a samplestore table."""
    files = table.catalog.files(table.name, table.current_snapshot_id, with_stats=table.schema.names)
    groups: dict[str, int] = {}
    for f in files:
        for name, st in f.stats.items():
            groups[_group(name)] = groups.get(_group(name), 0) + st.bytes
    return sum(f.file_bytes for f in files), groups


#: The training-step configurations, in the order reported: (optimizer, form). "full" is the
#: batch's ids through ``F.embedding_bag`` with a sparse gradient; "full, dense gradient" the
#: same with a dense gradient of the whole table (which the dense form of the optimizer
#: applies to every row: for Adagrad it can beat the sparse form, whose sparse-tensor
#: bookkeeping costs more than the table; SparseAdam takes sparse gradients only, and dense
#: Adam would move every row by its momentum, a different optimizer, so it has no dense
#: form); "dedup" looks each distinct id up once and pools by ``inverse`` with
#: ``DedupIds.pool``; "dedup, embedding_bag" pools with ``F.embedding_bag`` over the
#: looked-up rows instead (its dense backward is what made the deduplicated step no faster
#: on CPU). A "vs full" factor compares with the fastest full form of the same optimizer.
STEP_CONFIGS = (("SGD", "full"), ("SGD", "full, dense gradient"), ("SGD", "dedup, embedding_bag"),
                ("SGD", "dedup"), ("Adagrad", "full"), ("Adagrad", "full, dense gradient"), ("Adagrad", "dedup"),
                ("SparseAdam", "full"), ("SparseAdam", "dedup"))


def fastest_full(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per optimizer, the step figures of its fastest full form (what "vs full" compares with)."""
    out: dict[str, dict[str, Any]] = {}
    for s in steps:
        if s["form"].startswith("full") and (s["optimizer"] not in out
                                             or s["step_ms"] < out[s["optimizer"]]["step_ms"]):
            out[s["optimizer"]] = s
    return out


def _train_figures(table: Any, batches: int, batch_size: int = 4096, dim: int = 16,
                   buckets: int = 1_000_003) -> dict[str, Any]:
    """History ids per batch with and without ``dedup=["history"]``, and the median CPU time
    (forward, backward, optimizer step) of one training step of each :data:`STEP_CONFIGS`.

    The model: the history sum-pooled from a hashed ``buckets`` x ``dim`` embedding table
    (sparse gradients), concatenated with the dense features, then a 64-unit MLP and a
    logistic loss on the click. Every configuration has its own copy of the same initial
    weights and trains on the same batches, read before timing (so the loader does not
    share the cores with the step), the configurations interleaved batch by batch in a
    rotating order.
    """
    import torch
    import torch.nn.functional as F

    from ..torch import SampleDataset

    ds = SampleDataset(table, batch_size=batch_size, shuffle=True, seed=0, dedup=["history"],
                       features=["dense", "history", "click"])
    data = []
    for batch in ds:
        if len(data) == batches:
            break
        d, full = batch.dedup["history"], batch.full_sparse()
        # Hashed to the table's rows outside the timed step (the same map for both forms).
        data.append((d, d.unique % buckets, full.values % buckets, full.offsets[:-1], batch.dense,
                     batch.labels[:, 0]))
    ds.close()
    torch.manual_seed(0)
    w0 = torch.randn(buckets, dim) * 0.01
    mlp0 = torch.nn.Sequential(torch.nn.Linear(dim + data[0][4].shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    dense_opt = {"SGD": torch.optim.SGD, "Adagrad": torch.optim.Adagrad, "SparseAdam": torch.optim.Adam}
    sparse_opt = {"SGD": torch.optim.SGD, "Adagrad": torch.optim.Adagrad, "SparseAdam": torch.optim.SparseAdam}
    lr = {"SGD": 0.05, "Adagrad": 0.05, "SparseAdam": 0.001}
    models = {}
    for opt, form in STEP_CONFIGS:
        w, mlp = torch.nn.Parameter(w0.clone()), copy.deepcopy(mlp0)
        table_opt = dense_opt if form.endswith("dense gradient") else sparse_opt
        models[opt, form] = (w, mlp, table_opt[opt]([w], lr=lr[opt]), dense_opt[opt](mlp.parameters(), lr=lr[opt]))

    def pooled(form: str, w: Any, b: tuple) -> Any:
        d, unique, values, offsets = b[:4]
        if form.startswith("full"):
            return F.embedding_bag(values, w, offsets, mode="sum", sparse=form == "full")
        rows = F.embedding(unique, w, sparse=True)  # [U, dim]: one lookup per distinct id
        if form == "dedup":
            return d.pool(rows)
        return F.embedding_bag(d.inverse, rows, d.offsets[:-1], mode="sum")

    parts = ("forward", "backward", "optimizer")
    times: dict[tuple[str, str], dict[str, list[float]]] = {c: {p: [] for p in parts} for c in STEP_CONFIGS}
    # Sparse-tensor checks off, as the optimizers run them by default (and without the warning).
    with torch.sparse.check_sparse_tensor_invariants(enable=False):
        for k, b in enumerate(data):
            for c in STEP_CONFIGS[k % len(STEP_CONFIGS):] + STEP_CONFIGS[:k % len(STEP_CONFIGS)]:
                w, mlp, opt_w, opt_mlp = models[c]
                t0 = time.perf_counter()
                logit = mlp(torch.cat([pooled(c[1], w, b), b[4]], 1))[:, 0]
                loss = F.binary_cross_entropy_with_logits(logit, b[5])
                t1 = time.perf_counter()
                opt_w.zero_grad()
                opt_mlp.zero_grad()
                loss.backward()
                t2 = time.perf_counter()
                opt_w.step()
                opt_mlp.step()
                t3 = time.perf_counter()
                for p, t in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                    times[c][p].append(t)
    ids = {"full": sum(b[2].numel() for b in data), "dedup": sum(b[1].numel() for b in data)}
    steps = []
    for c in STEP_CONFIGS:
        t = times[c]
        total = [sum(x) for x in zip(*t.values())]
        steps.append({"optimizer": c[0], "form": c[1], "step_ms": statistics.median(total) * 1e3,
                      **{f"{p}_ms": statistics.median(t[p]) * 1e3 for p in parts}})
    return {"batch_size": batch_size, "batches": len(data), "history_ids": ids,
            "factor": ids["full"] / max(1, ids["dedup"]), "dim": dim, "buckets": buckets,
            "torch_threads": torch.get_num_threads(), "steps": steps}


def _loader_rates(table: Any, rows: pa.Table, workdir: str, batch_size: int = 4096, epochs: int = 3) -> dict[str, Any]:
    """Median samples/s of one-process epochs: SampleDataset (without and with
    ``dedup=["history"]``) vs the careful Parquet loader, interleaved epoch by epoch."""
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS, SampleDataset
    from .loader import PARQUET_ROW_GROUP_ROWS, ParquetLoader

    path = os.path.join(workdir, "loader.parquet")
    pq.write_table(rows, path, compression="zstd", row_group_size=PARQUET_ROW_GROUP_ROWS)
    buffer_rows = DEFAULT_SHUFFLE_BUFFER_ROWS
    # What a trainer reads: the features (user_id and ts only lay the table out).
    train = Schema([f for f in table.schema if f.name not in SORT_BY])
    rates: dict[str, list[float]] = {"samplestore": [], "samplestore_dedup": [], "parquet": []}
    ds = {"samplestore": SampleDataset(table, features=train.names, batch_size=batch_size,
                                       shuffle_buffer_rows=buffer_rows),
          "samplestore_dedup": SampleDataset(table, features=train.names, batch_size=batch_size,
                                             shuffle_buffer_rows=buffer_rows, dedup=["history"])}
    for e in range(epochs):
        for name in rates:
            if name == "parquet":
                loader: Any = ParquetLoader([path], train, batch_size, buffer_rows, seed=e)
            else:
                loader = ds[name]
                loader.set_epoch(e)
            t0 = time.perf_counter()
            n = sum(len(b) for b in loader)
            rates[name].append(n / (time.perf_counter() - t0))
    for d in ds.values():
        d.close()
    out = {k: statistics.median(v) for k, v in rates.items()}
    return {"samples_per_s": out, "ratio": out["samplestore"] / out["parquet"],
            "dedup_ratio": out["samplestore_dedup"] / out["samplestore"], "batch_size": batch_size,
            "buffer_rows": buffer_rows, "epochs": epochs}


def run_sequence_bench(workdir: str, rows: int = 400_000, samples_per_user: int = 400, train_batches: int = 20,
                       loader_epochs: int = 3, dense_rows: int = 400_000, repeats: int = 9,
                       batch_size: int = 4096, embedding_rows: int = 1_000_003) -> dict[str, Any]:
    """Measure one workload both ways, in this run; return figures and ratios.

    ``train_batches``: batches of the training-step comparison; ``loader_epochs``: epochs of
    each loader (the median is reported); ``batch_size``: of both; ``embedding_rows``: of the
    model's hashed embedding table; ``dense_rows``, ``repeats``: rows and interleaved
    timed rounds of the dense-storage figures (:func:`samplestore.bench.format.dense_storage_figures`).
    """
    import samplestore as ss

    from ..table.writer import TABLE_ROW_GROUP_ROWS

    os.makedirs(workdir, exist_ok=True)
    data = datagen.sequence_like(rows, seed=11, samples_per_user=samples_per_user)
    schema = datagen.sequence_schema()
    history_ids = len(data.column("history").combine_chunks().values)
    ids = sum(len(data.column(c).combine_chunks().values) for c in data.column_names
              if pa.types.is_list(data.schema.field(c).type))
    by_user = data.take(pc.sort_indices(data, [(c, "ascending") for c in SORT_BY]))
    pq_time = _parquet(data, os.path.join(workdir, "time.parquet"))
    pq_sorted = _parquet(by_user, os.path.join(workdir, "sorted.parquet"))
    # Parquet in the table's row groups: what the row-group size alone costs Parquet.
    pq_sorted_rg = _parquet(by_user, os.path.join(workdir, "sorted_rg.parquet"), TABLE_ROW_GROUP_ROWS)

    store = ss.open_store(os.path.join(workdir, "store"), create=True)
    if "seq" in store.tables():
        store.drop_table("seq")
    table = store.create_table("seq", schema)
    table.append(data)  # one large file in time order: what compaction must re-cluster
    appended = _ssf(table)
    files_before = len(table.files())
    table.compact(sort_by=SORT_BY)
    compacted = _ssf(table)
    sorted_rows = schema.conform(by_user)
    del by_user, data  # a full-size run holds fewer copies of its largest column at once
    if not table.scan().to_arrow().equals(sorted_rows):
        raise AssertionError("the compacted table does not read back the rows sorted by (user_id, ts)")
    files = table.files()
    train = _train_figures(table, train_batches, batch_size, buckets=embedding_rows)
    loader = _loader_rates(table, sorted_rows, workdir, batch_size, loader_epochs)
    del sorted_rows
    per = lambda b: b / rows  # noqa: E731
    tables = {"ssf_time_order": appended, "ssf_sorted": compacted, "parquet_time_order": pq_time,
              "parquet_sorted": pq_sorted, "parquet_sorted_8192": pq_sorted_rg}
    res: dict[str, Any] = {
        "rows": rows, "users": rows // samples_per_user, "ids_per_sample": ids / rows,
        "history_ids_per_sample": history_ids / rows,
        "row_group_rows": TABLE_ROW_GROUP_ROWS,
        "parquet_row_groups": pq.ParquetFile(os.path.join(workdir, "sorted.parquet")).metadata.num_row_groups,
        "files": {"appended": files_before, "compacted": len(files)},
        "dedup": train,
        "loader": loader,
        "dense_storage": dense_storage_figures(workdir, dense_rows, repeats),
        "sort_keys": sorted({list(f.sort_key).__repr__() for f in files}),
        "bytes_per_sample": {k: per(v[0]) for k, v in tables.items()},
        "history_bytes_per_sample": {k: per(v[1]["history"]) for k, v in tables.items()},
        "column_bytes_per_sample": {k: {g: per(n) for g, n in v[1].items()} for k, v in tables.items()},
    }
    b, h = res["bytes_per_sample"], res["history_bytes_per_sample"]
    res["ratios"] = {
        "sorted_vs_parquet_sorted": b["ssf_sorted"] / b["parquet_sorted"],
        "sorted_vs_parquet_time_order": b["ssf_sorted"] / b["parquet_time_order"],
        "time_order_vs_parquet_time_order": b["ssf_time_order"] / b["parquet_time_order"],
        # Sorted Parquet's bytes without its history over its total: the ratio a zero-byte
        # history would reach with every other column as Parquet stores it.
        "bound_zero_byte_history": (b["parquet_sorted"] - h["parquet_sorted"]) / b["parquet_sorted"],
    }
    return res


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def format_markdown(res: dict[str, Any]) -> str:
    """The sequence benchmark as markdown: every figure, with the issue's targets."""
    b, h, r, d = res["bytes_per_sample"], res["history_bytes_per_sample"], res["ratios"], res["dedup"]
    lo, cols, ds = res["loader"], res["column_bytes_per_sample"], res["dense_storage"]
    sps = lo["samples_per_s"]
    fastest = fastest_full(d["steps"])
    full = {opt: s["step_ms"] for opt, s in fastest.items()}
    dedup = {s["optimizer"]: s["step_ms"] for s in d["steps"] if s["form"] == "dedup"}
    lines = [
        f"{res['rows']:,} samples of {res['users']:,} users, {res['ids_per_sample']:.0f} ids per sample "
        f"({res['history_ids_per_sample']:.0f} in the history); appended in time order as "
        f"{res['files']['appended']} file(s), then `compact(sort_by={SORT_BY})` "
        f"({res['files']['compacted']} file(s), {res['row_group_rows']:,}-row row groups). Parquet: zstd, "
        f"pyarrow's default row groups ({res['parquet_row_groups']} in the sorted file) unless noted.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| sorted by (user, ts) <= 0.4x Parquet (zstd) on the same rows, sorted | {b['ssf_sorted']:.1f} vs "
        f"{b['parquet_sorted']:.1f} B/sample: {r['sorted_vs_parquet_sorted']:.3f}x (a zero-byte history: "
        f"{r['bound_zero_byte_history']:.3f}x) | {_met(r['sorted_vs_parquet_sorted'] <= 0.4)} |",
        f"| unsorted (time order) <= Parquet | {b['ssf_time_order']:.1f} vs {b['parquet_time_order']:.1f} B/sample: "
        f"{r['time_order_vs_parquet_time_order']:.3f}x | {_met(r['time_order_vs_parquet_time_order'] <= 1)} |",
        f"| loader samples/s on the sorted table >= 2x the careful Parquet loader | {sps['samplestore']:,.0f} vs "
        f"{sps['parquet']:,.0f}: {lo['ratio']:.2f}x | {_met(lo['ratio'] >= 2)} |",
        f"| `dedup=`: history ids per batch fall by the factor the data allows | {d['factor']:.1f}x fewer | "
        "reported |",
        *[f"| `dedup=`: CPU training step faster ({opt}), against its fastest full form "
          f"(`{fastest[opt]['form']}`) | {dedup[opt]:.1f} vs {full[opt]:.1f} ms: "
          f"{full[opt] / dedup[opt]:.2f}x | {_met(dedup[opt] < full[opt])} |" for opt in full],
        "",
        "| bytes per sample | .ssf | Parquet (zstd) | ratio |",
        "|---|---:|---:|---:|",
        f"| time order (as appended) | {b['ssf_time_order']:.1f} | {b['parquet_time_order']:.1f} | "
        f"{r['time_order_vs_parquet_time_order']:.3f}x |",
        f"| sorted by (user_id, ts) | {b['ssf_sorted']:.1f} | {b['parquet_sorted']:.1f} | "
        f"{r['sorted_vs_parquet_sorted']:.3f}x |",
        f"| history column, time order | {h['ssf_time_order']:.1f} | {h['parquet_time_order']:.1f} | "
        f"{h['ssf_time_order'] / h['parquet_time_order']:.3f}x |",
        f"| history column, sorted | {h['ssf_sorted']:.1f} | {h['parquet_sorted']:.1f} | "
        f"{h['ssf_sorted'] / h['parquet_sorted']:.3f}x |",
        "",
        f"Sorted .ssf against Parquet of the rows as a stream leaves them (time order): "
        f"{r['sorted_vs_parquet_time_order']:.3f}x. Bound: sorted Parquet without its history column is "
        f"{b['parquet_sorted'] - h['parquet_sorted']:.1f} of its {b['parquet_sorted']:.1f} B/sample "
        f"({r['bound_zero_byte_history']:.3f}x), the ratio even a zero-byte history could not beat "
        "with the other columns stored as Parquet stores them.",
        "",
        f"Bytes per sample by column, sorted by (user_id, ts) (column chunks, without file and row-group "
        f"headers):",
        "",
        f"| columns | .ssf | Parquet | Parquet, {res['row_group_rows']:,}-row row groups |",
        "|---|---:|---:|---:|",
        *[f"| {g} | {cols['ssf_sorted'].get(g, 0):.2f} | {cols['parquet_sorted'].get(g, 0):.2f} | "
          f"{cols['parquet_sorted_8192'].get(g, 0):.2f} |" for g in cols["parquet_sorted"]],
        f"| file | {b['ssf_sorted']:.2f} | {b['parquet_sorted']:.2f} | {b['parquet_sorted_8192']:.2f} |",
        "",
        f"Loader on the sorted rows, one process, batch {lo['batch_size']:,}, shuffle buffer {lo['buffer_rows']:,} "
        f"rows, median of {lo['epochs']} epochs (interleaved): samplestore {sps['samplestore']:,.0f} samples/s, "
        f"with `dedup=[\"history\"]` {sps['samplestore_dedup']:,.0f} ({lo['dedup_ratio']:.2f}x), careful "
        f"Parquet loader {sps['parquet']:,.0f} (samplestore **{lo['ratio']:.2f}x**).",
        "",
        f"Training step on the sorted table, shuffled batches of {d['batch_size']:,} ({d['batches']} batches, "
        f"every configuration on the same batches, interleaved batch by batch; torch {d['torch_threads']} "
        f"thread(s)): history ids delivered {d['history_ids']['dedup']:,} deduplicated against "
        f"{d['history_ids']['full']:,} (**{d['factor']:.1f}x fewer**). Model: the history sum-pooled from a "
        f"{d['buckets']:,} x {d['dim']} hashed embedding table (sparse gradients) and the dense features "
        "into a 64-unit MLP, logistic loss. `full`: `F.embedding_bag` over every id (sparse gradient); "
        "`full, dense gradient`: the same with a dense gradient of the table, stepped by the dense "
        "optimizer (none for SparseAdam, which takes sparse gradients only); `dedup`: "
        "`F.embedding` of the distinct ids, then `DedupIds.pool` by `inverse`; `dedup, embedding_bag`: "
        "the same lookup pooled by `F.embedding_bag` over the rows. Medians, ms; \"vs full\": against "
        "the fastest full form of the same optimizer:",
        "",
        "| optimizer (embedding table) | form | forward | backward | optimizer step | step | vs full |",
        "|---|---|---:|---:|---:|---:|---:|",
        *[f"| {s['optimizer']} | {s['form']} | {s['forward_ms']:.1f} | {s['backward_ms']:.1f} | "
          f"{s['optimizer_ms']:.1f} | {s['step_ms']:.1f} | {full[s['optimizer']] / s['step_ms']:.2f}x |"
          for s in d["steps"]],
        "",
        f"Dense storage: one standard-normal {ds['dim']}-float `Dense` feature, {ds['rows']:,} rows, by "
        f"`storage` (read back as float32, one thread; median of {ds['rounds']} rounds, the storages "
        "interleaved in each, and the slowest-fastest round):",
        "",
        "| storage | bytes per sample | saved vs float32 | full read, samples/s | spread | vs float32 |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {k} | {ds['bytes_per_sample'][k]:.1f} | "
          f"{1 - ds['bytes_per_sample'][k] / ds['bytes_per_sample']['float32']:.0%} | "
          f"{ds['read_samples_s'][k]:,.0f} | {dense_read_spread(ds, k)} | "
          f"{ds['read_samples_s'][k] / ds['read_samples_s']['float32']:.2f}x |"
          for k in ds["bytes_per_sample"]],
    ]
    return "\n".join(lines)

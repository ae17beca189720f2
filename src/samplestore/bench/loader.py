"""Loader benchmark: SampleDataset against a careful Parquet + pyarrow loader and Lance, on the same data.

The Parquet baseline is what a careful engineer writes by hand: Parquet files with 65,536-row
row groups, a seeded per-epoch row-group order, a shuffle buffer of the same number of rows as
ours (whole row groups, fully permuted), pyarrow's own decode threads, and vectorised numpy
conversion into the same :class:`~samplestore.torch.Batch` (KeyedJaggedTensor layout, the
jagged gather done with ``np.repeat`` index arithmetic: no per-row Python). Lance (the
``[lance]`` extra, see :mod:`samplestore.bench.lance_loader`) reads shuffled batch-size
ranges with its own ``LanceDataset``, or ``take()``s a true permutation, through the same
conversion; where pylance is not installed both are reported as skipped.

Every configuration runs in a fresh subprocess (``python -m samplestore.bench.loader``) so
that time to first batch and peak RSS are its own. The order each delivers is measured from
a ``row_id`` column (the table position) by :func:`order_figures`: Spearman, the adjacent
rate (``neighbour_rate``, ``|d| == 1``), the neighbour rate within a batch size
(``batch_neighbour_rate``) and distinct read units per batch.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .. import datagen
from ..errors import SampleStoreError
from ..schema import Scalar, Schema

__all__ = ["make_tables", "ArrowBatches", "ParquetLoader", "order_figures", "random_order_figures", "run_loader_bench",
           "format_markdown", "LOADERS", "run_impute_bench", "format_impute_markdown"]

PARQUET_ROW_GROUP_ROWS = 65_536


def bench_schema() -> Schema:
    """Criteo-like features plus a row id (delivered as an extra, to measure the shuffle)."""
    base = datagen.criteo_schema()
    return Schema([Scalar("row_id", "int64", nullable=False), *base.features])


def make_tables(workdir: str, rows: int, seed: int = 0, lance: bool = False, dense_missing: float = 0.0) -> dict[str, Any]:
    """Write the same generated rows as a samplestore table, as Parquet files and, with
    ``lance``, as a Lance dataset (one fragment per chunk of rows). ``dense_missing``: the
    share of dense values made NaN (what imputation fills)."""
    import samplestore as ss

    schema = bench_schema()
    store = ss.open_store(os.path.join(workdir, "store"), create=True)
    if "criteo" in store.tables():
        store.drop_table("criteo")
    table = store.create_table("criteo", schema)
    pq_dir = os.path.join(workdir, "parquet")
    os.makedirs(pq_dir, exist_ok=True)
    lance_path = os.path.join(workdir, "criteo.lance") if lance else None
    if lance_path:
        from .lance_loader import write_lance

        shutil.rmtree(lance_path, ignore_errors=True)
    chunk = 500_000
    arrow_bytes = 0
    for k, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        data = datagen.criteo_like(n, seed=seed + k)
        data = data.add_column(0, "row_id", pa.array(np.arange(start, start + n)))
        if dense_missing:
            data = _with_missing_dense(data, dense_missing, seed + k)
        data = schema.conform(data)
        arrow_bytes += data.nbytes
        table.append(data)
        pq.write_table(data, os.path.join(pq_dir, f"part-{k:04d}.parquet"), compression="zstd",
                       row_group_size=PARQUET_ROW_GROUP_ROWS)
        if lance_path:
            write_lance(lance_path, data)
    return {"store": store.root, "parquet": pq_dir, "lance": lance_path, "rows": rows,
            "decoded_bytes_per_row": arrow_bytes / rows}


def _with_missing_dense(data: pa.Table, share: float, seed: int) -> pa.Table:
    """``data`` with about ``share`` of its ``dense`` values replaced by NaN."""
    col = data.column("dense").combine_chunks()
    values = col.flatten().to_numpy().copy()
    values[np.random.default_rng(seed).random(len(values)) < share] = np.nan
    dense = pa.FixedSizeListArray.from_arrays(pa.array(values), col.type.list_size)
    return data.set_column(data.schema.get_field_index("dense"), "dense", dense)


class ArrowBatches:
    """Arrow tables to :class:`~samplestore.torch.Batch` (KeyedJaggedTensor layout), vectorised.

    What a careful hand-written loader does, shared by every baseline (Parquet, Lance) so that
    they differ only in how they read: :meth:`columns` turns an Arrow table into numpy buffers
    (offsets + values for jagged features), :meth:`concat` joins several, :meth:`batch`
    gathers rows by index (the jagged gather is ``np.repeat`` index arithmetic: no per-row
    Python).
    """

    def __init__(self, schema: Schema) -> None:
        from ..torch.window import FeatureLayout

        self.layout = FeatureLayout.of(list(schema))
        self.names = schema.names

    def columns(self, t: pa.Table) -> dict[str, Any]:
        """Numpy buffers of every feature of ``t``: arrays, or (offsets, values) when jagged."""
        out: dict[str, Any] = {}
        for f in self.layout.all:
            arr = t.column(f.name).combine_chunks()
            if pa.types.is_list(arr.type):
                off = arr.offsets.to_numpy().astype(np.int64)
                out[f.name] = (off - off[0], arr.values.to_numpy()[off[0]:off[-1]])
            elif pa.types.is_fixed_size_list(arr.type):
                out[f.name] = arr.flatten().to_numpy().reshape(len(arr), -1)
            else:
                out[f.name] = arr.to_numpy()
        return out

    def concat(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The buffers of several :meth:`columns` results, one after the other."""
        cols: dict[str, Any] = {}
        for f in self.layout.all:
            each = [b[f.name] for b in parts]
            if isinstance(each[0], tuple):
                shift = np.cumsum([0] + [len(p[1]) for p in each[:-1]])
                off = np.concatenate([each[0][0][:1]] + [p[0][1:] + s for p, s in zip(each, shift)])
                cols[f.name] = (off, np.concatenate([p[1] for p in each]))
            else:
                cols[f.name] = np.concatenate(each)
        return cols

    def rows(self, cols: dict[str, Any]) -> int:
        """Rows held by ``cols``."""
        return len(cols[self.layout.labels[0].name])

    def batch(self, cols: dict[str, Any], idx: np.ndarray | None = None) -> Any:
        """The Batch of rows ``idx`` of ``cols`` (default: all, in order)."""
        from ..torch.batch import Batch, SparseFeatures

        if idx is None:
            idx = np.arange(self.rows(cols))
        dense = np.concatenate([cols[f.name][idx] for f in self.layout.dense], axis=1)
        labels = np.stack([cols[f.name][idx] for f in self.layout.labels], axis=1)
        values, lengths = [], []
        for f in self.layout.sparse:
            off, vals = cols[f.name]
            starts, ends = off[idx], off[idx + 1]
            lens = ends - starts
            total = int(lens.sum())
            # Vectorised jagged gather: position of every output value in the source.
            first = np.cumsum(lens) - lens
            src = np.repeat(starts - first, lens) + np.arange(total)
            values.append(vals[src])
            lengths.append(lens.astype(np.int32))
        extras = {f.name: torch.from_numpy(cols[f.name][idx]) for f in self.layout.extras}
        return Batch(torch.from_numpy(dense), SparseFeatures([f.name for f in self.layout.sparse],
                     torch.from_numpy(np.concatenate(values)), torch.from_numpy(np.concatenate(lengths))),
                     torch.from_numpy(labels), extras=extras)


class ParquetLoader(torch.utils.data.IterableDataset):
    """A careful Parquet + pyarrow loader producing the same Batch (see the module docstring).

    An ``IterableDataset``: row groups are split across DataLoader workers (``i % W``). With
    ``buffer_rows`` at least the table's rows it is a full random permutation in memory; with
    one row group's rows, a row-group shuffle with the smallest buffer.
    """

    def __init__(self, paths: list[str], schema: Schema, batch_size: int, buffer_rows: int, seed: int = 0) -> None:
        super().__init__()
        self.paths = paths
        self.convert = ArrowBatches(schema)
        self.columns = schema.names
        self.batch_size = batch_size
        self.buffer_rows = buffer_rows
        self.seed = seed
        self.units = []
        for p in paths:
            meta = pq.ParquetFile(p).metadata
            self.units += [(p, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        w, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.units))
        mine = [self.units[i] for i in order if i % nw == w]
        files: dict[str, pq.ParquetFile] = {}
        buf: list[dict[str, Any]] = []
        rows = 0
        for path, rg, n in mine:
            f = files.get(path) or files.setdefault(path, pq.ParquetFile(path))
            buf.append(self.convert.columns(f.read_row_group(rg, columns=self.columns)))
            rows += n
            if rows >= self.buffer_rows:
                yield from self._emit(buf, rng)
                buf, rows = [], 0
        if buf:
            yield from self._emit(buf, rng)

    def _emit(self, buf: list[dict[str, Any]], rng: np.random.Generator) -> Iterator[Any]:
        cols = self.convert.concat(buf)
        perm = rng.permutation(self.convert.rows(cols))
        for s in range(0, len(perm), self.batch_size):
            yield self.convert.batch(cols, perm[s: s + self.batch_size])


def _status_bytes(field: str, pid: int | str = "self") -> float:
    """A memory figure of /proc/PID/status in bytes (0 where the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def _vm_hwm(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM, bytes) of a process; reset at exec, unlike ru_maxrss,
    which a child inherits from the process that forked it."""
    return _status_bytes("VmHWM", pid)


def _note_worker_rss(start_rss: Any, worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a worker's RSS as forked, before it loads anything."""
    start_rss[worker_id] = _status_bytes("VmRSS")


def _cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def random_order_figures(rows: int, batch_size: int, unit_rows: np.ndarray) -> dict[str, float]:
    """What a uniformly random order of ``rows`` rows would show: the batch neighbour rate
    (two random distinct positions at most ``batch_size`` apart) and the expected distinct
    units in a batch (units of ``unit_rows`` rows each; sampling with replacement, close
    enough for batches much smaller than the table)."""
    n, b = float(rows), float(min(batch_size, max(rows - 1, 1)))
    near = (2 * b * n - b * (b + 1)) / (n * (n - 1)) if rows > 1 else 1.0
    units = float(np.sum(1.0 - (1.0 - np.asarray(unit_rows, dtype=np.float64) / n) ** min(batch_size, rows)))
    return {"batch_neighbour_rate": near, "units_per_batch": units}


def order_figures(positions: np.ndarray, batch_rows: list[int], batch_size: int,
                  unit_starts: np.ndarray) -> dict[str, float]:
    """How shuffled a delivered order is.

    Args:
        positions: the table position of every delivered row, in delivery order (a
            permutation of ``0..n-1``).
        batch_rows: the rows of each delivered batch, in order.
        batch_size: the batch size asked for: the distance within which two rows are
            neighbours.
        unit_starts: sorted table positions where the loader's read units (row groups,
            ranges) begin; the first is 0.

    Returns:
        ``spearman``: rank correlation of table and delivery positions; ``neighbour_rate``:
        share of consecutive delivered rows that are adjacent in the table (``|d| == 1``);
        ``batch_neighbour_rate``: share at most ``batch_size`` apart (``|d| <= batch``);
        ``units_per_batch``: mean distinct units per full batch (all batches if none is full).
    """
    n = len(positions)
    # Positions are a permutation of 0..n-1 and so are output positions: Pearson on them is Spearman.
    rho = float(np.corrcoef(positions.astype(np.float64), np.arange(n, dtype=np.float64))[0, 1]) if n > 1 else 0.0
    gaps = np.abs(np.diff(positions))
    unit = np.searchsorted(unit_starts, positions, side="right") - 1
    per_batch = np.array([len(np.unique(u)) for u in np.split(unit, np.cumsum(batch_rows)[:-1])])
    full = np.asarray(batch_rows) == batch_size
    return {"spearman": rho, "neighbour_rate": float(np.mean(gaps == 1)) if n > 1 else 0.0,
            "batch_neighbour_rate": float(np.mean(gaps <= batch_size)) if n > 1 else 0.0,
            "units_per_batch": float(np.mean(per_batch[full] if full.any() else per_batch))}


def _unit_starts(kind: str, info: dict[str, Any], batch_size: int) -> tuple[np.ndarray, str]:
    """Table positions where each loader's read units begin, and what a unit is."""
    if kind.startswith("samplestore"):
        import samplestore as ss

        starts, sizes = [], set()
        for f in ss.open_store(info["store"]).table("criteo").files(with_stats=["row_id"]):
            rg = f.row_group_rows()
            sizes.add(rg[0])
            # row_id is the table position; a file holds consecutive rows, its row groups in order.
            starts += list(int(f.stats["row_id"].min) + np.cumsum([0] + rg[:-1]))
        return np.sort(np.array(starts)), f"row group ({max(sizes):,} rows)"
    if kind == "parquet":
        starts, sizes = [], set()
        for p in sorted(os.listdir(info["parquet"])):
            meta = pq.ParquetFile(os.path.join(info["parquet"], p)).metadata
            col = meta.schema.names.index("row_id")
            for i in range(meta.num_row_groups):
                starts.append(meta.row_group(i).column(col).statistics.min)
                sizes.add(meta.row_group(i).num_rows)
        return np.sort(np.array(starts)), f"row group ({max(sizes):,} rows)"
    # Lance: the ranges LanceDataset's batch sampler reads, also for take(), to compare both orders.
    return np.arange(0, info["rows"], batch_size), f"{batch_size:,}-row range"


def _dataset(kind: str, info: dict[str, Any], batch_size: int, buffer_rows: int) -> Any:
    import samplestore as ss
    from ..torch import SampleDataset

    if kind.startswith("samplestore"):
        # samplestore-impute: the same, with the dense NaNs filled by the snapshot's means.
        impute = dict(impute={"dense": "mean"}, missing_indicators=True) if kind == "samplestore-impute" else {}
        return SampleDataset(ss.open_store(info["store"]).table("criteo"), batch_size=batch_size,
                             shuffle_buffer_rows=buffer_rows, **impute)
    if kind == "parquet":
        paths = sorted(os.path.join(info["parquet"], p) for p in os.listdir(info["parquet"]))
        return ParquetLoader(paths, bench_schema(), batch_size, buffer_rows)
    from .lance_loader import LanceRangeLoader, LanceTakeLoader

    if kind == "lance-ranges":
        return LanceRangeLoader(info["lance"], bench_schema(), batch_size)
    return LanceTakeLoader(info["lance"], bench_schema(), batch_size, info["rows"])


def _measure(kind: str, info: dict[str, Any], workers: int, batch_size: int, buffer_rows: int) -> dict[str, Any]:
    """One configuration, in this (fresh) process: one epoch, timed."""
    import torch

    from ..torch import SampleDataset  # noqa: F401  (imported before the baseline, as for every loader)

    if kind.startswith("lance"):
        import lance.torch.data  # noqa: F401  (its import counts in the baseline, as torch's does)
    base_rss = _vm_hwm()
    ds = _dataset(kind, info, batch_size, buffer_rows)
    # A forked worker starts with fewer resident pages than this process (the libraries' code
    # is faulted in again as it runs), so its peak is compared with its own RSS at start.
    worker_start_rss = multiprocessing.RawArray("d", max(workers, 1))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                         worker_init_fn=functools.partial(_note_worker_rss, worker_start_rss))
    cpu0 = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter() - t0
    # Copy what is kept: a batch's tensors may share one buffer, which a view would pin.
    ids = [first.extras["row_id"].numpy().copy()]
    dense_nan = int(torch.isnan(first.dense).sum())  # shows imputation ran; one batch: negligible time
    worker_peak = np.zeros(max(workers, 1))
    for k, b in enumerate(it):
        ids.append(b.extras["row_id"].numpy().copy())
        if workers and k % 8 == 0:  # workers exit with the epoch: sample their peaks meanwhile
            for i, w in enumerate(getattr(it, "_workers", [])):
                worker_peak[i] = max(worker_peak[i], _vm_hwm(w.pid))
    elapsed = time.perf_counter() - t0
    del it  # the epoch is over: the workers have exited and been reaped
    # Workers count as children once reaped, so this is all the CPU the epoch took.
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    self_rss = _vm_hwm()  # before the figures below, whose temporaries are not the loader's
    out = np.concatenate(ids)
    n = len(out)
    starts, unit = _unit_starts(kind, info, batch_size)
    # Per process doing the loading: the worker with the highest peak, or this process; above
    # import: a worker's growth over its RSS when it started, this process's over its RSS
    # after the imports.
    peak = float(worker_peak.max()) if workers else self_rss
    above = float(np.max(worker_peak - np.asarray(worker_start_rss))) if workers else self_rss - base_rss
    return {
        "loader": kind, "unit": unit, "workers": workers, "buffer_rows": buffer_rows, "rows": n,
        "unique_rows": int(len(np.unique(out))), "samples_per_s": n / elapsed, "seconds": elapsed,
        "first_batch_s": t_first, "cpu_cores": cpu / elapsed, "samples_per_core_s": n / cpu if cpu else 0.0,
        **order_figures(out, [len(x) for x in ids], batch_size, starts),
        "random_order": random_order_figures(info["rows"], batch_size, np.diff(np.append(starts, info["rows"]))),
        "import_rss_mb": base_rss / 1e6, "peak_rss_mb": peak / 1e6, "peak_rss_above_import_mb": above / 1e6,
        "worker_start_rss_mb": float(np.max(worker_start_rss)) / 1e6 if workers else None,
        "first_batch_dense_nan": dense_nan, "first_batch_dense_columns": int(first.dense.shape[1]),
    }


_MEDIAN_KEYS = ("samples_per_s", "seconds", "first_batch_s", "peak_rss_mb", "spearman", "import_rss_mb", "cpu_cores",
                "samples_per_core_s", "peak_rss_above_import_mb", "batch_neighbour_rate", "units_per_batch")


def _median_runs(kind: str, info: dict[str, Any], workers: int, batch_size: int, buffer_rows: int,
                 repeats: int, fresh_processes: bool = True) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        if not fresh_processes:
            # In this process (a quick test's: imports already paid for), through the same JSON.
            runs.append(json.loads(json.dumps(_measure(kind, info, workers, batch_size, buffer_rows))))
            continue
        cmd = [sys.executable, "-m", "samplestore.bench.loader", kind, json.dumps(info),
               str(workers), str(batch_size), str(buffer_rows)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SampleStoreError(f"the loader bench of {kind} with {workers} workers failed (exit {r.returncode}): "
                                   f"{r.stderr.strip()[-2000:]}")
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = dict(runs[0])
    for key in _MEDIAN_KEYS:
        med[key] = float(np.median([x[key] for x in runs]))
    return med


#: The contenders, in the order they are reported.
LOADERS = ("samplestore", "parquet", "lance-ranges", "lance-take")


def _lance_missing() -> str | None:
    """Why the Lance contenders cannot run here, or None when they can."""
    from ..errors import MissingDependency
    from .lance_loader import require_lance

    try:
        require_lance()
    except MissingDependency as exc:
        return str(exc)
    return None


def run_loader_bench(workdir: str, rows: int = 1_000_000, batch_size: int = 4096, buffer_rows: int | None = None,
                     repeats: int = 3, large_buffer_factor: int = 4,
                     loaders: tuple[str, ...] = LOADERS, workers: tuple[int, ...] = (0, 2),
                     fresh_processes: bool = True) -> dict[str, Any]:
    """Make the tables, then measure each loader with each number of ``workers`` (medians of
    ``repeats``), each run in a fresh process (``fresh_processes=False``: in this one, for a quick
    test of the figures, where time to first batch and RSS are not each loader's own).

    samplestore is measured once more with a buffer ``large_buffer_factor`` times larger (0:
    not), for peak RSS where the buffer, not the fixed cost of the imported libraries, dominates. The
    Lance contenders are reported as skipped, with the reason, where pylance is not installed.
    """
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS

    buffer_rows = buffer_rows or DEFAULT_SHUFFLE_BUFFER_ROWS
    lance_missing = _lance_missing() if any(k.startswith("lance") for k in loaders) else None
    skipped = {k: lance_missing for k in loaders if k.startswith("lance") and lance_missing}
    run = [k for k in loaders if k not in skipped]
    info = make_tables(workdir, rows, lance=any(k.startswith("lance") for k in run))
    results = [_median_runs(kind, info, w, batch_size, buffer_rows, repeats, fresh_processes)
               for kind in run for w in workers]
    large_rows = buffer_rows * large_buffer_factor
    large = ([_median_runs("samplestore", info, w, batch_size, large_rows, repeats, fresh_processes) for w in workers]
             if "samplestore" in run and large_buffer_factor else [])
    by = {(r["loader"], r["workers"]): r["samples_per_s"] for r in results}
    ratios = {}
    if ("samplestore", 0) in by:
        one = by[("samplestore", 0)]
        for name, key in (("single_process_vs_parquet", ("parquet", 0)),
                          ("single_process_vs_lance_ranges", ("lance-ranges", 0))):
            if key in by:
                ratios[name] = one / by[key]
        if ("samplestore", 2) in by:
            ratios["two_workers_vs_single"] = by[("samplestore", 2)] / one
    mb = lambda r: r * info["decoded_bytes_per_row"] / 1e6  # noqa: E731
    return {
        "rows": rows, "batch_size": batch_size, "buffer_rows": buffer_rows, "buffer_mb": mb(buffer_rows),
        "decoded_bytes_per_row": info["decoded_bytes_per_row"], "results": results, "skipped": skipped,
        "ratios": ratios, "rss_limit_mb": 1.5 * mb(buffer_rows) + 200,
        "large_buffer": {"buffer_rows": large_rows, "buffer_mb": mb(large_rows), "results": large,
                         "rss_limit_mb": 1.5 * mb(large_rows) + 200},
    }


def run_impute_bench(workdir: str, rows: int = 1_000_000, batch_size: int = 4096, buffer_rows: int | None = None,
                     repeats: int = 5, workers: int = 0, dense_missing: float = 0.05,
                     fresh_processes: bool = True) -> dict[str, Any]:
    """SampleDataset with and without ``impute={"dense": "mean"}, missing_indicators=True``
    on the same table, ``dense_missing`` of its dense values NaN: ``repeats`` runs of each,
    alternating (which goes first alternates too), each in a fresh process (in this one
    without ``fresh_processes``: a quick test's); medians."""
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS

    buffer_rows = buffer_rows or DEFAULT_SHUFFLE_BUFFER_ROWS
    info = make_tables(workdir, rows, dense_missing=dense_missing)
    kinds = ("samplestore", "samplestore-impute")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for i in range(repeats):
        for kind in (kinds if i % 2 == 0 else kinds[::-1]):
            runs[kind].append(_median_runs(kind, info, workers, batch_size, buffer_rows, 1, fresh_processes))
    med = {k: float(np.median([r["samples_per_s"] for r in runs[k]])) for k in kinds}
    # Runs next to each other in time share the machine's load: their ratio is steadier on a
    # shared machine than the ratio of the medians.
    pairs = [b["samples_per_s"] / a["samples_per_s"] for a, b in zip(runs[kinds[0]], runs[kinds[1]])]
    return {"rows": rows, "batch_size": batch_size, "buffer_rows": buffer_rows, "workers": workers,
            "dense_missing": dense_missing, "repeats": repeats, "fresh_processes": fresh_processes, "runs": runs,
            "samples_per_s": {k: [r["samples_per_s"] for r in runs[k]] for k in kinds},
            "median_samples_per_s": med, "ratio": med["samplestore-impute"] / med["samplestore"],
            "pair_ratios": pairs, "median_pair_ratio": float(np.median(pairs))}


def format_impute_markdown(res: dict[str, Any]) -> str:
    """The imputation benchmark as a markdown table."""
    lines = [f"{res['rows']:,} Criteo-like rows, {res['dense_missing']:.0%} of the 13 dense values NaN, batch "
             f"{res['batch_size']:,}, shuffle buffer {res['buffer_rows']:,} rows, {res['workers']} DataLoader workers; "
             f"{res['repeats']} runs each, alternating, each "
             f"{'a fresh process' if res.get('fresh_processes', True) else 'in the same process'}; medians.", "",
             "| loader | median samples/s | runs |", "|---|---:|---|"]
    for kind, label in (("samplestore", "SampleDataset"),
                        ("samplestore-impute", 'SampleDataset(impute={"dense": "mean"}, missing_indicators=True)')):
        each = ", ".join(f"{x:,.0f}" for x in res["samples_per_s"][kind])
        lines.append(f"| {label} | {res['median_samples_per_s'][kind]:,.0f} | {each} |")
    lines += ["", f"With imputation / without: **{res['ratio']:.3f}x** (medians); median of the ratios of runs made "
              f"one after the other: {res['median_pair_ratio']:.3f}x "
              f"({', '.join(f'{x:.2f}' for x in res['pair_ratios'])})."]
    return "\n".join(lines)


def format_markdown(res: dict[str, Any]) -> str:
    """The loader benchmark as a markdown table."""
    b = res["batch_size"]
    lines = [
        f"{res['rows']:,} Criteo-like rows, batch {b:,}, shuffle buffer {res['buffer_rows']:,} rows "
        f"(~{res['buffer_mb']:.0f} MB decoded) for samplestore and Parquet (Lance reads by batch-size range or by "
        "take()); medians of the runs. CPU: cores kept busy during the epoch (all processes); per core-s: samples "
        "per CPU-second. Peak RSS: of the process doing the loading; above import: less that process's RSS after "
        "importing its libraries (a worker: less its RSS when it was forked). Adjacent: consecutive delivered rows next to each other in the table; neighbour "
        f"rate: at most {b:,} apart. Units/batch: distinct read units (the unit column) in a full batch, and what a "
        "uniformly random order would give.",
        "",
        "| loader | unit | workers | samples/s | per core-s | first batch | CPU | peak RSS | above import | Spearman "
        "| adjacent | neighbour rate | units/batch (random) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["results"]:
        rnd = r["random_order"]
        lines.append(f"| {r['loader']} | {r['unit']} | {r['workers']} | {r['samples_per_s']:,.0f} | "
                     f"{r['samples_per_core_s']:,.0f} | {r['first_batch_s']:.2f} s | {r['cpu_cores']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} MB | {r['peak_rss_above_import_mb']:.0f} MB | {r['spearman']:+.3f} | "
                     f"{r['neighbour_rate']:.1e} | {r['batch_neighbour_rate']:.3f} | "
                     f"{r['units_per_batch']:,.1f} ({rnd['units_per_batch']:,.1f}) |")
    if res["results"]:
        lines += ["", f"A uniformly random order has a neighbour rate of "
                  f"{res['results'][0]['random_order']['batch_neighbour_rate']:.4f} here."]
    for kind, why in res.get("skipped", {}).items():
        lines += ["", f"{kind}: skipped ({why})."]
    q = res["ratios"]
    said = {"single_process_vs_parquet": "samplestore single process / Parquet single process",
            "single_process_vs_lance_ranges": "samplestore single process / Lance ranges single process",
            "two_workers_vs_single": "samplestore 2 workers / 1 process"}
    text = "; ".join(f"{said[k]}: **{v:.2f}x**" for k, v in q.items())
    imports = ", ".join(f"{r['loader']} ~{r['import_rss_mb']:.0f} MB" for r in res["results"] if r["workers"] == 0)
    lines += ["", (text + ". " if text else "") + f"RSS target per worker (1.5 x buffer + 200 MB): "
              f"{res['rss_limit_mb']:.0f} MB; RSS of a process after importing torch, pyarrow and the loader's "
              f"library: {imports}."]
    big = res.get("large_buffer")
    if big and big["results"]:
        lines += ["", f"samplestore with a {big['buffer_rows']:,}-row buffer (~{big['buffer_mb']:.0f} MB decoded): "
                  "RSS target " f"{big['rss_limit_mb']:.0f} MB.", "",
                  "| workers | samples/s | first batch | peak RSS per loading process | above import |",
                  "|---:|---:|---:|---:|---:|"]
        for r in big["results"]:
            lines.append(f"| {r['workers']} | {r['samples_per_s']:,.0f} | {r['first_batch_s']:.2f} s | "
                         f"{r['peak_rss_mb']:.0f} MB | {r['peak_rss_above_import_mb']:.0f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, info_json, workers, batch_size, buffer_rows = sys.argv[1:6]
    print(json.dumps(_measure(kind, json.loads(info_json), int(workers), int(batch_size), int(buffer_rows))))

"""Loader benchmark: SampleDataset against a careful Parquet + pyarrow loader on the same data.

The baseline is what a careful engineer writes by hand: Parquet files with 65,536-row row
groups, a seeded per-epoch row-group order, a shuffle buffer of the same number of rows as
ours (whole row groups, fully permuted), pyarrow's own decode threads, and vectorised numpy
conversion into the same :class:`~samplestore.torch.Batch` (KeyedJaggedTensor layout, the
jagged gather done with ``np.repeat`` index arithmetic: no per-row Python).

Every configuration runs in a fresh subprocess (``python -m samplestore.bench.loader``) so
that time to first batch and peak RSS are its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .. import datagen
from ..schema import Scalar, Schema

__all__ = ["make_tables", "ParquetLoader", "run_loader_bench", "format_markdown"]

PARQUET_ROW_GROUP_ROWS = 65_536


def bench_schema() -> Schema:
    """Criteo-like features plus a row id (delivered as an extra, to measure the shuffle)."""
    base = datagen.criteo_schema()
    return Schema([Scalar("row_id", "int64", nullable=False), *base.features])


def make_tables(workdir: str, rows: int, seed: int = 0) -> dict[str, Any]:
    """Write the same generated rows as a samplestore table and as Parquet files."""
    import samplestore as ss

    schema = bench_schema()
    store = ss.open_store(os.path.join(workdir, "store"), create=True)
    if "criteo" in store.tables():
        store.drop_table("criteo")
    table = store.create_table("criteo", schema)
    pq_dir = os.path.join(workdir, "parquet")
    os.makedirs(pq_dir, exist_ok=True)
    chunk = 500_000
    arrow_bytes = 0
    for k, start in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - start)
        data = datagen.criteo_like(n, seed=seed + k)
        data = data.add_column(0, "row_id", pa.array(np.arange(start, start + n)))
        data = schema.conform(data)
        arrow_bytes += data.nbytes
        table.append(data)
        pq.write_table(data, os.path.join(pq_dir, f"part-{k:04d}.parquet"), compression="zstd",
                       row_group_size=PARQUET_ROW_GROUP_ROWS)
    return {"store": store.root, "parquet": pq_dir, "rows": rows, "decoded_bytes_per_row": arrow_bytes / rows}


class ParquetLoader(torch.utils.data.IterableDataset):
    """A careful Parquet + pyarrow loader producing the same Batch (see the module docstring).

    An ``IterableDataset``: row groups are split across DataLoader workers (``i % W``).
    """

    def __init__(self, paths: list[str], schema: Schema, batch_size: int, buffer_rows: int, seed: int = 0) -> None:
        from ..torch.window import FeatureLayout

        super().__init__()
        self.paths = paths
        self.layout = FeatureLayout.of(list(schema))
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
            buf.append(self._numpy(f.read_row_group(rg, columns=self.columns)))
            rows += n
            if rows >= self.buffer_rows:
                yield from self._emit(buf, rng)
                buf, rows = [], 0
        if buf:
            yield from self._emit(buf, rng)

    def _numpy(self, t: pa.Table) -> dict[str, Any]:
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

    def _emit(self, buf: list[dict[str, Any]], rng: np.random.Generator) -> Iterator[Any]:
        cols: dict[str, Any] = {}
        for f in self.layout.all:
            parts = [b[f.name] for b in buf]
            if isinstance(parts[0], tuple):
                shift = np.cumsum([0] + [len(p[1]) for p in parts[:-1]])
                off = np.concatenate([parts[0][0][:1]] + [p[0][1:] + s for p, s in zip(parts, shift)])
                cols[f.name] = (off, np.concatenate([p[1] for p in parts]))
            else:
                cols[f.name] = np.concatenate(parts)
        n = len(cols[self.layout.labels[0].name])
        perm = rng.permutation(n)
        for s in range(0, n, self.batch_size):
            yield self._batch(cols, perm[s: s + self.batch_size])

    def _batch(self, cols: dict[str, Any], idx: np.ndarray) -> Any:
        import torch

        from ..torch.batch import Batch, SparseFeatures

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


def _vm_hwm(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM, bytes) of a process; reset at exec, unlike ru_maxrss,
    which a child inherits from the process that forked it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _measure(kind: str, store: str, parquet: str, workers: int, batch_size: int, buffer_rows: int) -> dict[str, Any]:
    """One configuration, in this (fresh) process: one epoch, timed."""
    import torch

    import samplestore as ss
    from ..torch import SampleDataset

    base_rss = _vm_hwm()
    if kind == "samplestore":
        ds = SampleDataset(ss.open_store(store).table("criteo"), batch_size=batch_size, shuffle_buffer_rows=buffer_rows)
    else:
        paths = sorted(os.path.join(parquet, p) for p in os.listdir(parquet))
        ds = ParquetLoader(paths, bench_schema(), batch_size, buffer_rows)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    cpu0 = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter() - t0
    # Copy what is kept: a batch's tensors may share one buffer, which a view would pin.
    ids = [first.extras["row_id"].numpy().copy()]
    worker_peak = 0.0
    for k, b in enumerate(it):
        ids.append(b.extras["row_id"].numpy().copy())
        if workers and k % 8 == 0:  # workers exit with the epoch: sample their peaks meanwhile
            worker_peak = max([worker_peak] + [_vm_hwm(w.pid) for w in getattr(it, "_workers", [])])
    elapsed = time.perf_counter() - t0
    del it  # the epoch is over: the workers have exited and been reaped
    # Workers count as children once reaped, so this is all the CPU the epoch took.
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    self_rss = _vm_hwm()  # before the figures below, whose temporaries are not the loader's
    out = np.concatenate(ids)
    n = len(out)
    # row_id is the table position, and output positions are 0..n-1: Pearson on them is Spearman.
    rho = float(np.corrcoef(out.astype(np.float64), np.arange(n, dtype=np.float64))[0, 1])
    return {
        "loader": kind, "workers": workers, "buffer_rows": buffer_rows, "rows": n, "unique_rows": int(len(np.unique(out))),
        "samples_per_s": n / elapsed, "seconds": elapsed, "first_batch_s": t_first, "cpu_cores": cpu / elapsed,
        "spearman": rho, "neighbour_rate": float(np.mean(np.abs(np.diff(out)) == 1)),
        "import_rss_mb": base_rss / 1e6,
        # Per process doing the loading: the worker with the highest peak, or this process.
        "peak_rss_mb": (worker_peak if workers else self_rss) / 1e6,
    }


def _median_runs(kind: str, info: dict[str, Any], workers: int, batch_size: int, buffer_rows: int,
                 repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, "-m", "samplestore.bench.loader", kind, info["store"], info["parquet"],
               str(workers), str(batch_size), str(buffer_rows)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = dict(runs[0])
    for key in ("samples_per_s", "seconds", "first_batch_s", "peak_rss_mb", "spearman", "import_rss_mb", "cpu_cores"):
        med[key] = float(np.median([x[key] for x in runs]))
    return med


def run_loader_bench(workdir: str, rows: int = 2_000_000, batch_size: int = 4096, buffer_rows: int | None = None,
                     repeats: int = 3, large_buffer_factor: int = 4) -> dict[str, Any]:
    """Make the tables, then measure each loader with 0 and 2 workers (medians of ``repeats``).

    samplestore is measured once more with a buffer ``large_buffer_factor`` times larger, for
    peak RSS where the buffer, not the fixed cost of the imported libraries, dominates.
    """
    from ..torch import DEFAULT_SHUFFLE_BUFFER_ROWS

    buffer_rows = buffer_rows or DEFAULT_SHUFFLE_BUFFER_ROWS
    info = make_tables(workdir, rows)
    results = [_median_runs(kind, info, workers, batch_size, buffer_rows, repeats)
               for kind in ("samplestore", "parquet") for workers in (0, 2)]
    large_rows = buffer_rows * large_buffer_factor
    large = [_median_runs("samplestore", info, workers, batch_size, large_rows, repeats) for workers in (0, 2)]
    by = {(r["loader"], r["workers"]): r for r in results}
    mb = lambda r: r * info["decoded_bytes_per_row"] / 1e6  # noqa: E731
    return {
        "rows": rows, "batch_size": batch_size, "buffer_rows": buffer_rows, "buffer_mb": mb(buffer_rows),
        "decoded_bytes_per_row": info["decoded_bytes_per_row"], "results": results,
        "ratios": {
            "single_process_vs_parquet": by[("samplestore", 0)]["samples_per_s"] / by[("parquet", 0)]["samples_per_s"],
            "two_workers_vs_single": by[("samplestore", 2)]["samples_per_s"] / by[("samplestore", 0)]["samples_per_s"],
        },
        "rss_limit_mb": 1.5 * mb(buffer_rows) + 200,
        "large_buffer": {"buffer_rows": large_rows, "buffer_mb": mb(large_rows), "results": large,
                         "rss_limit_mb": 1.5 * mb(large_rows) + 200},
    }


def format_markdown(res: dict[str, Any]) -> str:
    """The loader benchmark as a markdown table."""
    lines = [
        f"{res['rows']:,} Criteo-like rows, batch {res['batch_size']:,}, shuffle buffer {res['buffer_rows']:,} rows "
        f"(~{res['buffer_mb']:.0f} MB decoded) for both loaders; medians of the runs. CPU: cores kept busy "
        "during the epoch (all processes).",
        "",
        "| loader | workers | samples/s | first batch | CPU | peak RSS | Spearman | neighbour rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["results"]:
        lines.append(f"| {r['loader']} | {r['workers']} | {r['samples_per_s']:,.0f} | {r['first_batch_s']:.2f} s | "
                     f"{r.get('cpu_cores', float('nan')):.2f} | {r['peak_rss_mb']:.0f} MB | {r['spearman']:+.3f} | "
                     f"{r['neighbour_rate']:.1e} |")
    q = res["ratios"]
    lines += ["", f"samplestore single process / Parquet single process: **{q['single_process_vs_parquet']:.2f}x**; "
              f"samplestore 2 workers / 1 process: **{q['two_workers_vs_single']:.2f}x**. "
              f"RSS target per worker (1.5 x buffer + 200 MB): {res['rss_limit_mb']:.0f} MB; every process "
              f"starts at ~{res['results'][0]['import_rss_mb']:.0f} MB after importing torch and pyarrow."]
    big = res.get("large_buffer")
    if big:
        lines += ["", f"samplestore with a {big['buffer_rows']:,}-row buffer (~{big['buffer_mb']:.0f} MB decoded): "
                  "RSS target " f"{big['rss_limit_mb']:.0f} MB.", "",
                  "| workers | samples/s | first batch | peak RSS per loading process |", "|---:|---:|---:|---:|"]
        for r in big["results"]:
            lines.append(f"| {r['workers']} | {r['samples_per_s']:,.0f} | {r['first_batch_s']:.2f} s | "
                         f"{r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    kind, store, parquet, workers, batch_size, buffer_rows = sys.argv[1:7]
    print(json.dumps(_measure(kind, store, parquet, int(workers), int(batch_size), int(buffer_rows))))

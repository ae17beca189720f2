"""``samplestore bench``: run the benchmarks and write JSON, a markdown table and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from typing import Any, Callable

__all__ = ["run_all", "SIZES", "PARTS"]

#: The benchmarks, in the order ``samplestore bench`` (all) runs them.
PARTS = ("format", "loader", "impute", "train-quality", "compaction", "catalog", "sequence", "remote",
         "shuffle-units", "device")

#: Sizes of each benchmark: full (the figures we quote) and --quick (under 5 minutes here;
#: train-quality --quick well under 2: 9 one-epoch trainings of 72,000 rows).
SIZES = {
    "full": {"format": dict(rows=1_000_000, wide_rows=100_000, wide_cols=5_000, repeats=5),
             "loader": dict(rows=1_000_000, repeats=3),
             "impute": dict(rows=1_000_000, repeats=7),
             "train-quality": dict(rows=1_000_000, seeds=3),
             "compaction": dict(files=1000),
             "catalog": dict(files=10_000),
             "remote": dict(rows=1_000_000, wide_rows=5_000, wide_cols=5_000),
             "sequence": dict(rows=400_000, train_batches=40),
             "shuffle-units": dict(rows=1_000_000, repeats=3),
             "device": dict(rows=1_000_000, repeats=3)},
    "quick": {"format": dict(rows=200_000, wide_rows=20_000, wide_cols=5_000, repeats=3),
              "loader": dict(rows=400_000, repeats=1),
              "impute": dict(rows=200_000, repeats=7),
              "train-quality": dict(rows=80_000, seeds=3),
              "compaction": dict(files=300),
              "catalog": dict(files=2_000),
              "remote": dict(rows=200_000, wide_rows=2_000, wide_cols=5_000),
              "sequence": dict(rows=100_000),
              "shuffle-units": dict(rows=200_000, unit_rows=(8_192, 1_024), repeats=1),
              "device": dict(rows=200_000, repeats=1)},
}


def _machine() -> dict[str, Any]:
    import numpy
    import pyarrow
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "python": platform.python_version(),
            "torch": torch.__version__, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _git_commit() -> str:
    """The commit of the git checkout this package runs from (``git rev-parse HEAD``), with
    ``+uncommitted`` when its files differ from it; "unknown" when the package is not in a
    checkout or git is missing (provenance is never worth failing a run for)."""
    here = os.path.dirname(os.path.abspath(__file__))

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", os.path.basename(__file__))  # a tracked file, not a venv in a repo
        commit = git("rev-parse", "HEAD")
        return commit + ("+uncommitted" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _chart(results: dict[str, Any], path: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'samplestore[plot]'): chart skipped"
    panels = []
    if "format" in results:
        f = results["format"]
        panels.append(("write MB/s", f["write_mb_s"]))
        panels.append(("full read samples/s", f["read_samples_s"]))
        panels.append(("open+read 10 of 5,000 cols (ms)", {k: v * 1e3 for k, v in f["open_read_10_s"].items()}))
    if "loader" in results:
        for w in (0, 2):
            panels.append((f"loader samples/s, {w} workers",
                           {r["loader"]: r["samples_per_s"] for r in results["loader"]["results"] if r["workers"] == w}))
    if "compaction" in results:
        panels.append(("loader samples/s: small files vs compacted", results["compaction"]["loader_samples_per_s"]))
    if "catalog" in results:
        panels.append((f"plan a scan of {results['catalog']['files']:,} files (s)", results["catalog"]["plan_seconds"]))
    if "sequence" in results:
        b = results["sequence"]["bytes_per_sample"]
        panels.append(("sequence: bytes/sample sorted by (user, ts)", {"ssf": b["ssf_sorted"], "parquet": b["parquet_sorted"]}))
        panels.append(("sequence: bytes/sample in time order", {"ssf": b["ssf_time_order"],
                                                                 "parquet": b["parquet_time_order"]}))
    if not panels:
        return "nothing to chart"
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, vals) in zip(axes if len(panels) > 1 else [axes], panels):
        names = list(vals)
        ax.bar(names, [vals[n] for n in names], color=["#2a7ab0", "#b0b0b0"][: len(names)])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def run_all(out_dir: str, which: list[str], quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the chosen benchmarks; write bench.json, bench.md and bench.png into ``out_dir``."""
    from . import catalog, compaction, device, format, loader, remote, sequence, shuffle_units, train_quality

    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, "work")
    sizes = SIZES["quick" if quick else "full"]
    mods = {"format": (format.run_format_bench, format.format_markdown),
            "loader": (loader.run_loader_bench, loader.format_markdown),
            "impute": (loader.run_impute_bench, loader.format_impute_markdown),
            "train-quality": (train_quality.run_train_quality_bench, train_quality.format_markdown),
            "compaction": (compaction.run_compaction_bench, compaction.format_markdown),
            "catalog": (catalog.run_catalog_bench, catalog.format_markdown),
            "remote": (remote.run_remote_bench, remote.format_markdown),
            "sequence": (sequence.run_sequence_bench, sequence.format_markdown),
            "shuffle-units": (shuffle_units.run_shuffle_units_bench, shuffle_units.format_markdown),
            "device": (device.run_device_bench, device.format_markdown)}
    results: dict[str, Any] = {}
    md = [f"# samplestore bench{' --quick' if quick else ''}", ""]
    machine = _machine()
    md += [f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, GPU: {machine['gpu']}; "
           f"Python {machine['python']}, torch {machine['torch']}, pyarrow {machine['pyarrow']}.", ""]
    for name in which:
        run, fmt = mods[name]
        t0 = time.perf_counter()
        log(f"bench {name}: running ({sizes[name]})")
        res = run(os.path.join(work, name), **sizes[name])
        res["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = res
        md += [f"## {name}", "", fmt(res), "", f"({res['seconds']} s)", ""]
        log(f"bench {name}: done in {res['seconds']} s")
    doc = {"machine": machine, "quick": quick, "sizes": {k: sizes[k] for k in which}, "results": results,
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_commit": _git_commit()}
    md[1:1] = ["", f"Finished {doc['finished_at']}, samplestore commit {doc['git_commit']}."]
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(doc, f, indent=1)
    png = os.path.join(out_dir, "bench.png")
    note = _chart(results, png)
    if note:
        md += [f"_{note}_", ""]
        log(note)
        if os.path.exists(png):  # a chart of an earlier run would not match these figures
            os.remove(png)
    doc["chart"] = None if note else png
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write("\n".join(md))
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return doc

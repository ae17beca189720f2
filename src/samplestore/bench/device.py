"""Device benchmark: the GPU input path (pinned memory, :class:`DevicePrefetcher`) on CUDA.

Measures, on the loader benchmark's Criteo-like table:

- the host-to-device copy speed of one batch's bytes, as one tensor from pageable and from
  pinned memory (the ceiling the input path works against);
- one epoch of ``SampleDataset`` per number of DataLoader workers, delivered (a) to the CPU,
  (b) to the GPU by a synchronous ``batch.to("cuda")`` from pageable memory, and (c) to the GPU
  by ``DataLoader(pin_memory=True)`` and :class:`~samplestore.torch.DevicePrefetcher`;
- the same two GPU paths with a stand-in training step of fixed length on the GPU per batch,
  which shows whether the copies overlap the compute (a step-bound epoch takes
  ``batches x step`` when they do).

Where no CUDA device is present the benchmark reports itself as skipped.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from .loader import make_tables

__all__ = ["run_device_bench", "format_markdown"]


def _batch_bytes(batch: Any) -> int:
    total = 0

    def add(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    batch.map_tensors(add)
    return total


def _copy_gb_s(nbytes: int, pinned: bool, repeats: int = 20) -> float:
    """Host-to-device GB/s of one ``nbytes`` tensor (median of ``repeats`` synchronised copies)."""
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    host.fill_(1)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dev.copy_(host, non_blocking=pinned)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dev.copy_(host, non_blocking=pinned)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e9


def _step_kernel(step_ms: float) -> Any:
    """A GPU step of about ``step_ms`` (a chain of matrix products, calibrated here)."""
    a = torch.randn(2048, 2048, device="cuda")

    def run(n: int) -> None:
        x = a
        for _ in range(n):
            x = torch.tanh(x @ a)

    run(2)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(20)
    torch.cuda.synchronize()
    per = (time.perf_counter() - t0) / 20
    n = max(1, round(step_ms / 1e3 / per))
    return lambda: run(n), n * per * 1e3


def _epoch(table: Any, workers: int, batch_size: int, mode: str, step: Any = None) -> dict[str, Any]:
    from ..torch import DevicePrefetcher, SampleDataset

    ds = SampleDataset(table, batch_size=batch_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                         pin_memory=(mode == "prefetch"))
    rows = nbytes = batches = 0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    if mode == "cpu":
        it = iter(loader)
    elif mode == "sync":
        it = (b.to("cuda") for b in loader)
    else:
        it = iter(DevicePrefetcher(loader, "cuda"))
    for b in it:
        if mode != "cpu":
            assert b.dense.is_cuda  # the benchmark measures what it says
        if step is not None:
            step()
        rows += len(b)
        nbytes += _batch_bytes(b)
        batches += 1
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"mode": mode, "workers": workers, "rows": rows, "batches": batches, "seconds": elapsed,
            "samples_per_s": rows / elapsed, "delivered_gb_s": nbytes / elapsed / 1e9,
            "batch_mb": nbytes / max(batches, 1) / 1e6}


def run_device_bench(workdir: str, rows: int = 1_000_000, batch_size: int = 4096, workers: tuple[int, ...] = (0, 2, 4),
                     repeats: int = 3, step_ms: float = 10.0) -> dict[str, Any]:
    """Run the device benchmark (see the module docstring); medians of ``repeats`` epochs."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (torch.cuda.is_available() is False)"}
    import samplestore as ss
    from ..torch import SampleDataset

    info = make_tables(workdir, rows)
    table = ss.open_store(info["store"]).table("criteo")
    one = next(iter(SampleDataset(table, batch_size=batch_size)))
    nbytes = _batch_bytes(one)
    res: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "rows": rows, "batch_size": batch_size,
                           "batch_mb": nbytes / 1e6, "copy_gb_s": {"pageable": _copy_gb_s(nbytes, False),
                                                                   "pinned": _copy_gb_s(nbytes, True)}}

    def median(**kw: Any) -> dict[str, Any]:
        runs = [_epoch(table, batch_size=batch_size, **kw) for _ in range(repeats)]
        out = dict(runs[0])
        for key in ("seconds", "samples_per_s", "delivered_gb_s"):
            out[key] = float(np.median([r[key] for r in runs]))
        return out

    res["epochs"] = [median(workers=w, mode=m) for w in workers for m in ("cpu", "sync", "prefetch")]
    step, measured_ms = _step_kernel(step_ms)
    res["step_ms"] = measured_ms
    w = max(workers)
    res["with_step"] = [median(workers=w, mode=m, step=step) for m in ("sync", "prefetch")]
    res["step_bound_s"] = res["with_step"][0]["batches"] * measured_ms / 1e3
    return res


def format_markdown(res: dict[str, Any]) -> str:
    """The device benchmark as markdown."""
    if "skipped" in res:
        return f"Skipped: {res['skipped']}."
    c = res["copy_gb_s"]
    lines = [f"{res['gpu']}; {res['rows']:,} Criteo-like rows, batch {res['batch_size']:,} "
             f"({res['batch_mb']:.2f} MB of tensors). One batch's bytes copied host to device as one tensor: "
             f"pageable {c['pageable']:.1f} GB/s, pinned {c['pinned']:.1f} GB/s. Medians of the epochs; "
             "cpu: batches left on the CPU; sync: `batch.to('cuda')` from pageable memory; prefetch: "
             "`DataLoader(pin_memory=True)` + `DevicePrefetcher`.", "",
             "| workers | path | samples/s | delivered GB/s |", "|---:|---|---:|---:|"]
    for r in res["epochs"]:
        lines.append(f"| {r['workers']} | {r['mode']} | {r['samples_per_s']:,.0f} | {r['delivered_gb_s']:.2f} |")
    lines += ["", f"With a GPU step of {res['step_ms']:.1f} ms per batch ({res['with_step'][0]['workers']} workers; "
              f"the steps alone take {res['step_bound_s']:.1f} s an epoch):", "",
              "| path | epoch | samples/s |", "|---|---:|---:|"]
    for r in res["with_step"]:
        lines.append(f"| {r['mode']} | {r['seconds']:.1f} s | {r['samples_per_s']:,.0f} |")
    return "\n".join(lines)

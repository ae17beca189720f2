"""Benchmarks of samplestore against Parquet baselines measured in the same run.

Each module measures one concern (``format``; later ``loader``, ``compaction``) and returns a
plain dict of figures; ``samplestore bench`` and ``benchmarks/`` both use them.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

__all__ = ["median_seconds"]


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 0) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (the figure we quote: robust to noise),
    after ``warmup`` untimed calls (first-call costs: lazy imports, growing memory pools)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

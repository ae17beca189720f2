"""samplestore on Ray: write a ``ray.data.Dataset`` into a table, read a table as one,
compact and ingest with Ray tasks (``pip install 'samplestore[ray]'``).

Every task reaches the table's store by what it is opened with (a root URI such as
``s3://bucket/prefix``, the catalog URI, the store's storage with its options), never by the
driver's memory: a store on the driver's local disk works on one host only; a store on
object storage with a PostgreSQL catalog works on a cluster. Tasks write data files under
final, unique names that carry the driver's writer lease (GC leaves them alone while it is
live) and return their catalog entries as plain dicts; only the driver commits, so a failed
or retried task never makes a row visible twice, and a failed job commits nothing.

- :func:`write` / :class:`SampleStoreDatasink`: a dataset's rows as ONE snapshot.
- :func:`read` / :class:`SampleStoreDatasource`: a table (one snapshot, leased) as a dataset.
- :func:`compact`: ``Table.compact(executor="ray")``; :func:`ingest`: files as one commit.

Training on Ray Train needs nothing from here: ``SampleDataset`` takes rank and world size
from ``torch.distributed``, which ``ray.train.torch.TorchTrainer`` sets up in each worker
(see ``examples/ray_train.py``).
"""

from __future__ import annotations

from ..extras import require_extra

require_extra("ray", "samplestore.ray")

from .compaction import compact, ingest  # noqa: E402
from .sink import SampleStoreDatasink, write  # noqa: E402
from .source import SampleStoreDatasource, read  # noqa: E402

__all__ = ["write", "read", "compact", "ingest", "SampleStoreDatasink", "SampleStoreDatasource"]

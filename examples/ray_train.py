"""Train the demo's DLRM on Ray Train: samples written by Ray tasks, read by TorchTrainer workers.

    pip install 'samplestore[ray,torch]'
    python examples/ray_train.py --root /tmp/ray-demo [--rows 200000] [--workers 2] [--epochs 2]
    # a store many hosts reach: --root s3://bucket/prefix --catalog postgresql://user@host/db
    # (storage options such as an endpoint: SAMPLESTORE_S3_ENDPOINT=host:port for this script)

1. A Ray dataset of Criteo-like samples (``samplestore.datagen``) is written into a table with
   ``samplestore.ray.write``: the write tasks encode files on the store, the driver commits
   them as ONE snapshot.
2. ``ray.train.torch.TorchTrainer`` starts ``--workers`` training workers. Each opens the store
   by URI and makes a ``SampleDataset``: Ray Train set up ``torch.distributed`` in the worker,
   so the dataset takes its rank and world size from it, and each worker reads its exact share
   of every epoch (no row twice, none left out).
"""

from __future__ import annotations

import argparse
import os
import time


def train_loop(config: dict) -> None:
    """One Ray Train worker."""
    import ray.train
    import torch.distributed as dist

    import samplestore as ss
    from samplestore import datagen
    from samplestore.demo import DLRM, Trainer
    from samplestore.torch import SampleDataset

    table = ss.open_store(config["root"], catalog=config["catalog"],
                          storage_options=config["storage_options"]).table("samples")
    # Every rank reads the snapshot the driver names: made on their own, datasets could pin
    # different snapshots (an append or a compaction in between) and the shards would not add up.
    ds = SampleDataset(table, batch_size=config["batch_size"], seed=0, snapshot=config["snapshot"])
    rank, world = ds.rank_world()  # from torch.distributed, which Ray Train initialised
    model = DLRM([f"c{i}" for i in range(datagen.NUM_SPARSE)], num_dense=datagen.NUM_DENSE)
    trainer = Trainer(model)
    for epoch in range(config["epochs"]):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        loss, rows = trainer.epoch(ds)
        seen = torch_sum(rows)
        if rank == 0:
            print(f"epoch {epoch}: loss {loss:.4f} on rank 0; {seen:,} samples over {world} workers "
                  f"({seen / (time.perf_counter() - t0):,.0f} samples/s)", flush=True)
        ray.train.report({"epoch": epoch, "loss": loss, "samples": seen})
    ds.close()
    dist.barrier()


def torch_sum(n: int) -> int:
    """``n`` summed over the workers."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([n], dtype=torch.int64)
    dist.all_reduce(t)
    return int(t.item())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="store root: a folder (one host) or s3://bucket/prefix")
    p.add_argument("--catalog", help="catalog URI (required for a remote root), e.g. postgresql://user@host/db")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--address", help="Ray cluster address (default: start a local one)")
    a = p.parse_args()

    import tempfile

    import numpy as np
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    import samplestore as ss
    import samplestore.ray as ssr
    from samplestore import datagen

    endpoint = os.environ.get("SAMPLESTORE_S3_ENDPOINT")
    options = {"endpoint_override": endpoint, "scheme": "http"} if endpoint else None
    ray.init(address=a.address, include_dashboard=False)
    store = ss.open_store(a.root, create=True, catalog=a.catalog, storage_options=options)
    if "samples" in store.tables():
        store.drop_table("samples")
    table = store.create_table("samples", datagen.criteo_schema())

    def make(batch):  # in the Ray tasks: Criteo-like samples, seeded by the block's first id
        first = int(np.asarray(batch["id"])[0])
        return datagen.criteo_like(len(batch["id"]), seed=first)

    t0 = time.perf_counter()
    blocks = max(2, a.rows // 25_000)
    ds = ray.data.range(a.rows, override_num_blocks=blocks).map_batches(make, batch_format="pyarrow", batch_size=None)
    sid = ssr.write(ds, table)
    print(f"wrote {table.count():,} samples as snapshot {sid} ({len(table.files())} files) in "
          f"{time.perf_counter() - t0:.1f} s")

    config = {"root": a.root, "catalog": a.catalog or store.catalog_location, "storage_options": options,
              "batch_size": a.batch_size, "epochs": a.epochs, "snapshot": sid}
    trainer = TorchTrainer(train_loop, train_loop_config=config,
                           scaling_config=ScalingConfig(num_workers=a.workers, use_gpu=False),
                           run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="ray-results-"), name="samplestore"))
    result = trainer.fit()
    print(f"done: {result.metrics}")


if __name__ == "__main__":
    main()

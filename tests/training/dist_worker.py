"""One rank of the distributed test (started by torchrun): writes what it delivered."""

import json
import sys

import torch
import torch.distributed as dist

import samplestore as ss
from samplestore.torch import SampleDataset

if __name__ == "__main__":
    root, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ds = SampleDataset(ss.open_store(root).table("t"), batch_size=64, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ids, batches = [], 0
    for b in loader:
        ids += b.extras["row_id"].tolist()
        batches += 1
    # Every rank must take the same number of steps: an all-reduce per batch would hang otherwise.
    counts = torch.tensor([batches])
    dist.all_reduce(counts)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"rank": rank, "world": dist.get_world_size(), "ids": ids, "batches": batches,
                   "total_batches": int(counts[0]), "len": len(ds)}, f)
    dist.destroy_process_group()

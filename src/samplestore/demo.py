"""``samplestore demo``: the whole product in a few minutes on a laptop-class machine.

1. Generate session samples (users browsing over several days; a behaviour history that
   reveals each user's taste; a click that depends on whether the candidate item fits it).
2. Stream them into a day-partitioned table through a streaming writer: many small commits.
3. Compact the small files (expire old snapshots, collect garbage).
4. Train a small DLRM-style model (embedding bags + MLPs + dot interactions) from
   ``SampleDataset`` with DataLoader workers, holding out the last day.
5. Report the loss per epoch, the AUC on the held-out day and the samples/s.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, Callable, Iterable

import numpy as np
import pyarrow.compute as pc
import torch
from torch import nn

from . import datagen
from .progress import Progress

__all__ = ["DLRM", "Trainer", "auc", "predict", "run_demo", "cli_command"]

BUCKETS = 1 << 16


def cli_command(python: str | None = None) -> str:
    """How to run the ``samplestore`` command from the current folder, in a fresh shell.

    ``make demo`` runs the demo from ``.venv`` without activating it, so plain
    ``samplestore`` is often not on the PATH: then this is the path of the script installed
    beside ``python`` (default: this interpreter), e.g. ``.venv/bin/samplestore``, or
    ``PYTHON -m samplestore`` where no script is installed.
    """
    python = python or sys.executable
    script = os.path.join(os.path.dirname(python), "samplestore")
    if not os.access(script, os.X_OK):
        return f"{python} -m samplestore"
    found = shutil.which("samplestore")
    if found is not None and os.path.samefile(found, script):
        return "samplestore"
    rel = os.path.relpath(script)
    if rel.startswith(os.pardir):
        return script
    return rel if os.sep in rel else os.path.join(os.curdir, rel)  # a bare name would be looked up on the PATH


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    labels = np.asarray(labels) > 0.5
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


class DLRM(nn.Module):
    """Embedding bags per sparse feature, a bottom MLP for dense features, pairwise dot
    interactions, and a top MLP to one logit (after Naumov et al., 2019)."""

    def __init__(self, keys: list[str], num_dense: int, dim: int = 16) -> None:
        super().__init__()
        self.keys = keys
        self.bags = nn.ModuleDict({k: nn.EmbeddingBag(BUCKETS, dim, mode="mean", sparse=True) for k in keys})
        self.bottom = nn.Sequential(nn.Linear(num_dense, 64), nn.ReLU(), nn.Linear(64, dim), nn.ReLU())
        n = len(keys) + 1
        self.top = nn.Sequential(nn.Linear(dim + n * (n - 1) // 2, 64), nn.ReLU(), nn.Linear(64, 1))
        self._iu = torch.triu_indices(n, n, offset=1)

    def forward(self, batch: Any) -> torch.Tensor:
        b = len(batch)
        x = self.bottom(torch.nan_to_num(batch.dense))
        sp = batch.sparse
        per_key = sp.length_per_key()
        values = torch.split(sp.values, per_key)
        lengths = sp.lengths.view(len(sp.keys), b)
        embs = [x]
        for k, name in enumerate(sp.keys):
            offsets = torch.zeros(b, dtype=torch.int64)
            torch.cumsum(lengths[k][:-1].to(torch.int64), 0, out=offsets[1:])
            embs.append(self.bags[name](values[k] % BUCKETS, offsets))
        z = torch.stack(embs, 1)
        inter = torch.bmm(z, z.transpose(1, 2))[:, self._iu[0], self._iu[1]]
        return self.top(torch.cat([x, inter], 1)).squeeze(1)


class Trainer:
    """One optimisation step per batch for :class:`DLRM`: SparseAdam on the embedding bags
    (their gradients are sparse), Adam on the MLPs, binary cross-entropy on the first label."""

    def __init__(self, model: DLRM, sparse_lr: float = 0.01, dense_lr: float = 0.003) -> None:
        self.model = model
        sparse_params = [p for n, p in model.named_parameters() if n.startswith("bags.")]
        dense_params = [p for n, p in model.named_parameters() if not n.startswith("bags.")]
        self.optimizers = [torch.optim.SparseAdam(sparse_params, lr=sparse_lr),
                           torch.optim.Adam(dense_params, lr=dense_lr)]
        self.loss_fn = nn.BCEWithLogitsLoss()

    def step(self, batch: Any) -> float:
        """Train on one batch; returns its mean loss."""
        for opt in self.optimizers:
            opt.zero_grad()
        loss = self.loss_fn(self.model(batch), batch.labels[:, 0])
        loss.backward()
        for opt in self.optimizers:
            opt.step()
        return float(loss.detach().item())

    def epoch(self, batches: Iterable[Any], on_batch: Callable[[float, int], None] | None = None) -> tuple[float, int]:
        """Train on every batch of ``batches``; returns (mean loss per sample, samples).

        ``on_batch(mean loss so far, rows of the batch)`` is called after each step.
        """
        self.model.train()
        total, n = 0.0, 0
        for batch in batches:
            total += self.step(batch) * len(batch)
            n += len(batch)
            if on_batch is not None:
                on_batch(total / n, len(batch))
        return (total / n if n else float("nan")), n


def predict(model: nn.Module, batches: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits on every batch, in evaluation mode: (labels, logits) as numpy."""
    model.eval()
    scores, labels = [], []
    with torch.no_grad():
        for batch in batches:
            scores.append(model(batch).numpy())
            labels.append(batch.labels[:, 0].numpy())
    return np.concatenate(labels), np.concatenate(scores)


def _stream(table: Any, data: Any, commits: int, say: Callable[[str], None]) -> None:
    rows = data.num_rows
    step = max(1, rows // commits)
    bar = Progress("stream  ", total=rows, unit=" rows")
    with table.writer(commit_every_rows=step, writer_id="demo-stream") as w:
        for k, start in enumerate(range(0, rows, step)):
            w.write(data.slice(start, step), commit_token=k)
            bar.update(min(step, rows - start))
    bar.close()
    say(f"streamed {rows:,} samples in {len(table.snapshots())} commits -> {len(table.files())} small files")


def run_demo(root: str, rows: int = 300_000, epochs: int = 3, workers: int = 2, batch_size: int = 2048,
             days: int = 5, seed: int = 0, say: Callable[[str], None] = print, sparse_lr: float = 0.01,
             dense_lr: float = 0.003, commits: int = 200) -> dict[str, Any]:
    """Run the demo in ``root`` (created); returns the figures it printed. ``sparse_lr`` and
    ``dense_lr`` are the learning rates of the embedding bags and of the MLPs; ``commits``: how
    many the streaming writer makes (each leaves a small file per day it holds)."""
    import samplestore as ss
    from .torch import SampleDataset

    torch.manual_seed(seed)
    t_start = time.perf_counter()
    store = ss.open_store(root, create=True)
    if "sessions" in store.tables():
        store.drop_table("sessions")
    say(f"generating {rows:,} session samples over {days} days ...")
    data = datagen.sessions_like(rows, seed=seed, days=days)
    table = store.create_table("sessions", datagen.sessions_schema(), partition_by=["ds"])
    _stream(table, data, commits=commits, say=say)

    t0 = time.perf_counter()
    res = table.compact(sort_by=["user_id", "ts"])
    table.expire_snapshots(retain_last=1)
    gc = table.gc(grace_seconds=0)
    say(f"compacted {res.files_in} files ({res.bytes_in / 1e6:.1f} MB) into {res.files_out} "
        f"({res.bytes_out / 1e6:.1f} MB, clustered by user_id, ts) in {time.perf_counter() - t0:.1f} s; "
        f"gc removed {gc['files_removed']} files")

    days_seen = sorted({f.partition["ds"] for f in table.files()})
    held_out = days_seen[-1]
    feats = ["dense", *[f"c{i}" for i in range(8)], "history", "click"]
    train = SampleDataset(table, features=feats, batch_size=batch_size, seed=seed, filter=pc.field("ds") != held_out)
    test = SampleDataset(table, features=feats, batch_size=8192, shuffle=False, filter=pc.field("ds") == held_out)
    say(f"training on {train.num_rows:,} samples ({', '.join(days_seen[:-1])}), holding out {held_out} "
        f"({test.num_rows:,} samples); {workers} DataLoader workers")
    model = DLRM([*[f"c{i}" for i in range(8)], "history"], num_dense=datagen.NUM_DENSE)
    step = Trainer(model, sparse_lr=sparse_lr, dense_lr=dense_lr)
    losses, rates = [], []
    for epoch in range(epochs):
        train.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(train, batch_size=None, num_workers=workers)
        bar = Progress(f"epoch {epoch}", total=train.num_rows, unit=" samples")
        t0 = time.perf_counter()

        def show(mean_loss: float, rows: int) -> None:
            bar.extra = f"loss {mean_loss:.4f}"
            bar.update(rows)

        loss, n = step.epoch(loader, on_batch=show)
        bar.close()
        losses.append(loss)
        rates.append(n / (time.perf_counter() - t0))
        say(f"epoch {epoch}: loss {losses[-1]:.4f}, {rates[-1]:,.0f} samples/s (loading + training)")
    labels, scores = predict(model, torch.utils.data.DataLoader(test, batch_size=None, num_workers=0))
    held_auc = auc(labels, scores)
    train.close()
    test.close()
    say(f"held-out AUC on {held_out}: {held_auc:.4f}")
    say(f"loss by epoch: {', '.join(f'{x:.4f}' for x in losses)}; demo took {time.perf_counter() - t_start:.0f} s")
    cmd = cli_command()
    say(f"the table is in {os.path.abspath(root)}: try `{cmd} info {root} sessions` or `{cmd} verify {root}`")
    return {"losses": losses, "auc": held_auc, "samples_per_s": rates, "held_out": held_out,
            "train_rows": train.num_rows, "test_rows": test.num_rows}

"""Shared memory that DataLoader workers reuse for batches: a batch crosses as a few offsets.

With ``num_workers > 0`` every batch moves from a worker to the trainer process. Torch's own
path gives each batch a fresh shared-memory segment: the worker faults in and zeroes every
page, passes a file descriptor, and the trainer maps and later unmaps it, for every batch.
A :class:`SlotRing` is one anonymous shared mapping that the dataset makes before the
DataLoader forks its workers; each worker owns a few fixed slots in it and assembles batches
straight into a free slot. The batch is pickled as offsets into the slot; in the trainer its
tensors are views of the slot, and when the last of them is freed the slot is free again.

Safety: a worker only writes a slot the trainer has released, and never waits for one: when
none of its slots is free (the trainer keeps batches), or a batch does not fit, or the
workers were not forked (``spawn``), it falls back to torch's per-batch segments. Each claim
bumps the slot's generation, and the trainer refuses a batch whose generation does not match
rather than return another batch's bytes.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import uuid
import weakref
from typing import Any

import numpy as np
import torch

from ..errors import SampleStoreError
from ..table.lease import pid_alive

__all__ = ["SlotRing", "SlotRef"]

_FREE, _CLAIMED, _HELD = 0, 1, 2
# Rings by id, so a batch unpickled in the trainer finds the mapping it refers to.
_RINGS: "weakref.WeakValueDictionary[str, SlotRing]" = weakref.WeakValueDictionary()
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if os.uname().sysname == "Linux" else 0)


class SlotRing:
    """``workers`` x ``slots`` reusable batch buffers of ``slot_bytes`` in shared memory.

    Only touched pages take memory; the mapping itself is address space (no swap reserved).
    Workers with an id of ``workers`` or more, and batches over ``slot_bytes``, take torch's
    per-batch path.
    """

    def __init__(self, workers: int = 8, slots: int = 4, slot_bytes: int = 64 << 20) -> None:
        self.id = uuid.uuid4().hex
        self.workers, self.slots, self.slot_bytes = int(workers), int(slots), int(slot_bytes)
        n = self.workers * self.slots
        data = n * self.slot_bytes
        self._mm = mmap.mmap(-1, data + 12 * n, flags=mmap.MAP_SHARED | _MAP_NORESERVE)
        self.state = np.frombuffer(self._mm, np.uint32, n, data)
        self.owner = np.frombuffer(self._mm, np.int32, n, data + 4 * n)
        self.gen = np.frombuffer(self._mm, np.uint32, n, data + 8 * n)
        self._lock = multiprocessing.get_context("fork").Lock()
        self._next = 0
        _RINGS[self.id] = self

    def claim(self, worker: int, nbytes: int) -> "SlotRef | None":
        """A free slot of ``worker`` for a batch of ``nbytes``, or None (use another path)."""
        if not 0 <= worker < self.workers or nbytes > self.slot_bytes:
            return None
        me = os.getpid()
        with self._lock:
            for k in range(self.slots):
                i = worker * self.slots + (self._next + k) % self.slots
                state, owner = int(self.state[i]), int(self.owner[i])
                # A slot claimed by a worker that has since exited was never delivered: its
                # batch was dropped with that DataLoader iterator.
                if state == _FREE or (state == _CLAIMED and owner != me and not pid_alive(owner)):
                    self.state[i], self.owner[i] = _CLAIMED, me
                    self.gen[i] += 1
                    self._next = (self._next + k + 1) % self.slots
                    return SlotRef(self, i, int(self.gen[i]), nbytes)
        return None

    def buffer(self, slot: int, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of a slot as a writable uint8 array."""
        return np.frombuffer(self._mm, np.uint8, nbytes, slot * self.slot_bytes)

    def _release(self, slot: int, gen: int) -> None:
        if int(self.gen[slot]) == gen:
            self.state[slot] = _FREE


class SlotRef:
    """A claimed slot: where a worker assembles one batch, and how the batch is pickled."""

    def __init__(self, ring: SlotRing, slot: int, gen: int, nbytes: int) -> None:
        self.ring, self.slot, self.gen, self.nbytes = ring, slot, gen, nbytes
        self.buf = ring.buffer(slot, nbytes)
        self._base = self.buf.ctypes.data

    def release(self) -> None:
        """Give the slot back unsent (its batch was copied elsewhere)."""
        self.ring._release(self.slot, self.gen)

    def reduce(self, batch: Any) -> tuple[Any, tuple[Any, ...]]:
        """``__reduce__`` of a batch whose tensors all live in this slot."""
        def ref(t: torch.Tensor) -> tuple[int, str, tuple[int, ...]]:
            if t.numel() == 0:
                return -1, str(t.dtype).rsplit(".", 1)[1], tuple(t.shape)
            off = t.data_ptr() - self._base
            if not t.is_contiguous() or off < 0 or off + t.nbytes > self.nbytes:
                raise SampleStoreError(f"internal error: a batch tensor at offset {off} lies outside its slot")
            return off, str(t.dtype).rsplit(".", 1)[1], tuple(t.shape)

        sp = batch.sparse
        spec = {
            "dense": ref(batch.dense), "labels": ref(batch.labels), "keys": list(sp.keys),
            "values": ref(sp.values), "lengths": ref(sp.lengths),
            "weights": ref(sp.weights) if sp.weights is not None else None,
            "embeddings": {k: ref(v) for k, v in batch.embeddings.items()},
            "extras": {k: ("t", ref(v)) if isinstance(v, torch.Tensor) else ("v", v) for k, v in batch.extras.items()},
            "dense_names": batch.dense_names, "epoch": batch.epoch, "index": batch.index,
            "follow_round": batch.follow_round,
            "dedup": {k: (ref(d.unique), ref(d.inverse), ref(d.lengths), ref(d.weights) if d.weights is not None else None,
                          d.position) for k, d in batch.dedup.items()},
        }
        return _rebuild, (self.ring.id, self.slot, self.gen, self.nbytes, spec)


def _rebuild(ring_id: str, slot: int, gen: int, nbytes: int, spec: dict[str, Any]) -> Any:
    """Unpickle a slot batch in the trainer: tensors become views of the slot."""
    from .batch import Batch, DedupIds, SparseFeatures

    ring = _RINGS.get(ring_id)
    if ring is None:
        raise SampleStoreError("a batch refers to shared memory this process does not map "
                               "(was it sent to a process other than the DataLoader's?)")
    with ring._lock:  # against a worker reclaiming the slot as we take it
        if int(ring.gen[slot]) != gen or int(ring.state[slot]) != _CLAIMED:
            raise SampleStoreError(f"batch slot {slot} was reused before the batch was received "
                                   f"(generation {int(ring.gen[slot])}, expected {gen})")
        ring.state[slot] = _HELD
    holder = ring.buffer(slot, nbytes)
    # Every tensor below is a view of one storage that keeps `holder` alive; when the last
    # one is freed, so is `holder`, and the slot goes back to its worker.
    weakref.finalize(holder, ring._release, slot, gen)
    base = torch.from_numpy(holder)
    del holder

    def tensor(r: tuple[int, str, tuple[int, ...]]) -> torch.Tensor:
        off, dtype_name, shape = r
        dtype = getattr(torch, dtype_name)
        if off < 0:
            return torch.empty(shape, dtype=dtype)
        n = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dtype).element_size()
        return base[off: off + n].view(dtype).view(shape)

    return Batch(
        dense=tensor(spec["dense"]),
        sparse=SparseFeatures(spec["keys"], tensor(spec["values"]), tensor(spec["lengths"]),
                              tensor(spec["weights"]) if spec["weights"] is not None else None),
        labels=tensor(spec["labels"]),
        embeddings={k: tensor(v) for k, v in spec["embeddings"].items()},
        extras={k: tensor(v) if kind == "t" else v for k, (kind, v) in spec["extras"].items()},
        dense_names=spec["dense_names"], epoch=spec["epoch"], index=spec["index"], follow_round=spec.get("follow_round"),
        dedup={k: DedupIds(tensor(u), tensor(i), tensor(n), tensor(w) if w is not None else None, p)
               for k, (u, i, n, w, p) in spec.get("dedup", {}).items()},
    )

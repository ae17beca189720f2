"""Copy batches to an accelerator ahead of the trainer, on a side stream."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

__all__ = ["DevicePrefetcher"]


class DevicePrefetcher:
    """Iterate ``loader`` and move each batch to ``device``, one batch ahead.

    On CUDA the copy of batch ``i + 1`` runs on a side stream (``non_blocking=True`` from
    pinned memory) while the trainer computes on batch ``i``; the compute stream waits for
    the copy before the batch is handed out, and the tensors are recorded on the compute
    stream so the caching allocator does not reuse them early. On other devices (``"cpu"``)
    it is a plain ``batch.to(device)``: the same code runs everywhere.

    Pair it with DataLoader workers and ``pin_memory=True``: the DataLoader then pins in a
    thread of its own. With no workers, pinning runs in the trainer's process beside the
    decoding and costs more than the asynchronous copy saves (``samplestore bench device``);
    leave ``pin_memory`` off there.
    """

    def __init__(self, loader: Iterable[Any], device: Any) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        if not self._cuda:
            for batch in it:
                yield batch.to(self.device)
            return
        stream = torch.cuda.Stream(device=self.device)

        def copy(batch: Any) -> Any:
            with torch.cuda.stream(stream):
                return batch.to(self.device, non_blocking=True)

        try:
            nxt = copy(next(it))
        except StopIteration:
            return
        while True:
            torch.cuda.current_stream(self.device).wait_stream(stream)
            current = nxt
            current.map_tensors(lambda t: (t.record_stream(torch.cuda.current_stream(self.device)), t)[1])
            try:
                nxt = copy(next(it))
            except StopIteration:
                yield current
                return
            yield current

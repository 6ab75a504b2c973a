"""Dynamic batching: model inputs from many job threads run through the session together."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MicroBatcher", "group_by_shape", "run_batched", "split_outputs", "DEFAULT_MAX_BATCH_DELAY_MS"]

#: How long the first input of a batch waits for company, ms (the latency batching may add at low load).
DEFAULT_MAX_BATCH_DELAY_MS = 2.0

#: Runs a model on a stacked batch (leading axis = inputs), returns its outputs (same leading axis).
BatchFn = Callable[[np.ndarray], Sequence[np.ndarray]]


def group_by_shape(inputs: Sequence[np.ndarray], rows: bool = False) -> list[list[int]]:
    """Indices of ``inputs`` grouped by shape (first-seen order): each group can be stacked into one batch.

    With ``rows``, the leading axis (each input's rows) is left out of the shape compared.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape[1:] if rows else x.shape), []).append(i)
    return list(groups.values())


def split_outputs(outputs: Sequence[np.ndarray], rows: int | Sequence[int]) -> list[list[np.ndarray]]:
    """Per-input outputs of a batched run: one list per input, every output sliced to that input's rows.

    Parameters
    ----------
    outputs
        The run's outputs, each with the stacked inputs' rows on its leading axis.
    rows
        The rows of each input, in order (an int ``n``: ``n`` inputs of one row each).

    Raises
    ------
    ValueError
        When an output's leading axis is not the rows' total (a graph without a batch axis).
    """
    counts = [1] * rows if isinstance(rows, int) else list(rows)
    total = sum(counts)
    for o in outputs:
        if o.shape[0] != total:
            raise ValueError(f"batched output has leading axis {o.shape[0]}, expected {total}")
    ends = np.cumsum(counts)
    return [[o[end - n : end] for o in outputs] for n, end in zip(counts, ends)]


def run_batched(run: BatchFn, inputs: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """``run`` over ``inputs``, one call per shape, outputs back in input order.

    Each input keeps its rows (its leading axis: 1 for an image, one per face for an embedder's chips);
    inputs whose other axes agree are concatenated into one call.
    """
    results: list[list[np.ndarray] | None] = [None] * len(inputs)
    for idx in group_by_shape(inputs, rows=True):
        batch = inputs[idx[0]] if len(idx) == 1 else np.concatenate([inputs[i] for i in idx], axis=0)
        for i, out in zip(idx, split_outputs(run(batch), [len(inputs[i]) for i in idx])):
            results[i] = out
    return results  # type: ignore[return-value]


@dataclass(eq=False)
class _Pending:
    x: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    outputs: list[np.ndarray] | None = None
    error: BaseException | None = None
    batch: int = 1


class MicroBatcher:
    """Collects inputs from any number of threads and runs them through ``run`` in batches.

    An input is one or more rows (its leading axis: an image's one, an embedder's chips of one image).
    A batch closes when it holds ``max_batch`` rows or ``max_delay_ms`` after its first input,
    whichever comes first; inputs of different shapes in one batch run as one call per shape.
    ``runners`` threads each close and run batches, so ``runners`` batches may run at once (one per
    core with single-threaded sessions).

    Parameters
    ----------
    run
        The model on a stacked batch.
    max_batch
        Most inputs in one call.
    max_delay_ms
        Longest the first input of a batch waits for more.
    runners
        Batch-running threads.
    """

    def __init__(self, run: BatchFn, max_batch: int, max_delay_ms: float = DEFAULT_MAX_BATCH_DELAY_MS,
                 runners: int = 1) -> None:
        if max_batch < 1 or runners < 1 or max_delay_ms < 0:
            raise ValueError("max_batch and runners must be >= 1 and max_delay_ms >= 0")
        self.run = run
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self.batch_sizes: list[int] = []  # recent batch sizes, for metrics and tests (bounded below)
        self._local = threading.local()
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True) for i in range(runners)
        ]
        for t in self._threads:
            t.start()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """The outputs of the model for ``x`` (its rows, leading axis kept); blocks until its batch ran.

        Raises
        ------
        Exception
            Whatever ``run`` raised for the batch this input was in.
        """
        if self._closed:
            raise RuntimeError("the batcher is closed")
        p = _Pending(x)
        self._queue.put(p)
        p.done.wait()
        self._local.batch = p.batch
        if p.error is not None:
            raise p.error
        assert p.outputs is not None
        return p.outputs

    def last_batch(self) -> int:
        """Rows in the run of this thread's last call."""
        return getattr(self._local, "batch", 1)

    def close(self) -> None:
        """Stop the runner threads once the inputs already queued have run."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=5)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, stop = [first], False
        rows = len(first.x)
        deadline = time.perf_counter() + self.max_delay_s
        while rows < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                p = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if p is None:
                stop = True
                break
            batch.append(p)
            rows += len(p.x)
        return batch, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            rows = sum(len(p.x) for p in batch)
            self.batch_sizes.append(rows)
            if len(self.batch_sizes) > 1024:
                del self.batch_sizes[:512]
            try:
                outs = run_batched(self.run, [p.x for p in batch])
                for p, o in zip(batch, outs):
                    p.outputs, p.batch = o, rows
            except BaseException as exc:  # handed to every waiting job thread, which fails its job
                for p in batch:
                    p.error = exc
            finally:
                for p in batch:
                    p.done.set()
            if stop:
                return

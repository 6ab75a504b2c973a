"""The dynamic batcher: grouping, splitting, batch closing and error hand-back, on a fake model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from detectflow.detectors.batching import (
    MicroBatcher,
    group_by_shape,
    run_batched,
    split_outputs,
)


def _double(batch: np.ndarray) -> list[np.ndarray]:
    """A fake two-output model: the input doubled, and its per-row sum."""
    return [batch * 2, batch.reshape(len(batch), -1).sum(axis=1)]


def _row(value: float, shape=(1, 2, 3)) -> np.ndarray:
    return np.full(shape, value, np.float32)


def test_group_by_shape_keeps_first_seen_order():
    xs = [_row(0), _row(1, (1, 4, 4)), _row(2), _row(3, (1, 4, 4))]
    assert group_by_shape(xs) == [[0, 2], [1, 3]]


def test_split_outputs_refuses_a_graph_without_a_batch_axis():
    with pytest.raises(ValueError, match="leading axis"):
        split_outputs([np.zeros((1, 5))], 3)


def test_run_batched_returns_outputs_in_input_order_one_call_per_shape():
    calls: list[int] = []

    def model(batch):
        calls.append(len(batch))
        return _double(batch)

    xs = [_row(1), _row(2, (1, 4, 4)), _row(3), _row(4)]
    outs = run_batched(model, xs)
    assert sorted(calls) == [1, 3]
    for x, (doubled, total) in zip(xs, outs):
        np.testing.assert_array_equal(doubled, x * 2)
        assert total.shape == (1,) and total[0] == pytest.approx(x.sum())


def _all_at_once(batcher: MicroBatcher, inputs: list[np.ndarray]) -> dict[int, list[np.ndarray]]:
    """Each input from its own thread, released together; the outputs by input index (the batcher closed)."""
    gate = threading.Barrier(len(inputs))
    results: dict[int, list[np.ndarray]] = {}

    def job(i: int) -> None:
        gate.wait()
        results[i] = batcher(inputs[i])

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    batcher.close()
    return results


def test_micro_batcher_closes_a_batch_at_max_batch_before_the_delay():
    sizes: list[int] = []

    def model(batch):
        sizes.append(len(batch))
        return _double(batch)

    batcher = MicroBatcher(model, max_batch=4, max_delay_ms=60_000)  # only a full batch can close in time
    results = _all_at_once(batcher, [_row(i) for i in range(8)])
    assert sizes == [4, 4]
    for i, (doubled, _) in results.items():
        np.testing.assert_array_equal(doubled, _row(i) * 2)


def test_micro_batcher_runs_a_lone_input_alone_after_the_delay():
    batcher = MicroBatcher(_double, max_batch=8, max_delay_ms=1)
    doubled, total = batcher(_row(5))
    batcher.close()
    assert batcher.batch_sizes == [1]
    np.testing.assert_array_equal(doubled, _row(10))


def test_micro_batcher_hands_the_model_error_to_every_waiting_job():
    def broken(batch):
        raise RuntimeError("onnxruntime failed")

    batcher = MicroBatcher(broken, max_batch=2, max_delay_ms=1)
    with pytest.raises(RuntimeError, match="onnxruntime failed"):
        batcher(_row(1))
    # the runner survives: the next input gets the same clear error, not a hang
    with pytest.raises(RuntimeError, match="onnxruntime failed"):
        batcher(_row(2))
    batcher.close()


def test_micro_batcher_refuses_inputs_once_closed():
    batcher = MicroBatcher(_double, max_batch=2)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher(_row(1))


def test_run_batched_keeps_each_inputs_rows():
    xs = [_row(1, (2, 2, 3)), _row(2), _row(3, (3, 2, 3))]
    calls: list[int] = []

    def model(batch):
        calls.append(len(batch))
        return _double(batch)

    outs = run_batched(model, xs)
    assert calls == [6]
    for x, (doubled, total) in zip(xs, outs):
        np.testing.assert_array_equal(doubled, x * 2)
        assert total.shape == (len(x),)


def test_micro_batcher_counts_rows_towards_max_batch():
    sizes: list[int] = []

    def model(batch):
        sizes.append(len(batch))
        return _double(batch)

    batcher = MicroBatcher(model, max_batch=6, max_delay_ms=60_000)
    results = _all_at_once(batcher, [_row(i, (3, 2, 3)) for i in range(4)])  # three rows each: two fill six
    assert sizes == [6, 6]
    for i, (doubled, _) in results.items():
        np.testing.assert_array_equal(doubled, _row(i, (3, 2, 3)) * 2)

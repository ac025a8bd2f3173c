"""StepMetricsBuffer reads metrics only on flush; prefetch_to_device keeps batches ahead."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.train.prefetch import prefetch_to_device
from jaxcnn.train.step_metrics import StepMetricsBuffer


def _fake_step(x):
    loss = jnp.mean(x)
    return {"loss": loss, "accuracy": loss / 10}


def test_buffered_steps_never_transfer_to_the_host_until_flush(count_host_reads):
    step = jax.jit(_fake_step)
    buffer = StepMetricsBuffer()
    batches = [jnp.full((4,), float(i)) for i in range(1, 6)]
    jax.block_until_ready(step(batches[0]))  # compile outside the count
    with count_host_reads() as reads:
        float(step(batches[0])["loss"])  # the counter is live: the old per-step read counts
        assert reads.count == 1
    with count_host_reads() as reads:
        for number, batch in enumerate(batches, start=1):
            buffer.add(number, step(batch), batch_size=4)
        assert reads.count == 0
        flushed = buffer.flush()
        assert reads.count <= 2  # one (3, steps) array: device_get reads it via _value and __array__
    assert flushed.steps == (1, 2, 3, 4, 5)
    np.testing.assert_allclose(flushed.losses, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(flushed.accuracies, [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    assert flushed.images == 20 and flushed.loss_sum == pytest.approx(4 * 15)
    assert flushed.correct_sum == pytest.approx(4 * 1.5)
    assert flushed.first_non_finite is None
    assert len(buffer) == 0 and buffer.flush().steps == ()


def test_flush_names_the_first_non_finite_step():
    buffer = StepMetricsBuffer()
    for step, loss in ((7, 1.0), (8, float("nan")), (9, float("inf"))):
        buffer.add(step, {"loss": jnp.float32(loss), "accuracy": jnp.float32(0.5)}, 2)
    flushed = buffer.flush()
    assert flushed.first_non_finite[0] == 8 and np.isnan(flushed.first_non_finite[1])


def test_pmap_metrics_with_one_entry_per_device_are_read_as_scalars():
    n = jax.local_device_count()
    metrics = jax.pmap(lambda x: {"loss": jax.lax.pmean(jnp.mean(x), "d"),
                                  "accuracy": jax.lax.pmean(jnp.mean(x) / 4, "d")},
                       axis_name="d")(jnp.arange(n * 2, dtype=jnp.float32).reshape(n, 2))
    buffer = StepMetricsBuffer()
    buffer.add(1, metrics, batch_size=2 * n)
    flushed = buffer.flush()
    expected = (n * 2 - 1) / 2
    assert flushed.losses == pytest.approx((expected,)) and flushed.accuracies == pytest.approx((expected / 4,))


def test_prefetch_keeps_depth_batches_on_the_device_ahead_of_the_consumer():
    put_order = []

    def put(batch):
        put_order.append(int(batch[0]))
        return jax.device_put(batch)

    consumed = []
    for batch in prefetch_to_device((np.full((2,), i) for i in range(5)), depth=2, put=put):
        consumed.append(int(batch[0]))
        # When batch k is handed over, batch k + 1 is already on the device (or the input ended).
        assert put_order[-1] == min(len(consumed), 4)
        assert isinstance(batch, jax.Array)
    assert consumed == [0, 1, 2, 3, 4] and put_order == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("depth", [0, -1, 1.5, True])
def test_prefetch_rejects_a_bad_depth(depth):
    with pytest.raises(ValueError, match="prefetch_to_device: depth must be an int >= 1"):
        list(prefetch_to_device([1, 2], depth=depth))

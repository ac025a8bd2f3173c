"""The jit-safe label-range check: a device-side count in the step metrics, turned
into ``LabelOutOfRangeError("label out of range at step N")`` by ``check_labels``
and by the training loop (instead of training into NaN)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcnn.train import (
    LabelOutOfRangeError,
    check_labels,
    create_train_state,
    eval_step,
    shard_batch,
    make_mesh,
    replicate_state,
    sharded_train_step,
    train_step,
)

NUM_CLASSES = 3


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        return nn.Dense(NUM_CLASSES)(x.reshape((x.shape[0], -1)))


def _state():
    sample = jnp.zeros((1, 4, 4, 1), jnp.float32)
    return create_train_state(TinyNet(), optax.sgd(0.1), jax.random.PRNGKey(0), sample)


def _batch(bad: dict[int, int] | None = None):
    images = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 1))
    labels = np.arange(8, dtype=np.int32) % NUM_CLASSES
    for index, value in (bad or {}).items():
        labels[index] = value
    return images, jnp.asarray(labels)


def test_good_labels_count_zero_and_pass():
    state, metrics = train_step(_state(), *_batch())
    assert float(metrics["label_errors"]) == 0.0
    assert np.isfinite(float(metrics["loss"]))
    check_labels(metrics, step=int(state.step))  # no error


@pytest.mark.parametrize("bad, count", [({2: 3}, 1), ({0: -1, 5: 12}, 2)])
def test_bad_labels_under_jit_are_counted_and_reported_with_the_step(bad, count):
    # Without the check the loss is NaN under jit (the functional loss cannot
    # inspect traced label values): the count is the jit-safe form.
    state, metrics = train_step(_state(), *_batch(bad))
    assert float(metrics["label_errors"]) == count
    assert np.isnan(float(metrics["loss"]))
    with pytest.raises(LabelOutOfRangeError) as raised:
        check_labels(metrics, step=int(state.step), num_classes=NUM_CLASSES)
    assert str(raised.value).startswith(
        f"label out of range at step 1: labels must be class indices 0..2, and {count} label(s)")
    assert isinstance(raised.value, ValueError)
    assert float(eval_step(_state(), *_batch(bad))["label_errors"]) == count


def test_sharded_step_flags_a_bad_label_on_one_device():
    mesh = make_mesh(4)
    images, labels = _batch({7: 9})  # only the last device's shard holds it
    state, metrics = sharded_train_step(replicate_state(mesh, _state()),
                                        shard_batch(mesh, images), shard_batch(mesh, labels))
    assert float(metrics["label_errors"]) > 0
    with pytest.raises(LabelOutOfRangeError, match="label out of range at step 1"):
        check_labels(metrics, step=1)


def test_the_training_loop_stops_at_the_step_with_a_bad_label(tmp_path, monkeypatch):
    import jaxcnn.train.steps as steps
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.loop import train_and_evaluate

    real_step, calls = steps.train_step, []

    def step_with_a_bad_label_at_call_3(state, images, labels):
        calls.append(1)
        if len(calls) == 3:
            labels = np.array(labels)
            labels[5] = 12
        return real_step(state, images, labels)

    monkeypatch.setattr(steps, "train_step", step_with_a_bad_label_at_call_3)
    config = TrainConfig(dataset="digits", epochs=1, batch_size=64, train_examples=256,
                         test_examples=64, checkpoint_every_steps=2)
    with pytest.raises(LabelOutOfRangeError,
                       match=r"^label out of range at step 3: labels must be class indices 0\.\.9, "
                             r"and 1 label\(s\)"):
        train_and_evaluate(config, tmp_path, progress=False)
    # The NaN state of step 3 was never saved: the step-2 checkpoint is the latest.
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                  if p.name.isdigit()) == [2]

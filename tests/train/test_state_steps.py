"""TrainState, create_train_state and the jit train/eval steps.

The reference for a step is written out here: the model applied by hand with
the documented dropout key, a NumPy log-softmax loss, ``jax.grad`` of an
independently written cross-entropy, and the SGD-momentum rule in NumPy.
Models are tiny Flax nets defined in this file (the steps only rely on the
Flax module protocol).
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import eval_step, train_step, train_step_body

NUM_CLASSES = 3


class BatchNormDropoutNet(nn.Module):
    """conv 3x3 -> batch norm -> relu -> dropout -> global mean -> dense."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(NUM_CLASSES)(x.mean(axis=(1, 2)))


class PlainNet(nn.Module):
    """No batch norm, no dropout: batch_stats stays {}."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        return nn.Dense(NUM_CLASSES)(x.reshape((x.shape[0], -1)))


class CachingNet(nn.Module):
    """Keeps a variable in a collection TrainState does not carry."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        self.variable("cache", "last_input", jnp.zeros, x.shape)
        return nn.Dense(NUM_CLASSES)(x.reshape((x.shape[0], -1)))


def _batch(n=8, seed=1):
    images = jax.random.normal(jax.random.PRNGKey(seed), (n, 6, 6, 2), jnp.float32)
    labels = jnp.arange(n, dtype=jnp.int32) % NUM_CLASSES
    return images, labels


def _copy(state):
    """A fresh copy: train_step donates (invalidates) the state it is given."""
    return jax.tree.map(jnp.array, state)


def _numpy_metrics(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(labels)), np.asarray(labels)].mean()
    accuracy = (logits.argmax(axis=1) == np.asarray(labels)).mean()
    return loss, accuracy


@functools.partial(jax.jit, static_argnums=0)  # eager autodiff of a conv net is slow
def _reference_grads(model, state, images, labels, dropout_rng):
    """Gradient of an independently written cross-entropy, and the new batch_stats."""

    def loss(params):
        logits, updated = model.apply(
            {"params": params, "batch_stats": state.batch_stats}, images, train=True,
            mutable=["batch_stats"], rngs={"dropout": dropout_rng},
        )
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(log_probs[jnp.arange(labels.shape[0]), labels]), (logits, updated)

    (_, (logits, updated)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    return grads, logits, updated["batch_stats"]


@pytest.fixture(scope="module")
def bn_setup():
    model = BatchNormDropoutNet()
    lr, momentum, weight_decay = 0.1, 0.9, 1e-2
    tx = make_optimizer("sgd", lr, momentum=momentum, weight_decay=weight_decay)
    images, labels = _batch()
    state = create_train_state(model, tx, jax.random.PRNGKey(0), images[:1])
    return model, state, images, labels, (lr, momentum, weight_decay)


# ------------------------------------------------------------ create_train_state
def test_create_train_state_fields(bn_setup):
    model, state, images, _, _ = bn_setup
    assert isinstance(state, TrainState)
    assert state.step.dtype == jnp.int32 and int(state.step) == 0
    assert state.dropout_key.shape == (2,) and state.dropout_key.dtype == jnp.uint32
    reference = jax.eval_shape(
        lambda: model.init({"params": jax.random.PRNGKey(5)}, images[:1], train=False)
    )
    shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)  # noqa: E731
    assert shapes(state.params) == shapes(reference["params"])
    # init with train=False leaves the running statistics at their initial values.
    np.testing.assert_array_equal(state.batch_stats["BatchNorm_0"]["mean"], np.zeros(4))
    np.testing.assert_array_equal(state.batch_stats["BatchNorm_0"]["var"], np.ones(4))


def test_create_train_state_is_deterministic_and_accepts_typed_keys():
    images, _ = _batch()
    tx = make_optimizer("sgd", 0.1)
    raw = create_train_state(PlainNet(), tx, jax.random.PRNGKey(3), images[:1])
    typed = create_train_state(PlainNet(), tx, jax.random.key(3), images[:1])
    other = create_train_state(PlainNet(), tx, jax.random.PRNGKey(4), images[:1])
    jax.tree.map(np.testing.assert_array_equal, raw.params, typed.params)
    np.testing.assert_array_equal(raw.dropout_key, typed.dropout_key)
    assert not np.array_equal(raw.params["Dense_0"]["kernel"], other.params["Dense_0"]["kernel"])
    assert raw.batch_stats == {}


class ListFieldNet(nn.Module):
    """A list field makes the module unhashable (jit cannot key a cache on it)."""

    widths: list

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for width in self.widths:
            x = nn.Dense(width)(x)
        return x


def test_create_train_state_accepts_unhashable_modules():
    images, _ = _batch()
    state = create_train_state(ListFieldNet([4, 2]), make_optimizer("sgd", 0.1), jax.random.PRNGKey(0), images[:1])
    assert state.params["Dense_1"]["kernel"].shape == (4, 2)


def test_create_train_state_rejects_bad_inputs():
    tx = make_optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match=r"sample_input must be a batch array such as \(1, H, W, C\)"):
        create_train_state(PlainNet(), tx, jax.random.PRNGKey(0), jnp.zeros(3))
    images, _ = _batch()
    with pytest.raises(ValueError, match=r"variable collections \['cache'\]"):
        create_train_state(CachingNet(), tx, jax.random.PRNGKey(0), images[:1])


# ------------------------------------------------------------------ train_step
def test_two_train_steps_match_the_reference_update(bn_setup):
    model, state0, images, labels, (lr, momentum, wd) = bn_setup
    state, expected_params, velocity = _copy(state0), state0.params, None
    reference_state = state0
    for step in range(2):
        rng = jax.random.fold_in(state0.dropout_key, step)  # the documented dropout key
        grads, logits, batch_stats = _reference_grads(model, reference_state, images, labels, rng)
        state, metrics = train_step(state, images, labels)

        loss, accuracy = _numpy_metrics(logits, labels)
        assert metrics["loss"].dtype == jnp.float32 and metrics["loss"].shape == ()
        np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
        np.testing.assert_allclose(metrics["accuracy"], accuracy)
        # SGD with momentum 0.9 and coupled weight decay, written out.
        g = jax.tree.map(lambda g, w: np.asarray(g) + wd * np.asarray(w), grads, expected_params)
        velocity = g if velocity is None else jax.tree.map(lambda v, g: momentum * v + g, velocity, g)
        expected_params = jax.tree.map(lambda w, v: np.asarray(w) - lr * v, expected_params, velocity)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
            state.params, expected_params,
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
            state.batch_stats, batch_stats,
        )
        assert int(state.step) == step + 1
        reference_state = reference_state.replace(params=expected_params, batch_stats=batch_stats)


def test_train_step_jit_matches_eager(bn_setup):
    _, state0, images, labels, _ = bn_setup
    jitted, jit_metrics = train_step(_copy(state0), images, labels)
    eager, eager_metrics = train_step_body(_copy(state0), images, labels)
    for a, b in zip(jax.tree.leaves((jitted, jit_metrics)), jax.tree.leaves((eager, eager_metrics))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_step_donates_the_state(bn_setup):
    _, state0, images, labels, _ = bn_setup
    state = _copy(state0)
    kernel = state.params["Conv_0"]["kernel"]
    new_state, _ = train_step(state, images, labels)
    assert kernel.is_deleted()
    assert not new_state.params["Conv_0"]["kernel"].is_deleted()


def test_dropout_masks_depend_on_step_only(bn_setup):
    _, state0, images, labels, _ = bn_setup
    # Same params and key: only the step differs -> different masks, different loss.
    _, at_step_0 = train_step(_copy(state0), images, labels)
    _, again_0 = train_step(_copy(state0), images, labels)
    _, at_step_7 = train_step(_copy(state0).replace(step=jnp.asarray(7, jnp.int32)), images, labels)
    assert float(at_step_0["loss"]) == float(again_0["loss"])
    assert float(at_step_0["loss"]) != float(at_step_7["loss"])


def test_train_step_without_batch_norm_keeps_empty_batch_stats_and_learns():
    images, labels = _batch()
    tx = make_optimizer("adam", 0.05)
    state = create_train_state(PlainNet(), tx, jax.random.PRNGKey(0), images[:1])
    losses = []
    for _ in range(5):
        state, metrics = train_step(state, images, labels)
        losses.append(float(metrics["loss"]))
    assert state.batch_stats == {}
    assert losses[-1] < 0.5 * losses[0]  # 8 examples, 216 inputs: a dense layer memorises them


# ------------------------------------------------------------------- eval_step
def test_eval_step_uses_running_statistics_and_no_dropout(bn_setup):
    model, state0, images, labels, _ = bn_setup
    state, _ = train_step(_copy(state0), images, labels)  # non-trivial running stats
    metrics = eval_step(state, images, labels)
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images, train=False)
    loss, accuracy = _numpy_metrics(logits, labels)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], accuracy)
    assert set(metrics) == {"loss", "accuracy", "label_errors"}
    # Evaluation is deterministic (no dropout) and does not touch the state.
    again = eval_step(state, images, labels)
    assert float(again["loss"]) == float(metrics["loss"])


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    "images_shape, labels, message",
    [
        ((8, 6, 6, 2), np.zeros(8, np.float32), "labels must be integer class indices, got dtype float32"),
        ((8, 6, 6, 2), np.zeros((8, 1), np.int32), r"labels must be integer class indices of shape \(B,\)"),
        ((8, 6, 6, 2), np.zeros(5, np.int32), "same batch size, got 8 images and 5 labels"),
        ((8,), np.zeros(8, np.int32), r"images must be a batch \(B, H, W, C\) NHWC, got shape \(8,\)"),
    ],
)
def test_steps_reject_bad_batches(bn_setup, images_shape, labels, message):
    _, state0, _, _, _ = bn_setup
    images = jnp.zeros(images_shape, jnp.float32)
    with pytest.raises(ValueError, match=message):
        train_step(_copy(state0), images, jnp.asarray(labels))
    with pytest.raises(ValueError, match=message):
        eval_step(state0, images, jnp.asarray(labels))

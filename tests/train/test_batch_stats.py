"""train.recompute_batch_stats: population batch-norm statistics vs a hand (NumPy) computation."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from jaxcnn import nn as jnn
from jaxcnn.train import batch_moments, create_train_state, eval_step, recompute_batch_stats, train_step

EPS = 1e-5


class TwoNorms(nn.Module):
    """bn1 -> 3x + 1 -> bn2 -> global average -> dense: bn2's input depends on bn1's batch statistics."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jnn.BatchNorm(name="bn1")(x, train)
        x = jnn.BatchNorm(name="bn2")(3.0 * x + 1.0, train)
        return jnn.Dense(self.num_classes, name="fc")(jnp.mean(x, axis=(1, 2)))


def _state():
    sample = jnp.zeros((1, 4, 4, 2))
    state = create_train_state(TwoNorms(), optax.sgd(0.1), jax.random.PRNGKey(0), sample)
    # Non-trivial bn1 affine parameters, so bn2's input statistics depend on them.
    params = dict(state.params)
    params["bn1"] = {"scale": jnp.array([2.0, 0.5]), "bias": jnp.array([-1.0, 0.25])}
    return state.replace(params=params)


def _hand_population(batches):
    """Ioffe & Szegedy Alg. 2 by NumPy, float64: E_B[mu_B] and m/(m-1) E_B[sigma^2_B], layer by layer."""
    stats = {"bn1": ([], []), "bn2": ([], [])}
    for x in batches:
        x = np.asarray(x, np.float64)
        m = x.shape[0] * x.shape[1] * x.shape[2]
        mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        stats["bn1"][0].append(mu)
        stats["bn1"][1].append(var)
        y = (x - mu) / np.sqrt(var + EPS) * np.array([2.0, 0.5]) + np.array([-1.0, 0.25])  # bn1, train mode
        z = 3 * y + 1
        stats["bn2"][0].append(z.mean(axis=(0, 1, 2)))
        stats["bn2"][1].append(z.var(axis=(0, 1, 2)))
    return {k: (np.mean(means, axis=0), m / (m - 1) * np.mean(variances, axis=0)) for k, (means, variances) in stats.items()}


def test_population_statistics_match_the_hand_computation():
    """Slide "Batch normalization at test time": E[x] = E_B[mu_B], Var[x] = m/(m-1) E_B[sigma_B^2]."""
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(5, 4, 4, 2)) * [1.0, 3.0] + [2.0, -1.0]).astype(np.float32) for _ in range(3)]
    state = _state()
    new = recompute_batch_stats(state, batches)
    expected = _hand_population(batches)
    for layer in ("bn1", "bn2"):
        np.testing.assert_allclose(new.batch_stats[layer]["mean"], expected[layer][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(new.batch_stats[layer]["var"], expected[layer][1], rtol=1e-5, atol=1e-5)
        assert new.batch_stats[layer]["mean"].dtype == jnp.float32
    # Nothing else changes; (images, labels) pairs work too; the running averages were different.
    assert new.params is state.params and int(new.step) == int(state.step)
    pairs = recompute_batch_stats(state, [(b, np.zeros(5, np.int32)) for b in batches])
    np.testing.assert_allclose(pairs.batch_stats["bn2"]["var"], new.batch_stats["bn2"]["var"], rtol=1e-6)
    assert not np.allclose(state.batch_stats["bn1"]["var"], new.batch_stats["bn1"]["var"])
    one = batch_moments(state, batches[0])
    np.testing.assert_allclose(one["bn1"][1], batches[0].var(axis=(0, 1, 2), ddof=1), rtol=1e-5)


class OneNorm(nn.Module):
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jnn.BatchNorm(momentum=self.momentum, name="bn")(x, train)
        return jnn.Dense(3, name="fc")(jnp.mean(x, axis=(1, 2)))


def test_one_batch_equals_a_momentum_zero_running_update():
    """With one batch, the population statistics are that batch's (mean, unbiased var): what BatchNorm
    itself writes into batch_stats in a training-mode call with momentum 0."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4, 4, 2)).astype(np.float32)
    state = create_train_state(OneNorm(), optax.sgd(0.1), jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))
    new = recompute_batch_stats(state, [x])
    _, updated = OneNorm(momentum=0.0).apply(state.variables(), x, train=True, mutable=["batch_stats"])
    for which in ("mean", "var"):
        np.testing.assert_allclose(new.batch_stats["bn"][which], updated["batch_stats"]["bn"][which], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.batch_stats["bn"]["var"], x.var(axis=(0, 1, 2), ddof=1), rtol=1e-5)


def test_recomputed_statistics_fix_a_stale_running_average_on_a_trained_model():
    """After a few steps the running averages (momentum 0.9, started at mean 0 / var 1) lag the data;
    the population statistics make eval mode agree with the training-mode batch statistics."""
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(16, 4, 4, 2)) * 4 + 3).astype(np.float32)
    labels = rng.integers(0, 3, 16).astype(np.int32)
    state = _state()
    for _ in range(3):
        state, _ = train_step(state, x, labels)
    stale = eval_step(state, x, labels)["loss"]
    fresh_state = recompute_batch_stats(state, [x[:8], x[8:]])
    fresh = eval_step(fresh_state, x, labels)["loss"]
    logits_train = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x, train=True,
                                  mutable=["batch_stats"])[0]
    logits_eval = fresh_state.apply_fn(fresh_state.variables(), x, train=False)
    stale_logits = state.apply_fn(state.variables(), x, train=False)
    assert np.abs(logits_eval - logits_train).max() < 0.1 * np.abs(stale_logits - logits_train).max()
    assert np.isfinite(stale) and np.isfinite(fresh)


def test_errors():
    class NoNorm(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return jnn.Dense(2)(x.reshape(x.shape[0], -1))

    plain = create_train_state(NoNorm(), optax.sgd(0.1), jax.random.PRNGKey(0), jnp.zeros((1, 2, 2, 1)))
    with pytest.raises(ValueError, match="no batch-norm statistics"):
        recompute_batch_stats(plain, [np.zeros((2, 2, 2, 1), np.float32)])
    with pytest.raises(ValueError, match="got no batches"):
        recompute_batch_stats(_state(), [])

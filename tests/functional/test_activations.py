"""Activations, maxout, softmax and dropout against PyTorch, NumPy loops and hand values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import activations as A

# Includes exact zeros (the kinks), large magnitudes (overflow paths) and a spread in between.
KINK_AND_EXTREMES = np.array(
    [-100.0, -20.0, -3.0, -1.0, -0.5, 0.0, 0.0, 0.25, 1.0, 3.0, 20.0, 100.0], dtype=np.float32
)


def _smooth_points(seed=0, shape=(3, 4, 5)):
    """Random points kept away from 0 so finite differences never straddle a kink."""
    rng = np.random.default_rng(seed)
    magnitudes = rng.uniform(0.1, 2.0, size=shape)
    signs = rng.choice([-1.0, 1.0], size=shape)
    return jnp.asarray(magnitudes * signs, dtype=jnp.float32)


def _torch_reference(name, alpha=None):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return {
        "relu": F.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, negative_slope=alpha),
        "elu": lambda t: F.elu(t, alpha=alpha),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }[name]


ELEMENTWISE_CASES = [
    ("relu", A.relu, None),
    ("leaky_relu", lambda x: A.leaky_relu(x, alpha=0.01), 0.01),
    ("leaky_relu", lambda x: A.leaky_relu(x, alpha=0.3), 0.3),
    ("elu", lambda x: A.elu(x, alpha=1.0), 1.0),
    ("elu", lambda x: A.elu(x, alpha=0.5), 0.5),
    ("sigmoid", A.sigmoid, None),
    ("tanh", A.tanh, None),
]
CASE_IDS = [f"{name}-{alpha}" for name, _, alpha in ELEMENTWISE_CASES]


@pytest.mark.parametrize("name,fn,alpha", ELEMENTWISE_CASES, ids=CASE_IDS)
def test_elementwise_forward_and_gradient_match_torch(name, fn, alpha):
    torch = pytest.importorskip("torch")
    reference = _torch_reference(name, alpha)
    x = np.concatenate([KINK_AND_EXTREMES, np.asarray(_smooth_points()).ravel()])

    t = torch.tensor(x, requires_grad=True)
    expected = reference(t)
    # A non-uniform cotangent so that a wrong gradient cannot hide behind a sum.
    cotangent = np.linspace(-1.0, 2.0, x.size, dtype=np.float32)
    expected.backward(torch.tensor(cotangent))

    y, vjp = jax.vjp(fn, jnp.asarray(x))
    (grad_x,) = vjp(jnp.asarray(cotangent))
    assert y.dtype == jnp.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    # Includes the derivative at exactly 0, where the conventions must match PyTorch's.
    np.testing.assert_allclose(grad_x, t.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(grad_x))


@pytest.mark.parametrize("name,fn,alpha", ELEMENTWISE_CASES, ids=CASE_IDS)
def test_elementwise_check_grads_and_jit(name, fn, alpha):
    x = _smooth_points(seed=1)
    check_grads(fn, (x,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
    np.testing.assert_allclose(jax.jit(fn)(x), fn(x), rtol=1e-6, atol=1e-7)


def test_hand_values_at_kinks_and_saturation():
    x = jnp.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(A.relu(x), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(A.leaky_relu(x, alpha=0.1), [-0.2, 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(A.elu(x, alpha=2.0), [2.0 * (np.exp(-2.0) - 1.0), 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(A.sigmoid(jnp.array([0.0, -1e4, 1e4])), [0.5, 0.0, 1.0])
    # Derivatives at 0: relu 0, leaky alpha, elu alpha (PyTorch's conventions).
    zero = jnp.float32(0.0)
    assert jax.grad(A.relu)(zero) == 0.0
    assert jax.grad(lambda v: A.leaky_relu(v, alpha=0.1))(zero) == pytest.approx(0.1)
    assert jax.grad(lambda v: A.elu(v, alpha=2.0))(zero) == pytest.approx(2.0)
    # elu far in the positive range: the unused exp branch must not poison the gradient.
    assert jax.grad(A.elu)(jnp.float32(200.0)) == 1.0


def test_activations_keep_bfloat16():
    x = jnp.array([-1.5, 0.5, 2.0], dtype=jnp.bfloat16)
    for fn in (A.relu, A.leaky_relu, A.elu, A.sigmoid, A.tanh, A.softmax, A.log_softmax):
        assert fn(x).dtype == jnp.bfloat16, fn.__name__


@pytest.mark.parametrize("bad_alpha", ["0.1", None, True, jnp.array(0.1)])
def test_alpha_must_be_a_python_number(bad_alpha):
    with pytest.raises(ValueError, match="alpha must be a Python float"):
        A.leaky_relu(jnp.ones(3), alpha=bad_alpha)
    with pytest.raises(ValueError, match="alpha must be a Python float"):
        A.elu(jnp.ones(3), alpha=bad_alpha)


# ---------------------------------------------------------------- maxout


def _maxout_loop(x, num_pieces):
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty((flat.shape[0], x.shape[-1] // num_pieces), dtype=x.dtype)
    for row in range(flat.shape[0]):
        for j in range(out.shape[1]):
            best = -np.inf
            for piece in range(num_pieces):
                best = max(best, flat[row, j * num_pieces + piece])
            out[row, j] = best
    return out.reshape(*x.shape[:-1], out.shape[1])


def test_maxout_groups_are_contiguous():
    x = jnp.array([1.0, 5.0, 2.0, 3.0, 9.0, 0.0])
    np.testing.assert_array_equal(A.maxout(x, 2), [5.0, 3.0, 9.0])
    np.testing.assert_array_equal(A.maxout(x, 3), [5.0, 9.0])
    np.testing.assert_array_equal(A.maxout(x, 1), x)
    np.testing.assert_array_equal(A.maxout(x, 6), [9.0])


@pytest.mark.parametrize("shape,num_pieces", [((2, 3, 4, 6), 2), ((2, 5, 12), 3), ((7, 8), 4)])
def test_maxout_matches_loop_and_jit(shape, num_pieces):
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    expected = _maxout_loop(x, num_pieces)
    y = A.maxout(jnp.asarray(x), num_pieces)
    assert y.shape == shape[:-1] + (shape[-1] // num_pieces,)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(jax.jit(A.maxout, static_argnums=1)(x, num_pieces), expected)


def test_maxout_gradient_routes_to_argmax_and_splits_ties():
    x = jnp.array([[1.0, 5.0, 2.0, 3.0, 7.0, 7.0]])
    cotangent = jnp.array([[10.0, 20.0, 30.0]])
    _, vjp = jax.vjp(lambda v: A.maxout(v, 2), x)
    (grad,) = vjp(cotangent)
    np.testing.assert_allclose(grad, [[0.0, 10.0, 0.0, 20.0, 15.0, 15.0]])
    check_grads(lambda v: A.maxout(v, 3), (_smooth_points(seed=4, shape=(2, 9)),), order=1,
                modes=["fwd", "rev"], atol=1e-2, rtol=1e-2)


def test_maxout_errors():
    with pytest.raises(ValueError, match="6 channels.*num_pieces=4.*multiple of 4"):
        A.maxout(jnp.ones((2, 6)), 4)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="num_pieces must be an int >= 1"):
            A.maxout(jnp.ones((2, 6)), bad)
    with pytest.raises(ValueError, match="channel"):
        A.maxout(jnp.float32(1.0), 1)


# ---------------------------------------------------------------- softmax


def test_softmax_and_log_softmax_match_torch_and_are_stable():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(5).normal(size=(4, 7)).astype(np.float32) * 3
    logits[0] += 1000.0  # exp would overflow without the max shift
    logits[1] -= 1000.0
    for axis in (-1, 0):
        t = torch.tensor(logits)
        np.testing.assert_allclose(A.softmax(logits, axis=axis), torch.softmax(t, dim=axis), atol=1e-6)
        np.testing.assert_allclose(
            A.log_softmax(logits, axis=axis), torch.log_softmax(t, dim=axis), atol=1e-5
        )
    np.testing.assert_allclose(jnp.sum(A.softmax(logits), axis=-1), np.ones(4), rtol=1e-6)
    assert np.all(np.isfinite(A.log_softmax(logits)))


def test_softmax_gradients():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).normal(size=(3, 5)).astype(np.float32)
    weights = np.random.default_rng(7).normal(size=(3, 5)).astype(np.float32)
    t = torch.tensor(x, requires_grad=True)
    (torch.log_softmax(t, dim=-1) * torch.tensor(weights)).sum().backward()
    grad = jax.grad(lambda v: jnp.sum(A.log_softmax(v) * weights))(jnp.asarray(x))
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-5, atol=1e-6)
    check_grads(A.softmax, (jnp.asarray(x),), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    check_grads(A.log_softmax, (jnp.asarray(x),), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(jax.jit(A.softmax)(x), A.softmax(x), rtol=1e-6)


def test_softmax_bad_axis():
    with pytest.raises(ValueError, match=r"axis must be an int in \[-2, 2\)"):
        A.softmax(jnp.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="axis"):
        A.log_softmax(jnp.ones((2, 3)), axis=None)


# ---------------------------------------------------------------- dropout


def test_dropout_is_identity_in_eval_or_at_rate_zero():
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(A.dropout(x, 0.5, key=None, train=False), x)
    np.testing.assert_array_equal(A.dropout(x, 0.0, key=jax.random.key(0), train=True), x)
    np.testing.assert_array_equal(A.dropout(x, 0.0, key=None, train=True), x)


# Every dropout test uses this one shape: each new shape compiles a new threefry
# sampler, which costs seconds of CPU.
DROPOUT_SHAPE = (64, 16, 16)


def _positive_input(seed):
    return jnp.asarray(np.random.default_rng(seed).uniform(1.0, 2.0, size=DROPOUT_SHAPE), jnp.float32)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_drops_at_rate_and_rescales_kept(rate):
    x = _positive_input(8)
    y = A.dropout(x, rate, key=jax.random.key(1), train=True)
    assert y.shape == x.shape and y.dtype == x.dtype
    dropped = np.asarray(y) == 0.0  # x is never 0, so a 0 in y means dropped
    # Kept elements are exactly x / (1 - rate): the drop probability, not keep probability.
    np.testing.assert_allclose(np.asarray(y)[~dropped], np.asarray(x)[~dropped] / (1 - rate), rtol=1e-6)
    n = dropped.size
    # Binomial(n, rate): 5 standard deviations around the expected drop fraction.
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    # Inverted scaling keeps the expectation: E[y] = E[x]. Each y_i has variance
    # x_i^2 * rate / (1 - rate) around x_i; allow 5 standard deviations of the mean.
    std_of_mean = np.sqrt(np.mean(np.asarray(x) ** 2) * rate / (1 - rate) / n)
    assert abs(float(y.mean()) - float(x.mean())) < 5 * std_of_mean


def test_dropout_is_deterministic_per_key_and_differs_across_keys():
    x = jnp.ones(DROPOUT_SHAPE)
    a = A.dropout(x, 0.5, key=jax.random.key(3), train=True)
    b = A.dropout(x, 0.5, key=jax.random.key(3), train=True)
    c = A.dropout(x, 0.5, key=jax.random.key(4), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # bfloat16 stays bfloat16 and uses the same mask.
    half = A.dropout(x.astype(jnp.bfloat16), 0.5, key=jax.random.key(3), train=True)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_array_equal(half == 0, a == 0)


def test_dropout_gradient_is_mask_over_keep_probability_and_jit_matches():
    x = _positive_input(9)
    key = jax.random.key(5)
    rate = 0.25

    def loss(v):
        return jnp.sum(A.dropout(v, rate, key=key, train=True))

    y = A.dropout(x, rate, key=key, train=True)
    kept = (np.asarray(y) != 0).astype(np.float32)
    np.testing.assert_allclose(jax.grad(loss)(x), kept / (1 - rate), rtol=1e-6)
    jitted = jax.jit(lambda v, k: A.dropout(v, rate, key=k, train=True))
    jitted_y = jitted(x, key)
    # Same mask; the scale may differ in the last ulp once XLA constant-folds 1/(1-rate).
    np.testing.assert_array_equal(jitted_y == 0, y == 0)
    np.testing.assert_allclose(jitted_y, y, rtol=1e-6)


def test_dropout_errors():
    x = jnp.ones((2, 2))
    key = jax.random.key(0)
    for bad_rate in (1.0, -0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match=r"drop probability.*\[0, 1\)"):
            A.dropout(x, bad_rate, key=key, train=True)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        A.dropout(x, 0.5, key=None, train=True)
    with pytest.raises(ValueError, match="train must be a Python bool"):
        A.dropout(x, 0.5, key=key, train=1)
    with pytest.raises(ValueError, match="floating-point input.*int32"):
        A.dropout(jnp.ones((2, 2), jnp.int32), 0.5, key=key, train=True)

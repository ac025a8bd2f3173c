"""Losses against PyTorch, NumPy loops and the CS231n worked example."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import losses as L

N, K = 6, 5


def _logits_and_labels(seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(N, K)) * scale).astype(np.float32)
    labels = rng.integers(0, K, size=N).astype(np.int32)
    return logits, labels


def _torch_loss_and_grad(torch_fn, *arrays, **kwargs):
    torch = pytest.importorskip("torch")
    first = torch.tensor(arrays[0], requires_grad=True)
    rest = [torch.tensor(a) for a in arrays[1:]]
    loss = torch_fn(first, *rest, **kwargs)
    loss.backward()
    return loss.item(), first.grad.numpy()


def _check_against_torch(jax_fn, torch_fn, *arrays, rtol=1e-5, atol=1e-6, **kwargs):
    loss, grad = jax.value_and_grad(jax_fn)(*[jnp.asarray(a) for a in arrays], **kwargs)
    expected_loss, expected_grad = _torch_loss_and_grad(torch_fn, *arrays, **kwargs)
    assert loss.shape == () and loss.dtype == jnp.float32
    np.testing.assert_allclose(loss, expected_loss, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- cross-entropy


def test_softmax_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    logits, labels = _logits_and_labels()
    labels64 = labels.astype(np.int64)  # torch wants int64 targets; we accept any int
    _check_against_torch(
        lambda lg, lb: L.softmax_cross_entropy(lg, lb.astype(jnp.int32)),
        torch.nn.functional.cross_entropy, logits, labels64,
    )


def test_softmax_cross_entropy_hand_values_and_stability():
    # Uniform logits: every class has probability 1/K, so the loss is log K.
    assert L.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.array([0, 1, 3])) == pytest.approx(np.log(4))
    # Huge logits: a naive exp overflows; the shifted form gives the exact answer.
    logits = jnp.array([[1e4, 1e4 - 2.0], [-1e4, -1e4 + 3.0]])
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-3.0))])
    assert L.softmax_cross_entropy(logits, jnp.array([0, 1])) == pytest.approx(expected, rel=1e-5)
    # Gradient is softmax - onehot, divided by N.
    grad = jax.grad(L.softmax_cross_entropy)(jnp.zeros((2, 4)), jnp.array([1, 2]))
    np.testing.assert_allclose(grad, np.array([[1, -3, 1, 1], [1, 1, -3, 1]]) / 4 / 2, rtol=1e-6)


def test_softmax_cross_entropy_check_grads_jit_and_nan_for_bad_label_under_jit():
    logits, labels = _logits_and_labels(seed=1)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    check_grads(lambda lg: L.softmax_cross_entropy(lg, labels), (logits,), order=2, modes=["rev"])
    jitted = jax.jit(L.softmax_cross_entropy)
    np.testing.assert_allclose(jitted(logits, labels), L.softmax_cross_entropy(logits, labels), rtol=1e-6)
    # Traced labels cannot be range-checked; a bad one must not give a plausible number.
    assert np.isnan(jitted(logits, labels.at[0].set(K)))


def test_accuracy_hand_values():
    logits = jnp.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.3, 0.7]])
    # Row 2 is a tie and resolves to class 0.
    assert L.accuracy(logits, jnp.array([1, 0, 0, 0])) == pytest.approx(0.75)
    assert L.accuracy(logits, jnp.array([1, 0, 1, 1])) == pytest.approx(0.75)
    assert L.accuracy(logits, jnp.array([0, 1, 1, 0])) == pytest.approx(0.0)
    assert L.accuracy(logits, jnp.array([1, 0, 0, 1])).dtype == jnp.float32


@pytest.mark.parametrize("loss_fn", [L.softmax_cross_entropy, L.multiclass_hinge, L.accuracy])
def test_classification_loss_errors(loss_fn):
    logits, labels = jnp.zeros((3, 4)), jnp.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"expected logits of shape \(N, K\)"):
        loss_fn(jnp.zeros(4), labels)
    with pytest.raises(ValueError, match=r"labels of shape \(3,\).*got labels of shape \(3, 1\)"):
        loss_fn(logits, labels[:, None])
    with pytest.raises(ValueError, match=r"labels must be integer class indices.*float32"):
        loss_fn(logits, labels.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 4\).*\[0, 4\]"):
        loss_fn(logits, jnp.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"\[0, 4\).*\[-1, 1\]"):
        loss_fn(logits, jnp.array([0, -1, 1]))
    with pytest.raises(ValueError, match="N >= 1 examples"):
        loss_fn(jnp.zeros((0, 4)), jnp.zeros((0,), jnp.int32))
    with pytest.raises(ValueError, match="floating-point logits"):
        loss_fn(jnp.zeros((3, 4), jnp.int32), labels)


# ---------------------------------------------------------------- multiclass hinge


def _multiclass_hinge_loop(scores, labels, margin):
    total = 0.0
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            if j != labels[i]:
                total += max(0.0, scores[i, j] - scores[i, labels[i]] + margin)
    return total / scores.shape[0]


def test_multiclass_hinge_cs231n_example():
    # CS231n "Linear classification": cat, car, frog scores; losses 2.9, 0, 12.9.
    scores = jnp.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = jnp.array([0, 1, 2])
    assert L.multiclass_hinge(scores, labels) == pytest.approx((2.9 + 0.0 + 12.9) / 3, rel=1e-6)


@pytest.mark.parametrize("margin", [1.0, 0.5, 0.0])
def test_multiclass_hinge_matches_loop_and_torch(margin):
    torch = pytest.importorskip("torch")
    logits, labels = _logits_and_labels(seed=2, scale=0.7)
    value = L.multiclass_hinge(jnp.asarray(logits), jnp.asarray(labels), margin=margin)
    np.testing.assert_allclose(value, _multiclass_hinge_loop(logits, labels, margin), rtol=1e-5)
    # torch averages over the K classes where CS231n sums over them.
    _check_against_torch(
        lambda lg, lb: L.multiclass_hinge(lg, lb.astype(jnp.int32), margin=margin),
        lambda t, lb: K * torch.nn.functional.multi_margin_loss(t, lb, margin=margin),
        logits, labels.astype(np.int64),
    )


def test_multiclass_hinge_gradient_check_jit_and_kink():
    logits, labels = _logits_and_labels(seed=3, scale=0.7)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    check_grads(lambda lg: L.multiclass_hinge(lg, labels), (logits,), order=1, modes=["fwd", "rev"])
    jitted = jax.jit(L.multiclass_hinge)
    np.testing.assert_allclose(jitted(logits, labels), L.multiclass_hinge(logits, labels), rtol=1e-6)
    assert np.isnan(jitted(logits, labels.at[0].set(-3)))
    # At the kink (s_j - s_y + margin == 0) the subgradient is 0, as in torch.
    at_kink = jnp.array([[2.0, 1.0, -5.0]])
    np.testing.assert_array_equal(jax.grad(L.multiclass_hinge)(at_kink, jnp.array([0])), [[0.0, 0.0, 0.0]])


def test_margin_errors():
    with pytest.raises(ValueError, match="margin must be a Python float >= 0"):
        L.multiclass_hinge(jnp.zeros((2, 3)), jnp.array([0, 1]), margin=-1.0)
    with pytest.raises(ValueError, match="margin must be a Python float >= 0"):
        L.multiclass_hinge(jnp.zeros((2, 3)), jnp.array([0, 1]), margin=jnp.float32(1.0))


# ---------------------------------------------------------------- binary hinge


def test_binary_hinge_hand_values_and_gradient():
    scores = jnp.array([2.0, 0.5, -0.25, -3.0])
    targets = jnp.array([1, 1, -1, 1])
    # max(0, 1 - t*y): 0, 0.5, 0.75, 4.
    assert L.binary_hinge(scores, targets) == pytest.approx((0 + 0.5 + 0.75 + 4.0) / 4)
    # d/dy = -t / N where the margin is violated, else 0.
    np.testing.assert_allclose(jax.grad(L.binary_hinge)(scores, targets), [0.0, -0.25, 0.25, -0.25])
    # Float targets are fine as long as they are +-1; the kink t*y = 1 has subgradient 0.
    assert L.binary_hinge(jnp.array([1.0, -1.0]), jnp.array([1.0, -1.0])) == 0.0
    np.testing.assert_array_equal(jax.grad(L.binary_hinge)(jnp.array([1.0]), jnp.array([1.0])), [0.0])


def test_binary_hinge_matches_numpy_check_grads_and_jit():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(4, 8)).astype(np.float32)
    targets = rng.choice([-1, 1], size=(4, 8)).astype(np.int32)
    scores[np.abs(1 - targets * scores) < 0.05] += 0.2  # stay off the kink for finite differences
    expected = np.mean(np.maximum(0.0, 1.0 - targets * scores))
    np.testing.assert_allclose(L.binary_hinge(scores, targets), expected, rtol=1e-6)
    check_grads(lambda s: L.binary_hinge(s, targets), (jnp.asarray(scores),), order=1, modes=["fwd", "rev"])
    np.testing.assert_allclose(jax.jit(L.binary_hinge)(scores, targets), expected, rtol=1e-6)


def test_binary_hinge_errors():
    with pytest.raises(ValueError, match=r"targets must be -1 or \+1.*\[0\]"):
        L.binary_hinge(jnp.array([0.3, 0.1]), jnp.array([1, 0]))
    with pytest.raises(ValueError, match=r"targets must be -1 or \+1.*\[2.0\]"):
        L.binary_hinge(jnp.array([0.3, 0.1]), jnp.array([2.0, -1.0]))
    with pytest.raises(ValueError, match=r"same shape.*\(2,\) and \(2, 1\)"):
        L.binary_hinge(jnp.array([0.3, 0.1]), jnp.array([[1], [-1]]))
    with pytest.raises(ValueError, match="floating-point scores"):
        L.binary_hinge(jnp.array([1, 2]), jnp.array([1, -1]))


# ---------------------------------------------------------------- regression


def _regression_pair(seed=5, shape=(4, 3, 5)):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=shape).astype(np.float32) * 2
    target = rng.normal(size=shape).astype(np.float32) * 2
    # Exact ties exercise the kinks: d = 0 everywhere in row 0, |d| = 1 (= beta) in row 1.
    target[0] = pred[0]
    target[1, :, 0] = pred[1, :, 0] - 1.0
    return pred, target


@pytest.mark.parametrize(
    "name,jax_fn,kwargs",
    [
        ("l1", L.l1_loss, {}),
        ("l2", L.l2_loss, {}),
        ("smooth_l1", L.smooth_l1_loss, {"beta": 1.0}),
        ("smooth_l1", L.smooth_l1_loss, {"beta": 0.3}),
        ("smooth_l1", L.smooth_l1_loss, {"beta": 0.0}),
    ],
    ids=["l1", "l2", "smooth_l1_beta1", "smooth_l1_beta0.3", "smooth_l1_beta0"],
)
def test_regression_losses_match_torch(name, jax_fn, kwargs):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    torch_fn = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}[name]
    pred, target = _regression_pair()
    _check_against_torch(jax_fn, torch_fn, pred, target, **kwargs)


def test_regression_hand_values_check_grads_and_jit():
    pred, target = jnp.array([[1.0, -2.0], [0.5, 3.0]]), jnp.array([[0.0, 0.0], [0.0, 3.0]])
    assert L.l1_loss(pred, target) == pytest.approx((1 + 2 + 0.5 + 0) / 4)
    assert L.l2_loss(pred, target) == pytest.approx((1 + 4 + 0.25 + 0) / 4)
    # beta=1: |d| >= 1 -> |d| - 0.5; |d| < 1 -> 0.5 d^2.
    assert L.smooth_l1_loss(pred, target) == pytest.approx((0.5 + 1.5 + 0.125 + 0) / 4)
    assert L.smooth_l1_loss(pred, target, beta=0.0) == pytest.approx(L.l1_loss(pred, target))

    rng = np.random.default_rng(6)
    smooth_pred = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    smooth_target = smooth_pred + jnp.asarray(rng.choice([-1, 1], size=(3, 4)) * rng.uniform(0.1, 2, (3, 4)),
                                              jnp.float32)
    for fn in (L.l1_loss, L.l2_loss, lambda p, t: L.smooth_l1_loss(p, t, beta=0.5)):
        check_grads(lambda p: fn(p, smooth_target), (smooth_pred,), order=1, modes=["fwd", "rev"])
    np.testing.assert_allclose(
        jax.jit(L.smooth_l1_loss, static_argnames="beta")(smooth_pred, smooth_target, beta=0.5),
        L.smooth_l1_loss(smooth_pred, smooth_target, beta=0.5), rtol=1e-6,
    )


@pytest.mark.parametrize("loss_fn", [L.l1_loss, L.l2_loss, L.smooth_l1_loss])
def test_regression_errors(loss_fn):
    with pytest.raises(ValueError, match=r"same shape \(no broadcasting\).*\(4, 1\) and \(4,\)"):
        loss_fn(jnp.zeros((4, 1)), jnp.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        loss_fn(jnp.zeros((0, 3)), jnp.zeros((0, 3)))


def test_beta_errors():
    for bad in (-0.5, float("nan"), "1", None):
        with pytest.raises(ValueError, match="beta must be a Python float >= 0"):
            L.smooth_l1_loss(jnp.zeros(3), jnp.zeros(3), beta=bad)

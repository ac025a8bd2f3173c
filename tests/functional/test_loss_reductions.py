"""Loss reductions ("mean" / "sum" / "none") vs PyTorch, the max-form multiclass hinge, top-k accuracy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn import functional as F

RNG = np.random.default_rng(7)
LOGITS = (RNG.normal(size=(6, 5)) * 2).astype(np.float32)
LABELS = RNG.integers(0, 5, size=6).astype(np.int32)
PRED = RNG.normal(size=(4, 3)).astype(np.float32)
TARGET = RNG.normal(size=(4, 3)).astype(np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["l1", "l2", "smooth_l1", "cross_entropy"])
def test_every_reduction_matches_torch_forward_and_gradient(name, reduction):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    if name == "cross_entropy":
        ours = lambda a: F.softmax_cross_entropy(a, LABELS, reduction=reduction)
        theirs = lambda t: tf.cross_entropy(t, torch.tensor(LABELS.astype(np.int64)), reduction=reduction)
        first = LOGITS
    else:
        jax_fn = {"l1": F.l1_loss, "l2": F.l2_loss, "smooth_l1": F.smooth_l1_loss}[name]
        torch_fn = {"l1": tf.l1_loss, "l2": tf.mse_loss, "smooth_l1": tf.smooth_l1_loss}[name]
        ours = lambda a: jax_fn(a, TARGET, reduction=reduction)
        theirs = lambda t: torch_fn(t, torch.tensor(TARGET), reduction=reduction)
        first = PRED
    t = torch.tensor(first, requires_grad=True)
    expected = theirs(t)
    cotangent = RNG.normal(size=tuple(expected.shape)).astype(np.float32)
    (expected * torch.tensor(cotangent)).sum().backward()
    value, vjp = jax.vjp(ours, jnp.asarray(first))
    (grad,) = vjp(jnp.asarray(cotangent))
    assert value.shape == tuple(expected.shape)
    np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_the_slides_l1_and_l2_losses_are_sums_over_the_examples():
    """Slide "Loss functions": L1 = sum_i |y_i - f(x_i)|, L2 = sum_i (y_i - f(x_i))^2, by hand."""
    pred, target = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.0, 1.0, 0.5])
    assert F.l1_loss(pred, target, reduction="sum") == pytest.approx(1 + 3 + 0)
    assert F.l2_loss(pred, target, reduction="sum") == pytest.approx(1 + 9 + 0)
    assert F.l2_loss(pred, target) == pytest.approx(10 / 3)
    np.testing.assert_allclose(F.l1_loss(pred, target, reduction="none"), [1, 3, 0])
    np.testing.assert_allclose(F.binary_hinge(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]), reduction="none"),
                               [0, 0.5, 2])
    assert F.binary_hinge(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1]), reduction="sum") == pytest.approx(2.5)


def _hinge_max_loop(scores, labels, margin):
    losses = []
    for s, y in zip(scores.astype(np.float64), labels):
        wrong = max(s[j] for j in range(len(s)) if j != y) if len(s) > 1 else -np.inf
        losses.append(max(0.0, margin + wrong - s[y]))
    return np.array(losses)


def test_multiclass_hinge_max_form_cs231n_scores_by_hand():
    """Slide "Multiclass SVM loss": the CS231n cat/car/frog scores; Crammer-Singer keeps only the worst class."""
    scores = jnp.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = jnp.array([0, 1, 2])
    # Sum form (Weston-Watkins): 2.9, 0, 12.9.  Max form: max(0, 1 + 5.1 - 3.2) = 2.9,
    # max(0, 1 + 2.0 - 4.9) = 0, max(0, 1 + 2.5 + 3.1) = 6.6.
    np.testing.assert_allclose(F.multiclass_hinge(scores, labels, reduction="none"), [2.9, 0, 12.9], rtol=1e-5)
    np.testing.assert_allclose(F.multiclass_hinge(scores, labels, aggregate="max", reduction="none"),
                               [2.9, 0, 6.6], rtol=1e-5)
    assert F.multiclass_hinge(scores, labels, aggregate="max") == pytest.approx(9.5 / 3, rel=1e-5)
    assert F.multiclass_hinge(scores, labels, aggregate="max", reduction="sum") == pytest.approx(9.5, rel=1e-5)
    # The gradient of the max form: -1 at the true class, +1 at the worst wrong class, per violating example.
    grad = jax.grad(lambda s: F.multiclass_hinge(s, labels, aggregate="max", reduction="sum"))(scores)
    np.testing.assert_allclose(grad, [[-1, 1, 0], [0, 0, 0], [0, 1, -1]])


@pytest.mark.parametrize("margin", [0.0, 1.0, 2.5])
def test_multiclass_hinge_max_form_matches_loop_and_gradients(margin):
    value = F.multiclass_hinge(LOGITS, LABELS, margin, aggregate="max", reduction="none")
    np.testing.assert_allclose(value, _hinge_max_loop(LOGITS, LABELS, margin), rtol=1e-5, atol=1e-6)
    check_grads(lambda s: F.multiclass_hinge(s, LABELS, margin, aggregate="max"), (jnp.asarray(LOGITS),),
                order=1, modes=["rev"], eps=1e-3)
    # max form <= sum form, and equal with two classes.
    assert np.all(value <= F.multiclass_hinge(LOGITS, LABELS, margin, reduction="none") + 1e-6)
    two = LOGITS[:, :2]
    labels2 = LABELS % 2
    np.testing.assert_allclose(F.multiclass_hinge(two, labels2, margin, aggregate="max"),
                               F.multiclass_hinge(two, labels2, margin), rtol=1e-6)
    assert float(F.multiclass_hinge(LOGITS[:, :1], np.zeros(6, np.int32), aggregate="max")) == 0.0


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_accuracy_matches_torch_topk(k):
    torch = pytest.importorskip("torch")
    logits = RNG.normal(size=(50, 5)).astype(np.float32)
    labels = RNG.integers(0, 5, size=50).astype(np.int32)
    top = torch.topk(torch.tensor(logits), k, dim=1).indices.numpy()
    expected = np.mean([labels[i] in top[i] for i in range(50)])
    assert F.top_k_accuracy(logits, labels, k) == pytest.approx(expected)
    assert jax.jit(F.top_k_accuracy, static_argnums=2)(logits, labels, k) == pytest.approx(expected)
    if k == 1:
        assert F.top_k_accuracy(logits, labels, 1) == pytest.approx(float(F.accuracy(logits, labels)))


def test_top_k_accuracy_hand_values_and_ties():
    logits = jnp.array([[0.1, 0.5, 0.3, 0.0], [0.2, 0.2, 0.2, 0.9], [4.0, 3.0, 2.0, 1.0]])
    # Top-2: {1, 2}, {3, 0} (tie among 0, 1, 2 goes to the lowest index), {0, 1}.
    assert F.top_k_accuracy(logits, jnp.array([2, 0, 1]), 2) == pytest.approx(1.0)
    assert F.top_k_accuracy(logits, jnp.array([0, 1, 2]), 2) == pytest.approx(0.0)
    assert F.top_k_accuracy(logits, jnp.array([0, 1, 2]), 4) == pytest.approx(1.0)
    # Top-3: {1, 2, 0}, {3, 0, 1} (class 2 loses the tie), {0, 1, 2}.
    assert F.top_k_accuracy(logits, jnp.array([0, 2, 3]), 3) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: F.l1_loss(PRED, TARGET, reduction="avg"), 'reduction must be "mean", "sum" or "none"'),
        (lambda: F.l2_loss(PRED, TARGET, reduction=None), "reduction must be"),
        (lambda: F.smooth_l1_loss(PRED, TARGET, reduction="batchmean"), "reduction must be"),
        (lambda: F.softmax_cross_entropy(LOGITS, LABELS, reduction="Mean"), "reduction must be"),
        (lambda: F.binary_hinge(PRED, np.sign(TARGET), reduction="total"), "reduction must be"),
        (lambda: F.multiclass_hinge(LOGITS, LABELS, reduction="x"), "reduction must be"),
        (lambda: F.multiclass_hinge(LOGITS, LABELS, aggregate="mean"), 'aggregate must be "sum"'),
        (lambda: F.top_k_accuracy(LOGITS, LABELS, 0), r"k must be an int in \[1, 5\]"),
        (lambda: F.top_k_accuracy(LOGITS, LABELS, 6), r"k must be an int in \[1, 5\]"),
        (lambda: F.top_k_accuracy(LOGITS, LABELS, 2.0), "k must be an int"),
    ],
)
def test_bad_reduction_aggregate_and_k_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()

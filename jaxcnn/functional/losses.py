"""Classification and regression losses, each reduced to a scalar mean.

Classification losses take ``logits`` (N, K) -- unnormalised class scores for N
examples and K classes -- and integer ``labels`` (N,) in ``[0, K)``, and return the
mean over the N examples. Regression losses take ``pred`` and ``target`` of the
same shape and return the mean over every element (as PyTorch's ``reduction="mean"``).

Shapes are checked at trace time. Label *values* can only be checked when they are
concrete (eager calls): then an out-of-range class or a binary target other than
+-1 raises ValueError. Under ``jit``/``vmap`` they cannot be inspected; an
out-of-range class label then makes the loss NaN rather than a wrong number.

Each public function validates in Python and hands the math to a jitted private
function (as ``jax.nn`` does), so an eager call compiles one fused program instead
of dispatching op by op; under an outer ``jit`` the inner one is simply inlined.
"""
from __future__ import annotations

from functools import partial
from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.functional.activations import log_softmax

__all__ = [
    "softmax_cross_entropy",
    "multiclass_hinge",
    "binary_hinge",
    "l1_loss",
    "l2_loss",
    "smooth_l1_loss",
    "accuracy",
]


def _concrete_or_none(x):
    """The value of ``x`` as a NumPy array, or None while it is being traced."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _check_logits_and_labels(logits, labels, what: str):
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"{what}: expected logits of shape (N, K), got shape {logits.shape}")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(f"{what}: expected floating-point logits, got dtype {logits.dtype}")
    num_examples, num_classes = logits.shape
    if num_examples == 0 or num_classes == 0:
        raise ValueError(f"{what}: logits must have N >= 1 examples and K >= 1 classes, got {logits.shape}")
    if labels.shape != (num_examples,):
        raise ValueError(
            f"{what}: expected integer labels of shape ({num_examples},) to match logits "
            f"{logits.shape}, got labels of shape {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{what}: labels must be integer class indices in [0, {num_classes}), got dtype "
            f"{labels.dtype} (one-hot or float labels are not accepted)"
        )
    values = _concrete_or_none(labels)
    if values is not None and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(
            f"{what}: labels must be class indices in [0, {num_classes}), got values in "
            f"[{values.min()}, {values.max()}]"
        )
    return logits, labels


def _nan_for_bad_labels(per_example: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """``per_example`` with NaN wherever a (traced, so unchecked) label is outside ``[0, K)``.

    Gathers wrap negative indices and clamp or fill large ones; without this a bad
    label under jit would give a finite, plausible-looking loss.
    """
    in_range = (labels >= 0) & (labels < num_classes)
    return jnp.where(in_range, per_example, jnp.full_like(per_example, jnp.nan))


def _check_same_shape(pred, target, what: str):
    pred = jnp.asarray(pred)
    target = jnp.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"{what}: pred and target must have the same shape (no broadcasting), got "
            f"{pred.shape} and {target.shape}"
        )
    if pred.size == 0:
        raise ValueError(f"{what}: the mean of an empty array is undefined, got shape {pred.shape}")
    return pred, target


def _abs(x: jax.Array) -> jax.Array:
    """``|x|`` with subgradient 0 at 0, as PyTorch's L1 losses (``jnp.abs`` gives 1 there)."""
    return jnp.where(x > 0, x, jnp.where(x < 0, -x, jnp.zeros_like(x)))


def _check_non_negative_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
        raise ValueError(f"{name} must be a Python float >= 0, got {value!r}")
    return float(value)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean negative log-likelihood of the true class under ``softmax(logits)``.

    ``loss = mean_i [ logsumexp(logits[i]) - logits[i, labels[i]] ]``, computed from a
    max-shifted log-softmax so that large logits neither overflow nor lose precision.
    Equals ``torch.nn.functional.cross_entropy(logits, labels)``.

    Args:
      logits: (N, K) floating class scores.
      labels: (N,) integer class indices in ``[0, K)``.

    Returns:
      A scalar of the logits' dtype.
    """
    logits, labels = _check_logits_and_labels(logits, labels, "softmax_cross_entropy")
    return _softmax_cross_entropy(logits, labels)


@jax.jit
def _softmax_cross_entropy(logits, labels):
    log_probabilities = log_softmax(logits, axis=-1)
    true_class = jnp.take_along_axis(log_probabilities, labels[:, None], axis=-1)[:, 0]
    return -jnp.mean(_nan_for_bad_labels(true_class, labels, logits.shape[1]))


def multiclass_hinge(logits: jax.Array, labels: jax.Array, margin: float = 1.0) -> jax.Array:
    """Multiclass SVM (Weston-Watkins / CS231n) hinge loss.

    ``loss = mean_i sum_{j != y_i} max(0, s_ij - s_i,y_i + margin)`` with ``s = logits``
    and ``y = labels``. Note the SUM over wrong classes: this is ``K`` times
    ``torch.nn.functional.multi_margin_loss(logits, labels, margin=margin)``, which
    averages over the K classes instead.

    Args:
      logits: (N, K) floating class scores.
      labels: (N,) integer class indices in ``[0, K)``.
      margin: the required gap ``delta`` between the true-class score and every
        other score, a Python float >= 0.

    Returns:
      A scalar of the logits' dtype. Subgradient 0 at the hinge's kink.
    """
    margin = _check_non_negative_number(margin, "margin")
    logits, labels = _check_logits_and_labels(logits, labels, "multiclass_hinge")
    return _multiclass_hinge(logits, labels, margin)


@partial(jax.jit, static_argnums=2)
def _multiclass_hinge(logits, labels, margin):
    true_score = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    violations = logits - true_score + margin
    is_wrong_class = jnp.arange(logits.shape[1])[None, :] != labels[:, None]
    # A where, not maximum(., 0), whose derivative at the kink is 1/2 instead of 0.
    hinge = jnp.where(is_wrong_class & (violations > 0), violations, jnp.zeros_like(violations))
    per_example = jnp.sum(hinge, axis=-1)
    return jnp.mean(_nan_for_bad_labels(per_example, labels, logits.shape[1]))


def binary_hinge(scores: jax.Array, targets: jax.Array) -> jax.Array:
    """Binary hinge loss ``mean(max(0, 1 - t * y))`` for targets ``t`` in {-1, +1}.

    Args:
      scores: any shape (typically (N,)), floating raw classifier outputs ``y``.
      targets: same shape as ``scores``, values -1 or +1 (any numeric dtype). Values
        other than +-1 raise ValueError when the targets are concrete (not traced).

    Returns:
      A scalar: the mean over all elements. Subgradient 0 at the kink ``t * y = 1``.
    """
    scores, targets = _check_same_shape(scores, targets, "binary_hinge")
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise ValueError(f"binary_hinge: expected floating-point scores, got dtype {scores.dtype}")
    values = _concrete_or_none(targets)
    if values is not None and not np.all((values == 1) | (values == -1)):
        bad = np.unique(values[(values != 1) & (values != -1)])[:5]
        raise ValueError(f"binary_hinge: targets must be -1 or +1, got other values such as {bad.tolist()}")
    return _binary_hinge(scores, targets)


@jax.jit
def _binary_hinge(scores, targets):
    slack = 1 - targets.astype(scores.dtype) * scores
    return jnp.mean(jnp.where(slack > 0, slack, jnp.zeros_like(slack)))


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error ``mean(|pred - target|)`` over every element.

    Shapes: ``pred`` and ``target`` the same shape (no broadcasting) -> scalar.
    Equals ``torch.nn.functional.l1_loss``; subgradient 0 where ``pred == target``.
    """
    pred, target = _check_same_shape(pred, target, "l1_loss")
    return _l1_loss(pred, target)


@jax.jit
def _l1_loss(pred, target):
    return jnp.mean(_abs(pred - target))


def l2_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error ``mean((pred - target)**2)`` over every element.

    This is the MSE, with no factor 1/2 and no sum (unlike ``optax.l2_loss``, which
    is ``0.5 * (pred - target)**2`` elementwise). Equals ``torch.nn.functional.mse_loss``.
    Shapes: ``pred`` and ``target`` the same shape (no broadcasting) -> scalar.
    """
    pred, target = _check_same_shape(pred, target, "l2_loss")
    return _l2_loss(pred, target)


@jax.jit
def _l2_loss(pred, target):
    return jnp.mean(jnp.square(pred - target))


def smooth_l1_loss(pred: jax.Array, target: jax.Array, beta: float = 1.0) -> jax.Array:
    """Smooth L1 (Huber-like) loss, the mean over every element of

        0.5 * d**2 / beta   if |d| < beta
        |d| - 0.5 * beta    otherwise,           d = pred - target.

    Equals ``torch.nn.functional.smooth_l1_loss(pred, target, beta=beta)``; ``beta = 0``
    is the plain L1 loss. (Huber loss with ``delta = beta`` is ``beta`` times this.)

    Args:
      pred, target: the same shape (no broadcasting).
      beta: where the quadratic part meets the linear part, a Python float >= 0.

    Returns:
      A scalar of ``pred``'s dtype.
    """
    beta = _check_non_negative_number(beta, "beta")
    pred, target = _check_same_shape(pred, target, "smooth_l1_loss")
    if beta == 0.0:
        return _l1_loss(pred, target)
    return _smooth_l1_loss(pred, target, beta)


@partial(jax.jit, static_argnums=2)
def _smooth_l1_loss(pred, target, beta):
    difference = _abs(pred - target)
    quadratic = 0.5 * jnp.square(difference) / beta
    return jnp.mean(jnp.where(difference < beta, quadratic, difference - 0.5 * beta))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of examples whose arg-max class equals the label.

    Args:
      logits: (N, K) class scores (or probabilities).
      labels: (N,) integer class indices in ``[0, K)``.

    Returns:
      A float32 scalar in [0, 1]. Ties in the arg-max go to the lowest class index.
    """
    logits, labels = _check_logits_and_labels(logits, labels, "accuracy")
    return _accuracy(logits, labels)


@jax.jit
def _accuracy(logits, labels):
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))

"""Classification and regression losses, and accuracy metrics.

Classification losses take ``logits`` (N, K) -- unnormalised class scores for N
examples and K classes -- and integer ``labels`` (N,) in ``[0, K)``; their
per-example losses have shape (N,). Regression losses take ``pred`` and ``target``
of the same shape; their per-element losses have that shape. Every loss takes
PyTorch's ``reduction=``: ``"mean"`` (the default: a scalar, the mean over the N
examples or over every element), ``"sum"`` (a scalar, the sum -- the slides'
``L = sum_i L_i`` for the L1/L2 losses) or ``"none"`` (the per-example or
per-element losses, unreduced).

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
    "REDUCTIONS",
    "softmax_cross_entropy",
    "multiclass_hinge",
    "binary_hinge",
    "l1_loss",
    "l2_loss",
    "smooth_l1_loss",
    "accuracy",
    "top_k_accuracy",
]

REDUCTIONS = ("mean", "sum", "none")


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


def _check_reduction(reduction, what: str) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f'{what}: reduction must be "mean", "sum" or "none", got {reduction!r}')
    return reduction


def _reduce(values: jax.Array, reduction: str) -> jax.Array:
    """``values`` averaged, summed or returned as they are (``reduction`` is static)."""
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    return values


def _check_non_negative_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
        raise ValueError(f"{name} must be a Python float >= 0, got {value!r}")
    return float(value)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, reduction: str = "mean") -> jax.Array:
    """Negative log-likelihood of the true class under ``softmax(logits)``.

    ``L_i = logsumexp(logits[i]) - logits[i, labels[i]]``, computed from a
    max-shifted log-softmax so that large logits neither overflow nor lose precision;
    ``loss = mean_i L_i`` by default. Equals
    ``torch.nn.functional.cross_entropy(logits, labels, reduction=reduction)``.

    Args:
      logits: (N, K) floating class scores.
      labels: (N,) integer class indices in ``[0, K)``.
      reduction: ``"mean"``, ``"sum"`` (scalars) or ``"none"`` (the (N,) ``L_i``).

    Returns:
      A scalar (or (N,)) of the logits' dtype.
    """
    reduction = _check_reduction(reduction, "softmax_cross_entropy")
    logits, labels = _check_logits_and_labels(logits, labels, "softmax_cross_entropy")
    return _softmax_cross_entropy(logits, labels, reduction)


@partial(jax.jit, static_argnums=2)
def _softmax_cross_entropy(logits, labels, reduction):
    log_probabilities = log_softmax(logits, axis=-1)
    true_class = jnp.take_along_axis(log_probabilities, labels[:, None], axis=-1)[:, 0]
    return _reduce(-_nan_for_bad_labels(true_class, labels, logits.shape[1]), reduction)


HINGE_AGGREGATES = ("sum", "max")


def multiclass_hinge(
    logits: jax.Array,
    labels: jax.Array,
    margin: float = 1.0,
    aggregate: str = "sum",
    reduction: str = "mean",
) -> jax.Array:
    """Multiclass SVM hinge loss, summing (Weston-Watkins / CS231n) or maxing (Crammer-Singer) over classes.

    With ``s = logits``, ``y = labels`` and ``delta = margin``, the per-example loss is

        aggregate="sum":  L_i = sum_{j != y_i} max(0, s_ij - s_i,y_i + delta)
        aggregate="max":  L_i = max(0, delta + max_{j != y_i} s_ij - s_i,y_i)

    and ``loss = mean_i L_i`` by default. The sum form is ``K`` times
    ``torch.nn.functional.multi_margin_loss(logits, labels, margin=margin)``, which
    averages over the K classes instead. The max form penalises only the
    highest-scoring wrong class (``L_i = max_{j != y_i}`` of the sum form's terms);
    with a single class it is 0.

    Args:
      logits: (N, K) floating class scores.
      labels: (N,) integer class indices in ``[0, K)``.
      margin: the required gap ``delta`` between the true-class score and every
        other score, a Python float >= 0.
      aggregate: ``"sum"`` or ``"max"`` over the wrong classes, as above.
      reduction: ``"mean"``, ``"sum"`` (scalars) or ``"none"`` (the (N,) ``L_i``).

    Returns:
      A scalar (or (N,)) of the logits' dtype. Subgradient 0 at the hinge's kink;
      in the max form, tied highest wrong classes share the gradient equally.
    """
    margin = _check_non_negative_number(margin, "margin")
    if aggregate not in HINGE_AGGREGATES:
        raise ValueError(
            f'multiclass_hinge: aggregate must be "sum" (Weston-Watkins) or "max" (Crammer-Singer), '
            f"got {aggregate!r}"
        )
    reduction = _check_reduction(reduction, "multiclass_hinge")
    logits, labels = _check_logits_and_labels(logits, labels, "multiclass_hinge")
    return _multiclass_hinge(logits, labels, margin, aggregate, reduction)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _multiclass_hinge(logits, labels, margin, aggregate, reduction):
    true_score = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    violations = logits - true_score + margin
    is_wrong_class = jnp.arange(logits.shape[1])[None, :] != labels[:, None]
    # A where, not maximum(., 0), whose derivative at the kink is 1/2 instead of 0.
    hinge = jnp.where(is_wrong_class & (violations > 0), violations, jnp.zeros_like(violations))
    # max(0, max_j v_j) = max_j max(0, v_j), and the true class's entry is 0.
    per_example = jnp.sum(hinge, axis=-1) if aggregate == "sum" else jnp.max(hinge, axis=-1)
    return _reduce(_nan_for_bad_labels(per_example, labels, logits.shape[1]), reduction)


def binary_hinge(scores: jax.Array, targets: jax.Array, reduction: str = "mean") -> jax.Array:
    """Binary hinge loss ``max(0, 1 - t * y)`` for targets ``t`` in {-1, +1}, averaged by default.

    Args:
      scores: any shape (typically (N,)), floating raw classifier outputs ``y``.
      targets: same shape as ``scores``, values -1 or +1 (any numeric dtype). Values
        other than +-1 raise ValueError when the targets are concrete (not traced).
      reduction: ``"mean"`` / ``"sum"`` over all elements, or ``"none"`` (``scores``' shape).

    Returns:
      A scalar (or ``scores``' shape). Subgradient 0 at the kink ``t * y = 1``.
    """
    reduction = _check_reduction(reduction, "binary_hinge")
    scores, targets = _check_same_shape(scores, targets, "binary_hinge")
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        raise ValueError(f"binary_hinge: expected floating-point scores, got dtype {scores.dtype}")
    values = _concrete_or_none(targets)
    if values is not None and not np.all((values == 1) | (values == -1)):
        bad = np.unique(values[(values != 1) & (values != -1)])[:5]
        raise ValueError(f"binary_hinge: targets must be -1 or +1, got other values such as {bad.tolist()}")
    return _binary_hinge(scores, targets, reduction)


@partial(jax.jit, static_argnums=2)
def _binary_hinge(scores, targets, reduction):
    slack = 1 - targets.astype(scores.dtype) * scores
    return _reduce(jnp.where(slack > 0, slack, jnp.zeros_like(slack)), reduction)


def l1_loss(pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    """Absolute error ``|pred - target|`` per element, averaged by default.

    ``reduction="mean"``: ``mean(|pred - target|)`` (the mean absolute error);
    ``"sum"``: ``sum(|pred - target|)`` -- the slides' L1 loss, summed over the N
    examples; ``"none"``: the elementwise errors.
    Shapes: ``pred`` and ``target`` the same shape (no broadcasting) -> scalar
    (or that shape for ``"none"``). Equals ``torch.nn.functional.l1_loss(...,
    reduction=reduction)``; subgradient 0 where ``pred == target``.
    """
    reduction = _check_reduction(reduction, "l1_loss")
    pred, target = _check_same_shape(pred, target, "l1_loss")
    return _l1_loss(pred, target, reduction)


@partial(jax.jit, static_argnums=2)
def _l1_loss(pred, target, reduction):
    return _reduce(_abs(pred - target), reduction)


def l2_loss(pred: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    """Squared error ``(pred - target)**2`` per element, averaged by default (the MSE).

    ``reduction="mean"``: ``mean((pred - target)**2)``; ``"sum"``:
    ``sum((pred - target)**2)`` -- the slides' L2 loss, summed over the N examples;
    ``"none"``: the elementwise squares. No factor 1/2 (unlike ``optax.l2_loss``,
    which is ``0.5 * (pred - target)**2`` elementwise). Equals
    ``torch.nn.functional.mse_loss(..., reduction=reduction)``.
    Shapes: ``pred`` and ``target`` the same shape (no broadcasting) -> scalar
    (or that shape for ``"none"``).
    """
    reduction = _check_reduction(reduction, "l2_loss")
    pred, target = _check_same_shape(pred, target, "l2_loss")
    return _l2_loss(pred, target, reduction)


@partial(jax.jit, static_argnums=2)
def _l2_loss(pred, target, reduction):
    return _reduce(jnp.square(pred - target), reduction)


def smooth_l1_loss(pred: jax.Array, target: jax.Array, beta: float = 1.0, reduction: str = "mean") -> jax.Array:
    """Smooth L1 (Huber-like) loss, by default the mean over every element of

        0.5 * d**2 / beta   if |d| < beta
        |d| - 0.5 * beta    otherwise,           d = pred - target.

    Equals ``torch.nn.functional.smooth_l1_loss(pred, target, beta=beta)``; ``beta = 0``
    is the plain L1 loss. (Huber loss with ``delta = beta`` is ``beta`` times this.)

    Args:
      pred, target: the same shape (no broadcasting).
      beta: where the quadratic part meets the linear part, a Python float >= 0.
      reduction: ``"mean"`` / ``"sum"`` over every element, or ``"none"``.

    Returns:
      A scalar (or ``pred``'s shape) of ``pred``'s dtype.
    """
    beta = _check_non_negative_number(beta, "beta")
    reduction = _check_reduction(reduction, "smooth_l1_loss")
    pred, target = _check_same_shape(pred, target, "smooth_l1_loss")
    if beta == 0.0:
        return _l1_loss(pred, target, reduction)
    return _smooth_l1_loss(pred, target, beta, reduction)


@partial(jax.jit, static_argnums=(2, 3))
def _smooth_l1_loss(pred, target, beta, reduction):
    difference = _abs(pred - target)
    quadratic = 0.5 * jnp.square(difference) / beta
    return _reduce(jnp.where(difference < beta, quadratic, difference - 0.5 * beta), reduction)


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


def top_k_accuracy(logits: jax.Array, labels: jax.Array, k: int = 5) -> jax.Array:
    """Fraction of examples whose label is among the ``k`` highest-scoring classes (top-k accuracy).

    The case-study tables quote the top-5 *error*, ``1 - top_k_accuracy(logits, labels, 5)``.

    Args:
      logits: (N, K) class scores (or probabilities).
      labels: (N,) integer class indices in ``[0, K)``.
      k: an int in ``[1, K]``; ``k = 1`` is :func:`accuracy`, ``k = K`` is 1.

    Returns:
      A float32 scalar in [0, 1]. The top ``k`` are ``lax.top_k``'s: among tied
      scores the lower class index ranks first (so ``k = 1`` breaks ties as
      :func:`accuracy`'s arg-max does). Computed as "fewer than ``k`` classes
      rank ahead of the label", elementwise over the batch (no sort or gather).
    """
    logits, labels = _check_logits_and_labels(logits, labels, "top_k_accuracy")
    num_classes = logits.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
        raise ValueError(f"top_k_accuracy: k must be an int in [1, {num_classes}] (the number of classes), got {k!r}")
    return _top_k_accuracy(logits, labels, int(k))


@partial(jax.jit, static_argnums=2)
def _top_k_accuracy(logits, labels, k):
    # The label is in the top k iff fewer than k classes rank ahead of it: a higher score,
    # or the same score and a lower index (lax.top_k's order). Elementwise and a sum over
    # classes, so a batch-sharded jit needs no gather (lax.top_k would all-gather the logits).
    true_score = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    lower_index = jnp.arange(logits.shape[1])[None, :] < labels[:, None]
    ahead = (logits > true_score) | ((logits == true_score) & lower_index)
    return jnp.mean((jnp.sum(ahead, axis=-1) < k).astype(jnp.float32))


def classification_metrics(logits, labels) -> dict:
    """A training step's metrics: ``{"loss", "accuracy", "label_errors"}``, float32 scalars.

    ``logits`` ``(B, K)`` in any float dtype (cast to float32 first: softmax and
    loss in float32 under mixed precision), ``labels`` int ``(B,)``. ``loss`` is
    the mean softmax cross-entropy, ``accuracy`` the top-1 fraction, and
    ``label_errors`` the number of labels outside ``0..K-1`` -- counted on the
    device, so a jitted step can report bad labels without a host check (their
    loss is NaN).
    """
    logits = jnp.asarray(logits, jnp.float32)
    loss = jnp.mean(softmax_cross_entropy(logits, labels)).astype(jnp.float32)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    label_errors = jnp.sum((labels < 0) | (labels >= logits.shape[-1])).astype(jnp.float32)
    return {"loss": loss, "accuracy": accuracy, "label_errors": label_errors}

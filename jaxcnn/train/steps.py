"""One training update and one evaluation, as jit-compiled pure functions.

``train_step(state, images, labels) -> (state, metrics)`` and
``eval_step(state, images, labels) -> metrics``. The pmap and jit+sharding
versions (``parallel.py``, ``sharded.py``) run the same bodies defined here
(:func:`train_step_body`, :func:`eval_step_body`), so all three share one loss,
one metric definition and one dropout-key rule.

Metrics are ``{"loss": float32[], "accuracy": float32[], "label_errors":
float32[]}``: the mean softmax cross-entropy and the fraction of argmax
predictions equal to the label, both averaged over the batch (over the global
batch in the multi-device steps), and the number of labels outside ``0..K-1``
for the model's K classes (averaged over devices in the multi-device steps, so
nonzero exactly when some device saw a bad label). Label *values* cannot be
checked while the step is traced, and a bad label makes the loss NaN;
:func:`check_labels` turns the device-side count into
``LabelOutOfRangeError("label out of range at step N ...")``, and the training
loop calls it after every step.
Weight decay is not in the loss: it is part of the optimizer
(:func:`jaxcnn.train.make_optimizer`).
"""
from __future__ import annotations

import jax
import numpy as np
from jax import lax

from jaxcnn.functional.args import check_batch
from jaxcnn.functional.losses import classification_metrics, top_k_accuracy
from jaxcnn.train.state import TrainState
from jaxcnn.train.xla_options import step_compiler_options


class LabelOutOfRangeError(ValueError):
    """A batch held a label outside ``0..K-1``; raised by :func:`check_labels` with the step."""


def _metrics(logits, labels) -> dict:
    # Softmax and loss in float32 whatever the model computes in (bf16 mixed precision).
    return classification_metrics(logits, labels)


def check_labels(metrics: dict, *, step: int, num_classes: int | None = None) -> None:
    """Raise :class:`LabelOutOfRangeError` when a step's metrics report labels out of range.

    The jit-safe label check: ``train_step``/``eval_step`` (and their pmap and
    sharded forms) count, on the device, the labels outside ``0..K-1``; this
    reads that count (one scalar transfer) after the step. Call it with the
    metrics of each step, e.g.::

        state, metrics = train_step(state, images, labels)
        check_labels(metrics, step=int(state.step))

    Args:
      metrics: a step's metrics dict (``"label_errors"``, scalar or one per device).
      step: the step to name in the message (1-based, as ``state.step`` after the update).
      num_classes: the model's K, to say the valid range in the message.

    Raises:
      LabelOutOfRangeError (a ValueError): ``"label out of range at step N: ..."``.
        The step's loss is NaN and so is the state it returned: keep the state
        from before the step (the training loop never saves such a state).
    """
    count = float(np.asarray(metrics["label_errors"]).reshape(-1)[0])
    if count:
        raise LabelOutOfRangeError(label_error_message(step, count, num_classes))


def label_error_message(step: int, count: float, num_classes: int | None = None) -> str:
    """The message of :class:`LabelOutOfRangeError` for ``count`` bad labels at ``step``."""
    expected = f"0..{num_classes - 1}" if num_classes is not None else "0..K-1 (K = the model's classes)"
    return (
        f"label out of range at step {step}: labels must be class indices {expected}, and "
        f"{'some labels of' if count != int(count) else f'{int(count)} label(s) of'} this "
        "batch are not; the step's loss and update are NaN. Check the labels fed to train_step"
    )


def train_step_body(
    state: TrainState, images, labels, *, axis_name: str | None = None
) -> tuple[TrainState, dict]:
    """The un-jitted update shared by :func:`train_step` and the multi-device steps.

    With ``axis_name`` (inside ``pmap``) the gradients, metrics and new
    batch_stats are averaged over that axis with ``lax.pmean`` and each device
    folds its index into the dropout key (different masks per shard).

    Args:
      state: a :class:`TrainState`.
      images: float32 (B, H, W, C), already normalised.
      labels: int (B,).

    Returns:
      ``(new_state, {"loss", "accuracy", "label_errors"})``; ``new_state.step = state.step + 1``.
    """
    check_batch(images, labels)
    dropout_rng = state.dropout_rng()
    if axis_name is not None:
        dropout_rng = jax.random.fold_in(dropout_rng, lax.axis_index(axis_name))

    def loss_fn(params):
        variables = {"params": params}
        if state.batch_stats:
            variables["batch_stats"] = state.batch_stats
        logits, new_model_state = state.apply_fn(
            variables,
            images,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": dropout_rng},
        )
        metrics = _metrics(logits, labels)
        return metrics["loss"], (metrics, new_model_state)

    (_, (metrics, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
    )
    new_batch_stats = new_model_state.get("batch_stats", {}) if state.batch_stats else {}
    if axis_name is not None:
        grads = lax.pmean(grads, axis_name)
        metrics = lax.pmean(metrics, axis_name)
        # A no-op when BatchNorm is synchronised (every device already holds the
        # global statistics); keeps the replicas identical when it is not.
        new_batch_stats = lax.pmean(new_batch_stats, axis_name)
    new_state = state.apply_gradients(grads=grads, batch_stats=new_batch_stats)
    return new_state, metrics


# Evaluation reports top-5 accuracy for models with at least this many classes.
TOP5_MIN_CLASSES = 10


def eval_step_body(state: TrainState, images, labels, *, axis_name: str | None = None) -> dict:
    """The un-jitted evaluation shared by :func:`eval_step` and the multi-device steps."""
    check_batch(images, labels)
    logits = state.apply_fn(state.variables(), images, train=False)
    metrics = _metrics(logits, labels)
    if logits.shape[-1] >= TOP5_MIN_CLASSES:
        metrics["top5_accuracy"] = top_k_accuracy(logits, labels, 5)
    if axis_name is not None:
        metrics = lax.pmean(metrics, axis_name)
    return metrics


def eval_step(state: TrainState, images, labels) -> dict:
    """Loss and accuracy of the model in inference mode (running BN statistics, no dropout).

    Args:
      state: a :class:`TrainState` (not modified).
      images: float32 (B, H, W, C), normalised like the training data.
      labels: int (B,).

    Returns:
      ``{"loss": float32[], "accuracy": float32[]}``, means over the batch,
      and ``"top5_accuracy"`` (:func:`jaxcnn.functional.top_k_accuracy`, k = 5)
      when the model has at least ``TOP5_MIN_CLASSES`` = 10 classes. To
      average over a dataset with a smaller last batch, weight each batch by
      its size.
    """
    return eval_step_body(state, images, labels)


def train_step(state: TrainState, images, labels) -> tuple[TrainState, dict]:
    """One SGD-family update on a batch; jit-compiled, ``state`` is donated.

    The model runs with ``train=True``, ``mutable=["batch_stats"]`` and
    ``rngs={"dropout": fold_in(state.dropout_key, state.step)}``; the loss is
    the mean softmax cross-entropy of ``jaxcnn.functional.losses``; the
    optimizer ``state.tx`` applies the gradient (and weight decay).

    Args:
      state: a :class:`TrainState`. Donated: its buffers are reused for the
        result, so do not use ``state`` after the call (keep the returned one).
      images: float32 (B, H, W, C), normalised.
      labels: int (B,) class indices.

    Returns:
      ``(new_state, {"loss": float32[], "accuracy": float32[]})``, the metrics
      measured on this batch before the update.
    """
    return train_step_body(state, images, labels)


# Compiler options measured to speed up both steps on XLA:CPU (see
# jaxcnn.train.xla_options); empty (XLA's defaults) on an untested jaxlib.
eval_step = jax.jit(eval_step, compiler_options=step_compiler_options())
train_step = jax.jit(train_step, donate_argnums=0, compiler_options=step_compiler_options())

"""Optimizers and learning-rate schedules by name, and reduce-LR-on-plateau.

Everything here is Optax; this module only fixes the names, the defaults of
the papers the library follows, and the argument checks.

- :func:`make_optimizer` ``("sgd" | "adam" | "adamw" | "adadelta")``
- :func:`make_schedule` ``("constant" | "step" | "cosine" | "warmup_cosine" | "plateau")``
- :class:`Plateau`: the epoch-level "divide the learning rate by 10 when the
  validation accuracy stops improving" controller of the AlexNet recipe. Its
  state lives inside the optimizer state, so a checkpoint of the train state
  holds it and a resumed run continues exactly.

A schedule maps the number of updates already applied (``TrainState.step``,
starting at 0) to the learning rate of the next update, so the first update of
0-based epoch ``e`` uses ``schedule(e * steps_per_epoch)``.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Union

import jax
import jax.numpy as jnp
import optax
from optax.contrib import ReduceLROnPlateauState, reduce_on_plateau

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "plateau")

LearningRate = Union[float, Callable[[Any], Any]]


def _check_learning_rate(learning_rate) -> None:
    if callable(learning_rate):
        return
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)):
        raise ValueError(
            f"learning_rate must be a positive float or an optax schedule, got {learning_rate!r}"
        )
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")


def make_optimizer(
    name: str,
    learning_rate: LearningRate,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    weight_decay_mask=None,
    plateau: Plateau | None = None,
) -> optax.GradientTransformation:
    """An Optax optimizer by name.

    Args:
      name: one of ``"sgd"``, ``"adam"``, ``"adamw"``, ``"adadelta"``.
      learning_rate: a positive float, or a schedule from :func:`make_schedule`
        (any ``step -> lr`` callable).
      momentum: SGD only (ignored by the others): heavy-ball momentum in [0, 1).
        0 means plain SGD.
      nesterov: SGD only: Nesterov momentum (needs ``momentum > 0``).
      weight_decay: >= 0. For ``sgd``, ``adam`` and ``adadelta`` it is the
        classic L2 penalty added to the gradient before the optimizer
        (``g + wd * w``, PyTorch's ``weight_decay`` for SGD/Adam/Adadelta; the
        AlexNet and ResNet papers' "weight decay"). For ``adamw`` it is the
        decoupled decay ``w -= lr * wd * w`` (Loshchilov & Hutter, PyTorch's
        AdamW).
      weight_decay_mask: which parameters decay: None (all of them), a bool
        pytree like the params, or a callable ``params -> bool pytree``, e.g.
        :func:`jaxcnn.functional.weight_mask` (only the ``kernel`` leaves: the
        slides' ``R(W) = lambda sum W^2`` covers weights, not biases or
        batch-norm parameters). Optax's ``mask=``.
      plateau: a :class:`Plateau`; when given, every update is multiplied by
        the plateau's current scale (1, then ``factor``, ``factor**2``, ...),
        which is exactly a learning-rate reduction for all four optimizers
        (their update is linear in the learning rate). Feed it the validation
        metric once per epoch with :meth:`Plateau.observe`.

    The update rules (``g`` the gradient, after weight decay where coupled):
      - sgd: ``v = momentum * v + g``; ``w -= lr * v`` (Nesterov:
        ``w -= lr * (g + momentum * v)``); PyTorch's SGD with dampening 0.
      - adam / adamw: Kingma & Ba with b1=0.9, b2=0.999, eps=1e-8.
      - adadelta: Zeiler 2012 with rho=0.9, eps=1e-6, scaled by ``lr``
        (``lr=1`` is the paper's rule).

    Returns:
      An ``optax.GradientTransformation``.

    Raises:
      ValueError: unknown name (the message lists the known ones), or an
        argument out of range.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    _check_learning_rate(learning_rate)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov=True applies to sgd only, got optimizer {name!r}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
    if plateau is not None and not isinstance(plateau, Plateau):
        raise ValueError(f"plateau must be a jaxcnn.train.Plateau or None, got {plateau!r}")

    if name == "adamw":
        optimizer = optax.adamw(learning_rate, weight_decay=weight_decay, mask=weight_decay_mask)
    else:
        if name == "sgd":
            optimizer = optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov)
        elif name == "adam":
            optimizer = optax.adam(learning_rate)
        else:
            optimizer = optax.adadelta(learning_rate)
        if weight_decay:
            optimizer = optax.chain(optax.add_decayed_weights(weight_decay, mask=weight_decay_mask), optimizer)
    if plateau is not None:
        optimizer = optax.chain(optimizer, plateau.scale_updates())
    return optimizer


def make_schedule(
    name: str,
    *,
    base_lr: float,
    steps_per_epoch: int,
    epochs: int,
    decay_epochs: Sequence[float] = (),
    decay_factor: float = 0.1,
    warmup_epochs: float = 0,
) -> optax.Schedule:
    """A learning-rate schedule ``step -> lr`` by name (``step`` = updates applied so far).

    Args:
      name: one of
        - ``"constant"``: ``base_lr``;
        - ``"step"``: ``base_lr * decay_factor**k`` after the k-th of
          ``decay_epochs`` has started (AlexNet / ResNet "divide by 10");
          ``decay_epochs`` may be fractional so that iteration counts such as
          ResNet's 32k / 48k can be expressed (boundary step =
          ``round(epoch * steps_per_epoch)``);
        - ``"cosine"``: ``base_lr * (1 + cos(pi * t / T)) / 2`` over the whole
          run (``T = epochs * steps_per_epoch``), reaching 0 at the end;
        - ``"warmup_cosine"``: the same cosine after a linear warm-up from 0
          to ``base_lr`` over ``warmup_epochs`` (needs ``warmup_epochs > 0``);
        - ``"plateau"``: ``base_lr``; the reductions are made by a
          :class:`Plateau` passed to :func:`make_optimizer`.
        Any schedule except ``warmup_cosine`` also takes ``warmup_epochs`` to
        prepend a linear warm-up (``step`` boundaries stay absolute epochs).
      base_lr: peak learning rate, > 0.
      steps_per_epoch: updates per epoch, >= 1.
      epochs: length of the run in epochs, >= 1.
      decay_epochs: ``"step"`` only: increasing epochs in (0, epochs] at which
        the rate is multiplied by ``decay_factor``.
      decay_factor: ``"step"`` only: in (0, 1).
      warmup_epochs: >= 0 and < ``epochs``.

    Returns:
      An ``optax.Schedule``; ``schedule(e * steps_per_epoch)`` is the rate of
      the first update of 0-based epoch ``e``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    _check_learning_rate(base_lr)
    if callable(base_lr):
        raise ValueError(f"base_lr must be a float, got {base_lr!r}")
    for arg, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be an int >= 1, got {value!r}")
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}), got {warmup_epochs!r}")
    if name == "warmup_cosine" and warmup_epochs <= 0:
        raise ValueError("schedule 'warmup_cosine' needs warmup_epochs > 0")
    decay_epochs = tuple(decay_epochs)
    if name == "step":
        if not decay_epochs:
            raise ValueError("schedule 'step' needs decay_epochs, e.g. (30, 60)")
        if any(not 0 < e <= epochs for e in decay_epochs) or list(decay_epochs) != sorted(
            set(decay_epochs)
        ):
            raise ValueError(
                f"decay_epochs must be strictly increasing epochs in (0, epochs={epochs}], "
                f"got {decay_epochs!r}"
            )
        if not 0 < decay_factor < 1:
            raise ValueError(f"decay_factor must be in (0, 1), got {decay_factor!r}")
    elif decay_epochs:
        raise ValueError(f"decay_epochs applies to schedule 'step' only, got schedule {name!r}")

    total_steps = epochs * steps_per_epoch
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    main_steps = total_steps - warmup_steps

    if name in ("constant", "plateau"):
        main = optax.constant_schedule(base_lr)
    elif name == "step":
        boundaries = {
            int(round(e * steps_per_epoch)) - warmup_steps: decay_factor for e in decay_epochs
        }
        main = optax.piecewise_constant_schedule(base_lr, boundaries)
    else:  # cosine, warmup_cosine
        main = optax.cosine_decay_schedule(base_lr, decay_steps=main_steps)
    if warmup_steps == 0:
        return main
    warmup = optax.linear_schedule(0.0, base_lr, transition_steps=warmup_steps)
    return optax.join_schedules([warmup, main], boundaries=[warmup_steps])


@dataclasses.dataclass(frozen=True)
class Plateau:
    """Reduce the learning rate when a validation metric stops improving.

    After ``patience`` consecutive epochs without improvement the learning
    rate is multiplied by ``factor`` (then the count restarts; ``cooldown``
    epochs after a reduction are not counted). "Improvement" means better than
    the best value so far by more than ``min_delta`` (absolute): larger for
    ``mode="max"`` (accuracy), smaller for ``mode="min"`` (loss). This is
    ``optax.contrib.reduce_on_plateau`` run once per epoch; note that it
    reduces after ``patience`` bad epochs where PyTorch's ReduceLROnPlateau
    waits for ``patience + 1``.

    Use::

        plateau = Plateau(factor=0.1, patience=5)
        tx = make_optimizer("sgd", make_schedule("plateau", ...), plateau=plateau)
        ...
        state = plateau.observe(state, val_accuracy)   # once per epoch

    The controller's state (scale, best value, counters) is part of
    ``state.opt_state``, so it is checkpointed with the optimizer.
    """

    factor: float = 0.1
    patience: int = 5
    mode: str = "max"
    min_delta: float = 1e-4
    cooldown: int = 0
    min_scale: float = 0.0

    def __post_init__(self):
        if not 0 < self.factor < 1:
            raise ValueError(f"plateau factor must be in (0, 1), got {self.factor!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"plateau patience must be an int >= 1, got {self.patience!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"plateau mode must be 'max' or 'min', got {self.mode!r}")
        if not self.min_delta > 0:
            raise ValueError(f"plateau min_delta must be > 0, got {self.min_delta!r}")
        if isinstance(self.cooldown, bool) or not isinstance(self.cooldown, int) or self.cooldown < 0:
            raise ValueError(f"plateau cooldown must be an int >= 0, got {self.cooldown!r}")
        if not 0 <= self.min_scale < 1:
            raise ValueError(f"plateau min_scale must be in [0, 1), got {self.min_scale!r}")

    def _optax(self) -> optax.GradientTransformationExtraArgs:
        # rtol=0: optax's relative tolerance assumes positive values, and the
        # "max" mode feeds it negated accuracies.
        return reduce_on_plateau(
            factor=self.factor,
            patience=self.patience,
            rtol=0.0,
            atol=self.min_delta,
            cooldown=self.cooldown,
            min_scale=self.min_scale,
        )

    def scale_updates(self) -> optax.GradientTransformation:
        """The per-step transformation: ``updates * scale``; never changes its state."""
        inner = self._optax()

        def update_fn(updates, state, params=None):
            del params
            return jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates), state

        return optax.GradientTransformation(inner.init, update_fn)

    def observe(self, state, metric):
        """Feed one epoch's validation metric; returns ``state`` with the controller updated.

        Args:
          state: a TrainState (or anything with ``opt_state`` and ``replace``)
            whose optimizer was built with ``plateau=``. Replicated (pmap)
            states are handled: the same update is applied on every replica.
          metric: a scalar, e.g. the validation accuracy (``mode="max"``).
        """
        value = jnp.asarray(metric, jnp.float32)
        if self.mode == "max":
            value = -value

        def update(node):
            return _update_plateau_state(self, node, value) if _is_plateau_state(node) else node

        found = [n for n in jax.tree.leaves(state.opt_state, is_leaf=_is_plateau_state)
                 if _is_plateau_state(n)]
        if not found:
            raise ValueError(
                "Plateau.observe: the optimizer state has no plateau controller; "
                "build the optimizer with make_optimizer(..., plateau=Plateau(...))"
            )
        new_opt_state = jax.tree.map(update, state.opt_state, is_leaf=_is_plateau_state)
        return state.replace(opt_state=new_opt_state)


def _is_plateau_state(node) -> bool:
    return isinstance(node, ReduceLROnPlateauState)


@functools.partial(jax.jit, static_argnums=0)
def _update_plateau_state(plateau: Plateau, plateau_state, value):
    """One epoch of optax's reduce_on_plateau logic (jit: eager lax.cond is slow)."""

    def update_one(one_state):
        _, new_state = plateau._optax().update({}, one_state, value=value)
        return new_state

    if jnp.ndim(plateau_state.scale) == 1:  # replicated over pmap devices
        return jax.vmap(update_one)(plateau_state)
    return update_one(plateau_state)


def learning_rate_scale(opt_state) -> float:
    """The factor a :class:`Plateau` currently applies to the learning rate (1.0 without one)."""
    for node in jax.tree.leaves(opt_state, is_leaf=_is_plateau_state):
        if _is_plateau_state(node):
            scale = jnp.asarray(node.scale)
            return float(scale.reshape(-1)[0])
    return 1.0

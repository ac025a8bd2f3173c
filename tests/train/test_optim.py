"""Optimizers, schedules and the plateau controller of jaxcnn.train.optim.

References: update rules written out in NumPy here, ``torch.optim`` (SGD,
Adam, AdamW, Adadelta, ReduceLROnPlateau) and hand-derived schedule values.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcnn.train.optim import (
    OPTIMIZERS,
    Plateau,
    learning_rate_scale,
    make_optimizer,
    make_schedule,
)

# A fixed sequence of gradients isolates the update rule from any model.
_RNG = np.random.default_rng(0)
_W0 = _RNG.normal(size=(3, 2)).astype(np.float32)
_GRADS = [_RNG.normal(size=(3, 2)).astype(np.float32) for _ in range(4)]


def _run_optax(tx, grads=_GRADS, w0=_W0):
    params = {"w": jnp.asarray(w0)}
    opt_state = tx.init(params)
    trajectory = []
    for g in grads:
        updates, opt_state = tx.update({"w": jnp.asarray(g)}, opt_state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(np.asarray(params["w"]))
    return trajectory


def _run_torch(make, grads=_GRADS, w0=_W0):
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.tensor(w0))
    optimizer = make([w])
    trajectory = []
    for g in grads:
        w.grad = torch.tensor(g)
        optimizer.step()
        trajectory.append(w.detach().numpy().copy())
    return trajectory


# ---------------------------------------------------------------- optimizers
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_hand_computed_rule(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    w, v, expected = _W0.astype(np.float64), np.zeros_like(_W0, np.float64), []
    for g in _GRADS:
        g = g + wd * w  # coupled L2 weight decay
        v = mu * v + g
        w = w - lr * ((g + mu * v) if nesterov else v)
        expected.append(w)
    got = _run_optax(make_optimizer("sgd", lr, momentum=mu, nesterov=nesterov, weight_decay=wd))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_adam_matches_hand_computed_rule():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w = _W0.astype(np.float64)
    m, v, expected = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(_GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(w)
    np.testing.assert_allclose(_run_optax(make_optimizer("adam", lr)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, torch_name, kwargs",
    [
        ("sgd", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
        ("sgd", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)),
        ("sgd", "SGD", dict(lr=0.1, momentum=0.0, weight_decay=0.0)),
        ("adam", "Adam", dict(lr=0.01, weight_decay=1e-2)),
        ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
        ("adadelta", "Adadelta", dict(lr=1.0, weight_decay=1e-2)),
    ],
)
def test_optimizers_match_torch_optim(name, torch_name, kwargs):
    torch = pytest.importorskip("torch")
    ours = dict(kwargs)
    lr = ours.pop("lr")
    if name != "sgd":
        ours.pop("momentum", None)
    expected = _run_torch(lambda params: getattr(torch.optim, torch_name)(params, **kwargs))
    got = _run_optax(make_optimizer(name, lr, **ours))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


def test_optimizer_takes_a_schedule():
    schedule = make_schedule("step", base_lr=1.0, steps_per_epoch=2, epochs=2, decay_epochs=(1,))
    got = _run_optax(make_optimizer("sgd", schedule, momentum=0.0))
    rates = [1.0, 1.0, 0.1, 0.1]  # steps 0, 1 in epoch 0; 2, 3 in epoch 1
    expected, w = [], _W0.astype(np.float64)
    for rate, g in zip(rates, _GRADS):
        w = w - rate * g
        expected.append(w)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_optimizer_update_is_the_same_under_jit():
    tx = make_optimizer("adamw", 1e-2, weight_decay=0.1)
    params = {"w": jnp.asarray(_W0)}
    state = tx.init(params)
    grads = {"w": jnp.asarray(_GRADS[0])}
    eager = tx.update(grads, state, params)
    jitted = jax.jit(tx.update)(grads, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), eager, jitted)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("rmsprop", 0.1), {}, "unknown optimizer 'rmsprop'; expected one of sgd, adam, adamw, adadelta"),
        (("sgd", -0.1), {}, "learning_rate must be > 0"),
        (("sgd", "0.1"), {}, "learning_rate must be a positive float or an optax schedule"),
        (("sgd", 0.1), {"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        (("sgd", 0.1), {"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        (("adam", 0.1), {"nesterov": True}, "nesterov=True applies to sgd only"),
        (("sgd", 0.1), {"nesterov": True, "momentum": 0.0}, "nesterov=True needs momentum > 0"),
        (("sgd", 0.1), {"plateau": 0.1}, "plateau must be a jaxcnn.train.Plateau"),
    ],
)
def test_make_optimizer_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(*args, **kwargs)


def test_optimizer_names_are_the_documented_ones():
    assert OPTIMIZERS == ("sgd", "adam", "adamw", "adadelta")


# ----------------------------------------------------------------- schedules
def _values(schedule, steps):
    return [float(schedule(s)) for s in steps]


def test_constant_and_plateau_schedules_are_flat():
    for name in ("constant", "plateau"):
        schedule = make_schedule(name, base_lr=0.05, steps_per_epoch=10, epochs=3)
        np.testing.assert_allclose(_values(schedule, [0, 15, 29, 1000]), [0.05] * 4, rtol=1e-7)


def test_step_schedule_divides_at_the_first_step_of_each_decay_epoch():
    schedule = make_schedule(
        "step", base_lr=0.1, steps_per_epoch=10, epochs=6, decay_epochs=(2, 4)
    )
    got = _values(schedule, [0, 19, 20, 39, 40, 59])
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_step_schedule_accepts_fractional_epochs_for_iteration_boundaries():
    # ResNet on CIFAR: /10 at 32k and 48k iterations = epochs 32000/391 and 48000/391.
    spe = 391
    schedule = make_schedule(
        "step", base_lr=0.1, steps_per_epoch=spe, epochs=164,
        decay_epochs=(32000 / spe, 48000 / spe),
    )
    got = _values(schedule, [31999, 32000, 47999, 48000])
    np.testing.assert_allclose(got, [0.1, 0.01, 0.01, 0.001], rtol=1e-6)


def test_cosine_schedule_values():
    schedule = make_schedule("cosine", base_lr=0.2, steps_per_epoch=10, epochs=4)  # T = 40
    expected = [0.2 * (1 + math.cos(math.pi * t / 40)) / 2 for t in (0, 10, 20, 30, 40)]
    np.testing.assert_allclose(_values(schedule, [0, 10, 20, 30, 40]), expected, rtol=1e-5, atol=1e-7)
    assert expected[2] == pytest.approx(0.1)


def test_warmup_cosine_schedule_values():
    # 2 warm-up epochs of 10 steps, then a cosine over the remaining 40 steps.
    schedule = make_schedule(
        "warmup_cosine", base_lr=0.4, steps_per_epoch=10, epochs=6, warmup_epochs=2
    )
    got = _values(schedule, [0, 10, 20, 40, 60])
    np.testing.assert_allclose(got, [0.0, 0.2, 0.4, 0.2, 0.0], rtol=1e-5, atol=1e-7)


def test_warmup_prepends_to_step_schedule_with_absolute_boundaries():
    schedule = make_schedule(
        "step", base_lr=0.1, steps_per_epoch=10, epochs=5, decay_epochs=(3,), warmup_epochs=1
    )
    got = _values(schedule, [0, 5, 10, 29, 30])
    np.testing.assert_allclose(got, [0.0, 0.05, 0.1, 0.1, 0.01], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("linear", {}, "unknown schedule 'linear'; expected one of constant, step, cosine, "
                       "warmup_cosine, plateau"),
        ("step", {}, "schedule 'step' needs decay_epochs"),
        ("step", {"decay_epochs": (4, 2)}, "decay_epochs must be strictly increasing"),
        ("step", {"decay_epochs": (11,)}, r"decay_epochs must be strictly increasing epochs in \(0, epochs=10\]"),
        ("step", {"decay_epochs": (2,), "decay_factor": 1.5}, r"decay_factor must be in \(0, 1\)"),
        ("cosine", {"decay_epochs": (2,)}, "decay_epochs applies to schedule 'step' only"),
        ("warmup_cosine", {}, "schedule 'warmup_cosine' needs warmup_epochs > 0"),
        ("cosine", {"warmup_epochs": 10}, r"warmup_epochs must be in \[0, epochs=10\)"),
        ("cosine", {"steps_per_epoch": 0}, "steps_per_epoch must be an int >= 1"),
        ("cosine", {"epochs": 2.5}, "epochs must be an int >= 1"),
        ("cosine", {"base_lr": 0.0}, "learning_rate must be > 0"),
    ],
)
def test_make_schedule_rejects_bad_arguments(name, kwargs, message):
    arguments = dict(base_lr=0.1, steps_per_epoch=10, epochs=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_schedule(name, **arguments)


# ------------------------------------------------------------------- plateau
class _Holder:
    """The two things Plateau.observe needs from a TrainState."""

    def __init__(self, opt_state):
        self.opt_state = opt_state

    def replace(self, opt_state):
        return _Holder(opt_state)


def _observe_all(plateau, metrics, lr=1.0):
    tx = make_optimizer("sgd", lr, momentum=0.0, plateau=plateau)
    holder = _Holder(tx.init({"w": jnp.zeros(2)}))
    scales = []
    for metric in metrics:
        holder = plateau.observe(holder, metric)
        scales.append(learning_rate_scale(holder.opt_state))
    return scales


def test_plateau_reduces_after_patience_epochs_without_improvement():
    accuracies = [0.50, 0.60, 0.60, 0.59, 0.70, 0.70, 0.65, 0.70, 0.71]
    #  improvement:  y     y     n     n     y     n     n     n     y
    #  bad count:    0     0     1     2->0  0     1     2->0  1     0
    scales = _observe_all(Plateau(factor=0.1, patience=2), accuracies)
    np.testing.assert_allclose(scales, [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01], rtol=1e-6)


def test_plateau_min_delta_and_min_mode():
    # mode="min" (a loss): improvements smaller than min_delta=0.05 do not count.
    losses = [1.0, 0.97, 0.96, 0.90]
    scales = _observe_all(Plateau(factor=0.5, patience=2, mode="min", min_delta=0.05), losses)
    np.testing.assert_allclose(scales, [1, 1, 0.5, 0.5], rtol=1e-6)


def test_plateau_cooldown_skips_epochs_after_a_reduction():
    # patience 1, cooldown 2: reduce, then two epochs are not counted.
    accuracies = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    scales = _observe_all(Plateau(factor=0.5, patience=1, cooldown=2), accuracies)
    np.testing.assert_allclose(scales, [1, 0.5, 0.5, 0.5, 0.25, 0.25], rtol=1e-6)


def test_plateau_matches_torch_reduce_on_plateau_with_one_less_patience():
    torch = pytest.importorskip("torch")
    # A noisy rising-then-flat validation curve: improvements, stalls, reductions.
    t = np.arange(40)
    noise = np.random.default_rng(1).normal(0.0, 0.02, size=t.size)
    accuracies = [float(a) for a in np.round(0.8 - 0.3 * np.exp(-t / 8) + noise, 3)]
    for patience in (1, 3):
        w = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([w], lr=1.0)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=patience - 1,
            threshold=1e-4, threshold_mode="abs", min_lr=1e-3,
        )
        expected = []
        for accuracy in accuracies:
            scheduler.step(accuracy)
            expected.append(optimizer.param_groups[0]["lr"])
        plateau = Plateau(factor=0.1, patience=patience, min_delta=1e-4, min_scale=1e-3)
        got = _observe_all(plateau, accuracies)
        np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta"])
def test_plateau_scale_is_exactly_a_learning_rate_reduction(name):
    plateau = Plateau(factor=0.1, patience=1)
    tx = make_optimizer(name, 0.5, weight_decay=1e-3, plateau=plateau)
    holder = _Holder(tx.init({"w": jnp.asarray(_W0)}))
    holder = plateau.observe(plateau.observe(holder, 0.5), 0.5)  # one bad epoch -> scale 0.1
    assert learning_rate_scale(holder.opt_state) == pytest.approx(0.1)
    params, opt_state, got = {"w": jnp.asarray(_W0)}, holder.opt_state, []
    for g in _GRADS:
        updates, opt_state = tx.update({"w": jnp.asarray(g)}, opt_state, params)
        params = optax.apply_updates(params, updates)
        got.append(np.asarray(params["w"]))
    expected = _run_optax(make_optimizer(name, 0.05, weight_decay=1e-3))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert learning_rate_scale(opt_state) == pytest.approx(0.1)  # steps leave it alone


def test_plateau_observe_handles_pmap_replicated_state():
    from jaxcnn.train.parallel import replicate, unreplicate

    plateau = Plateau(factor=0.1, patience=1)
    tx = make_optimizer("sgd", 0.1, plateau=plateau)
    holder = _Holder(replicate(tx.init({"w": jnp.zeros(2)})))
    holder = plateau.observe(plateau.observe(holder, 0.9), 0.8)
    single = unreplicate(holder.opt_state)
    assert learning_rate_scale(single) == pytest.approx(0.1)
    scales = np.asarray(jax.tree.leaves(holder.opt_state, is_leaf=lambda n: hasattr(n, "scale"))[-1].scale)
    np.testing.assert_allclose(scales, np.full(jax.local_device_count(), 0.1), rtol=1e-6)


def test_learning_rate_scale_is_one_without_plateau():
    tx = make_optimizer("sgd", 0.1)
    assert learning_rate_scale(tx.init({"w": jnp.zeros(2)})) == 1.0


def test_observe_without_plateau_in_the_optimizer_raises():
    tx = make_optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="no plateau controller; build the optimizer with"):
        Plateau().observe(_Holder(tx.init({"w": jnp.zeros(2)})), 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"factor": 1.0}, r"plateau factor must be in \(0, 1\)"),
        ({"patience": 0}, "plateau patience must be an int >= 1"),
        ({"mode": "up"}, "plateau mode must be 'max' or 'min'"),
        ({"min_delta": 0.0}, "plateau min_delta must be > 0"),
        ({"cooldown": -1}, "plateau cooldown must be an int >= 0"),
        ({"min_scale": 1.0}, r"plateau min_scale must be in \[0, 1\)"),
    ],
)
def test_plateau_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Plateau(**kwargs)

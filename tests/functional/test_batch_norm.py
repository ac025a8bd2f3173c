"""batch_norm (explicit running statistics), batch_norm_init and fold_batch_norm."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from jaxcnn.functional.batch_norm import batch_norm, batch_norm_init, fold_batch_norm
from jaxcnn.functional.conv import conv2d

RNG = np.random.default_rng(1)


def _params(channels, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "scale": jnp.asarray(rng.uniform(0.5, 1.5, channels), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=channels), jnp.float32),
    }


def test_one_step_by_hand():
    # 4 values of one channel: mean 2.5, biased var 1.25, unbiased var 5/3.
    x = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    params, state = batch_norm_init(1)
    y, new = batch_norm(x, params, state, train=True, momentum=0.9, eps=1e-5)
    np.testing.assert_allclose(y[:, 0], (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5), rtol=1e-6)
    np.testing.assert_allclose(new["mean"], [0.9 * 0 + 0.1 * 2.5], rtol=1e-6)
    np.testing.assert_allclose(new["var"], [0.9 * 1 + 0.1 * 5 / 3], rtol=1e-6)


def test_running_stats_after_several_steps_equal_hand_computed_ema():
    params = _params(3)
    params_init, state = batch_norm_init(3)
    assert set(params_init) == {"scale", "bias"}
    momentum, eps = 0.8, 1e-3
    mean_ema, var_ema = np.zeros(3), np.ones(3)
    for step in range(4):
        x = RNG.normal(loc=step, scale=1 + step, size=(2, 3, 4, 3)).astype(np.float32)
        y, state = batch_norm(x, params, state, train=True, momentum=momentum, eps=eps)
        flat = x.reshape(-1, 3).astype(np.float64)
        m = flat.shape[0]
        batch_mean = flat.mean(0)
        biased = ((flat - batch_mean) ** 2).sum(0) / m
        unbiased = ((flat - batch_mean) ** 2).sum(0) / (m - 1)
        mean_ema = momentum * mean_ema + (1 - momentum) * batch_mean
        var_ema = momentum * var_ema + (1 - momentum) * unbiased
        expected_y = (x - batch_mean) / np.sqrt(biased + eps) * np.asarray(params["scale"]) + np.asarray(params["bias"])
        np.testing.assert_allclose(y, expected_y, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(state["mean"], mean_ema, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], var_ema, rtol=1e-5)


def test_eval_uses_running_stats_and_returns_state_unchanged():
    params = _params(2)
    state = {"mean": jnp.array([0.5, -1.0]), "var": jnp.array([4.0, 0.25])}
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    y, new = batch_norm(x, params, state, train=False, eps=1e-5)
    assert new is state
    expected = (x - np.array([0.5, -1.0])) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
    expected = expected * np.asarray(params["scale"]) + np.asarray(params["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # Under jit the returned state has the same values.
    _, jitted = jax.jit(functools.partial(batch_norm, train=False))(x, params, state)
    np.testing.assert_array_equal(jitted["mean"], state["mean"])
    np.testing.assert_array_equal(jitted["var"], state["var"])


def test_jit_matches_eager_and_gradients_check_numerically():
    params = _params(3)
    _, state = batch_norm_init(3)
    x = jnp.asarray(RNG.normal(size=(4, 3, 3)), jnp.float32)
    f = functools.partial(batch_norm, train=True)
    y, s = f(x, params, state)
    yj, sj = jax.jit(f)(x, params, state)
    np.testing.assert_allclose(yj, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sj["var"], s["var"], rtol=1e-6)

    def loss_output(x, scale, bias):
        out, _ = batch_norm(x, {"scale": scale, "bias": bias}, state, train=True)
        return out * jnp.arange(out.size, dtype=out.dtype).reshape(out.shape)  # break symmetry

    jtu.check_grads(jax.jit(loss_output), (x, params["scale"], params["bias"]), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_matches_torch_forward_running_stats_and_gradients():
    torch = pytest.importorskip("torch")
    params = _params(4)
    _, state = batch_norm_init(4)
    t_mean, t_var = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    t_scale = torch.tensor(np.asarray(params["scale"]), dtype=torch.float64, requires_grad=True)
    t_bias = torch.tensor(np.asarray(params["bias"]), dtype=torch.float64, requires_grad=True)
    for _ in range(3):
        x = RNG.normal(loc=0.5, size=(3, 4, 5, 4)).astype(np.float32)
        t_x = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
        t_y = torch.nn.functional.batch_norm(
            t_x, t_mean, t_var, t_scale, t_bias, training=True, momentum=0.1, eps=1e-5
        )
        cot = RNG.normal(size=t_y.shape)
        t_scale.grad = t_bias.grad = None
        (t_y * t_y.new_tensor(cot)).sum().backward()

        def f(x, params):
            return batch_norm(x, params, state, train=True, momentum=0.9, eps=1e-5)

        y, vjp, new_state = jax.vjp(f, jnp.asarray(x), params, has_aux=True)
        grad_x, grad_p = vjp(jnp.asarray(cot.transpose(0, 2, 3, 1), jnp.float32))
        np.testing.assert_allclose(y, t_y.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grad_x, t_x.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grad_p["scale"], t_scale.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grad_p["bias"], t_bias.grad.numpy(), rtol=1e-4, atol=1e-5)
        state = new_state
        np.testing.assert_allclose(state["mean"], t_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], t_var.numpy(), rtol=1e-5)
    # Eval mode against torch's eval mode with the same running statistics.
    x = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    t_y = torch.nn.functional.batch_norm(
        torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64), t_mean, t_var, t_scale, t_bias, training=False
    )
    y, _ = batch_norm(x, params, state, train=False)
    np.testing.assert_allclose(y, t_y.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


def test_no_gradient_flows_into_the_new_state():
    params, state = batch_norm_init(2)
    x = jnp.asarray(RNG.normal(size=(4, 2)), jnp.float32)
    grad = jax.grad(lambda x: batch_norm(x, params, state, train=True)[1]["var"].sum())(x)
    np.testing.assert_array_equal(grad, np.zeros_like(x))


def test_bf16_input_keeps_float32_statistics_and_bf16_output():
    params, state = batch_norm_init(3)
    x = (RNG.normal(size=(8, 4, 4, 3)) * 3 + 10).astype(np.float32)
    xb = jnp.asarray(x, jnp.bfloat16)
    y, new = batch_norm(xb, params, state, train=True)
    assert y.dtype == jnp.bfloat16
    assert new["mean"].dtype == jnp.float32 and new["var"].dtype == jnp.float32
    # The statistics equal float32 statistics of the (bf16-rounded) values.
    y32, new32 = batch_norm(jnp.asarray(xb, jnp.float32), params, state, train=True)
    np.testing.assert_allclose(new["mean"], new32["mean"], rtol=1e-6)
    np.testing.assert_allclose(new["var"], new32["var"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float32), y32, atol=3e-2)
    y_eval, same = batch_norm(xb, params, new, train=False)
    assert y_eval.dtype == jnp.bfloat16 and same is new


def test_rejects_a_state_whose_dtype_would_change():
    params, state = batch_norm_init(2)
    bf16_state = {k: v.astype(jnp.bfloat16) for k, v in state.items()}
    with pytest.raises(ValueError, match=r'state\["mean"\] has dtype bfloat16.*float32'):
        batch_norm(jnp.ones((4, 2)), params, bf16_state, train=True)
    # NumPy float64 state counts as float32 (x64 disabled), exactly as jit treats it.
    numpy_state = {"mean": np.zeros(2), "var": np.ones(2)}
    _, new = batch_norm(jnp.arange(8.0).reshape(4, 2), params, numpy_state, train=True)
    assert new["mean"].dtype == jnp.float32


def test_state_carried_through_scan_keeps_its_type():
    params, state = batch_norm_init(2)
    xs = jnp.asarray(RNG.normal(size=(5, 6, 2)), jnp.float32)

    def step(state, x):
        y, state = batch_norm(x, params, state, train=True)
        return state, y.mean()

    final, _ = jax.lax.scan(step, state, xs)
    expected = state
    for x in xs:
        _, expected = batch_norm(x, params, expected, train=True)
    np.testing.assert_allclose(final["var"], expected["var"], rtol=1e-5)


# ---------------------------------------------------------------- cross-device
def _pmap_bn(x_shards, params, state, mask_shards=None, **kwargs):
    def per_device(x, mask):
        return batch_norm(x, params, state, train=True, axis_name="batch", mask=mask, **kwargs)

    return jax.pmap(per_device, axis_name="batch")(x_shards, mask_shards)


def test_pmap_over_4_devices_equals_full_batch():
    assert jax.local_device_count() >= 4, "tests/conftest.py forces 4 CPU devices"
    params = _params(3)
    _, state = batch_norm_init(3)
    x = RNG.normal(loc=2.0, size=(8, 3, 3, 3)).astype(np.float32)
    y_full, state_full = batch_norm(x, params, state, train=True)
    y, new = _pmap_bn(x.reshape(4, 2, 3, 3, 3), params, state, np.ones((4, 2), bool))
    np.testing.assert_allclose(np.asarray(y).reshape(x.shape), y_full, rtol=1e-4, atol=1e-5)
    for device in range(4):
        np.testing.assert_allclose(new["mean"][device], state_full["mean"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new["var"][device], state_full["var"], rtol=1e-5)


def test_pmap_with_unequal_real_examples_per_device_equals_full_batch_of_real_ones():
    params = _params(2)
    _, state = batch_norm_init(2)
    x = RNG.normal(size=(4, 3, 5, 2)).astype(np.float32)
    # devices hold 3, 1, 2 and 3 real examples (padding rows filled with junk)
    mask = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]], bool)
    x[~mask] = 1e3
    real = x[mask]
    y_real, state_real = batch_norm(real, params, state, train=True)
    y, new = _pmap_bn(x, params, state, mask)
    np.testing.assert_allclose(np.asarray(y)[mask], y_real, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new["mean"][0], state_real["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["var"][0], state_real["var"], rtol=1e-5)


def test_one_collective_for_both_moments():
    params, state = batch_norm_init(2)
    jaxpr = jax.make_jaxpr(
        jax.vmap(lambda x: batch_norm(x, params, state, train=True, axis_name="b"), axis_name="b")
    )(jnp.ones((4, 3, 2)))
    assert str(jaxpr).count("psum") == 1


def test_vmap_axis_name_equals_full_batch_and_gradients_agree():
    params = _params(2)
    _, state = batch_norm_init(2)
    x = jnp.asarray(RNG.normal(size=(4, 3, 5, 2)), jnp.float32)

    def loss_split(x, params):
        y, _ = jax.vmap(lambda xs: batch_norm(xs, params, state, train=True, axis_name="b"), axis_name="b")(x)
        return jnp.sum(jnp.sin(y))

    def loss_full(x, params):
        return jnp.sum(jnp.sin(batch_norm(x.reshape(12, 5, 2), params, state, train=True)[0]))

    # jit: one compile each instead of op-by-op dispatch of two backward passes.
    value_split, grads_split = jax.jit(jax.value_and_grad(loss_split, argnums=(0, 1)))(x, params)
    value_full, grads_full = jax.jit(jax.value_and_grad(loss_full, argnums=(0, 1)))(x, params)
    np.testing.assert_allclose(value_split, value_full, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads_split), jax.tree.leaves(grads_full)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cross_device_variance_is_accurate_for_a_large_mean():
    # |mean| >> std: E[x^2] - E[x]^2 alone would lose the variance to cancellation;
    # shifting by the running mean keeps it.
    params, _ = batch_norm_init(1)
    state = {"mean": jnp.array([1000.0]), "var": jnp.array([1.0])}
    x = (RNG.normal(size=(4, 64, 1)) * 0.5 + 1000.3).astype(np.float32)
    _, new = jax.vmap(
        lambda xs: batch_norm(xs, params, state, train=True, momentum=0.0, axis_name="b"), axis_name="b"
    )(x)
    np.testing.assert_allclose(new["var"][0], x.astype(np.float64).reshape(-1).var(ddof=1), rtol=1e-4)


def test_unbound_axis_name_is_a_clear_error():
    params, state = batch_norm_init(2)
    with pytest.raises(ValueError, match="axis_name='devices' is not bound"):
        batch_norm(jnp.ones((4, 2)), params, state, train=True, axis_name="devices")


# ---------------------------------------------------------------- folding
@pytest.mark.parametrize("use_bias,stride,padding", [(True, 1, 1), (False, 2, "SAME")])
def test_fold_batch_norm_into_conv_is_exact(use_bias, stride, padding):
    x = jnp.asarray(RNG.normal(size=(2, 7, 6, 3)), jnp.float32)
    w = jnp.asarray(RNG.normal(size=(3, 2, 3, 4)), jnp.float32)
    b = jnp.asarray(RNG.normal(size=4), jnp.float32) if use_bias else None
    params = _params(4)
    state = {"mean": jnp.asarray(RNG.normal(size=4), jnp.float32), "var": jnp.asarray(RNG.uniform(0.2, 3, 4), jnp.float32)}
    expected, _ = batch_norm(conv2d(x, w, b, stride=stride, padding=padding), params, state, train=False, eps=1e-3)
    w_folded, b_folded = fold_batch_norm(w, b, params, state, eps=1e-3)
    assert w_folded.shape == w.shape and b_folded.shape == (4,)
    np.testing.assert_allclose(conv2d(x, w_folded, b_folded, stride=stride, padding=padding), expected, rtol=1e-5, atol=1e-5)


def test_fold_batch_norm_into_dense_by_hand():
    w = jnp.array([[1.0, 2.0]])  # (I=1, O=2)
    params = {"scale": jnp.array([2.0, 1.0]), "bias": jnp.array([0.5, 0.0])}
    state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([3.0, 0.0])}
    new_w, new_b = fold_batch_norm(w, jnp.array([1.0, 1.0]), params, state, eps=1.0)
    # factor = scale / sqrt(var + 1) = [1, 1]
    np.testing.assert_allclose(new_w, [[1.0, 2.0]])
    np.testing.assert_allclose(new_b, [(1 - 1) * 1 + 0.5, (1 + 1) * 1 + 0.0])


# ---------------------------------------------------------------- errors
P3, S3 = batch_norm_init(3)
X3 = jnp.ones((2, 4, 4, 3))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: batch_norm(X3, {"scale": jnp.ones(4), "bias": jnp.zeros(4)}, S3, train=True), r"shape \(3,\).*3 channels"),
        (lambda: batch_norm(X3, {"scale": jnp.ones(3)}, S3, train=True), r"keys \['scale', 'bias'\]"),
        (lambda: batch_norm(X3, P3, {"mean": jnp.zeros(2), "var": jnp.ones(2)}, train=True), r'state\["mean"\] must have shape \(3,\)'),
        (lambda: batch_norm(X3, P3, {"mean": jnp.zeros((1, 3)), "var": jnp.ones(3)}, train=False), r"shape \(3,\)"),
        (lambda: batch_norm(X3, P3, S3, train=1), "train must be a Python bool"),
        (lambda: batch_norm(jnp.ones(3), P3, S3, train=True), "rank >= 2"),
        (lambda: batch_norm(jnp.ones((1, 3)), P3, S3, train=True), "more than 1 value per channel"),
        (lambda: batch_norm(X3, P3, S3, train=True, momentum=1.5), "momentum"),
        (lambda: batch_norm(X3, P3, S3, train=True, eps=0.0), "eps"),
        (lambda: batch_norm(X3, P3, S3, train=True, mask=jnp.ones((2, 4))), r"mask must have shape \(2,\)"),
        (lambda: batch_norm_init(0), "num_channels"),
        (lambda: batch_norm(X3.astype(jnp.int32), P3, S3, train=True), "expected a floating-point input"),
        (lambda: fold_batch_norm(jnp.ones((3, 3, 2, 4)), None, P3, S3), r"shape \(4,\).*4 channels"),
        (lambda: fold_batch_norm(jnp.ones((3, 3, 2, 3)), jnp.ones(4), P3, S3), r"bias b must have shape \(3,\)"),
        (lambda: fold_batch_norm(jnp.ones(3), None, P3, S3), "output channels last"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


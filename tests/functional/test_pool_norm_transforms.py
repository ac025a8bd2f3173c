"""Pooling and normalization under JAX transformations: jvp, jacfwd, Hessian-vector
products, vmap (per-example gradients), jax.checkpoint and bf16 inputs.

The reference for each transformation is another transformation that must
agree with it (jvp vs vjp, jacfwd vs jacrev, forward-over-reverse vs
reverse-over-reverse HVP and vs finite differences of the gradient, vmap vs a
Python loop). Forward mode is checked here (jvp against vjp) rather than with
``check_grads(modes=("fwd",))`` in the per-op files.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import adaptive_pool, norm, pool
from jaxcnn.functional.batch_norm import batch_norm

RNG = np.random.default_rng(4)
CHANNELS = 2
PARAMS = {"scale": jnp.array([1.2, 0.7]), "bias": jnp.array([0.1, -0.3])}
STATE = {"mean": jnp.array([0.2, -0.1]), "var": jnp.array([1.5, 0.6])}

# Every op maps an (N, 5, 6, 2) input to an array; parameters are closed over.
OPS = {
    "max_pool": lambda x: pool.max_pool2d(x, (3, 2), (2, 2), 1),
    "avg_pool": lambda x: pool.avg_pool2d(x, 2, 1, "SAME", count_include_pad=False),
    "lp_pool": lambda x: pool.lp_pool2d(x, 2, 2),
    "weighted_pool": lambda x: pool.weighted_avg_pool2d(x, 3, 2, sigma=0.8),
    "global_max": pool.global_max_pool,
    "adaptive_max": lambda x: adaptive_pool.adaptive_max_pool2d(x, (3, 4)),
    "adaptive_avg": lambda x: adaptive_pool.adaptive_avg_pool2d(x, (2, 4)),
    "batch_norm_train": lambda x: batch_norm(x, PARAMS, STATE, train=True)[0],
    "batch_norm_eval": lambda x: batch_norm(x, PARAMS, STATE, train=False)[0],
    "group_norm": lambda x: norm.group_norm(x, PARAMS, 2),
    "lrn": lambda x: norm.local_response_norm(x, size=3, alpha=0.5),
}


# The broad sweeps skip ops whose derivative code path another op already covers
# (global_max and adaptive_avg lower to the same primitives as max/avg pool,
# batch_norm_eval is an affine map): every compile costs seconds on 2 cores.
SWEEP = ["max_pool", "avg_pool", "lp_pool", "weighted_pool", "adaptive_max", "batch_norm_train", "group_norm", "lrn"]


def _input(batch=2):
    # distinct, positive values: no max ties (finite differences stay valid), lp is defined
    return jnp.asarray(RNG.permutation(batch * 60).reshape(batch, 5, 6, 2) * 0.05 + 0.5, jnp.float32)


def _scalar_loss(op):
    # sin makes the Hessian non-trivial even for piecewise-linear ops
    return lambda x: jnp.sum(jnp.sin(op(x)))


@pytest.mark.parametrize("name", SWEEP)
def test_forward_mode_hvp_and_checkpoint_agree_with_reverse_mode(name):
    op = OPS[name]
    loss = _scalar_loss(op)
    x = _input()
    tangent = jnp.asarray(RNG.normal(size=x.shape), jnp.float32)
    cotangent = jnp.asarray(RNG.normal(size=jax.eval_shape(op, x).shape), jnp.float32)

    # One compiled program per op computes every quantity (compiles dominate the suite's time).
    @jax.jit
    def transforms(x, tangent, cotangent):
        _, out_tangent = jax.jvp(op, (x,), (tangent,))
        _, vjp = jax.vjp(op, x)
        return {
            "jvp": jnp.vdot(cotangent, out_tangent),
            "vjp": jnp.vdot(vjp(cotangent)[0], tangent),
            "hvp_fwd_rev": jax.jvp(jax.grad(loss), (x,), (tangent,))[1],
            "hvp_rev_rev": jax.grad(lambda x: jnp.vdot(jax.grad(loss)(x), tangent))(x),
            "grad": jax.grad(loss)(x),
            "grad_checkpointed": jax.grad(jax.checkpoint(loss))(x),
        }

    out = transforms(x, tangent, cotangent)
    np.testing.assert_allclose(out["jvp"], out["vjp"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["hvp_fwd_rev"], out["hvp_rev_rev"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["grad_checkpointed"], out["grad"], rtol=1e-6, atol=1e-6)
    # the HVP is the derivative of the gradient: central difference along the tangent
    grad = jax.jit(jax.grad(loss))
    eps = 1e-2
    finite = (grad(x + eps * tangent) - grad(x - eps * tangent)) / (2 * eps)
    np.testing.assert_allclose(out["hvp_fwd_rev"], finite, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", ["max_pool", "adaptive_max", "batch_norm_train", "lrn"])
def test_jacfwd_equals_jacrev(name):
    op = OPS[name]
    x = _input(batch=1)
    forward, reverse = jax.jit(lambda x: (jax.jacfwd(op)(x), jax.jacrev(op)(x)))(x)
    assert forward.shape == jax.eval_shape(op, x).shape + x.shape
    np.testing.assert_allclose(forward, reverse, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["max_pool", "weighted_pool", "adaptive_max", "batch_norm_eval", "group_norm", "lrn"])
def test_vmap_per_example_gradients_equal_a_loop(name):
    # per-example gradient w.r.t. a per-channel input gain, for ops that do not mix examples
    op = OPS[name]
    x = _input(batch=3)

    def loss(gain, example):
        return jnp.sum(jnp.sin(op(example[None] * gain)))

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(jnp.ones(CHANNELS), x)
    one = jax.jit(jax.grad(loss))
    looped = jnp.stack([one(jnp.ones(CHANNELS), example) for example in x])
    np.testing.assert_allclose(per_example, looped, rtol=1e-5, atol=1e-5)


def test_vmap_over_independent_batches_of_batch_norm_equals_a_loop():
    batches = _input(batch=6).reshape(3, 2, 5, 6, 2)

    def step(params, x):
        loss = lambda p: jnp.sum(jnp.sin(batch_norm(x, p, STATE, train=True)[0]))  # noqa: E731
        return jax.grad(loss)(params), batch_norm(x, params, STATE, train=True)[1]

    grads, states = jax.jit(jax.vmap(step, in_axes=(None, 0)))(PARAMS, batches)
    for i, x in enumerate(batches):
        g, s = jax.jit(step)(PARAMS, x)
        np.testing.assert_allclose(grads["scale"][i], g["scale"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(states["var"][i], s["var"], rtol=1e-6)


# bf16 forward dtypes of every op are checked in the per-op test files; here the gradient.
@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "adaptive_max", "batch_norm_train", "lrn"])
def test_bf16_forward_and_gradient(name):
    op = OPS[name]
    xb = _input().astype(jnp.bfloat16)

    @jax.jit
    def value_and_grad(v):
        return op(v), jax.grad(lambda v: jnp.sum(jnp.sin(op(v).astype(jnp.float32))))(v)

    y, grad_b = value_and_grad(xb)
    assert y.dtype == jnp.bfloat16 and grad_b.dtype == jnp.bfloat16
    y32, grad32 = value_and_grad(xb.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(y, np.float32), y32, rtol=2e-2, atol=2e-2)
    # gradients agree to bf16 resolution, relative to the gradient's scale
    scale = float(jnp.max(jnp.abs(grad32)))
    np.testing.assert_allclose(np.asarray(grad_b, np.float32), grad32, atol=5e-2 * scale + 1e-3)


def test_batch_norm_bf16_training_step_keeps_float32_state_through_grad_and_scan():
    xs = _input(batch=8).reshape(4, 2, 5, 6, 2).astype(jnp.bfloat16)

    def step(state, x):
        def loss(params):
            y, new_state = batch_norm(x, params, state, train=True)
            return jnp.sum(jnp.sin(y.astype(jnp.float32))), new_state

        (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(PARAMS)
        return new_state, (value, grads["scale"])

    final, (values, scale_grads) = jax.jit(lambda s: jax.lax.scan(step, s, xs))(STATE)
    assert final["mean"].dtype == jnp.float32 and final["var"].dtype == jnp.float32
    assert scale_grads.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(scale_grads)))
    # the float32 state equals four eager steps on the same bf16 batches
    expected = STATE
    for x in xs:
        _, expected = batch_norm(x, PARAMS, expected, train=True)
    np.testing.assert_allclose(final["var"], expected["var"], rtol=1e-5)

"""conv2d under JAX transformations, for every implementation.

The references do not use autodiff of conv: convolution is bilinear in
(x, w), so tangents are convolutions of the tangents, and the transpose of
``w -> conv2d(x, w)`` is ``u -> unfold(x)^T u`` (or the hand-written backward).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import conv2d, unfold
from jaxcnn.functional.manual_grad import conv2d_backward

IMPLS = ("xla", "im2col")
# A grouped, strided, dilated, asymmetrically padded layer: every code path at once.
GEOMETRY = dict(stride=(2, 1), padding=((1, 0), (1, 2)), dilation=(1, 2), groups=2)


def _rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return _rand(rng, (2, 5, 6, 4)), _rand(rng, (2, 3, 2, 6)), _rand(rng, (6,))


@pytest.mark.parametrize("impl", IMPLS)
def test_jvp_is_conv_of_tangents(impl):
    x, w, b = _inputs()
    dx, dw, db = _inputs(seed=1)
    conv = functools.partial(conv2d, impl=impl, **GEOMETRY)

    @jax.jit
    def run(x, w, b, dx, dw, db):
        y, tangent = jax.jvp(conv, (x, w, b), (dx, dw, db))
        # Product rule for a bilinear map (+ the bias tangent).
        expected = conv(dx, w) + conv(x, dw) + db
        return y, tangent, conv(x, w, b), expected

    y, tangent, y_plain, expected = run(x, w, b, dx, dw, db)
    np.testing.assert_allclose(y, y_plain, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tangent, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_jacfwd_equals_jacrev_and_applies_as_conv(impl):
    rng = np.random.default_rng(2)
    x, w = _rand(rng, (1, 4, 5, 4)), _rand(rng, (2, 2, 2, 2))
    geometry = dict(stride=1, padding=((0, 1), (1, 0)), groups=2)

    def conv_x(x):
        return conv2d(x, w, impl=impl, **geometry)

    jac_fwd, jac_rev = jax.jit(lambda x: (jax.jacfwd(conv_x)(x), jax.jacrev(conv_x)(x)))(x)
    np.testing.assert_allclose(jac_fwd, jac_rev, rtol=1e-6, atol=1e-6)
    # The map is linear in x, so its Jacobian applied to any v is conv(v, w).
    v = _rand(rng, x.shape)
    out_shape = jac_fwd.shape[: jac_fwd.ndim - x.ndim]
    applied = jac_fwd.reshape(np.prod(out_shape), -1) @ v.reshape(-1)
    np.testing.assert_allclose(applied.reshape(out_shape), conv_x(v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_hessian_vector_product(impl):
    # L(w) = 0.5 * ||conv(x, w)||^2 has Hessian A^T A, A: w -> conv(x, w); groups=1 here so
    # A^T u = unfold(x)^T u. Both forward-over-reverse and reverse-over-reverse must give it.
    rng = np.random.default_rng(3)
    x, w, v = _rand(rng, (2, 6, 5, 3)), _rand(rng, (3, 2, 3, 4)), _rand(rng, (3, 2, 3, 4))
    geometry = dict(stride=2, padding=1)

    def loss(w):
        return 0.5 * jnp.sum(conv2d(x, w, impl=impl, **geometry) ** 2)

    @jax.jit
    def hvps(w, v):
        forward_over_reverse = jax.jvp(jax.grad(loss), (w,), (v,))[1]
        reverse_over_reverse = jax.grad(lambda w: jnp.vdot(jax.grad(loss)(w), v))(w)
        return forward_over_reverse, reverse_over_reverse

    fwd_rev, rev_rev = hvps(w, v)
    patches = np.asarray(unfold(x, (3, 2), **geometry), np.float64)  # (N, H', W', KH*KW*C)
    conv_v = patches @ v.reshape(-1, 4).astype(np.float64)  # A v
    expected = np.tensordot(patches, conv_v, axes=((0, 1, 2), (0, 1, 2))).reshape(v.shape)  # A^T A v
    np.testing.assert_allclose(fwd_rev, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rev_rev, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_per_example_gradients(impl):
    rng = np.random.default_rng(4)
    x, w = _rand(rng, (3, 6, 5, 2)), _rand(rng, (2, 3, 2, 4))
    geometry = dict(stride=(2, 2), padding=((1, 1), (0, 1)))
    # One output-weighting per example; each example's output is (1, 4, 2, 4).
    cotangents = _rand(rng, (3, 1, 4, 2, 4))

    def example_loss(w, x_n, c_n):
        return jnp.sum(conv2d(x_n[None], w, impl=impl, **geometry) * c_n)

    per_example = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))(w, x, cotangents)
    assert per_example.shape == (3, *w.shape)
    for n in range(3):
        _, expected = conv2d_backward(cotangents[n], x[n : n + 1], w, **geometry)
        np.testing.assert_allclose(per_example[n], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_checkpoint_gives_the_same_gradients(impl):
    x, w, b = _inputs(seed=5)
    w2 = _rand(np.random.default_rng(6), (2, 2, 3, 6))  # second layer, groups=2 on 6 channels

    def net(x, w, b, w2):
        h = jnp.tanh(conv2d(x, w, b, impl=impl, **GEOMETRY))
        return jnp.sum(conv2d(h, w2, impl=impl, groups=2, padding="SAME") ** 2)

    @jax.jit
    def grads(x, w, b, w2):
        plain = jax.grad(net, argnums=(0, 1, 2, 3))(x, w, b, w2)
        remat = jax.grad(jax.checkpoint(net), argnums=(0, 1, 2, 3))(x, w, b, w2)
        return plain, remat

    plain, remat = grads(x, w, b, w2)
    for p, r in zip(plain, remat):
        np.testing.assert_allclose(r, p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_bfloat16_inputs_track_float32(impl):
    x, w, b = _inputs(seed=7)
    conv = functools.partial(conv2d, impl=impl, **GEOMETRY)

    @jax.jit
    def value_and_grads(x, w, b):
        y = conv(x, w, b)
        grads = jax.grad(lambda x, w: jnp.sum(conv(x, w, b).astype(jnp.float32) ** 2), argnums=(0, 1))(x, w)
        return y, grads

    y32, grads32 = value_and_grads(x, w, b)
    bf16 = [jnp.asarray(a, jnp.bfloat16) for a in (x, w, b)]
    y16, grads16 = value_and_grads(*bf16)
    assert y16.dtype == jnp.bfloat16
    assert all(g.dtype == jnp.bfloat16 for g in grads16)
    # bf16 keeps 8 bits of mantissa: compare relative to the f32 output's scale.
    scale = float(jnp.max(jnp.abs(y32)))
    np.testing.assert_allclose(np.asarray(y16, np.float32), y32, atol=3e-2 * scale)
    for g16, g32 in zip(grads16, grads32):
        g_scale = float(jnp.max(jnp.abs(g32)))
        np.testing.assert_allclose(np.asarray(g16, np.float32), g32, atol=3e-2 * g_scale)

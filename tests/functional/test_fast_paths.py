"""window_max (the max-pooling fast path) against lax.reduce_window, a NumPy loop, and every JAX transformation.

window_max must be a drop-in for ``lax.reduce_window(x, -inf, lax.max, ...)``:
same values, same first-maximum derivative rule, and it must keep working
under jvp, jacfwd, Hessian-vector products, vmap, jax.checkpoint, jit and bf16.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax import test_util as jtu

from jaxcnn.functional import window_max as wm

RNG = np.random.default_rng(0)

# (input shape, window, strides, pads): non-overlapping, overlapping, gapped,
# asymmetric padding, non-square windows, a 1x1 window.
GEOMETRIES = [
    ((2, 6, 6, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((1, 7, 5, 2), (3, 2), (2, 1), ((1, 1), (1, 1))),
    ((2, 5, 8, 2), (2, 3), (3, 2), ((1, 0), (2, 1))),
    ((1, 9, 9, 2), (3, 3), (2, 2), ((1, 1), (1, 1))),
    ((1, 4, 5, 3), (1, 1), (1, 2), ((0, 0), (0, 0))),
]


def reduce_window_max(x, window, strides, pads):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                             ((0, 0), *pads, (0, 0)))


def loop_max_and_argmax(x, window, strides, pads):
    """Window maxima and, per output, the flat padded index of the first maximal element."""
    n_, h, w, c_ = x.shape
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = window, strides, pads
    padded = np.full((n_, h + top + bottom, w + left + right, c_), -np.inf)
    padded[:, top : top + h, left : left + w] = x
    out_h, out_w = (padded.shape[1] - kh) // sh + 1, (padded.shape[2] - kw) // sw + 1
    out = np.zeros((n_, out_h, out_w, c_))
    winner = np.zeros((n_, out_h, out_w, c_, 2), int)
    for n in range(n_):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(c_):
                    patch = padded[n, i * sh : i * sh + kh, j * sw : j * sw + kw, c]
                    first = np.argmax(patch)  # first maximum in row-major order
                    out[n, i, j, c] = patch.flat[first]
                    winner[n, i, j, c] = (i * sh + first // kw - top, j * sw + first % kw - left)
    return out, winner


@pytest.mark.parametrize("shape,window,strides,pads", GEOMETRIES)
def test_values_and_gradient_match_loop_reference(shape, window, strides, pads):
    # Integer-valued floats: many exact ties, so the first-maximum rule is exercised.
    x = RNG.integers(0, 4, size=shape).astype(np.float32)
    expected, winner = loop_max_and_argmax(x, window, strides, pads)
    y, vjp = jax.vjp(lambda v: wm.window_max(v, window, strides, pads), jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(y), expected)
    upstream = RNG.standard_normal(y.shape).astype(np.float32)
    (grad,) = vjp(jnp.asarray(upstream))
    expected_grad = np.zeros(shape, np.float64)
    for index in np.ndindex(*y.shape):
        row, col = winner[index]
        expected_grad[index[0], row, col, index[3]] += upstream[index]
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,window,strides,pads", GEOMETRIES)
def test_same_numbers_as_reduce_window_and_jvp_follows_the_same_winner(shape, window, strides, pads):
    x = RNG.integers(0, 3, size=shape).astype(np.float32)
    tangent = RNG.standard_normal(shape).astype(np.float32)
    ours = lambda v: wm.window_max(v, window, strides, pads)  # noqa: E731
    theirs = lambda v: reduce_window_max(v, window, strides, pads)  # noqa: E731
    np.testing.assert_array_equal(ours(x), theirs(x))
    upstream = jnp.asarray(RNG.standard_normal(theirs(x).shape).astype(np.float32))
    np.testing.assert_array_equal(jax.vjp(ours, x)[1](upstream)[0],
                                  jax.vjp(theirs, x)[1](upstream)[0])
    # Forward mode: each output's tangent is the tangent of its window's first
    # maximum (reduce_window's own JVP does not promise which tied element it uses).
    _, winner = loop_max_and_argmax(x, window, strides, pads)
    expected = np.zeros(winner.shape[:-1], np.float32)
    for index in np.ndindex(*expected.shape):
        row, col = winner[index]
        expected[index] = tangent[index[0], row, col, index[3]]
    np.testing.assert_array_equal(jax.jvp(ours, (x,), (tangent,))[1], expected)


def test_nan_window_outputs_nan_and_takes_the_first_nan_derivative():
    x = jnp.asarray([[1.0, np.nan], [np.nan, 5.0]]).reshape(1, 2, 2, 1)
    y, vjp = jax.vjp(lambda v: wm.window_max(v, (2, 2), (2, 2), ((0, 0), (0, 0))), x)
    assert np.isnan(float(y.reshape(())))
    grad = np.asarray(vjp(jnp.ones_like(y))[0]).reshape(2, 2)
    np.testing.assert_array_equal(grad, [[0.0, 1.0], [0.0, 0.0]])


def test_large_windows_fall_back_to_reduce_window_with_the_same_rule():
    window = (6, 5)  # 30 elements > MAX_VIEWS
    assert np.prod(window) > wm.MAX_VIEWS
    x = jnp.ones((1, 6, 5, 2))
    y, vjp = jax.vjp(lambda v: wm.window_max(v, window, (1, 1), ((0, 0), (0, 0))), x)
    grad = np.asarray(vjp(jnp.ones_like(y))[0])
    expected = np.zeros((1, 6, 5, 2))
    expected[0, 0, 0, :] = 1  # all tied: the first element
    np.testing.assert_array_equal(grad, expected)


def test_windows_overlapping_by_more_than_one_use_reduce_window_itself():
    x = jnp.asarray(RNG.integers(0, 3, size=(1, 6, 6, 2)).astype(np.float32))
    args = ((3, 3), (1, 1), ((1, 1), (1, 1)))  # overlap 2 > MAX_OVERLAP
    assert "custom_jvp_call" not in str(jax.make_jaxpr(lambda v: wm.window_max(v, *args))(x))
    assert "custom_jvp_call" in str(
        jax.make_jaxpr(lambda v: wm.window_max(v, (2, 2), (1, 1), ((0, 0), (0, 0))))(x))
    y, vjp = jax.vjp(lambda v: wm.window_max(v, *args), x)
    y_ref, vjp_ref = jax.vjp(lambda v: reduce_window_max(v, *args), x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(vjp(jnp.ones_like(y))[0], vjp_ref(jnp.ones_like(y))[0])


def test_integer_and_bool_inputs_keep_their_dtype_and_values():
    x = RNG.integers(-50, 50, size=(2, 5, 5, 3)).astype(np.int32)
    args = ((3, 3), (2, 2), ((1, 1), (1, 1)))
    y = wm.window_max(jnp.asarray(x), *args)
    assert y.dtype == jnp.int32
    expected = lax.reduce_window(jnp.asarray(x), np.int32(np.iinfo(np.int32).min), lax.max,
                                 (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(y, expected)
    assert wm.window_max(jnp.asarray(x > 0), *args).dtype == jnp.bool_


def test_bf16_keeps_dtype_and_matches_float32():
    x = RNG.standard_normal((2, 6, 6, 3)).astype(np.float32)
    xb = jnp.asarray(x, jnp.bfloat16)
    args = ((3, 3), (2, 2), ((1, 1), (1, 1)))
    y = wm.window_max(xb, *args)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32),
                                  np.asarray(reduce_window_max(xb.astype(jnp.float32), *args)))
    grad = jax.grad(lambda v: wm.window_max(v, *args).astype(jnp.float32).sum())(xb)
    assert grad.dtype == jnp.bfloat16


def test_transformations_jvp_jacfwd_hvp_vmap_checkpoint_jit():
    # Distinct, well-separated values: no tie is crossed by finite differences.
    x = jnp.asarray(RNG.permutation(2 * 4 * 4 * 2).reshape(2, 4, 4, 2) * 0.1, jnp.float32)
    args = ((3, 2), (2, 1), ((1, 0), (0, 1)))
    f = lambda v: wm.window_max(v, *args)  # noqa: E731
    jtu.check_grads(jax.jit(f), (x,), order=1, modes=("fwd", "rev"), eps=1e-2, atol=1e-2,
                    rtol=1e-2)
    np.testing.assert_array_equal(jax.jit(jax.jacfwd(f))(x), jax.jit(jax.jacrev(f))(x))
    loss = lambda v: jnp.sum(f(v) ** 3)  # noqa: E731
    direction = jnp.asarray(RNG.standard_normal(x.shape).astype(np.float32))
    hvp = jax.jit(lambda v, d: jax.jvp(jax.grad(loss), (v,), (d,))[1])(x, direction)
    hessian = jax.jit(jax.hessian(loss))(x).reshape(x.size, x.size)
    np.testing.assert_allclose(hvp, (hessian @ direction.reshape(-1)).reshape(x.shape),
                               rtol=1e-4, atol=1e-4)
    per_example = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(f(v[None]) ** 2))))(x)
    np.testing.assert_allclose(per_example, jax.grad(lambda v: jnp.sum(f(v) ** 2))(x), rtol=1e-6)
    np.testing.assert_array_equal(jax.jit(jax.grad(jax.checkpoint(loss)))(x), jax.grad(loss)(x))
    np.testing.assert_array_equal(jax.jit(f)(x), f(x))

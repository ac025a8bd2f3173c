"""Window pooling (max, avg, Lp, global) against loop references, PyTorch and hand-derived gradients."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from jaxcnn.functional import pool

RNG = np.random.default_rng(0)


def _pads(padding, spatial, window, stride):
    """Explicit (lo, hi) pairs for the padding forms used in these tests (independent of _checks)."""
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        pairs = []
        for n, k, s in zip(spatial, window, stride):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return tuple((p, p) for p in padding)
    return tuple(tuple(p) for p in padding)


def loop_pool(x, window, stride, pads, mode, p=None):
    """Direct loops over (n, i, j, c): the reference for every windowed pool."""
    n_, h, w, c_ = x.shape
    (kh, kw), (sh, sw) = window, stride
    (top, bottom), (left, right) = pads
    fill = -np.inf if mode == "max" else 0.0
    padded = np.full((n_, h + top + bottom, w + left + right, c_), fill, np.float64)
    padded[:, top : top + h, left : left + w, :] = x
    real = np.zeros(padded.shape[1:3])
    real[top : top + h, left : left + w] = 1
    out_h = (h + top + bottom - kh) // sh + 1
    out_w = (w + left + right - kw) // sw + 1
    out = np.zeros((n_, out_h, out_w, c_))
    for n in range(n_):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(c_):
                    patch = padded[n, i * sh : i * sh + kh, j * sw : j * sw + kw, c]
                    if mode == "max":
                        out[n, i, j, c] = patch.max()
                    elif mode == "avg_include":
                        out[n, i, j, c] = patch.sum() / (kh * kw)
                    elif mode == "avg_exclude":
                        count = real[i * sh : i * sh + kh, j * sw : j * sw + kw].sum()
                        out[n, i, j, c] = patch.sum() / count
                    elif mode == "lp":
                        out[n, i, j, c] = (patch**p).sum() ** (1.0 / p)
    return out


# (input shape, window, stride, padding): square/non-square windows, overlapping
# and gapped strides, and every padding form.
GEOMETRIES = [
    ((2, 6, 6, 3), 2, None, 0),
    ((1, 7, 5, 2), (3, 2), (2, 1), 1),
    ((2, 5, 8, 2), (2, 3), (3, 2), ((1, 0), (2, 1))),
    ((1, 7, 7, 1), 3, 2, "SAME"),
    ((1, 6, 9, 2), (3, 3), (1, 3), "VALID"),
    ((1, 5, 6, 2), 2, (2, 2), (1, 0)),
]


def _geometry(shape, window, stride):
    window = (window, window) if isinstance(window, int) else window
    stride = window if stride is None else stride
    stride = (stride, stride) if isinstance(stride, int) else stride
    return window, stride


@pytest.mark.parametrize("shape,window,stride,padding", GEOMETRIES)
def test_max_and_avg_pool_match_loop_reference(shape, window, stride, padding):
    x = RNG.normal(size=shape).astype(np.float32)
    win, st = _geometry(shape, window, stride)
    pads = _pads(padding, shape[1:3], win, st)
    np.testing.assert_allclose(
        pool.max_pool2d(x, window, stride, padding), loop_pool(x, win, st, pads, "max"), rtol=1e-6
    )
    np.testing.assert_allclose(
        pool.avg_pool2d(x, window, stride, padding),
        loop_pool(x, win, st, pads, "avg_include"), rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        pool.avg_pool2d(x, window, stride, padding, count_include_pad=False),
        loop_pool(x, win, st, pads, "avg_exclude"), rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize("p", [1, 2, 3.5])
@pytest.mark.parametrize("shape,window,stride", [((2, 6, 6, 2), 2, None), ((1, 7, 5, 3), (3, 2), (2, 1))])
def test_lp_pool_matches_loop_reference(shape, window, stride, p):
    # Positive inputs: x**p of a negative x is NaN for non-integer p.
    x = RNG.uniform(0.1, 2.0, size=shape).astype(np.float32)
    win, st = _geometry(shape, window, stride)
    expected = loop_pool(x, win, st, ((0, 0), (0, 0)), "lp", p=p)
    np.testing.assert_allclose(pool.lp_pool2d(x, p, window, stride, form="sum"), expected, rtol=1e-5)


def _lp_mean_loop(x, window, stride, pads, p):
    """The slides' power mean of |x| per window, by loops in float64 (padding: zeros, counted)."""
    n_, h, w, c_ = x.shape
    (kh, kw), (sh, sw) = window, stride
    (top, bottom), (left, right) = pads
    padded = np.zeros((n_, h + top + bottom, w + left + right, c_), np.float64)
    padded[:, top : top + h, left : left + w, :] = np.abs(x)
    out = np.zeros((n_, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1, c_))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            patch = padded[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            out[:, i, j, :] = patch.max(axis=(1, 2)) if np.isinf(p) else (patch**p).mean(axis=(1, 2)) ** (1 / p)
    return out


@pytest.mark.parametrize("p", [1, 2, 3.5, 9, float("inf")])
@pytest.mark.parametrize("shape,window,stride,padding", GEOMETRIES[:3])
def test_lp_pool_mean_form_matches_loop_reference_on_signed_inputs(shape, window, stride, padding, p):
    x = RNG.normal(size=shape).astype(np.float32)
    win, st = _geometry(shape, window, stride)
    pads = _pads(padding, shape[1:3], win, st)
    np.testing.assert_allclose(
        pool.lp_pool2d(x, p, window, stride, padding), _lp_mean_loop(x, win, st, pads, p), rtol=1e-5, atol=1e-6
    )


def test_lp_pool_mean_form_is_average_at_1_max_at_inf_and_sum_form_is_torchs():
    """The slides: "L_p norm; P = 1 -> average, P = inf -> max" (CS231n's 4x4 pooling example)."""
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float32)[None, :, :, None]
    np.testing.assert_allclose(pool.lp_pool2d(x, 1, 2)[0, :, :, 0], [[3.25, 5.25], [2, 2]])
    np.testing.assert_array_equal(pool.lp_pool2d(x, float("inf"), 2)[0, :, :, 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(pool.lp_pool2d(-x, float("inf"), 2), pool.max_pool2d(x, 2))
    np.testing.assert_allclose(pool.lp_pool2d(-x, 1, 2), pool.avg_pool2d(x, 2), rtol=1e-6)
    # PyTorch's sum form: 4x the average at p = 1.
    np.testing.assert_array_equal(pool.lp_pool2d(x, 1, 2, form="sum")[0, :, :, 0], [[13, 21], [8, 8]])
    # The mean increases with p towards the max; p = 64 and 1000 stay finite (the sum form overflows at 64).
    values = [np.asarray(pool.lp_pool2d(x, p, 2)) for p in (1, 2, 4, 16, 64, 1000)]
    assert all(np.all(a < b) for a, b in zip(values, values[1:]))
    assert not np.all(np.isfinite(pool.lp_pool2d(x, 64, 2, form="sum")))
    # (mean of 4 values ** 64) ** (1/64) >= max / 4 ** (1/64), by hand for the window [1, 1, 5, 6]:
    np.testing.assert_allclose(values[4][0, 0, 0, 0], ((1 + 1 + 5.0**64 + 6.0**64) / 4) ** (1 / 64), rtol=1e-6)
    np.testing.assert_allclose(values[5], pool.max_pool2d(x, 2), rtol=2e-3)
    # Non-negative input: the sum form is (KH*KW) ** (1/p) times the mean form.
    np.testing.assert_allclose(pool.lp_pool2d(x, 3, 2, form="sum"), 4 ** (1 / 3) * pool.lp_pool2d(x, 3, 2), rtol=1e-5)


@pytest.mark.parametrize("p", [1, 2, 3.5, 64, float("inf")])
def test_lp_pool_mean_form_gradients_are_finite_on_zeros_and_negatives(p):
    """Negative inputs never give NaN (|x|), an all-zero window has gradient 0, and large p does not overflow."""
    x = np.array([[0, 0, -1, 2], [0, 0, 3, -4], [-5, 0, 0, 0], [0, 0.5, 0, 0]], np.float32)[None, :, :, None]
    y, vjp = jax.vjp(lambda v: pool.lp_pool2d(v, p, 2), jnp.asarray(x))
    (grad,) = vjp(jnp.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0, :2, :2, 0], 0)  # the all-zero window
    assert float(y[0, 0, 0, 0]) == 0.0
    # By hand: window [-5, 0, 0, 0.5]: d/dx_i (mean |x|^p)^(1/p) = (mean)^(1/p - 1) |x_i|^(p-1) sign(x_i) / 4.
    window = np.array([-5, 0, 0, 0.5])
    if np.isinf(p):
        expected = np.array([-1, 0, 0, 0])
    else:
        mean = np.mean(np.abs(window) ** p)
        expected = mean ** (1 / p - 1) * np.abs(window) ** (p - 1) * np.sign(window) / 4
    np.testing.assert_allclose(grad[0, 2:, :2, 0].reshape(-1), expected, rtol=1e-5, atol=1e-7)


def test_max_pools_of_integers_stay_integers():
    x = RNG.integers(-100, 100, size=(1, 4, 5, 2)).astype(np.int8)
    pads = ((1, 1), (1, 1))
    np.testing.assert_array_equal(pool.max_pool2d(x, 2, 1, 1), loop_pool(x, (2, 2), (1, 1), pads, "max").astype(np.int8))
    assert pool.max_pool2d(x, 2).dtype == jnp.int8
    np.testing.assert_array_equal(pool.global_max_pool(x), x.max(axis=(1, 2)))


def test_global_pools_reduce_every_spatial_axis():
    for shape in [(2, 5, 3), (2, 4, 3, 5), (1, 2, 3, 4, 3)]:
        x = RNG.normal(size=shape).astype(np.float32)
        axes = tuple(range(1, len(shape) - 1))
        np.testing.assert_allclose(pool.global_avg_pool(x), x.mean(axis=axes), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pool.global_max_pool(x), x.max(axis=axes))
        assert pool.global_avg_pool(x).shape == (shape[0], shape[-1])


def _grad_of_sum(f, x):
    return np.asarray(jax.grad(lambda v: f(v).sum())(jnp.asarray(x, jnp.float32)))


# Hand-derived masks. The rule: each window's gradient goes, whole, to the first
# maximal element of the window in row-major order.
def test_max_pool_gradient_mask_distinct_values():
    x = np.array([[1, 5, 2, 0], [3, 4, 8, 6], [7, 0, 1, 2], [2, 9, 3, 3]], np.float32)
    grad = _grad_of_sum(lambda v: pool.max_pool2d(v, 2), x[None, :, :, None])[0, :, :, 0]
    expected = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    # The bottom-right window [[1, 2], [3, 3]] ties 3 and 3: the first (row-major) wins.
    expected[3, 2] = 1
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize(
    "x,expected",
    [
        # all four tied: top-left wins
        ([[1, 1], [1, 1]], [[1, 0], [0, 0]]),
        # tie on the anti-diagonal: (0, 1) comes first in row-major order
        ([[1, 3], [3, 2]], [[0, 1], [0, 0]]),
        # tie on the bottom row: the left one
        ([[1, 2], [3, 3]], [[0, 0], [1, 0]]),
    ],
)
def test_max_pool_gradient_goes_to_first_tied_maximum(x, expected):
    x = np.array(x, np.float32)[None, :, :, None]
    grad = _grad_of_sum(lambda v: pool.max_pool2d(v, 2), x)[0, :, :, 0]
    np.testing.assert_array_equal(grad, np.array(expected, np.float32))


def test_max_pool_overlapping_windows_sum_gradients_at_shared_winner():
    # 2x2 windows, stride 1, over a 3x3 input: four windows.
    x = np.array([[0, 5, 5], [5, 0, 5], [5, 5, 0]], np.float32)[None, :, :, None]
    upstream = np.array([[1.0, 10.0], [100.0, 1000.0]], np.float32)[None, :, :, None]
    _, vjp = jax.vjp(lambda v: pool.max_pool2d(v, 2, 1), jnp.asarray(x))
    (grad,) = vjp(jnp.asarray(upstream))
    # windows (0,0) and (0,1) both pick (0,1); (1,0) picks (1,0); (1,1) picks (1,2).
    expected = np.array([[0, 11, 0], [100, 0, 1000], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(np.asarray(grad)[0, :, :, 0], expected)


def test_max_pool_jvp_uses_the_same_element_as_the_gradient():
    x = jnp.ones((1, 2, 2, 1))
    tangent = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    _, out_tangent = jax.jvp(lambda v: pool.max_pool2d(v, 2), (x,), (tangent,))
    assert float(out_tangent.reshape(())) == 1.0  # the top-left element's tangent


def test_global_max_pool_ties_follow_the_max_pool_rule():
    grad = _grad_of_sum(pool.global_max_pool, np.ones((1, 2, 3, 1), np.float32))
    expected = np.zeros((1, 2, 3, 1), np.float32)
    expected[0, 0, 0, 0] = 1
    np.testing.assert_array_equal(grad, expected)


def test_avg_pool_gradient_is_uniform_share_of_each_window():
    x = np.zeros((1, 3, 3, 1), np.float32)
    grad = _grad_of_sum(lambda v: pool.avg_pool2d(v, 2, 1), x)[0, :, :, 0]
    # each of the 4 windows hands 1/4 to each of its 4 inputs
    np.testing.assert_allclose(grad, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4)
    grad = _grad_of_sum(lambda v: pool.avg_pool2d(v, 2, 2, 1, count_include_pad=False), x)[0, :, :, 0]
    # windows of 1, 2, 2 and 4 real inputs (padding 1 on every side of a 3x3 input)
    np.testing.assert_allclose(grad, np.array([[1, 1 / 2, 1 / 2], [1 / 2, 1 / 4, 1 / 4], [1 / 2, 1 / 4, 1 / 4]]))


@pytest.mark.parametrize(
    "op",
    [
        functools.partial(pool.max_pool2d, window=(3, 2), stride=(2, 1), padding=1),
        functools.partial(pool.avg_pool2d, window=2, stride=1, padding="SAME"),
        functools.partial(pool.avg_pool2d, window=3, stride=2, padding=1, count_include_pad=False),
        functools.partial(pool.lp_pool2d, p=2, window=(2, 3), form="sum"),
        functools.partial(pool.lp_pool2d, p=3.5, window=(2, 3), stride=1, padding=1),
        pool.global_avg_pool,
        pool.global_max_pool,
    ],
    ids=["max", "avg_same", "avg_exclude_pad", "lp2_sum", "lp3.5_mean", "global_avg", "global_max"],
)
def test_grads_numerically_and_jit_matches_eager(op):
    # Well-separated values so finite differences never cross a max tie; positive for lp.
    x = jnp.asarray(RNG.permutation(60).reshape(1, 5, 4, 3) * 0.1 + 0.5, jnp.float32)
    jtu.check_grads(jax.jit(op), (x,), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(jax.jit(op)(x), op(x), rtol=1e-6)


def test_bf16_pooling_keeps_dtype_and_accumulates_accurately():
    x = RNG.uniform(0, 1, size=(2, 8, 8, 3)).astype(np.float32)
    xb = jnp.asarray(x, jnp.bfloat16)
    for op in (
        lambda v: pool.max_pool2d(v, 2),
        lambda v: pool.avg_pool2d(v, 4),
        lambda v: pool.lp_pool2d(v, 2, 2),
        lambda v: pool.lp_pool2d(v, 2, 2, form="sum"),
        pool.global_avg_pool,
        pool.global_max_pool,
    ):
        out = op(xb)
        assert out.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(out, np.float32), op(np.asarray(xb, np.float32)), rtol=1e-2)


# ---------------------------------------------------------------- PyTorch
def _torch_nchw(x):
    torch = pytest.importorskip("torch")
    return torch.tensor(np.transpose(x, (0, 3, 1, 2)), dtype=torch.float64, requires_grad=True)


def _compare_with_torch(jax_op, torch_op, x):
    """Forward and the VJP of a random cotangent, JAX (NHWC) vs torch (NCHW, float64)."""
    t = _torch_nchw(x)
    ty = torch_op(t)
    cot = RNG.normal(size=ty.shape)
    (ty * ty.new_tensor(cot)).sum().backward()
    y, vjp = jax.vjp(jax_op, jnp.asarray(x))
    (grad,) = vjp(jnp.asarray(np.transpose(cot, (0, 2, 3, 1)), jnp.float32))
    np.testing.assert_allclose(y, np.transpose(ty.detach().numpy(), (0, 2, 3, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, np.transpose(t.grad.numpy(), (0, 2, 3, 1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "window,stride,padding", [(2, None, 0), ((3, 2), (2, 1), (1, 1)), (3, 2, 1)]
)
def test_max_and_avg_pool_match_torch(window, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.normal(size=(2, 7, 6, 3)).astype(np.float32)
    t_stride = window if stride is None else stride
    _compare_with_torch(
        lambda v: pool.max_pool2d(v, window, stride, padding),
        lambda t: F.max_pool2d(t, window, t_stride, padding), x,
    )
    for include in (True, False):
        _compare_with_torch(
            lambda v: pool.avg_pool2d(v, window, stride, padding, count_include_pad=include),
            lambda t: F.avg_pool2d(t, window, t_stride, padding, count_include_pad=include), x,
        )


@pytest.mark.parametrize("window,stride,padding", [(2, 2, 0), (3, 1, 1), (2, 1, 1)])
def test_max_pool_tie_winner_matches_torch(window, stride, padding):
    torch = pytest.importorskip("torch")
    x = np.array([[1, 3, 3, 3], [3, 2, 3, 3], [0, 0, 7, 1], [7, 7, 7, 7]], np.float32)[None, :, :, None]
    _compare_with_torch(
        lambda v: pool.max_pool2d(v, window, stride, padding),
        lambda t: torch.nn.functional.max_pool2d(t, window, stride, padding), x,
    )


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_matches_torch(p):
    torch = pytest.importorskip("torch")
    x = RNG.uniform(0.1, 2.0, size=(2, 6, 7, 2)).astype(np.float32)
    _compare_with_torch(
        lambda v: pool.lp_pool2d(v, p, (2, 3), (2, 2), form="sum"),
        lambda t: torch.nn.functional.lp_pool2d(t, p, (2, 3), (2, 2)), x,
    )


def test_global_pools_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.normal(size=(2, 5, 4, 3)).astype(np.float32)
    _compare_with_torch(
        lambda v: pool.global_avg_pool(v)[:, None, None, :],
        lambda t: F.adaptive_avg_pool2d(t, 1), x,
    )
    _compare_with_torch(
        lambda v: pool.global_max_pool(v)[:, None, None, :],
        lambda t: F.adaptive_max_pool2d(t, 1), x,
    )


# ---------------------------------------------------------------- errors
X = np.zeros((1, 4, 4, 2), np.float32)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: pool.max_pool2d(X, 5), "window"),
        (lambda: pool.avg_pool2d(X, (2, 7), padding=1), "window"),
        (lambda: pool.max_pool2d(X, 0), "window must be >= 1"),
        (lambda: pool.max_pool2d(X, (2, 2, 2)), "window must be an int or a sequence of 2"),
        (lambda: pool.max_pool2d(X, 2, stride=0), "stride must be >= 1"),
        (lambda: pool.avg_pool2d(X, 2, stride=(1, -1)), "stride"),
        (lambda: pool.max_pool2d(X, 2, padding=-1), "padding must be >= 0"),
        (lambda: pool.max_pool2d(X, 2, padding="FULL"), "padding must be"),
        (lambda: pool.max_pool2d(X, 2, padding=2), "smaller than the window"),
        (lambda: pool.avg_pool2d(X, 3, padding=((0, 3), (0, 0))), "smaller than the window"),
        (lambda: pool.max_pool2d(X[0], 2), "expected NHWC"),
        (lambda: pool.avg_pool2d(X, 2, count_include_pad=1), "count_include_pad must be a bool"),
        (lambda: pool.lp_pool2d(X, 0, 2, form="sum"), "p must be a positive finite number"),
        (lambda: pool.lp_pool2d(X, float("inf"), 2, form="sum"), "max_pool2d"),
        (lambda: pool.lp_pool2d(X, 0.5, 2), r"p must be a number >= 1 or float\("),
        (lambda: pool.lp_pool2d(X, float("nan"), 2), "p must be a number >= 1"),
        (lambda: pool.lp_pool2d(X, 2, 2, form="torch"), 'form must be "mean"'),
        (lambda: pool.lp_pool2d(X, 2, 5), "window"),
        (lambda: pool.global_avg_pool(X[0, 0]), "expected NLC, NHWC or NDHWC"),
        (lambda: pool.global_max_pool(np.zeros((2, 0, 3))), "non-empty"),
        (lambda: pool.avg_pool2d(X.astype(np.int32), 2), "expected a floating-point input"),
        (lambda: pool.lp_pool2d(X.astype(np.uint8), 2, 2), "floating-point"),
        (lambda: pool.global_avg_pool(X.astype(np.int32)), "floating-point"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- distance-weighted average
def loop_weighted_pool(x, window, stride, sigma):
    """Loops; each window's weights exp(-d^2 / (2 sigma^2)) / sum, d measured from the window centre."""
    n_, h, w, c_ = x.shape
    (kh, kw), (sh, sw) = window, stride
    centre = ((kh - 1) / 2, (kw - 1) / 2)
    weights = np.zeros((kh, kw))
    for a in range(kh):
        for b in range(kw):
            weights[a, b] = np.exp(-((a - centre[0]) ** 2 + (b - centre[1]) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n_, out_h, out_w, c_))
    for n in range(n_):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(c_):
                    y[n, i, j, c] = (weights * x[n, i * sh : i * sh + kh, j * sw : j * sw + kw, c]).sum()
    return y


@pytest.mark.parametrize("window,stride,sigma", [(3, None, 1.0), ((2, 3), (1, 2), 0.7), (4, 2, 2.5)])
def test_weighted_avg_pool_matches_loop_reference(window, stride, sigma):
    x = RNG.normal(size=(2, 7, 8, 3)).astype(np.float32)
    win, st = _geometry(x.shape, window, stride)
    np.testing.assert_allclose(
        pool.weighted_avg_pool2d(x, window, stride, sigma=sigma), loop_weighted_pool(x, win, st, sigma), rtol=1e-5, atol=1e-6
    )


def test_weighted_avg_pool_by_hand():
    # A single 1 at the centre of a 3x3 window: the output is the centre weight
    # 1 / (1 + 4 e^{-1/(2 s^2)} + 4 e^{-2/(2 s^2)}); at a corner, the corner weight.
    sigma = 1.0
    total = 1 + 4 * np.exp(-0.5) + 4 * np.exp(-1.0)
    delta = np.zeros((1, 3, 3, 1), np.float32)
    delta[0, 1, 1, 0] = 1
    np.testing.assert_allclose(pool.weighted_avg_pool2d(delta, 3, sigma=sigma).reshape(()), 1 / total, rtol=1e-6)
    delta = np.zeros((1, 3, 3, 1), np.float32)
    delta[0, 0, 2, 0] = 1
    np.testing.assert_allclose(pool.weighted_avg_pool2d(delta, 3, sigma=sigma).reshape(()), np.exp(-1.0) / total, rtol=1e-6)
    # a constant input stays constant (weights sum to 1), and a huge sigma is a plain average
    np.testing.assert_allclose(pool.weighted_avg_pool2d(np.full((1, 4, 4, 2), 3.0, np.float32), 2), 3.0, rtol=1e-6)
    x = RNG.normal(size=(1, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(pool.weighted_avg_pool2d(x, 3, 3, sigma=1e4), pool.avg_pool2d(x, 3, 3), rtol=1e-5, atol=1e-6)


def test_weighted_avg_pool_grads_jit_and_bf16():
    x = jnp.asarray(RNG.normal(size=(1, 5, 5, 2)), jnp.float32)
    op = functools.partial(pool.weighted_avg_pool2d, window=3, stride=2, sigma=0.8)
    jtu.check_grads(jax.jit(op), (x,), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(jax.jit(op)(x), op(x), rtol=1e-6)
    y = op(x.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), op(x.astype(jnp.bfloat16).astype(jnp.float32)), rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: pool.weighted_avg_pool2d(X, 2, sigma=0.0), "sigma must be a positive finite number"),
        (lambda: pool.weighted_avg_pool2d(X, 2, sigma=float("nan")), "sigma"),
        (lambda: pool.weighted_avg_pool2d(X, 5), "window"),
        (lambda: pool.weighted_avg_pool2d(X, 2, stride=0), "stride"),
        (lambda: pool.weighted_avg_pool2d(X.astype(np.int32), 2), "floating-point"),
    ],
)
def test_weighted_avg_pool_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""Hand-written backward passes against jax.vjp of the forward ops, hand values and PyTorch."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import avg_pool2d, conv2d, max_pool2d
from jaxcnn.functional.manual_grad import avg_pool2d_backward, conv2d_backward, max_pool2d_backward


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# Jitted once per geometry: run eagerly, every small op of the backward passes
# would compile on its own (seconds per test); test_jit_matches_eager covers eager.
conv_backward = jax.jit(conv2d_backward, static_argnames=("stride", "padding"))
max_backward = jax.jit(max_pool2d_backward, static_argnames=("window", "stride", "padding"))
avg_backward = jax.jit(
    avg_pool2d_backward, static_argnames=("x_shape_or_x", "window", "stride", "padding", "count_include_pad")
)


# ----------------------------------------------------------------------------
# Convolution: g(G, V, s) and h(K, G, s)
# ----------------------------------------------------------------------------

_KERNELS = [(3, 3), (2, 3), (3, 1), (1, 2)]
_CONV_CASES = [
    (stride, padding, _KERNELS[index % len(_KERNELS)])
    for index, (stride, padding) in enumerate(itertools.product([1, 2, 3], [0, 1, 2]))
] + [
    ((1, 3), ((2, 0), (1, 2)), (2, 3)),
    ((3, 2), (0, 1), (3, 2)),
    (2, "SAME", (3, 2)),
]


@pytest.mark.parametrize("stride,padding,kernel", _CONV_CASES)
def test_conv2d_backward_matches_vjp(stride, padding, kernel):
    rng = np.random.default_rng(0)
    x, w = _rand(rng, (2, 8, 7, 3)), _rand(rng, (*kernel, 3, 4))

    @jax.jit
    def both(x, w, grad_out):
        _, vjp = jax.vjp(lambda x, w: conv2d(x, w, stride=stride, padding=padding), x, w)
        return vjp(grad_out), conv2d_backward(grad_out, x, w, stride=stride, padding=padding)

    out_shape = jax.eval_shape(lambda x, w: conv2d(x, w, stride=stride, padding=padding), x, w).shape
    grad_out = _rand(rng, out_shape)
    (auto_x, auto_w), (manual_x, manual_w) = both(x, w, grad_out)
    np.testing.assert_allclose(manual_x, auto_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(manual_w, auto_w, rtol=1e-5, atol=1e-5)


def test_conv2d_backward_hand_values():
    # 3x3 image 1..9, 2x2 kernel [[1, 2], [3, 4]], stride 1, dJ/dy = 1 everywhere.
    x = np.arange(1.0, 10.0, dtype=np.float32).reshape(1, 3, 3, 1)
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(2, 2, 1, 1)
    grad_x, grad_w = conv_backward(np.ones((1, 2, 2, 1), np.float32), x, w)
    # dJ/dw[kh, kw] = sum of the inputs each tap saw: the four 2x2 sub-squares' corners.
    np.testing.assert_array_equal(grad_w[:, :, 0, 0], [[1 + 2 + 4 + 5, 2 + 3 + 5 + 6], [4 + 5 + 7 + 8, 5 + 6 + 8 + 9]])
    # dJ/dx[p, q] = sum of the kernel taps that touched pixel (p, q).
    np.testing.assert_array_equal(grad_x[0, :, :, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])
    # Stride 2 on a 4x4 input with a 2x2 kernel: windows do not overlap, so dJ/dx
    # is the kernel tiled, and dJ/dw is the sum of the 4 disjoint blocks.
    x = np.arange(16.0, dtype=np.float32).reshape(1, 4, 4, 1)
    grad_x, grad_w = conv_backward(np.ones((1, 2, 2, 1), np.float32), x, w, stride=2)
    np.testing.assert_array_equal(grad_x[0, :, :, 0], np.tile([[1, 2], [3, 4]], (2, 2)))
    blocks = x[0, :, :, 0].reshape(2, 2, 2, 2).sum(axis=(0, 2))
    np.testing.assert_array_equal(grad_w[:, :, 0, 0], blocks)


def test_conv2d_backward_leaves_unreached_rows_at_zero():
    # 6 rows, kernel 2, stride 3: windows cover rows 0-1 and 3-4; row 2 and 5 never feed an output.
    x, w = jnp.ones((1, 6, 2, 1)), jnp.ones((2, 1, 1, 1))
    grad_x, _ = conv_backward(jnp.ones((1, 2, 2, 1)), x, w, stride=(3, 1))
    np.testing.assert_array_equal(grad_x[0, :, 0, 0], [1, 1, 0, 1, 1, 0])


# ----------------------------------------------------------------------------
# Pooling: the max gate routes, the add gate distributes
# ----------------------------------------------------------------------------

_POOL_CASES = [
    ((2, 2), None, 0),
    ((3, 3), (2, 2), 1),  # overlapping windows
    ((3, 2), (1, 2), ((1, 0), (0, 1))),
    ((2, 3), 2, "SAME"),
]


@functools.partial(jax.jit, static_argnames=("window", "stride", "padding"))
def max_pool_grads(x, grad_out, *, window, stride, padding):
    """(autodiff, hand-written) gradients of max_pool2d; compiled once per geometry."""
    _, vjp = jax.vjp(lambda x: max_pool2d(x, window, stride, padding), x)
    return vjp(grad_out)[0], max_pool2d_backward(grad_out, x, window, stride, padding)


@pytest.mark.parametrize("window,stride,padding", _POOL_CASES)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_max_pool2d_backward_matches_vjp(window, stride, padding, ties):
    rng = np.random.default_rng(1)
    shape = (2, 7, 6, 3)
    # With ties: values from {0, 1, 2}, so most windows hold several maxima.
    x = rng.integers(0, 3, shape).astype(np.float32) if ties else _rand(rng, shape)
    grad_out = _rand(rng, jax.eval_shape(lambda x: max_pool2d(x, window, stride, padding), x).shape)
    auto, manual = max_pool_grads(x, grad_out, window=window, stride=stride, padding=padding)
    np.testing.assert_allclose(manual, auto, rtol=1e-6, atol=1e-6)


def test_max_pool2d_backward_tie_rule_by_hand():
    # A constant image: every element ties. Window 2, stride 1: each output's gradient
    # goes to the top-left element of its window, i.e. grad_x[i, j] = G[i, j].
    x = jnp.zeros((1, 3, 3, 1))
    grad_out = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    grad_x = max_backward(grad_out, x, 2, stride=1)
    np.testing.assert_array_equal(grad_x[0, :, :, 0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    # A tie in the bottom row only: the left one (first in row-major order) wins.
    x = jnp.array([[0.0, 0.0], [5.0, 5.0]]).reshape(1, 2, 2, 1)
    grad_x = max_backward(jnp.full((1, 1, 1, 1), 7.0), x, 2)
    np.testing.assert_array_equal(grad_x[0, :, :, 0], [[0, 0], [7, 0]])


@pytest.mark.parametrize("window,stride,padding", _POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_backward_matches_vjp(window, stride, padding, count_include_pad):
    rng = np.random.default_rng(2)
    x = _rand(rng, (2, 7, 6, 3))

    def pool(x):
        return avg_pool2d(x, window, stride, padding, count_include_pad=count_include_pad)

    @jax.jit
    def auto(x, grad_out):
        return jax.vjp(pool, x)[1](grad_out)[0]

    grad_out = _rand(rng, jax.eval_shape(pool, x).shape)
    expected = auto(x, grad_out)
    from_shape = avg_backward(grad_out, x.shape, window, stride, padding, count_include_pad=count_include_pad)
    np.testing.assert_allclose(from_shape, expected, rtol=1e-6, atol=1e-6)


def test_avg_pool2d_backward_hand_values():
    # Non-overlapping 2x2 windows on 4x4: each pixel gets its window's gradient / 4.
    grad_out = jnp.array([[4.0, 8.0], [12.0, 16.0]]).reshape(1, 2, 2, 1)
    grad_x = avg_backward(grad_out, (1, 4, 4, 1), 2)
    np.testing.assert_array_equal(grad_x[0, :, :, 0], np.kron([[1, 2], [3, 4]], np.ones((2, 2))))
    # 3-wide windows, stride 1, padding 1 on a 1x3 row, count_include_pad=False:
    # windows cover [x0, x1], [x0, x1, x2], [x1, x2] -> shares 1/2, 1/3, 1/2.
    grad_x = avg_backward(
        jnp.ones((1, 1, 3, 1)), (1, 1, 3, 1), (1, 3), stride=1, padding=((0, 0), (1, 1)), count_include_pad=False
    )
    np.testing.assert_allclose(grad_x[0, 0, :, 0], [1 / 2 + 1 / 3, 1 / 2 + 1 / 3 + 1 / 2, 1 / 3 + 1 / 2], rtol=1e-6)


def test_jit_matches_eager():
    rng = np.random.default_rng(4)
    # Small windows: eagerly, every op of every window offset compiles on its own.
    x, w = _rand(rng, (1, 5, 4, 2)), _rand(rng, (1, 2, 2, 3))
    grad_conv, grad_pool = _rand(rng, (1, 3, 2, 3)), _rand(rng, (1, 3, 3, 2))
    geometry = dict(stride=2, padding=((0, 1), (1, 0)))
    for eager, jitted in zip(conv2d_backward(grad_conv, x, w, **geometry), conv_backward(grad_conv, x, w, **geometry)):
        np.testing.assert_allclose(eager, jitted, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(max_pool2d_backward(grad_pool, x, 2, 2, 1), max_backward(grad_pool, x, 2, 2, 1))
    # Given the input itself instead of its shape, avg_pool2d_backward reads the shape.
    np.testing.assert_allclose(avg_pool2d_backward(grad_pool, x, 2, 2, 1), avg_backward(grad_pool, x.shape, 2, 2, 1), rtol=1e-6)


def test_pool_backward_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, grad_out = _rand(rng, (2, 7, 6, 3)), _rand(rng, (2, 3, 2, 3))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt.permute(0, 3, 1, 2), (3, 3), stride=(2, 2))
    yt.backward(torch.tensor(grad_out).permute(0, 3, 1, 2))
    np.testing.assert_allclose(max_backward(grad_out, x, 3, 2), xt.grad.numpy(), rtol=1e-6)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt.permute(0, 3, 1, 2), (3, 3), stride=(2, 2), padding=0)
    yt.backward(torch.tensor(grad_out).permute(0, 3, 1, 2))
    np.testing.assert_allclose(avg_backward(grad_out, x.shape, 3, 2), xt.grad.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------

X = jnp.zeros((1, 5, 5, 2))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: conv2d_backward(jnp.zeros((1, 3, 3, 4)), X, jnp.zeros((3, 3, 3, 4))), r"channels"),
        (lambda: conv2d_backward(jnp.zeros((1, 4, 3, 4)), X, jnp.zeros((3, 3, 2, 4))),
         r"conv2d_backward: grad_out must have the forward output's shape \(N, H', W', C_out\) = \(1, 3, 3, 4\)"),
        (lambda: conv2d_backward(jnp.zeros((1, 3, 3, 4)), X, jnp.zeros((3, 3, 2, 4)), stride=0), r"stride must be >= 1"),
        (lambda: conv2d_backward(jnp.zeros((1, 3, 3, 4)), X[0], jnp.zeros((3, 3, 2, 4))), r"expected NHWC input"),
        (lambda: max_pool2d_backward(jnp.zeros((1, 2, 2, 2)), X, 3), r"max_pool2d_backward: grad_out must have .* \(1, 1, 1, 2\)"),
        (lambda: max_pool2d_backward(jnp.zeros((1, 1, 1, 2)), X, 6), r"window"),
        (lambda: avg_pool2d_backward(jnp.zeros((1, 1, 1, 2)), (5, 5, 2), 2), r"expected NHWC avg_pool2d_backward input"),
        (lambda: avg_pool2d_backward(jnp.zeros((1, 2, 2, 2)), X.shape, 2, count_include_pad=1), r"count_include_pad must be a bool"),
        (lambda: avg_pool2d_backward(jnp.zeros((1, 3, 3, 2)), X.shape, 2), r"grad_out must have .* \(1, 2, 2, 2\)"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()

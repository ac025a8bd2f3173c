"""Adaptive average/max pooling: PyTorch's bins, loop references, torch forward+gradient, tie rule."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from jaxcnn.functional.adaptive_pool import adaptive_avg_pool2d, adaptive_bins, adaptive_max_pool2d

RNG = np.random.default_rng(3)


def loop_adaptive(x, out_h, out_w, reduce):
    """Loops over output cells; bins written out from PyTorch's definition with math.floor/ceil."""
    import math

    n_, h, w, c_ = x.shape
    y = np.zeros((n_, out_h, out_w, c_))
    for i in range(out_h):
        h0, h1 = math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h)
        for j in range(out_w):
            w0, w1 = math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w)
            for n in range(n_):
                for c in range(c_):
                    y[n, i, j, c] = reduce(x[n, h0:h1, w0:w1, c])
    return y


def test_bins_by_hand():
    starts, ends = adaptive_bins(7, 3)  # 7/3 = 2.33: [0, 3), [2, 5), [4, 7)
    np.testing.assert_array_equal(starts, [0, 2, 4])
    np.testing.assert_array_equal(ends, [3, 5, 7])
    starts, ends = adaptive_bins(2, 3)  # more outputs than inputs: [0, 1), [0, 2), [1, 2)
    np.testing.assert_array_equal(starts, [0, 0, 1])
    np.testing.assert_array_equal(ends, [1, 2, 2])


# output sizes: non-dividing, dividing (fast path), larger than the input, None, and 1
@pytest.mark.parametrize("output_size", [(3, 4), (7, 5), (9, 13), (None, 3), 1])
def test_adaptive_pools_match_loop_reference(output_size):
    x = RNG.normal(size=(2, 7, 10, 3)).astype(np.float32)
    sizes = (output_size, output_size) if not isinstance(output_size, tuple) else output_size
    out_h, out_w = (s if s is not None else d for s, d in zip(sizes, x.shape[1:3]))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, output_size), loop_adaptive(x, out_h, out_w, np.mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(adaptive_max_pool2d(x, output_size), loop_adaptive(x, out_h, out_w, np.max))


def test_quadrant_statistics_for_two_input_sizes():
    # "outputs four sets of summary statistics, one for each quadrant", whatever the input size
    for height, width in [(8, 6), (5, 7)]:
        x = RNG.normal(size=(1, height, width, 2)).astype(np.float32)
        avg, top = adaptive_avg_pool2d(x, 2), adaptive_max_pool2d(x, 2)
        assert avg.shape == top.shape == (1, 2, 2, 2)
        h2, w2 = -(-height // 2), -(-width // 2)  # ceil: odd sizes share the middle row/column
        np.testing.assert_allclose(avg[0, 0, 0], x[0, :h2, :w2].mean((0, 1)), rtol=1e-5)
        np.testing.assert_allclose(top[0, 1, 1], x[0, height // 2 :, width // 2 :].max((0, 1)))


def test_max_gradient_goes_to_first_maximum_and_sums_over_overlapping_bins():
    # W=3 -> 2 bins [0, 2) and [1, 3): both pick index 1 (in bin 1 it ties with index 2)
    x = jnp.array([1.0, 5.0, 5.0]).reshape(1, 1, 3, 1)
    grad = jax.jit(jax.grad(lambda v: adaptive_max_pool2d(v, (1, 2)).sum()))(x)
    np.testing.assert_array_equal(grad.reshape(-1), [0.0, 2.0, 0.0])
    # 2-D bin with a tie on its anti-diagonal: row-major first wins
    x = jnp.array([[0.0, 3.0, 1.0], [3.0, 0.0, 2.0], [0.0, 0.0, 0.0]]).reshape(1, 3, 3, 1)
    grad = jax.jit(jax.grad(lambda v: adaptive_max_pool2d(v, 2)[0, 0, 0, 0]))(x)  # bin rows [0,2) cols [0,2)
    expected = np.zeros((3, 3))
    expected[0, 1] = 1.0
    np.testing.assert_array_equal(grad[0, :, :, 0], expected)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _value_and_vjp(fn, output_size, x, cotangent):
    y, vjp = jax.vjp(lambda v: fn(v, output_size), x)
    return y, vjp(cotangent)[0]


@pytest.mark.parametrize("output_size", [(3, 4), (4, 2), (9, 13)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pools_match_torch_forward_and_gradient(kind, output_size):
    torch = pytest.importorskip("torch")
    fn = {"avg": adaptive_avg_pool2d, "max": adaptive_max_pool2d}[kind]
    t_fn = {"avg": torch.nn.functional.adaptive_avg_pool2d, "max": torch.nn.functional.adaptive_max_pool2d}[kind]
    # integers in [0, 4): many ties, so the max tie rule is exercised too
    x = RNG.integers(0, 4, size=(2, 7, 10, 2)).astype(np.float32)
    t_x = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    t_y = t_fn(t_x, output_size)
    cot = RNG.normal(size=t_y.shape).astype(np.float32)
    (t_y * torch.tensor(cot)).sum().backward()
    y, grad = _value_and_vjp(fn, output_size, jnp.asarray(x), jnp.asarray(cot.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(y, t_y.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, t_x.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", [adaptive_avg_pool2d, adaptive_max_pool2d], ids=["avg", "max"])
def test_gradients_check_numerically_and_jit_matches_eager(fn):
    x = jnp.asarray(RNG.permutation(40).reshape(1, 5, 4, 2) * 0.1, jnp.float32)
    op = functools.partial(fn, output_size=(3, 3))
    # forward mode is checked against reverse mode in test_pool_norm_transforms.py
    jtu.check_grads(jax.jit(op), (x,), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(jax.jit(op)(x), op(x), rtol=1e-6)
    y = op(x.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: adaptive_avg_pool2d(np.zeros((1, 4, 4, 1)), 0), "output_size must be >= 1"),
        (lambda: adaptive_max_pool2d(np.zeros((1, 4, 4, 1)), (2, 2, 2)), r"output_size must be an int or \(out_h, out_w\)"),
        (lambda: adaptive_max_pool2d(np.zeros((1, 4, 4, 1)), (2, 1.5)), "output_size must be >= 1"),
        (lambda: adaptive_avg_pool2d(np.zeros((4, 4, 1)), 2), "expected NHWC"),
        (lambda: adaptive_max_pool2d(np.zeros((1, 0, 4, 1)), 2), "non-empty"),
        (lambda: adaptive_avg_pool2d(np.zeros((1, 4, 4, 1), np.int32), 3), "floating-point"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()

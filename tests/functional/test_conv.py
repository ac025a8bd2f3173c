"""conv1d / conv2d / conv3d / unfold against a NumPy loop reference and PyTorch.

Each sweep case compiles ONE jitted function that returns the forward output
and the gradients of both implementations, so the suite stays fast.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import conv1d, conv2d, conv3d, fold, unfold

IMPLS = ("xla", "im2col")
CONV = {1: conv1d, 2: conv2d, 3: conv3d}


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pairs(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def same_pads(size, kernel, stride, dilation):
    """TF/XLA "SAME": output ceil(size/stride), the odd pixel of padding goes at the end."""
    out = -(-size // stride)
    extent = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + extent - size, 0)
    return (total // 2, total - total // 2)


def explicit_pads(padding, spatial, kernel, stride, dilation):
    """The test's own reading of every padding form, as (low, high) per dim."""
    n = len(spatial)
    strides, dilations = _pairs(stride, n), _pairs(dilation, n)
    if padding == "VALID":
        return ((0, 0),) * n
    if padding == "SAME":
        return tuple(same_pads(*a) for a in zip(spatial, kernel, strides, dilations))
    if isinstance(padding, int):
        return ((padding, padding),) * n
    if all(isinstance(p, int) for p in padding):
        return tuple((p, p) for p in padding)
    return tuple(tuple(p) for p in padding)


def conv2d_loops(x, w, *, stride, pads, dilation, groups):
    """Direct convolution: 7 nested loops over (n, i, j, o, kh, kw, c), groups as in lax."""
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    n_batch, height, width, _ = xp.shape
    kh_size, kw_size, group_in, out_channels = w.shape
    group_out = out_channels // groups
    out_h = (height - dh * (kh_size - 1) - 1) // sh + 1
    out_w = (width - dw * (kw_size - 1) - 1) // sw + 1
    y = np.zeros((n_batch, out_h, out_w, out_channels), np.float64)
    for n in range(n_batch):
        for i in range(out_h):
            for j in range(out_w):
                for o in range(out_channels):
                    first_channel = (o // group_out) * group_in
                    for kh in range(kh_size):
                        for kw in range(kw_size):
                            for c in range(group_in):
                                y[n, i, j, o] += (
                                    xp[n, i * sh + kh * dh, j * sw + kw * dw, first_channel + c]
                                    * w[kh, kw, c, o]
                                )
    return y


# ----------------------------------------------------------------------------
# NumPy loop reference
# ----------------------------------------------------------------------------

LOOP_CASES = [
    # x shape, kernel shape (KH, KW, I, O), stride, padding, dilation, groups
    ((2, 5, 6, 3), (3, 2, 3, 4), 1, 0, 1, 1),
    ((1, 7, 6, 4), (2, 3, 2, 4), (2, 1), ((1, 0), (0, 2)), (1, 2), 2),
    ((1, 6, 7, 3), (3, 3, 1, 6), 2, "SAME", 1, 3),
]


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation,groups", LOOP_CASES)
def test_conv2d_matches_seven_loop_reference(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x, w, b = _rand(rng, x_shape), _rand(rng, w_shape), _rand(rng, w_shape[-1:])
    pads = explicit_pads(padding, x_shape[1:3], w_shape[:2], stride, dilation)
    expected = conv2d_loops(
        x, w, stride=_pairs(stride, 2), pads=pads, dilation=_pairs(dilation, 2), groups=groups
    ) + b

    @jax.jit
    def both(x, w, b):
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return [conv2d(x, w, b, impl=impl, **kw) for impl in IMPLS]

    for got in both(x, w, b):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_hand_computed_3x3_example():
    # A 3x3 image convolved with a 2x2 kernel: every output is a sum of 4 products.
    x = np.arange(1.0, 10.0, dtype=np.float32).reshape(1, 3, 3, 1)
    w = np.array([[1.0, 0.0], [0.0, -1.0]], np.float32).reshape(2, 2, 1, 1)
    # y[i, j] = x[i, j] - x[i+1, j+1] = -4 everywhere.
    for impl in IMPLS:
        np.testing.assert_array_equal(conv2d(x, w, impl=impl)[0, :, :, 0], [[-4.0, -4.0], [-4.0, -4.0]])
    # Stride 2 with padding 1: outputs at padded (0,0), (0,2), (2,0), (2,2).
    # y = xp[i, j] - xp[i+1, j+1]; xp has a zero border.
    expected = np.array([[0 - 1, 0 - 3], [0 - 7, 5 - 9]], np.float32)
    for impl in IMPLS:
        np.testing.assert_array_equal(conv2d(x, w, stride=2, padding=1, impl=impl)[0, :, :, 0], expected)


# ----------------------------------------------------------------------------
# PyTorch cross-check, forward and gradients
# ----------------------------------------------------------------------------

_PADDINGS = [0, 1, (2, 1), ((1, 0), (0, 2)), "SAME", "VALID"]
_STRIDES = [1, 2, (2, 3)]
_DILATIONS = [1, 2, (1, 2)]
_KERNELS = [(3, 3), (2, 3), (1, 4), (4, 1)]
_GROUPS = [1, 2, 4]  # 4 = depthwise for C=4


def _sweep_2d():
    """Every stride x padding pair; dilation, kernel and groups cycle through their values."""
    cases = []
    for index, (padding, stride) in enumerate(
        (p, s) for p in _PADDINGS for s in _STRIDES
    ):
        cases.append(
            (
                padding,
                stride,
                _DILATIONS[index % len(_DILATIONS)],
                _KERNELS[index % len(_KERNELS)],
                _GROUPS[(index // 2) % len(_GROUPS)],
            )
        )
    return cases


def _torch_conv(torch, x, w, b, *, pads, stride, dilation, groups):
    """PyTorch's convolution in NHWC/HWIO terms; padding applied explicitly (low, high)."""
    ndim = x.ndim - 2
    functional = torch.nn.functional
    to_channels_first = (0, ndim + 1, *range(1, ndim + 1))
    xt = x.permute(*to_channels_first)
    # F.pad takes the last dim first.
    flat_pads = [v for lo_hi in reversed(pads) for v in lo_hi]
    xt = functional.pad(xt, flat_pads)
    wt = w.permute(ndim + 1, ndim, *range(ndim))  # (O, I, *K)
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[ndim]
    y = conv(xt, wt, b, stride=stride, dilation=dilation, groups=groups)
    return y.permute(0, *range(2, ndim + 2), 1)


def _torch_value_and_grads(x, w, b, cotangent, **kw):
    torch = pytest.importorskip("torch")
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    y = _torch_conv(torch, xt, wt, bt, **kw)
    (y * torch.tensor(cotangent, dtype=torch.float64)).sum().backward()
    return [a.detach().numpy() for a in (y, xt.grad, wt.grad, bt.grad)]


def _jax_value_and_grads(conv, **kw):
    """One jit: for each impl, (y, dx, dw, db) of sum(y * cotangent)."""

    @jax.jit
    def run(x, w, b, cotangent):
        results = []
        for impl in IMPLS:
            def loss(x, w, b):
                y = conv(x, w, b, impl=impl, **kw)
                return jnp.sum(y * cotangent), y

            (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(x, w, b)
            results.append((y, *grads))
        return results

    return run


def _check_against_torch(ndim, x_shape, kernel, stride, padding, dilation, groups, out_channels):
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    in_channels = x_shape[-1]
    w_shape = (*kernel, in_channels // groups, out_channels)
    x, w, b = _rand(rng, x_shape), _rand(rng, w_shape), _rand(rng, (out_channels,))
    pads = explicit_pads(padding, x_shape[1:-1], kernel, stride, dilation)
    out_spatial = tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, k, s, d, (lo, hi) in zip(
            x_shape[1:-1], kernel, _pairs(stride, ndim), _pairs(dilation, ndim), pads
        )
    )
    cotangent = _rand(rng, (x_shape[0], *out_spatial, out_channels))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = _torch_value_and_grads(
        x, w, b, cotangent,
        pads=pads, stride=_pairs(stride, ndim), dilation=_pairs(dilation, ndim), groups=groups,
    )
    if padding == "SAME":
        assert out_spatial == tuple(-(-s // st) for s, st in zip(x_shape[1:-1], _pairs(stride, ndim)))
    results = _jax_value_and_grads(CONV[ndim], **kw)(x, w, b, cotangent)
    for impl, got in zip(IMPLS, results):
        for name, g, e in zip(("y", "dx", "dw", "db"), got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=f"{impl} {name}")


@pytest.mark.parametrize("padding,stride,dilation,kernel,groups", _sweep_2d())
def test_conv2d_matches_torch_forward_and_grad(padding, stride, dilation, kernel, groups):
    _check_against_torch(2, (2, 9, 8, 4), kernel, stride, padding, dilation, groups, out_channels=4)


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,groups",
    [
        ((3,), 1, 0, 1, 1),
        ((4,), 2, ((2, 1),), 1, 2),
        ((2,), 3, "SAME", 2, 4),
        ((3,), (2,), (1,), (3,), 1),
    ],
)
def test_conv1d_matches_torch_forward_and_grad(kernel, stride, padding, dilation, groups):
    _check_against_torch(1, (2, 11, 4), kernel, stride, padding, dilation, groups, out_channels=4)


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,groups",
    [
        ((2, 3, 1), 1, 0, 1, 1),
        ((3, 2, 2), (2, 1, 2), ((1, 0), (0, 1), (1, 1)), (1, 2, 1), 2),
        ((2, 2, 3), 2, "SAME", 1, 2),
    ],
)
def test_conv3d_matches_torch_forward_and_grad(kernel, stride, padding, dilation, groups):
    _check_against_torch(3, (1, 5, 6, 5, 2), kernel, stride, padding, dilation, groups, out_channels=4)


# ----------------------------------------------------------------------------
# unfold
# ----------------------------------------------------------------------------


def test_unfold_feature_order_matches_numpy_patches():
    rng = np.random.default_rng(2)
    x = _rand(rng, (2, 5, 6, 3))
    got = np.asarray(unfold(x, (2, 3), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2)))
    xp = np.pad(x, ((0, 0), (1, 0), (0, 1), (0, 0)))
    out_h, out_w = (6 - 1 * 1 - 1) // 2 + 1, (7 - 2 * 2 - 1) // 1 + 1
    assert got.shape == (2, out_h, out_w, 2 * 3 * 3)
    for i in range(out_h):
        for j in range(out_w):
            # Patch at (i, j), flattened in (kh, kw, c) order.
            patch = xp[:, 2 * i : 2 * i + 2, j : j + 5 : 2, :]
            np.testing.assert_array_equal(got[:, i, j, :], patch.reshape(2, -1))


def test_unfold_times_flattened_kernel_is_conv2d():
    rng = np.random.default_rng(3)
    x, w = _rand(rng, (2, 7, 6, 3)), _rand(rng, (3, 2, 3, 5))
    kw = dict(stride=2, padding="SAME", dilation=(2, 1))
    product = unfold(x, (3, 2), **kw) @ w.reshape(-1, 5)
    np.testing.assert_allclose(product, conv2d(x, w, **kw), rtol=1e-5, atol=1e-5)


def test_fold_counts_window_coverage_by_hand():
    # 4x4 ones, 3x3 window, stride 1, no padding: a pixel is in (#row windows) x (#col windows)
    # windows; per dim the 2 windows cover rows [0..2] and [1..3] -> counts 1, 2, 2, 1.
    x = jnp.ones((1, 4, 4, 1))
    per_dim = np.array([1, 2, 2, 1], np.float32)
    np.testing.assert_array_equal(fold(unfold(x, 3), (4, 4), 3)[0, :, :, 0], np.outer(per_dim, per_dim))
    # Stride 2, padding 1 on a 3x3 input, 2x2 window: windows start at padded 0 and 2, covering
    # padded [0, 1] and [2, 3] -> every real pixel exactly once.
    x = jnp.ones((1, 3, 3, 2))
    np.testing.assert_array_equal(fold(unfold(x, 2, stride=2, padding=1), (3, 3), 2, stride=2, padding=1), x)


def test_fold_is_the_adjoint_and_the_gradient_of_unfold():
    rng = np.random.default_rng(6)
    x = _rand(rng, (2, 7, 6, 3))
    kw = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2))

    @jax.jit
    def run(x, p):
        patches, vjp = jax.vjp(lambda x: unfold(x, (3, 2), **kw), x)
        return patches, vjp(p)[0], fold(p, (7, 6), (3, 2), **kw)

    p = _rand(rng, unfold(x, (3, 2), **kw).shape)
    patches, unfold_grad, folded = run(x, p)
    np.testing.assert_allclose(folded, unfold_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.vdot(patches, p), np.vdot(x, folded), rtol=1e-5)


# ----------------------------------------------------------------------------
# check_grads, jit vs eager, dtype
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_check_grads_first_and_second_order(impl):
    rng = np.random.default_rng(4)
    x, w, b = _rand(rng, (1, 5, 4, 2)), _rand(rng, (2, 3, 1, 2)), _rand(rng, (2,))
    f = jax.jit(functools.partial(conv2d, stride=(2, 1), padding=1, groups=2, impl=impl))
    check_grads(f, (x, w, b), order=2, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2, eps=1e-2)


@pytest.mark.parametrize("impl", IMPLS)
def test_jit_matches_eager(impl):
    rng = np.random.default_rng(5)
    x, w, b = _rand(rng, (2, 6, 5, 2)), _rand(rng, (3, 2, 2, 3)), _rand(rng, (3,))
    kw = dict(stride=(1, 2), padding="SAME", dilation=(2, 1), impl=impl)
    eager = conv2d(x, w, b, **kw)
    jitted = jax.jit(functools.partial(conv2d, **kw))(x, w, b)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)


def test_output_dtype_and_mixed_precision_promotion():
    x = jnp.ones((1, 4, 4, 2), jnp.bfloat16)
    w = jnp.ones((2, 2, 2, 3), jnp.float32)
    for impl in IMPLS:
        assert conv2d(x, w.astype(jnp.bfloat16), impl=impl).dtype == jnp.bfloat16
        y = conv2d(x, w, impl=impl)
        assert y.dtype == jnp.float32  # promoted like jnp arithmetic
        np.testing.assert_array_equal(y, np.full((1, 3, 3, 3), 8.0))


def test_output_size_formula_and_default_impl():
    rng = np.random.default_rng(7)
    x, w = _rand(rng, (3, 10, 9, 2)), _rand(rng, (3, 4, 2, 5))
    kw = dict(stride=(3, 2), padding=((2, 1), (0, 0)), dilation=(2, 1))
    y = conv2d(x, w, **kw)
    # H' = floor((10 + 2 + 1 - 2*(3-1) - 1) / 3) + 1 = 3 ; W' = floor((9 - 1*(4-1) - 1) / 2) + 1 = 3
    assert y.shape == (3, 3, 3, 5)
    np.testing.assert_array_equal(y, conv2d(x, w, impl="xla", **kw))


@pytest.mark.parametrize("conv,ndim", [(conv1d, 1), (conv2d, 2), (conv3d, 3)])
def test_im2col_path_has_no_convolution_primitive(conv, ndim):
    x, w = jnp.zeros((1, *(5,) * ndim, 4)), jnp.zeros((*(2,) * ndim, 2, 6))
    kw = dict(stride=2, padding=1, groups=2)
    im2col = str(jax.make_jaxpr(lambda x, w: conv(x, w, impl="im2col", **kw))(x, w))
    xla = str(jax.make_jaxpr(lambda x, w: conv(x, w, impl="xla", **kw))(x, w))
    assert "conv_general_dilated" not in im2col and "dot_general" in im2col
    assert xla.count("conv_general_dilated") == 1


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------

X = jnp.zeros((1, 5, 5, 4))
W = jnp.zeros((3, 3, 4, 6))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: conv2d(jnp.zeros((5, 5, 4)), W), r"expected NHWC input \(rank 4\)"),
        (lambda: conv1d(jnp.zeros((1, 5, 5, 4)), W[0]), r"expected NLC input \(rank 3\)"),
        (lambda: conv3d(X, W), r"expected NDHWC input \(rank 5\)"),
        (lambda: conv2d(X, W[0]), r"expected HWIO kernel \(rank 4\)"),
        (lambda: conv2d(X, jnp.zeros((3, 3, 3, 6))), r"channels.*C=4.*I=C/groups=4"),
        (lambda: conv2d(X, jnp.zeros((3, 3, 4, 6)), groups=2), r"channels.*groups=2.*I=C/groups=2"),
        (lambda: conv2d(X, jnp.zeros((3, 3, 1, 6)), groups=3), r"groups=3 must divide the input channels C=4"),
        (lambda: conv2d(X, jnp.zeros((3, 3, 2, 5)), groups=2), r"groups=2 must divide the output channels O=5"),
        (lambda: conv2d(X, W, groups=0), r"groups must be a positive int"),
        (lambda: conv2d(X, W, padding=-1), r"padding must be >= 0"),
        (lambda: conv2d(X, W, padding=((1, -1), (0, 0))), r"padding must be >= 0"),
        (lambda: conv2d(X, W, padding="FULL"), r'padding must be .*"SAME" or "VALID"'),
        (lambda: conv2d(X, W, padding=(1, 2, 3)), r"padding must be an int or a sequence of 2 ints"),
        (lambda: conv2d(X, W, stride=0), r"stride must be >= 1"),
        (lambda: conv2d(X, W, stride=(1, -2)), r"stride must be >= 1"),
        (lambda: conv2d(X, W, dilation=0), r"dilation must be >= 1"),
        (lambda: conv2d(X, jnp.zeros((6, 3, 4, 6))), r"kernel \(6, 3\) \(dilated extent 6\) is larger than the padded input"),
        (lambda: conv2d(X, W, dilation=3), r"kernel \(3, 3\) \(dilated extent 7\) is larger"),
        (lambda: conv2d(X, W, impl="fft"), r"unknown impl 'fft'; expected one of 'xla', 'im2col'"),
        (lambda: conv2d(X, W, jnp.zeros((4,))), r"bias must have shape \(6,\).*got \(4,\)"),
        (lambda: conv2d(X, W, jnp.zeros((1, 6))), r"bias must have shape \(6,\)"),
        (lambda: unfold(jnp.zeros((5, 5, 4)), 3), r"expected NHWC input"),
        (lambda: unfold(X, 6), r"kernel \(6, 6\).*larger than the padded input"),
        (lambda: unfold(X, 0), r"kernel_size must be >= 1"),
        (lambda: fold(jnp.zeros((1, 3, 3)), (5, 5), 3), r"expected \(N, H', W', KH\*KW\*C\) patches \(rank 4\)"),
        (lambda: fold(jnp.zeros((1, 3, 3, 10)), (5, 5), 3), r"patch features \(10\) must be KH\*KW\*C with KH\*KW=9"),
        (lambda: fold(jnp.zeros((1, 2, 3, 9)), (5, 5), 3), r"patches have \(2, 3\) positions .*\(H', W'\) = \(3, 3\)"),
        (lambda: fold(jnp.zeros((1, 3, 3, 9)), (2, 5), 3), r"kernel \(3, 3\).*larger than the padded input"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()

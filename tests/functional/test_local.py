"""locally_connected2d / tiled_conv2d: NumPy loops, the conv2d limits, gradients, errors."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import conv2d, locally_connected2d, tiled_conv2d


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def tiled_loops(x, w, b, *, stride, pads):
    """Loop reference: output (i, j) uses kernel w[i % TH, j % TW] (TH, TW = H', W' is unshared)."""
    sh, sw = stride
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    tile_h, tile_w, kh_size, kw_size, channels, out_channels = w.shape
    out_h = (xp.shape[1] - kh_size) // sh + 1
    out_w = (xp.shape[2] - kw_size) // sw + 1
    y = np.zeros((x.shape[0], out_h, out_w, out_channels), np.float64)
    for n in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                kernel = w[i % tile_h, j % tile_w]
                for o in range(out_channels):
                    for kh in range(kh_size):
                        for kw in range(kw_size):
                            for c in range(channels):
                                y[n, i, j, o] += xp[n, i * sh + kh, j * sw + kw, c] * kernel[kh, kw, c, o]
                if b is not None:
                    y[n, i, j] += b[i % tile_h, j % tile_w]
    return y


@pytest.mark.parametrize(
    "x_shape,kernel,stride,padding,pads",
    [
        ((2, 5, 6, 2), (2, 3), 1, 0, ((0, 0), (0, 0))),
        ((1, 7, 6, 3), (3, 2), (2, 1), ((1, 0), (0, 2)), ((1, 0), (0, 2))),
    ],
)
def test_locally_connected_matches_loops(x_shape, kernel, stride, padding, pads):
    rng = np.random.default_rng(0)
    strides = (stride, stride) if isinstance(stride, int) else stride
    out_h = (x_shape[1] + sum(pads[0]) - kernel[0]) // strides[0] + 1
    out_w = (x_shape[2] + sum(pads[1]) - kernel[1]) // strides[1] + 1
    x = _rand(rng, x_shape)
    w = _rand(rng, (out_h, out_w, *kernel, x_shape[-1], 3))
    b = _rand(rng, (out_h, out_w, 3))
    got = jax.jit(functools.partial(locally_connected2d, stride=stride, padding=padding))(x, w, b)
    np.testing.assert_allclose(got, tiled_loops(x, w, b, stride=strides, pads=pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "tile,stride,padding,pads",
    [
        ((2, 3), 1, 1, ((1, 1), (1, 1))),  # 3 does not divide W' = 7: partial last tile
        ((3, 1), (2, 1), ((0, 1), (2, 0)), ((0, 1), (2, 0))),
    ],
)
def test_tiled_matches_loops(tile, stride, padding, pads):
    rng = np.random.default_rng(1)
    x = _rand(rng, (2, 6, 7, 2))
    w, b = _rand(rng, (*tile, 2, 3, 2, 4)), _rand(rng, (*tile, 4))
    strides = (stride, stride) if isinstance(stride, int) else stride
    got = jax.jit(functools.partial(tiled_conv2d, stride=stride, padding=padding))(x, w, b)
    np.testing.assert_allclose(got, tiled_loops(x, w, b, stride=strides, pads=pads), rtol=1e-5, atol=1e-5)


def test_locally_connected_with_equal_kernels_is_conv2d():
    rng = np.random.default_rng(2)
    x, kernel, bias = _rand(rng, (2, 8, 7, 3)), _rand(rng, (3, 2, 3, 4)), _rand(rng, (4,))
    y_conv = conv2d(x, kernel, bias, stride=2, padding="SAME")
    out_h, out_w = y_conv.shape[1:3]
    w = jnp.broadcast_to(kernel, (out_h, out_w, *kernel.shape))
    b = jnp.broadcast_to(bias, (out_h, out_w, 4))
    np.testing.assert_allclose(
        locally_connected2d(x, w, b, stride=2, padding="SAME"), y_conv, rtol=1e-5, atol=1e-5
    )


def test_tiled_with_one_tile_is_conv2d():
    rng = np.random.default_rng(3)
    x, kernel, bias = _rand(rng, (2, 8, 7, 3)), _rand(rng, (2, 3, 3, 5)), _rand(rng, (5,))
    y = tiled_conv2d(x, kernel[None, None], bias[None, None], stride=(1, 2), padding=1)
    np.testing.assert_allclose(y, conv2d(x, kernel, bias, stride=(1, 2), padding=1), rtol=1e-5, atol=1e-5)


def test_tiled_with_tile_equal_to_output_is_locally_connected():
    rng = np.random.default_rng(4)
    x = _rand(rng, (2, 6, 5, 2))
    w, b = _rand(rng, (5, 2, 2, 2, 2, 3)), _rand(rng, (5, 2, 3))  # H', W' = 5, 2 for stride (1, 2)
    kw = dict(stride=(1, 2), padding="VALID")
    np.testing.assert_allclose(
        tiled_conv2d(x, w, b, **kw), locally_connected2d(x, w, b, **kw), rtol=1e-6, atol=1e-6
    )


def test_gradients_check_grads_and_torch():
    rng = np.random.default_rng(5)
    x = _rand(rng, (1, 4, 5, 2))
    w_local, b_local = _rand(rng, (3, 3, 2, 2, 2, 2)), _rand(rng, (3, 3, 2))
    w_tiled, b_tiled = _rand(rng, (2, 2, 2, 2, 2, 2)), _rand(rng, (2, 2, 2))
    local = jax.jit(functools.partial(locally_connected2d, stride=(1, 2), padding=((0, 0), (0, 1))))
    tiled = jax.jit(functools.partial(tiled_conv2d, stride=1, padding=0))
    # First order: both are bilinear in (x, w), built from pad/slice/einsum, whose
    # second-order rules test_conv's check_grads(order=2) already covers (3 s CPU).
    check_grads(local, (x, w_local, b_local), order=1, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2, eps=1e-2)
    check_grads(tiled, (x, w_tiled, b_tiled), order=1, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2, eps=1e-2)

    torch = pytest.importorskip("torch")
    # Independent gradient: torch autograd through F.unfold (channel-major patches).
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w_local, dtype=torch.float64, requires_grad=True)
    xpad = torch.nn.functional.pad(xt.permute(0, 3, 1, 2), (0, 1, 0, 0))
    cols = torch.nn.functional.unfold(xpad, (2, 2), stride=(1, 2))  # (N, C*KH*KW, H'*W')
    cols = cols.reshape(1, 2, 2, 2, 3, 3)  # (N, C, KH, KW, H', W')
    yt = torch.einsum("nckliy,iyklco->niyo", cols, wt)
    cotangent = _rand(rng, tuple(yt.shape))
    (yt * torch.tensor(cotangent, dtype=torch.float64)).sum().backward()
    y, vjp = jax.vjp(lambda x, w: local(x, w, None), x, w_local)
    grad_x, grad_w = vjp(jnp.asarray(cotangent))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, wt.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_bias_given_as_a_list_is_an_array():
    x, w = jnp.ones((1, 3, 3, 1)), jnp.ones((1, 1, 2, 2, 1, 2))
    y = tiled_conv2d(x, w, [[[0.5, -1.0]]])
    np.testing.assert_array_equal(y, np.broadcast_to([4.5, 3.0], (1, 2, 2, 2)))


def test_jit_matches_eager():
    rng = np.random.default_rng(6)
    x, w, b = _rand(rng, (1, 5, 5, 2)), _rand(rng, (2, 2, 3, 3, 2, 2)), _rand(rng, (2, 2, 2))
    eager = tiled_conv2d(x, w, b, padding=1)
    np.testing.assert_allclose(jax.jit(functools.partial(tiled_conv2d, padding=1))(x, w, b), eager, rtol=1e-6)


X = jnp.zeros((1, 5, 5, 2))


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: locally_connected2d(jnp.zeros((5, 5, 2)), jnp.zeros((3, 3, 3, 3, 2, 1))),
         r"expected NHWC locally_connected2d input \(rank 4\)"),
        (lambda: locally_connected2d(X, jnp.zeros((3, 3, 2, 1))),
         r"expected a kernel of shape \(H', W', KH, KW, C, O\) \(rank 6\)"),
        (lambda: tiled_conv2d(X, jnp.zeros((3, 3, 2, 1))),
         r"tiled_conv2d: expected a kernel of shape \(TH, TW, KH, KW, C, O\)"),
        (lambda: locally_connected2d(X, jnp.zeros((3, 3, 3, 3, 4, 1))), r"channels mismatch.*C=2"),
        (lambda: locally_connected2d(X, jnp.zeros((2, 3, 3, 3, 2, 1))),
         r"kernel grid \(2, 3\) must equal the output size \(H', W'\) = \(3, 3\)"),
        (lambda: locally_connected2d(X, jnp.zeros((3, 3, 3, 3, 2, 1)), jnp.zeros((1,))),
         r"bias must have shape \(H', W', O\) = \(3, 3, 1\)"),
        (lambda: tiled_conv2d(X, jnp.zeros((2, 2, 3, 3, 2, 1)), jnp.zeros((1,))),
         r"bias must have shape \(TH, TW, O\) = \(2, 2, 1\)"),
        (lambda: tiled_conv2d(X, jnp.zeros((1, 1, 3, 3, 2, 1)), stride=0), r"stride must be >= 1"),
        (lambda: tiled_conv2d(X, jnp.zeros((1, 1, 3, 3, 2, 1)), padding=-1), r"padding must be >= 0"),
        (lambda: tiled_conv2d(X, jnp.zeros((1, 1, 7, 3, 2, 1))), r"kernel \(7, 3\).*larger than the padded input"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()

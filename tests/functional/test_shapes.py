"""conv_output_size / conv_output_shape against hand values, brute-force window counts and lax."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxcnn.functional import conv2d, conv3d, conv_output_shape, conv_output_size


def count_windows(size, kernel, stride, low, high, dilation):
    """Slide the window one stride at a time and count the positions that fit."""
    extent = dilation * (kernel - 1) + 1
    count, start = 0, 0
    while start + extent <= size + low + high:
        count += 1
        start += stride
    return count


@pytest.mark.parametrize(
    "args,expected",
    [
        # CS231n / slides examples: (W - K + 2P)/S + 1
        ((7, 3), 5),  # 7x7 input, 3x3 filter, stride 1
        ((7, 3, 2), 3),  # stride 2
        ((32, 5, 1, 2), 32),  # 32x32, 5x5, pad 2 keeps the size
        ((227, 11, 4), 55),  # AlexNet conv1
        ((7, 3, 3), 2),  # floors: (7 - 3)/3 + 1 = 2.33
        ((5, 3, 1, 0, 2), 1),  # dilated 3-tap kernel spans 5
        ((6, 2, 2, (1, 0)), 3),  # asymmetric padding
        ((7, 3, 3, "SAME"), 3),  # ceil(7 / 3)
        ((7, 3, 2, "VALID"), 3),
    ],
)
def test_conv_output_size_hand_values(args, expected):
    assert conv_output_size(*args) == expected


def test_conv_output_size_accepts_numpy_integers():
    # Sizes computed with NumPy (e.g. np.prod of a shape) are np.int64, not int.
    out = conv_output_size(np.int64(28), np.int32(5), np.int64(1), (np.int64(2), 2), np.int8(1))
    assert out == 28 and type(out) is int
    assert conv_output_size(np.int64(7), 3, 3, np.int64(0)) == 2
    with pytest.raises(ValueError, match="size must be an int >= 1, got True"):
        conv_output_size(True, 1)
    with pytest.raises(ValueError, match="padding must be an int or a"):
        conv_output_size(5, 3, 1, (np.float32(1), 0))


def test_conv_output_shape_accepts_numpy_integer_arguments():
    # as_tuple (shared by every op) takes NumPy integers and returns Python ints.
    shape = conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), stride=np.int64(2), padding=(np.int32(1), 0))
    assert shape == conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), stride=2, padding=(1, 0)) == (1, 5, 4, 5)
    assert all(type(d) is int for d in shape)
    pairs = conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), padding=((np.int64(1), 0), (0, np.int8(2))))
    assert pairs == conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), padding=((1, 0), (0, 2))) == (1, 8, 9, 5)
    with pytest.raises(ValueError, match="padding pairs must be"):
        conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), padding=((True, 0), (0, 2)))
    with pytest.raises(ValueError, match=r"stride must be an int or a sequence of 2 ints, got 2\.0"):
        conv_output_shape((1, 9, 8, 3), (3, 2, 3, 5), stride=2.0)


def test_conv_output_size_matches_window_count_brute_force():
    for size, kernel, stride, low, high, dilation in itertools.product(
        range(1, 9), range(1, 4), range(1, 4), range(3), range(2), range(1, 3)
    ):
        extent = dilation * (kernel - 1) + 1
        if extent > size + low + high:
            continue
        assert conv_output_size(size, kernel, stride, (low, high), dilation) == count_windows(
            size, kernel, stride, low, high, dilation
        )


def test_strict_accepts_exact_tiling_and_rejects_the_rest():
    assert conv_output_size(7, 3, 2, strict=True) == 3
    assert conv_output_size(32, 5, 1, 2, strict=True) == 32
    with pytest.raises(ValueError, match=r"7x7 input, 3x3 filter, stride 3: doesn't fit.*2\.33"):
        conv_output_size(7, 3, 3, strict=True)
    with pytest.raises(ValueError, match=r"9x9 input, 3x3 filter \(dilation 2\), stride 3: doesn't fit"):
        conv_output_size(9, 3, 3, dilation=2, strict=True)


@pytest.mark.parametrize(
    "args,message",
    [
        ((0, 3), r"size must be an int >= 1"),
        ((5, 0), r"kernel must be an int >= 1"),
        ((5, 3, 0), r"stride must be an int >= 1"),
        ((5, 3, 1, 0, 0), r"dilation must be an int >= 1"),
        ((5, 3, 1, -1), r"padding must be >= 0"),
        ((5, 3, 1, (1, 2, 3)), r"padding must be an int or a \(low, high\) pair"),
        ((5, 3, 1, 1.5), r"padding must be an int, a \(low, high\) pair"),
        ((5, 3, 1, "FULL"), r'"SAME" or "VALID"'),
        ((2, 4), r"kernel 4 \(dilated extent 4\) is larger than the padded input 2 \+ 0 \+ 0"),
        ((5, 3, 1, 0, 3), r"dilated extent 7"),
        ((5.0, 3), r"size must be an int"),
    ],
)
def test_conv_output_size_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        conv_output_size(*args)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((2, 9, 8, 3), (3, 2, 3, 5), dict()),
        ((2, 9, 8, 3), (3, 2, 3, 5), dict(stride=(2, 3), padding=((1, 0), (2, 2)))),
        ((1, 10, 7, 2), (2, 3, 2, 4), dict(stride=2, padding="SAME", dilation=(2, 1))),
        ((1, 10, 7, 2), (2, 3, 2, 4), dict(stride=(1, 2), padding="VALID", dilation=2)),
    ],
)
def test_conv_output_shape_agrees_with_lax_and_conv2d(x_shape, w_shape, kw):
    shape = conv_output_shape(x_shape, w_shape, **kw)
    # lax's own shape rule, on the dilated kernel extent (it has no dilation argument).
    dilation = kw.get("dilation", 1)
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    extent = tuple(d * (k - 1) + 1 for d, k in zip(dilation, w_shape[:2]))
    stride = kw.get("stride", 1)
    stride = (stride, stride) if isinstance(stride, int) else stride
    padding = kw.get("padding", 0)
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(x_shape[1:3], extent, stride, padding)
    elif isinstance(padding, int):
        pads = ((padding, padding),) * 2
    else:
        pads = padding
    expected = lax.conv_general_shape_tuple(
        x_shape, (*extent, *w_shape[2:]), stride, pads, ("NHWC", "HWIO", "NHWC")
    )
    assert shape == tuple(expected)
    traced = jax.eval_shape(
        lambda x, w: conv2d(x, w, **kw),
        jax.ShapeDtypeStruct(x_shape, jnp.float32),
        jax.ShapeDtypeStruct(w_shape, jnp.float32),
    )
    assert shape == traced.shape


def test_conv_output_shape_1d_and_3d():
    assert conv_output_shape((4, 11, 3), (3, 3, 8), stride=2) == (4, 5, 8)
    x_shape, w_shape = (1, 5, 6, 7, 2), (2, 3, 2, 2, 4)
    shape = conv_output_shape(x_shape, w_shape, stride=(1, 2, 3), padding=1)
    assert shape == (1, 6, 3, 3, 4)
    assert shape == jax.eval_shape(
        lambda x, w: conv3d(x, w, stride=(1, 2, 3), padding=1),
        jax.ShapeDtypeStruct(x_shape, jnp.float32),
        jax.ShapeDtypeStruct(w_shape, jnp.float32),
    ).shape


@pytest.mark.parametrize(
    "x_shape,w_shape,kw,message",
    [
        ((5, 5), (3, 3, 4), {}, r"expected an NLC, NHWC or NDHWC input shape \(rank 3-5\), got \(5, 5\)"),
        ((1, 5, 5, 3), (3, 3, 4), {}, r"expected HWIO kernel shape \(rank 4\) for NHWC input"),
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(stride=0), r"stride must be >= 1"),
        ((1, 5, 5, 3), (3, 3, 3, 4), dict(padding=-2), r"padding must be >= 0"),
        ((1, 2, 5, 3), (3, 3, 3, 4), {}, r"kernel \(3, 3\).*larger than the padded input"),
    ],
)
def test_conv_output_shape_bad_input(x_shape, w_shape, kw, message):
    with pytest.raises(ValueError, match=message):
        conv_output_shape(x_shape, w_shape, **kw)

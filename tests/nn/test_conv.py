"""Conv and ConnectionTableConv: parameters, equality with the functional ops, a NumPy reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional.conv import conv1d, conv2d, conv3d
from jaxcnn.nn import LECUN_C3_TABLE, ConnectionTableConv, Conv

KEY = jax.random.key(0)


def _init_apply(module, x):
    variables = module.init(KEY, x)
    return variables, module.apply(variables, x)


@pytest.mark.parametrize(
    "kernel_size, x_shape, functional",
    [((3,), (2, 9, 4), conv1d), ((3, 2), (2, 7, 6, 4), conv2d), ((2, 3, 2), (1, 5, 6, 4, 4), conv3d)],
)
def test_conv_calls_the_functional_op_of_its_dimension(kernel_size, x_shape, functional):
    x = jax.random.normal(jax.random.key(1), x_shape)
    module = Conv(6, kernel_size, stride=2, padding=1, dilation=1, groups=2)

    @jax.jit
    def run(x):
        variables = module.init(KEY, x)
        params = variables["params"]
        expected = functional(x, params["kernel"], params["bias"], stride=2, padding=1, groups=2)
        return params, module.apply(variables, x), expected

    params, y, expected = run(x)
    assert params["kernel"].shape == (*kernel_size, 4 // 2, 6)
    assert params["bias"].shape == (6,)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_conv2d_matches_torch_with_same_padding_and_dilation():
    torch = pytest.importorskip("torch")
    x = jax.random.normal(jax.random.key(2), (2, 8, 9, 3))
    module = Conv(5, (3, 2), padding="SAME", dilation=(2, 1))
    variables, y = _init_apply(module, x)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    # SAME with stride 1 and dilated extent (5, 2): pads (2, 2) and (0, 1).
    x_t = torch.nn.functional.pad(torch.tensor(np.asarray(x)).permute(0, 3, 1, 2), (0, 1, 2, 2))
    w_t = torch.tensor(np.asarray(kernel)).permute(3, 2, 0, 1)
    y_t = torch.nn.functional.conv2d(x_t, w_t, torch.tensor(np.asarray(bias)), dilation=(2, 1))
    assert y.shape == (2, 8, 9, 5)
    np.testing.assert_allclose(y, y_t.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)


def test_int_kernel_size_takes_the_dimension_from_the_input():
    variables, y = _init_apply(Conv(3, 3, padding="VALID"), jnp.ones((1, 5, 5, 5, 2)))
    assert variables["params"]["kernel"].shape == (3, 3, 3, 2, 3)
    assert y.shape == (1, 3, 3, 3, 3)


def test_use_bias_false_has_no_bias_and_the_kernel_is_he_initialised():
    variables, _ = _init_apply(Conv(64, (3, 3), use_bias=False), jnp.ones((1, 4, 4, 32)))
    assert set(variables["params"]) == {"kernel"}
    # He normal: std sqrt(2 / fan_in), fan_in = 3 * 3 * 32 = 288; 18,432 draws.
    std = float(jnp.std(variables["params"]["kernel"]))
    assert abs(std - np.sqrt(2 / 288)) < 0.05 * np.sqrt(2 / 288)


def test_impl_is_a_field_with_one_default_and_reaches_the_functional_call():
    from jaxcnn.functional.conv import DEFAULT_CONV_IMPL

    x = jax.random.normal(jax.random.key(3), (1, 6, 6, 2))
    module = Conv(3, (3, 3), padding=1)
    assert module.impl == DEFAULT_CONV_IMPL == "auto"
    variables = module.init(KEY, x)
    y_default = module.apply(variables, x)
    y_im2col = Conv(3, (3, 3), padding=1, impl="im2col").apply(variables, x)
    np.testing.assert_allclose(y_default, y_im2col, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown impl 'no-such-impl'"):
        Conv(3, (3, 3), padding=1, impl="no-such-impl").apply(variables, x)
    # The implementation is part of the module, so of every jit cache key holding it:
    # the traced programs differ (im2col has no convolution primitive).
    jaxprs = {impl: str(jax.make_jaxpr(Conv(3, (3, 3), padding=1, impl=impl).apply)(variables, x))
              for impl in ("xla", "im2col")}
    assert "conv_general_dilated" in jaxprs["xla"]
    assert "conv_general_dilated" not in jaxprs["im2col"]
    assert Conv(3, 3, impl="xla") != Conv(3, 3, impl="im2col")


@pytest.mark.parametrize(
    "module, x_shape, message",
    [
        (Conv(4, (3, 3), groups=3), (1, 5, 5, 4), "groups=3 must divide the input channels C=4"),
        (Conv(5, (3, 3), groups=2), (1, 5, 5, 4), "groups=2 must divide features"),
        (Conv(4, (3, 3, 3, 3)), (1, 5, 5, 4), "sequence of 1, 2 or 3 ints"),
        (Conv(4, (3, 3)), (1, 5, 5, 5, 4), r"expects NHWC input \(rank 4\)"),
        (Conv(4, 3), (5, 4), "rank 3-5"),
        (Conv(4, (7, 7)), (1, 5, 5, 4), "larger than the padded input"),
    ],
)
def test_conv_rejects_bad_configurations(module, x_shape, message):
    with pytest.raises(ValueError, match=message):
        module.init(KEY, jnp.ones(x_shape))


# --- ConnectionTableConv ----------------------------------------------------


def _table_conv_reference(x, packed, bias, table):
    """NumPy loops: y[n,i,j,o] = b[o] + sum over the table's inputs c of o, and the window."""
    x, packed, bias = (np.asarray(a, np.float64) for a in (x, packed, bias))
    kh, kw, _ = packed.shape
    n, h, w, _ = x.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, len(table)))
    t = 0
    for o, inputs in enumerate(table):
        out[..., o] += bias[o]
        for c in inputs:
            for i in range(out.shape[1]):
                for j in range(out.shape[2]):
                    out[:, i, j, o] += np.einsum("nab,ab->n", x[:, i : i + kh, j : j + kw, c], packed[:, :, t])
            t += 1
    return out


def test_lecun_c3_table_has_the_papers_60_connections():
    assert len(LECUN_C3_TABLE) == 16
    assert sum(len(row) for row in LECUN_C3_TABLE) == 60
    # Table I column of input map 0: output maps 0, 4, 5, 6, 9, 10, 11, 12, 14, 15.
    assert [o for o, row in enumerate(LECUN_C3_TABLE) if 0 in row] == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]


def test_connection_table_conv_matches_numpy_loops_and_counts_only_connected_filters():
    table = ((0, 1), (2,), (0, 1, 2))
    x = jax.random.normal(jax.random.key(4), (2, 6, 5, 3))
    module = ConnectionTableConv(table, (3, 2))
    variables = module.init(KEY, x)
    params = variables["params"]
    assert params["kernel"].shape == (3, 2, 6)  # 2 + 1 + 3 connected filters
    bias = jnp.arange(3.0)
    params = {"kernel": params["kernel"], "bias": bias}
    y = module.apply({"params": params}, x)
    np.testing.assert_allclose(y, _table_conv_reference(x, params["kernel"], bias, table), rtol=1e-5, atol=1e-5)


def test_connection_table_conv_gradients():
    table = ((0, 1), (1,))
    x = jax.random.normal(jax.random.key(5), (1, 4, 4, 2))
    module = ConnectionTableConv(table, 2)
    params = module.init(KEY, x)["params"]

    @jax.jit
    def loss(kernel, x):
        return jnp.sum(module.apply({"params": {"kernel": kernel, "bias": params["bias"]}}, x) ** 2)

    check_grads(loss, (params["kernel"], x), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_c3_parameter_count_and_init_scale():
    x = jnp.ones((1, 14, 14, 6))
    variables = ConnectionTableConv(LECUN_C3_TABLE, (5, 5)).init(KEY, x)
    params = variables["params"]
    assert params["kernel"].size + params["bias"].size == 60 * 25 + 16 == 1516
    # Output map 15 reads all 6 inputs: its 6 filters get std sqrt(2 / (25 * 6)).
    kernel_15 = params["kernel"][:, :, -6:]
    assert abs(float(jnp.std(kernel_15)) - np.sqrt(2 / 150)) < 0.35 * np.sqrt(2 / 150)


@pytest.mark.parametrize(
    "table, message",
    [(((0, 3),), "refers to input map 3"), (((0, 0),), "repeats an input map"), ((), "non-empty")],
)
def test_connection_table_conv_rejects_bad_tables(table, message):
    with pytest.raises(ValueError, match=message):
        ConnectionTableConv(table, 3).init(KEY, jnp.ones((1, 5, 5, 2)))

"""impl="auto": the static per-shape rule, same numbers as "xla", and every JAX transformation.

auto must pick an implementation that exists for every conv layer of every
zoo model, must compute what "xla" computes (forward and both gradients) over
strides, padding, dilation and groups, and must stay a first-class JAX
function (jvp, jacfwd, Hessian-vector products, vmap, checkpoint, bf16) on
every path it can take. With the oneDNN kernels available on the CPU, auto
picks "onednn" for float32 2-D convolutions (tests/functional/test_conv_onednn.py);
the ``without_onednn`` fixture checks the xla/im2col rule that applies elsewhere.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models, summary
from jaxcnn.summary import conv_layers
from jaxcnn.functional import conv as conv_ops
from jaxcnn.functional import conv_auto
from jaxcnn.functional.conv_auto import AUTO_CHOICES, auto_impl

RNG = np.random.default_rng(0)


@pytest.fixture(params=["with-onednn-if-built", "without-onednn"])
def onednn_setting(request, monkeypatch):
    if request.param == "without-onednn":
        monkeypatch.setattr(conv_auto, "_onednn_applies", lambda *args: False)
    return request.param


@pytest.fixture
def without_onednn(monkeypatch):
    monkeypatch.setattr(conv_auto, "_onednn_applies", lambda *args: False)


def test_auto_picks_a_valid_implementation_for_every_zoo_conv_layer(onednn_setting):
    chosen = {}
    for name in models.names():
        layers = conv_layers(models.get(name), (1, *models.input_shape(name)))
        assert layers, f"{name} has no conv layer?"
        for layer in layers:
            impl = auto_impl(layer.input_shape, layer.kernel_shape, layer.stride, layer.padding,
                             layer.dilation, layer.groups)
            assert impl in AUTO_CHOICES and impl in conv_ops.IMPLS and impl != "auto"
            chosen[(name, layer.name)] = impl
    if onednn_setting == "with-onednn-if-built":
        if conv_auto._onednn_applies((1, 28, 28, 1), (5, 5, 1, 20), (1, 1), ((2, 2),) * 2,
                                     (1, 1), 1, "float32"):
            assert chosen[("lenet5", "conv1")] == chosen[("resnet20", "stage1_block1.conv1")] \
                == chosen[("resnet50", "layer2_block1.proj_conv")] == "onednn"
        return
    # The measured rule, on layers whose geometry is known:
    assert chosen[("lenet5", "conv1")] == "xla"  # 5x5 pad 2: patches cost more than the conv
    assert chosen[("resnet20", "stage1_block1.conv1")] == "xla"  # 3x3 pad 1
    assert chosen[("lenet5_classic", "c5")] == "im2col"  # 5x5 over 5x5: a dense layer
    assert chosen[("resnet50", "layer2_block1.proj_conv")] == "im2col"  # 1x1 stride 2
    assert chosen[("resnet50", "layer1_block1.conv1")] == "xla"  # 1x1 stride 1


@pytest.mark.parametrize(
    "x_shape,w_shape,strides,pads,dilation,groups,expected",
    [
        ((2, 8, 8, 4), (1, 1, 4, 6), (2, 2), ((0, 0), (0, 0)), (1, 1), 1, "im2col"),
        ((2, 8, 8, 4), (1, 1, 4, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "xla"),
        ((2, 8, 8, 4), (1, 1, 4, 6), (2, 2), ((1, 0), (0, 0)), (1, 1), 1, "xla"),
        ((2, 5, 5, 4), (5, 5, 4, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "im2col"),
        ((2, 5, 5, 4), (5, 5, 2, 6), (1, 1), ((0, 0), (0, 0)), (1, 1), 2, "xla"),
        ((2, 9, 9, 4), (3, 3, 4, 6), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "xla"),
        ((2, 9, 9, 4), (1, 1, 4, 6), (2, 2), ((0, 0), (0, 0)), (2, 2), 1, "xla"),
        ((2, 7, 3), (7, 3, 5), (1,), ((0, 0),), (1,), 1, "im2col"),
        ((2, 6, 6, 6, 3), (1, 1, 1, 3, 4), (2, 1, 1), ((0, 0),) * 3, (1, 1, 1), 1, "im2col"),
    ],
    ids=["1x1/2", "1x1/1", "1x1/2-padded", "covers-input", "grouped", "3x3", "dilated", "1d-covers",
         "3d-1x1/2"],
)
def test_rule(x_shape, w_shape, strides, pads, dilation, groups, expected, without_onednn):
    assert auto_impl(x_shape, w_shape, strides, pads, dilation, groups) == expected


CONV_BY_NDIM = {1: conv_ops.conv1d, 2: conv_ops.conv2d, 3: conv_ops.conv3d}

# (x shape, kernel shape, keyword args): both of auto's paths, every padding
# form, strides, dilation, groups, 1-D and 3-D.
CASES = [
    ((2, 9, 9, 4), (1, 1, 4, 6), dict(stride=2)),  # -> im2col
    ((2, 5, 5, 3), (5, 5, 3, 4), dict()),  # -> im2col
    ((2, 9, 8, 4), (3, 2, 4, 6), dict(stride=(2, 1), padding=((1, 0), (2, 1)))),  # -> xla
    ((1, 9, 9, 4), (3, 3, 2, 6), dict(padding="SAME", dilation=2, groups=2)),  # -> xla
    ((2, 7, 3), (7, 3, 5), dict()),  # 1-D, -> im2col
    ((1, 5, 6, 4, 2), (1, 1, 1, 2, 3), dict(stride=(2, 2, 1))),  # 3-D, -> im2col
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CASES)
def test_auto_equals_xla_forward_and_gradients(x_shape, w_shape, kwargs, onednn_setting):
    conv = CONV_BY_NDIM[len(x_shape) - 2]
    x = jnp.asarray(RNG.standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(RNG.standard_normal(w_shape), jnp.float32)

    @jax.jit
    def forward_and_grads(x, w, upstream):
        results = []
        for impl in ("auto", "xla"):
            y, vjp = jax.vjp(lambda x, w: conv(x, w, impl=impl, **kwargs), x, w)
            results.append((y, *vjp(upstream)))
        return results

    y_shape = jax.eval_shape(lambda: conv(x, w, impl="xla", **kwargs)).shape
    upstream = jnp.asarray(RNG.standard_normal(y_shape), jnp.float32)
    ours, reference = forward_and_grads(x, w, upstream)
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape,w_shape,kwargs", [CASES[0], CASES[1], CASES[2]],
                         ids=["im2col-1x1/2", "im2col-covers", "xla"])
def test_transformations_on_both_auto_paths(x_shape, w_shape, kwargs, without_onednn):
    x = jnp.asarray(RNG.standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(RNG.standard_normal(w_shape) * 0.3, jnp.float32)

    def loss(x, w, impl="auto"):
        return jnp.sum(jnp.tanh(conv_ops.conv2d(x, w, impl=impl, **kwargs)) ** 2)

    @jax.jit
    def everything(x, w, direction):
        tangent_out = jax.jvp(lambda w: loss(x, w), (w,), (direction,))[1]
        jac_fwd = jax.jacfwd(loss, argnums=1)(x, w)
        hvp = jax.jvp(jax.grad(loss, argnums=1), (x, w), (jnp.zeros_like(x), direction))[1]
        per_example = jax.vmap(jax.grad(lambda xi, w: loss(xi[None], w), argnums=1),
                               in_axes=(0, None))(x, w)
        checkpointed = jax.grad(jax.checkpoint(loss), argnums=(0, 1))(x, w)
        return tangent_out, jac_fwd, hvp, per_example, checkpointed

    @jax.jit
    def reference(x, w, direction):
        ref = lambda x, w: loss(x, w, impl="xla")  # noqa: E731
        grad_w = jax.grad(ref, argnums=1)(x, w)
        hessian = jax.hessian(ref, argnums=1)(x, w).reshape(w.size, w.size)
        per_example = jnp.stack([jax.grad(ref, argnums=1)(x[i:i + 1], w)
                                 for i in range(x.shape[0])])
        return (jnp.vdot(grad_w, direction), grad_w, (hessian @ direction.reshape(-1)).reshape(
            w.shape), per_example, jax.grad(ref, argnums=(0, 1))(x, w))

    direction = jnp.asarray(RNG.standard_normal(w_shape), jnp.float32)
    got, want = everything(x, w, direction), reference(x, w, direction)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("x_shape,w_shape,kwargs", [CASES[0], CASES[2]], ids=["im2col", "xla"])
def test_bf16_inputs_give_bf16_outputs_close_to_float32(x_shape, w_shape, kwargs):
    x = RNG.standard_normal(x_shape).astype(np.float32)
    w = (RNG.standard_normal(w_shape) * 0.3).astype(np.float32)
    y16 = conv_ops.conv2d(jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16), impl="auto",
                          **kwargs)
    assert y16.dtype == jnp.bfloat16
    y32 = conv_ops.conv2d(x, w, impl="xla", **kwargs)
    np.testing.assert_allclose(np.asarray(y16, np.float32), y32, rtol=5e-2, atol=5e-2)
    grad = jax.grad(lambda w: conv_ops.conv2d(jnp.asarray(x, jnp.bfloat16), w, impl="auto",
                                              **kwargs).astype(jnp.float32).sum())(
        jnp.asarray(w, jnp.bfloat16))
    assert grad.dtype == jnp.bfloat16


def test_auto_xla_is_the_rule_without_onednn_and_computes_the_same_numbers():
    # What the sharded executor uses: never the custom call GSPMD cannot partition.
    shapes = [((1, 28, 28, 1), (5, 5, 1, 20), ((2, 2), (2, 2))),  # lenet5 conv1: auto may pick onednn
              ((2, 5, 5, 16), (5, 5, 16, 8), ((0, 0), (0, 0)))]  # covers the input: im2col
    for x_shape, w_shape, pads in shapes:
        args = (x_shape, w_shape, (1, 1), pads, (1, 1), 1, "float32")
        with_onednn_allowed = auto_impl(*args)
        without = auto_impl(*args, allow_onednn=False)
        assert without != "onednn"
        if with_onednn_allowed != "onednn":
            assert without == with_onednn_allowed
        x = jnp.asarray(RNG.standard_normal(x_shape), jnp.float32)
        w = jnp.asarray(RNG.standard_normal(w_shape), jnp.float32)
        padding = tuple(pads)
        np.testing.assert_allclose(conv_ops.conv2d(x, w, padding=padding, impl="auto_xla"),
                                   conv_ops.conv2d(x, w, padding=padding, impl="xla"),
                                   rtol=1e-4, atol=1e-4)
        jaxpr = str(jax.make_jaxpr(lambda x, w: conv_ops.conv2d(x, w, padding=padding,
                                                                impl="auto_xla"))(x, w))
        assert "jaxcnn_onednn" not in jaxpr

"""impl="onednn": the oneDNN kernels behind conv2d, against PyTorch and XLA, under every transformation.

The three primitives (forward, input gradient, kernel gradient) each need
their own check: the forward against ``torch.nn.functional.conv2d`` and
``impl="xla"``; both gradients against PyTorch autograd and XLA; and the
transposition rules through forward mode, reverse mode, their compositions,
vmap (folded into the batch, and the per-example XLA fallback) and remat.
"""
import os
import platform
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxcnn import native
from jaxcnn.functional import conv2d, conv_onednn
from jaxcnn.functional.conv_auto import auto_impl

ON_X86_LINUX = sys.platform.startswith("linux") and platform.machine() == "x86_64"
requires_onednn = pytest.mark.skipif(not native.available(), reason=str(native.status()))

# (x shape, kernel shape, stride, padding): square and non-square, strides 1-3,
# symmetric, asymmetric, "SAME" and "VALID" padding, a window larger than the stride
# and one that skips input rows (9 rows, 3x3 stride 2, no bottom padding).
GEOMETRIES = [
    ((2, 8, 8, 3), (3, 3, 3, 5), 1, 1),
    ((3, 9, 7, 4), (3, 2, 4, 6), (2, 1), ((1, 0), (2, 1))),
    ((2, 11, 10, 2), (5, 3, 2, 3), (3, 2), "SAME"),
    ((2, 9, 9, 5), (3, 3, 5, 4), 2, ((1, 0), (1, 0))),
    ((1, 6, 5, 1), (2, 2, 1, 7), 1, "VALID"),
    ((2, 7, 7, 6), (1, 1, 6, 4), 2, 0),
]
IDS = ["3x3-pad1", "3x2-stride21-asym", "5x3-stride32-same", "skips-rows", "c1-valid", "1x1-stride2"]


def _rand(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_kernels_build_on_x86_linux():
    # Silent fallback would hide a broken build: where the project is tested they must load.
    if not ON_X86_LINUX or shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("the oneDNN kernels are built on x86-64 Linux with a C++ compiler")
    assert native.available(), str(native.status())
    status = native.status()
    assert status.loaded and status.reason is None and status.path.endswith(native.LIBRARY_NAME)
    assert "loaded from" in str(status)


@requires_onednn
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", GEOMETRIES, ids=IDS)
def test_forward_and_both_gradients_match_torch(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = _rand(rng, x_shape), _rand(rng, w_shape, 0.3), _rand(rng, w_shape[-1:])
    y = conv2d(x, w, b, stride=stride, padding=padding, impl="onednn")
    upstream = _rand(rng, y.shape)
    grad_x, grad_w = jax.jit(jax.grad(
        lambda x, w: jnp.vdot(conv2d(x, w, b, stride=stride, padding=padding, impl="onednn"),
                              upstream), argnums=(0, 1)))(x, w)

    # PyTorch: NCHW/OIHW; explicit asymmetric padding by padding the input first.
    pads = conv_onednn_pads(x_shape, w_shape, stride, padding)
    xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_(True)
    wt = torch.tensor(w).permute(3, 2, 0, 1).requires_grad_(True)
    padded = torch.nn.functional.pad(xt, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    strides = (stride, stride) if isinstance(stride, int) else stride
    yt = torch.nn.functional.conv2d(padded, wt, torch.tensor(b), stride=strides)
    yt.backward(torch.tensor(upstream).permute(0, 3, 1, 2))
    np.testing.assert_allclose(y, yt.detach().permute(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, xt.grad.permute(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, wt.grad.permute(2, 3, 1, 0), rtol=1e-4, atol=1e-4)


def conv_onednn_pads(x_shape, w_shape, stride, padding):
    """The explicit ((top, bottom), (left, right)) conv2d resolves ``padding`` to."""
    from jaxcnn.functional.args import explicit_padding

    strides = (stride, stride) if isinstance(stride, int) else tuple(stride)
    return explicit_padding(padding, x_shape[1:3], w_shape[:2], strides, (1, 1))


@requires_onednn
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", GEOMETRIES, ids=IDS)
def test_equals_xla_eager_and_jitted(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(1)
    x, w = _rand(rng, x_shape), _rand(rng, w_shape, 0.3)

    def outputs(impl):
        loss = lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, stride=stride, padding=padding,  # noqa: E731
                                                   impl=impl)))
        return conv2d(x, w, stride=stride, padding=padding, impl=impl), jax.grad(loss, (0, 1))(x, w)

    eager, reference = outputs("onednn"), outputs("xla")
    jitted = jax.jit(lambda: outputs("onednn"))()
    for got in (eager, jitted):
        for a, r in zip(jax.tree.leaves(got), jax.tree.leaves(reference)):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=2e-5)


@requires_onednn
def test_cpu_program_calls_the_kernels_and_no_xla_convolution():
    x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
    step = jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, padding=1, impl="onednn") ** 2),
                            argnums=(0, 1)))
    hlo = step.lower(x, w).compile().as_text()
    for target in native.TARGETS.values():
        assert f'custom_call_target="{target}"' in hlo
    assert " convolution(" not in hlo


@requires_onednn
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [GEOMETRIES[1], GEOMETRIES[3]],
                         ids=["asym", "skips-rows"])
def test_jvp_jacfwd_hvp_per_example_vmap_checkpoint(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(2)
    x, w, direction = _rand(rng, x_shape), _rand(rng, w_shape, 0.3), _rand(rng, w_shape)

    def loss(x, w, impl="onednn"):
        return jnp.sum(jnp.tanh(conv2d(x, w, stride=stride, padding=padding, impl=impl)) ** 2)

    def everything(impl):
        loss_i = lambda x, w: loss(x, w, impl)  # noqa: E731
        return (
            jax.jvp(lambda x, w: loss_i(x, w), (x, w), (x * 0.5, direction))[1],
            jax.jacfwd(loss_i, argnums=1)(x, w),
            jax.jacfwd(lambda x: conv2d(x, w, stride=stride, padding=padding, impl=impl))(x[:1]),
            jax.jvp(jax.grad(loss_i, argnums=1), (x, w), (x, direction))[1],  # HVP (mixed)
            jax.grad(lambda w: jnp.vdot(jax.grad(loss_i, argnums=1)(x, w), direction))(w),
            jax.vmap(jax.grad(lambda xi, w: loss_i(xi[None], w), argnums=1), (0, None))(x, w),
            jax.vmap(lambda xs: conv2d(xs, w, stride=stride, padding=padding, impl=impl))(
                jnp.stack([x, 2 * x])),  # vmapped batch axis folded into N
            jax.vmap(jax.grad(lambda xs: loss_i(xs, w)))(jnp.stack([x, -x])),
            jax.grad(jax.checkpoint(loss_i), argnums=(0, 1))(x, w),
        )

    got, want = jax.jit(lambda: everything("onednn"))(), jax.jit(lambda: everything("xla"))()
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4)


@requires_onednn
def test_auto_uses_onednn_for_float32_2d_and_xla_rules_otherwise():
    common = dict(strides=(1, 1), pads=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    assert auto_impl((2, 9, 9, 4), (3, 3, 4, 6), dtype=jnp.float32, **common) == "onednn"
    assert auto_impl((2, 9, 9, 4), (3, 3, 4, 6), dtype=jnp.bfloat16, **common) == "xla"
    assert auto_impl((2, 9, 9, 4), (3, 3, 2, 6), **dict(common, groups=2)) == "xla"
    assert auto_impl((2, 9, 9, 4), (3, 3, 4, 6), **dict(common, dilation=(2, 2))) == "xla"
    assert auto_impl((2, 7, 3), (7, 3, 5), (1,), ((0, 0),), (1,), 1) == "im2col"  # 1-D
    x = jnp.ones((2, 9, 9, 4), jnp.bfloat16)
    assert conv2d(x, jnp.ones((3, 3, 4, 6), jnp.bfloat16), impl="auto").dtype == jnp.bfloat16


@requires_onednn
@pytest.mark.parametrize(
    "x,w,kwargs,match",
    [
        (np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 1, 4), np.float32), dict(groups=2),
         "ungrouped"),
        (np.ones((1, 9, 9, 2), np.float32), np.ones((3, 3, 2, 4), np.float32), dict(dilation=2),
         "undilated"),
        (np.ones((1, 5, 5, 2), jnp.bfloat16), np.ones((3, 3, 2, 4), jnp.bfloat16), dict(),
         "float32"),
    ],
    ids=["groups", "dilation", "bf16"],
)
def test_unsupported_convolutions_are_refused_with_the_alternative(x, w, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        conv2d(x, w, impl="onednn", **kwargs)
    assert "impl='auto'" in str(error.value)


def test_missing_kernels_are_reported_not_crashed_and_never_compiled_on_use(tmp_path):
    # A fresh process with an empty build directory: available() only looks, so it is
    # False with the reason and compiles nothing, auto falls back to XLA, and an explicit
    # impl="onednn" says why it cannot run.
    code = (
        "import jax.numpy as jnp\n"
        "from jaxcnn import native\n"
        "from jaxcnn.functional import conv2d\n"
        "assert not native.available()\n"
        "print(native.status())\n"
        "assert native.status().loaded is False and not native.status()\n"
        "x, w = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))\n"
        "assert conv2d(x, w, impl='auto').shape == (1, 3, 3, 4)\n"
        "try:\n"
        "    conv2d(x, w, impl='onednn')\n"
        "except ValueError as error:\n"
        "    print('refused:', error)\n"
    )
    env = dict(os.environ, JAXCNN_NATIVE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    if native.available():  # this platform can have them: they were simply not built there
        assert "unavailable: not built for this jaxlib and oneDNN" in result.stdout
        assert "python -m jaxcnn.native" in result.stdout
    assert "refused: conv2d: impl='onednn' is not usable here" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no compiler ran


@pytest.mark.skipif(not native.available(), reason=str(native.status()))
def test_the_build_command_compiles_logs_and_exits_by_the_status_value(tmp_path):
    env = dict(os.environ, JAXCNN_NATIVE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "jaxcnn.native"], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    (build_dir,) = tmp_path.iterdir()
    assert (build_dir / native.LIBRARY_NAME).is_file()
    log = (build_dir / native.BUILD_LOG_NAME).read_text()
    assert log.startswith("$ ") and "-Wall" in log and "exit status 0" in log
    assert f"compiler output: {build_dir / native.BUILD_LOG_NAME}" in result.stdout
    assert f"loaded from {build_dir / native.LIBRARY_NAME}" in result.stdout
    # A status that is not loaded exits 1 (the value decides, not a search of the text).
    broken = dict(env, JAXCNN_NATIVE_DIR=str(tmp_path / "elsewhere"), CXX="no-such-c++")
    failed = subprocess.run([sys.executable, "-m", "jaxcnn.native"], capture_output=True,
                            text=True, env=broken, timeout=300)
    assert failed.returncode == 1 and "not built: no C++ compiler: 'no-such-c++'" in failed.stdout


def test_supports_names_the_eligible_convolutions():
    ok = dict(strides=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1, dtype=jnp.float32)
    assert conv_onednn.supports((1, 5, 5, 2), (3, 3, 2, 4), **ok)
    assert not conv_onednn.supports((1, 5, 2), (3, 2, 4), **ok)
    assert not conv_onednn.supports((1, 5, 5, 2), (3, 3, 2, 4), **dict(ok, dtype=jnp.float16))
    assert not conv_onednn.supports((1, 5, 5, 2), (3, 3, 2, 4), **dict(ok, pads=((-1, 0), (0, 0))))

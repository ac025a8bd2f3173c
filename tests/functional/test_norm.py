"""group_norm, layer_norm, instance_norm and local_response_norm vs loop references and PyTorch."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util as jtu

from jaxcnn.functional.norm import group_norm, instance_norm, layer_norm, local_response_norm

RNG = np.random.default_rng(2)


def _params(channels):
    return {
        "scale": jnp.asarray(RNG.uniform(0.5, 1.5, channels), jnp.float32),
        "bias": jnp.asarray(RNG.normal(size=channels), jnp.float32),
    }


def loop_group_norm(x, scale, bias, groups, eps):
    """Loops over (example, group): mean/var of that slice, then the per-channel affine."""
    x = x.astype(np.float64)
    y = np.empty_like(x)
    per_group = x.shape[-1] // groups
    for n in range(x.shape[0]):
        for g in range(groups):
            block = x[n, ..., g * per_group : (g + 1) * per_group]
            y[n, ..., g * per_group : (g + 1) * per_group] = (block - block.mean()) / np.sqrt(block.var() + eps)
    if scale is None:
        return y
    return y * np.asarray(scale) + np.asarray(bias)


@pytest.mark.parametrize("shape,groups", [((2, 4, 3, 6), 3), ((2, 5, 4), 2), ((1, 2, 2, 3, 4), 4)])
def test_group_norm_matches_loop_reference(shape, groups):
    x = RNG.normal(loc=1.0, size=shape).astype(np.float32)
    params = _params(shape[-1])
    np.testing.assert_allclose(
        group_norm(x, params, groups, eps=1e-3),
        loop_group_norm(x, params["scale"], params["bias"], groups, 1e-3), rtol=1e-4, atol=1e-5,
    )


def test_layer_and_instance_norm_are_group_norm_with_1_and_C_groups():
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    params = _params(5)
    np.testing.assert_allclose(layer_norm(x, params), loop_group_norm(x, params["scale"], params["bias"], 1, 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(instance_norm(x, params), loop_group_norm(x, params["scale"], params["bias"], 5, 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(instance_norm(x, None), loop_group_norm(x, None, None, 5, 1e-5), rtol=1e-4, atol=1e-5)
    # Dense features (N, C): layer norm over the features.
    feats = RNG.normal(size=(3, 7)).astype(np.float32)
    expected = (feats - feats.mean(1, keepdims=True)) / np.sqrt(feats.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(layer_norm(feats, None), expected, rtol=1e-4, atol=1e-5)


@functools.partial(jax.jit, static_argnums=0)
def value_and_vjp(fn, args, cotangent):
    """fn(*args) and its VJP of ``cotangent``, compiled once (eager dispatch of many small ops is slow)."""
    y, vjp = jax.vjp(fn, *args)
    return y, vjp(cotangent)


def _torch_pair(x):
    torch = pytest.importorskip("torch")
    perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    return torch.tensor(np.transpose(x, perm), dtype=torch.float64, requires_grad=True), perm


def _check_against_torch(jax_fn, torch_fn, x, params):
    """Forward and VJP (input and affine params) of a random cotangent, JAX vs torch float64."""
    torch = pytest.importorskip("torch")
    t_x, perm = _torch_pair(x)
    inverse = np.argsort(perm)
    t_scale = torch.tensor(np.asarray(params["scale"]), dtype=torch.float64, requires_grad=True)
    t_bias = torch.tensor(np.asarray(params["bias"]), dtype=torch.float64, requires_grad=True)
    t_y = torch_fn(t_x, t_scale, t_bias)
    cot = RNG.normal(size=t_y.shape)
    (t_y * t_y.new_tensor(cot)).sum().backward()
    y, (grad_x, grad_p) = value_and_vjp(jax_fn, (jnp.asarray(x), params), jnp.asarray(np.transpose(cot, inverse), jnp.float32))
    np.testing.assert_allclose(y, np.transpose(t_y.detach().numpy(), inverse), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grad_x, np.transpose(t_x.grad.numpy(), inverse), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_p["scale"], t_scale.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_p["bias"], t_bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_group_layer_instance_norm_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.normal(loc=0.5, size=(2, 4, 3, 6)).astype(np.float32)
    params = _params(6)
    _check_against_torch(
        lambda v, p: group_norm(v, p, 3, eps=1e-4), lambda t, s, b: F.group_norm(t, 3, s, b, eps=1e-4), x, params
    )
    _check_against_torch(
        lambda v, p: layer_norm(v, p), lambda t, s, b: F.group_norm(t, 1, s, b, eps=1e-5), x, params
    )
    # torch's LayerNorm over (C, H, W) with the per-channel affine broadcast to every position.
    _check_against_torch(
        lambda v, p: layer_norm(v, p),
        lambda t, s, b: F.layer_norm(
            t, t.shape[1:], s[:, None, None].expand(t.shape[1:]), b[:, None, None].expand(t.shape[1:]), eps=1e-5
        ),
        x, params,
    )
    _check_against_torch(
        lambda v, p: instance_norm(v, p, eps=1e-5),
        lambda t, s, b: F.instance_norm(t, weight=s, bias=b, eps=1e-5), x, params,
    )


@pytest.mark.parametrize(
    "op",
    [
        functools.partial(group_norm, num_groups=2),
        layer_norm,
        instance_norm,
    ],
    ids=["group", "layer", "instance"],
)
def test_norm_gradients_check_numerically_and_jit_matches_eager(op):
    x = jnp.asarray(RNG.normal(size=(2, 3, 2, 4)), jnp.float32)
    params = _params(4)
    weights = jnp.asarray(RNG.normal(size=x.shape), jnp.float32)
    fn = lambda v, p: op(v, p) * weights  # noqa: E731 - a random projection so gradients are non-trivial
    jtu.check_grads(jax.jit(fn), (x, params), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)
    np.testing.assert_allclose(jax.jit(op)(x, params), op(x, params), rtol=1e-5, atol=1e-6)


def test_norms_of_bf16_compute_in_float32_and_return_bf16():
    x = jnp.asarray(RNG.normal(loc=50.0, size=(2, 4, 4, 4)), jnp.bfloat16)
    params = _params(4)
    for op in (lambda v: group_norm(v, params, 2), lambda v: layer_norm(v, params), lambda v: instance_norm(v, params)):
        y = op(x)
        assert y.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(y, np.float32), op(jnp.asarray(x, jnp.float32)), atol=3e-2)


# ---------------------------------------------------------------- local response norm
def loop_lrn(x, size, alpha, beta, k, *, paper=False):
    """Channel loops. paper=True is the AlexNet formula: k + alpha * sum (no division by size)."""
    x = x.astype(np.float64)
    y = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1) // 2)
        squares = (x[..., lo : hi + 1] ** 2).sum(-1)
        coefficient = alpha if paper else alpha / size
        y[..., c] = x[..., c] / (k + coefficient * squares) ** beta
    return y


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_matches_loop_reference(size):
    x = RNG.normal(scale=10.0, size=(2, 3, 2, 7)).astype(np.float32)
    np.testing.assert_allclose(
        local_response_norm(x, size=size, alpha=0.05, beta=0.6, k=1.5),
        loop_lrn(x, size, 0.05, 0.6, 1.5), rtol=1e-5,
    )


def test_lrn_alexnet_paper_parameters_are_alpha_times_size():
    x = RNG.normal(scale=30.0, size=(1, 2, 2, 8)).astype(np.float32)
    paper = loop_lrn(x, 5, 1e-4, 0.75, 2.0, paper=True)
    np.testing.assert_allclose(local_response_norm(x, size=5, alpha=5e-4, beta=0.75, k=2.0), paper, rtol=1e-5)
    # the defaults are not the paper's alpha (they divide 1e-4 by 5)
    assert not np.allclose(local_response_norm(x), paper, rtol=1e-5)


@pytest.mark.parametrize("size,shape", [(5, (2, 3, 3, 6)), (4, (2, 5, 7)), (3, (1, 2, 2, 2, 5))])
def test_lrn_matches_torch_forward_and_gradient(size, shape):
    torch = pytest.importorskip("torch")
    x = RNG.normal(scale=5.0, size=shape).astype(np.float32)
    t_x, perm = _torch_pair(x)
    inverse = np.argsort(perm)
    t_y = torch.nn.functional.local_response_norm(t_x, size, alpha=0.01, beta=0.75, k=2.0)
    cot = RNG.normal(size=t_y.shape)
    (t_y * t_y.new_tensor(cot)).sum().backward()
    y, (grad,) = value_and_vjp(
        functools.partial(local_response_norm, size=size, alpha=0.01, beta=0.75, k=2.0),
        (jnp.asarray(x),), jnp.asarray(np.transpose(cot, inverse), jnp.float32),
    )
    np.testing.assert_allclose(y, np.transpose(t_y.detach().numpy(), inverse), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, np.transpose(t_x.grad.numpy(), inverse), rtol=1e-4, atol=1e-6)


def test_lrn_gradients_check_numerically_jit_and_bf16():
    x = jnp.asarray(RNG.normal(scale=3.0, size=(1, 2, 3, 6)), jnp.float32)
    op = functools.partial(local_response_norm, size=3, alpha=0.1)
    jtu.check_grads(jax.jit(op), (x,), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)
    np.testing.assert_allclose(jax.jit(op)(x), op(x), rtol=1e-6)
    y = op(x.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), op(x.astype(jnp.bfloat16).astype(jnp.float32)), rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------- errors
X = jnp.ones((2, 3, 3, 6))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: group_norm(X, _params(6), 4), "num_groups=4 must divide the 6 channels"),
        (lambda: group_norm(X, _params(6), 0), "num_groups must be a positive int"),
        (lambda: group_norm(X, _params(5), 3), r"shape \(6,\).*6 channels"),
        (lambda: layer_norm(X, {"scale": jnp.ones(6)}), r"keys \['scale', 'bias'\]"),
        (lambda: layer_norm(jnp.ones(6), None), "rank >= 2"),
        (lambda: layer_norm(X, None, eps=0), "eps must be > 0"),
        (lambda: instance_norm(jnp.ones((2, 6)), None), "rank >= 3"),
        (lambda: instance_norm(X, _params(3)), r"shape \(6,\)"),
        (lambda: local_response_norm(X, size=0), "size must be a positive int"),
        (lambda: local_response_norm(jnp.ones(4)), "rank >= 2"),
        (lambda: group_norm(X.astype(jnp.int32), None, 2), "expected a floating-point input"),
        (lambda: local_response_norm(X.astype(jnp.int32)), "floating-point"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()

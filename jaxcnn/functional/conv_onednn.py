"""``impl="onednn"``: a 2-D convolution whose three passes run oneDNN kernels on the CPU.

The forward pass, the input gradient and the kernel gradient are three JAX
primitives, each lowered on the CPU to an XLA custom call into
:mod:`jaxcnn.native` (oneDNN, NHWC/HWIO, float32) and on every other backend
to the equivalent ``lax.conv_general_dilated`` expression, so a program that
uses them still runs on TPU/GPU (as XLA convolutions there)::

    conv_fwd(x, w)            y  = x (*) w                     (N,H,W,C),(KH,KW,C,O) -> (N,H',W',O)
    conv_bwd_data(g, w)       dx = the input gradient of y     (N,H',W',O),(KH,KW,C,O) -> (N,H,W,C)
    conv_bwd_weights(x, g)    dw = the kernel gradient of y    (N,H,W,C),(N,H',W',O) -> (KH,KW,C,O)

Each is bilinear in its two operands, and the three are each other's
transposes, so every JAX transformation composes without a ``custom_vjp``:
forward mode (``jvp``, ``jacfwd``, Hessian-vector products), reverse mode
(``grad``, ``vjp``) and their compositions, ``jit``, ``jax.checkpoint``, and
``vmap`` (a batch axis on the activations only is folded into N and stays on
oneDNN; anything else, such as per-example kernel gradients, is computed by
the XLA expression under ``vmap``). Only float32, ungrouped, undilated 2-D
convolutions with non-negative padding use it (:func:`supports`); the caller
(:mod:`jaxcnn.functional.conv`) routes everything else to ``impl="xla"``.
"""
from __future__ import annotations

import functools

import numpy as np
import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxcnn import native
from jaxcnn.functional.shapes import conv_output_size

__all__ = ["conv2d_onednn", "supports", "available"]

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def available() -> bool:
    """True when the oneDNN kernels are built and registered (see :mod:`jaxcnn.native`)."""
    return native.available()


def supports(x_shape, w_shape, strides, pads, dilation, groups, dtype) -> bool:
    """Whether :func:`conv2d_onednn` computes this convolution (shapes and geometry, not the machine).

    float32 2-D convolutions (``x`` NHWC, ``w`` HWIO) with one feature group,
    no kernel dilation and non-negative padding.
    """
    return (
        len(x_shape) == 4
        and len(w_shape) == 4
        and groups == 1
        and all(d == 1 for d in dilation)
        and all(lo >= 0 and hi >= 0 for lo, hi in pads)
        and jnp.dtype(dtype) == jnp.float32
    )


# ----------------------------------------------------------------------------
# The XLA expressions of the three passes: the reference, and the lowering
# everywhere but the CPU. Geometry: strides (sh, sw), pads ((pt, pb), (pl, pr)).
# ----------------------------------------------------------------------------


def _xla_fwd(x, w, *, strides, pads):
    return lax.conv_general_dilated(
        x, w, strides, pads, dimension_numbers=_DIMENSION_NUMBERS
    )


def _xla_bwd_data(g, w, *, strides, pads, input_shape):
    x = jnp.zeros(input_shape, g.dtype)
    return jax.vjp(lambda x: _xla_fwd(x, w, strides=strides, pads=pads), x)[1](g)[0]


def _xla_bwd_weights(x, g, *, strides, pads, kernel_shape):
    w = jnp.zeros(kernel_shape, x.dtype)
    return jax.vjp(lambda w: _xla_fwd(x, w, strides=strides, pads=pads), w)[1](g)[0]


# ----------------------------------------------------------------------------
# Primitives
# ----------------------------------------------------------------------------

conv_fwd_p = Primitive("jaxcnn_onednn_conv_fwd")
conv_bwd_data_p = Primitive("jaxcnn_onednn_conv_bwd_data")
conv_bwd_weights_p = Primitive("jaxcnn_onednn_conv_bwd_weights")


def _output_shape(x_shape, w_shape, strides, pads):
    spatial = (conv_output_size(size, k, s, pad) for size, k, s, pad in
               zip(x_shape[1:3], w_shape[:2], strides, pads))
    return (x_shape[0], *spatial, w_shape[-1])


def _fwd_abstract(x, w, *, strides, pads):
    return jax.core.ShapedArray(_output_shape(x.shape, w.shape, strides, pads), x.dtype)


def _bwd_data_abstract(g, w, *, strides, pads, input_shape):
    return jax.core.ShapedArray(tuple(input_shape), g.dtype)


def _bwd_weights_abstract(x, g, *, strides, pads, kernel_shape):
    return jax.core.ShapedArray(tuple(kernel_shape), x.dtype)


conv_fwd_p.def_abstract_eval(_fwd_abstract)
conv_bwd_data_p.def_abstract_eval(_bwd_data_abstract)
conv_bwd_weights_p.def_abstract_eval(_bwd_weights_abstract)


@functools.lru_cache(maxsize=256)
def _compiled(primitive, frozen_params):
    params = dict(frozen_params)
    return jax.jit(lambda *args: primitive.bind(*args, **params))


def _eager(primitive):
    """Outside jit, a primitive runs as its own small jitted computation (compiled once per geometry)."""
    def impl(*args, **params):
        return _compiled(primitive, tuple(sorted(params.items())))(*args)
    return impl


for _primitive in (conv_fwd_p, conv_bwd_data_p, conv_bwd_weights_p):
    _primitive.def_impl(_eager(_primitive))


# -- lowering: oneDNN on the CPU, the XLA expression elsewhere ---------------


def _geometry_attributes(strides, pads):
    (pt, pb), (pl, pr) = pads
    return {
        "sh": np.int64(strides[0]), "sw": np.int64(strides[1]),
        "pt": np.int64(pt), "pb": np.int64(pb), "pl": np.int64(pl), "pr": np.int64(pr),
    }


def _cpu_lowering(target):
    ffi_lowering = jax.ffi.ffi_lowering(target)

    def lower(ctx, *args, strides, pads, **_shape):
        return ffi_lowering(ctx, *args, **_geometry_attributes(strides, pads))

    return lower


# (primitive, its XLA expression, the FFI handler symbol in onednn_conv.cc)
_PASSES = (
    (conv_fwd_p, _xla_fwd, "JaxcnnConvFwd"),
    (conv_bwd_data_p, _xla_bwd_data, "JaxcnnConvBwdData"),
    (conv_bwd_weights_p, _xla_bwd_weights, "JaxcnnConvBwdWeights"),
)
for _primitive, _expression, _symbol in _PASSES:
    mlir.register_lowering(_primitive, mlir.lower_fun(_expression, multiple_results=False))
    mlir.register_lowering(_primitive, _cpu_lowering(native.TARGETS[_symbol]), platform="cpu")


# -- differentiation: each pass is bilinear, and the transposes close the set --
# <ct, fwd(x, w)> = <bwd_data(ct, w), x> = <bwd_weights(x, ct), w>
# so fwd's transposes are bwd_data (for x) and bwd_weights (for w), and so on.


def _fwd_transpose_x(ct, x, w, *, strides, pads):
    return conv_bwd_data_p.bind(ct, w, strides=strides, pads=pads, input_shape=x.aval.shape)


def _fwd_transpose_w(ct, x, w, *, strides, pads):
    return conv_bwd_weights_p.bind(x, ct, strides=strides, pads=pads, kernel_shape=w.aval.shape)


def _bwd_data_transpose_g(ct, g, w, *, strides, pads, input_shape):
    return conv_fwd_p.bind(ct, w, strides=strides, pads=pads)


def _bwd_data_transpose_w(ct, g, w, *, strides, pads, input_shape):
    return conv_bwd_weights_p.bind(ct, g, strides=strides, pads=pads, kernel_shape=w.aval.shape)


def _bwd_weights_transpose_x(ct, x, g, *, strides, pads, kernel_shape):
    return conv_bwd_data_p.bind(g, ct, strides=strides, pads=pads, input_shape=x.aval.shape)


def _bwd_weights_transpose_g(ct, x, g, *, strides, pads, kernel_shape):
    return conv_fwd_p.bind(x, ct, strides=strides, pads=pads)


ad.defbilinear(conv_fwd_p, _fwd_transpose_x, _fwd_transpose_w)
ad.defbilinear(conv_bwd_data_p, _bwd_data_transpose_g, _bwd_data_transpose_w)
ad.defbilinear(conv_bwd_weights_p, _bwd_weights_transpose_x, _bwd_weights_transpose_g)


# -- vmap ---------------------------------------------------------------------


def _xla_under_vmap(expression):
    """A batching rule computing the pass with its XLA expression under ``vmap``."""

    def rule(args, dims, **params):
        return jax.vmap(lambda *a: expression(*a, **params), in_axes=dims)(*args), 0

    return rule


def _fold_batch(primitive, expression):
    """A batching rule: a vmapped axis on the activations (operand 0) only is folded into N."""
    fallback = _xla_under_vmap(expression)

    def rule(args, dims, **params):
        if dims[0] is None or any(d is not None for d in dims[1:]):
            # e.g. a batched kernel (jacfwd over w): the XLA expression under vmap.
            return fallback(args, dims, **params)
        operand = jnp.moveaxis(args[0], dims[0], 0)
        size, n = operand.shape[:2]
        if primitive is conv_bwd_data_p:
            shape = params["input_shape"]
            params = dict(params, input_shape=(size * shape[0],) + tuple(shape[1:]))
        out = primitive.bind(operand.reshape((size * n,) + operand.shape[2:]), *args[1:], **params)
        return out.reshape((size, n) + out.shape[1:]), 0

    return rule


batching.primitive_batchers[conv_fwd_p] = _fold_batch(conv_fwd_p, _xla_fwd)
batching.primitive_batchers[conv_bwd_data_p] = _fold_batch(conv_bwd_data_p, _xla_bwd_data)
# The kernel gradient sums over the examples: a vmapped axis cannot be folded into N
# (per-example kernel gradients).
batching.primitive_batchers[conv_bwd_weights_p] = _xla_under_vmap(_xla_bwd_weights)


def conv2d_onednn(x, w, strides, pads, dilation=(1, 1), groups=1):
    """``y = x (*) w`` through the oneDNN primitives (an ``impl`` of :mod:`jaxcnn.functional.conv`).

    Args (validated by the caller):
      x: ``(N, H, W, C)`` float32.
      w: ``(KH, KW, C, O)`` float32.
      strides: ``(SH, SW)``.
      pads: ``((top, bottom), (left, right))``, each >= 0.
      dilation, groups: must be ``(1, 1)`` and 1 (see :func:`supports`).

    Returns ``(N, H', W', O)`` with ``H' = (H + top + bottom - KH) // SH + 1``
    (likewise W'), equal to ``impl="xla"`` up to float32 rounding.
    """
    if not supports(x.shape, w.shape, strides, pads, dilation, groups, jnp.result_type(x, w)):
        raise ValueError(
            "impl='onednn' computes float32, ungrouped, undilated 2-D convolutions with "
            f"padding >= 0; got x {x.shape} {x.dtype}, w {w.shape} {w.dtype}, "
            f"dilation={tuple(dilation)}, groups={groups}, padding={tuple(pads)}; "
            "use impl='xla' or impl='auto'"
        )
    if not available():
        raise ValueError(f"impl='onednn' is not usable here: {native.status()}")
    strides = tuple(int(s) for s in strides)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    return conv_fwd_p.bind(x, w, strides=strides, pads=pads)

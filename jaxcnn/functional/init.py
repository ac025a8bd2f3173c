"""Weight initializers with the Flax / ``jax.nn.initializers`` calling convention.

Every initializer is called as ``init(key, shape, dtype=jnp.float32) -> array`` and
can be passed directly as ``kernel_init=`` to a Flax module (no factory call).

Fans are computed from the library's kernel layouts, where the last two axes are
(in, out) and everything before them is the receptive field:

    dense   (I, O)             fan_in = I,            fan_out = O
    1-D     KIO  (K, I, O)     fan_in = K * I,        fan_out = K * O
    2-D     HWIO (H, W, I, O)  fan_in = H * W * I,    fan_out = H * W * O
    3-D     DHWIO              fan_in = D * H * W * I, fan_out = D * H * W * O

For a grouped convolution the kernel's ``I`` is already ``C / groups``, so the fan-in
is the number of inputs each output really sees.

All draws are PLAIN (untruncated) Gaussians or uniforms, so the standard deviation is
exactly the formula given (He et al. 2015 use a plain Gaussian with std
``sqrt(2 / n_l)``). This differs from ``flax.linen.initializers.he_normal``, which
draws a truncated normal rescaled to the same variance. PyTorch's
``kaiming_normal_`` / ``xavier_normal_`` on the same fans give the same distributions.

Which to use (and the defaults of :mod:`jaxcnn.nn`):

    he_*      var 2 / fan_in              a layer whose output goes through a ReLU (Conv's default)
    lecun_*   var 1 / fan_in              a linear output such as a classifier (Dense's default),
                                          and tanh networks (LeCun et al. 1998, "Efficient BackProp")
    glorot_*  var 2 / (fan_in + fan_out)  tanh / sigmoid networks (Glorot & Bengio 2010)
    torch_uniform  var 1 / (3 fan_in)     PyTorch's default for nn.Conv2d / nn.Linear weights

:data:`INITIALIZERS` names them, so that a model can take an initializer as a
plain (JSON) field: ``models.get("lenet5", kernel_init="torch_uniform")``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "fan_in_fan_out",
    "he_normal",
    "he_uniform",
    "glorot_normal",
    "glorot_uniform",
    "lecun_normal",
    "lecun_uniform",
    "torch_uniform",
    "INITIALIZERS",
    "initializer",
    "zeros",
    "ones",
]

_LAYOUTS = "(I, O) dense, KIO, HWIO or DHWIO"


def _check_shape(shape) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a sequence of ints, got {shape!r}") from None
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"shape must be a sequence of ints, got {shape!r}")
    if any(d < 1 for d in dims):
        raise ValueError(f"every dimension of shape must be >= 1, got {dims}")
    return dims


def fan_in_fan_out(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a dense or convolution kernel shape.

    Args:
      shape: ``(I, O)``, ``(K, I, O)``, ``(H, W, I, O)`` or ``(D, H, W, I, O)``.

    Returns:
      ``(receptive * I, receptive * O)`` with ``receptive`` the product of every axis
      before the last two (1 for a dense kernel).

    Raises:
      ValueError: for a rank other than 2..5 (a bias or a scalar has no fans) or a
      dimension < 1.
    """
    dims = _check_shape(shape)
    if not 2 <= len(dims) <= 5:
        raise ValueError(
            f"fans are defined for {_LAYOUTS} kernels (rank 2 to 5), got shape {dims} of rank {len(dims)}"
        )
    receptive_field = math.prod(dims[:-2])
    return receptive_field * dims[-2], receptive_field * dims[-1]


def _check_float_dtype(dtype) -> jnp.dtype:
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"random initializers need a floating dtype, got {dtype}")
    return dtype


# Samples are drawn flat and reshaped: the draws are i.i.d., so the layout of the
# sample does not matter, and kernels of equal size (a (9*64, 128) dense and a
# (3, 3, 64, 128) conv) then share one compiled sampler -- threefry takes seconds
# of CPU to compile per shape.
def _normal(key, shape, dtype, std: float) -> jax.Array:
    flat = jax.random.normal(key, (math.prod(shape),), dtype)
    return flat.reshape(shape) * jnp.asarray(std, dtype)


def _uniform(key, shape, dtype, limit: float) -> jax.Array:
    flat = jax.random.uniform(key, (math.prod(shape),), dtype, minval=-limit, maxval=limit)
    return flat.reshape(shape)


HE_MODES = ("fan_in", "fan_out")


def _he_fan(dims, mode: str) -> int:
    if mode not in HE_MODES:
        raise ValueError(
            f'mode must be "fan_in" (n = inputs per output, the default) or "fan_out" '
            f"(n = outputs per input), got {mode!r}"
        )
    fan_in, fan_out = fan_in_fan_out(dims)
    return fan_in if mode == "fan_in" else fan_out


def he_normal(key: jax.Array, shape, dtype=jnp.float32, mode: str = "fan_in") -> jax.Array:
    """He / Kaiming normal: ``N(0, std^2)`` with ``std = sqrt(2 / n)``.

    For ReLU networks: keeps the variance of activations constant across layers
    (He et al. 2015, eq. 10, ``mode="fan_in"``, ``n = fan_in``), or of the
    back-propagated gradients (eq. 14, ``mode="fan_out"``, ``n = fan_out`` -- the
    slides' "n = number of outputs" variant). Plain Gaussian, not truncated. As a
    Flax ``kernel_init`` with fan-out: ``functools.partial(he_normal, mode="fan_out")``.

    Args:
      key: a ``jax.random`` key.
      shape: a kernel shape, see :func:`fan_in_fan_out`.
      dtype: a floating dtype.
      mode: ``"fan_in"`` (default; PyTorch's ``kaiming_normal_`` default too) or
        ``"fan_out"``, which fan of :func:`fan_in_fan_out` is ``n``.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    return _normal(key, dims, dtype, math.sqrt(2.0 / _he_fan(dims, mode)))


def he_uniform(key: jax.Array, shape, dtype=jnp.float32, mode: str = "fan_in") -> jax.Array:
    """He / Kaiming uniform: ``U(-limit, limit)`` with ``limit = sqrt(6 / n)``.

    Same variance as :func:`he_normal` (``limit^2 / 3 = 2 / n``); ``n`` is the
    fan-in (``mode="fan_in"``, default) or the fan-out (``mode="fan_out"``).
    Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    return _uniform(key, dims, dtype, math.sqrt(6.0 / _he_fan(dims, mode)))


def glorot_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """Glorot / Xavier normal: ``N(0, std^2)`` with ``std = sqrt(2 / (fan_in + fan_out))``.

    Plain Gaussian, not truncated. Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    fan_in, fan_out = fan_in_fan_out(dims)
    return _normal(key, dims, dtype, math.sqrt(2.0 / (fan_in + fan_out)))


def glorot_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """Glorot / Xavier uniform: ``U(-limit, limit)``, ``limit = sqrt(6 / (fan_in + fan_out))``.

    The "normalized initialization" of Glorot & Bengio 2010, eq. 16.
    Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    fan_in, fan_out = fan_in_fan_out(dims)
    return _uniform(key, dims, dtype, math.sqrt(6.0 / (fan_in + fan_out)))


def lecun_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun normal: ``N(0, std^2)`` with ``std = sqrt(1 / fan_in)``.

    Unit gain: a linear layer on inputs with unit second moment gives outputs of
    unit variance. Half the variance of :func:`he_normal`, which doubles it to make
    up for a following ReLU. Plain Gaussian, not truncated (flax's
    ``lecun_normal`` is truncated). Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    fan_in, _ = fan_in_fan_out(dims)
    return _normal(key, dims, dtype, math.sqrt(1.0 / fan_in))


def lecun_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun uniform: ``U(-limit, limit)`` with ``limit = sqrt(3 / fan_in)`` (variance ``1 / fan_in``).

    Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    fan_in, _ = fan_in_fan_out(dims)
    return _uniform(key, dims, dtype, math.sqrt(3.0 / fan_in))


def torch_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """PyTorch's default weight init: ``U(-limit, limit)`` with ``limit = 1 / sqrt(fan_in)``.

    What ``nn.Conv2d`` and ``nn.Linear`` draw (``kaiming_uniform_(a=sqrt(5))``):
    variance ``1 / (3 fan_in)``, a third of :func:`lecun_normal`'s and a sixth
    of :func:`he_normal`'s (std ``sqrt(6) = 2.45`` times smaller than He's).
    Args and returns as :func:`he_normal`.
    """
    dims, dtype = _check_shape(shape), _check_float_dtype(dtype)
    fan_in, _ = fan_in_fan_out(dims)
    return _uniform(key, dims, dtype, 1.0 / math.sqrt(fan_in))


def zeros(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """All zeros of ``shape`` and ``dtype`` (biases, BN shift); ``key`` is ignored.

    Any rank, including ``()`` and ``(C,)``.
    """
    del key  # the Flax signature passes one; a constant needs no randomness
    return jnp.zeros(_check_shape(shape), dtype)


def ones(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """All ones of ``shape`` and ``dtype`` (BN scale); ``key`` is ignored. Any rank."""
    del key
    return jnp.ones(_check_shape(shape), dtype)


# Kernel initializers by name (model fields such as LeNet5.kernel_init hold a name,
# so that a config stays plain JSON).
INITIALIZERS = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "torch_uniform": torch_uniform,
}


def initializer(name: str):
    """The kernel initializer called ``name`` in :data:`INITIALIZERS`, e.g. ``"torch_uniform"``.

    Raises:
      ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name]

"""Weight regularization: the slides' L2 penalty ``R(W) = sum W^2`` over a parameter tree.

Parameters are any pytree of arrays (a Flax ``params`` collection). Which
leaves are "weights" is a mask: a pytree of bools with the same structure, or
a function ``params -> mask``. :func:`weight_mask` is the library's rule: the
leaves named ``kernel`` -- the connection weights of every conv, dense and
locally connected layer -- and not biases, batch-norm scales and shifts, or
LeNet's per-map subsampling coefficients.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["WEIGHT_NAMES", "weight_mask", "l2_regularizer"]

# Leaf names that hold connection weights in jaxcnn.nn (and in flax.linen).
WEIGHT_NAMES = ("kernel",)


def _leaf_name(path) -> str:
    last = path[-1] if path else None
    return str(getattr(last, "key", getattr(last, "name", last)))


def weight_mask(params):
    """A bool pytree like ``params``: True for the weight leaves (named ``kernel``), False for the rest.

    With jaxcnn's modules that decays/penalises conv, dense, locally connected
    and connection-table kernels, and leaves biases, batch-norm ``scale``/``bias``
    and subsampling ``coef``/``bias`` alone (as the slides' ``R(W)`` covers the
    weights ``W``). Usable as Optax's ``mask=`` argument.
    """
    return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) in WEIGHT_NAMES, params)


def l2_regularizer(params, mask=None) -> jax.Array:
    """The L2 penalty ``R(W) = sum_l sum_i W_l[i]**2`` over the leaves ``W_l`` that ``mask`` selects.

    Args:
      params: a pytree of floating arrays (e.g. a Flax ``params`` collection).
      mask: None (every leaf, as ``weight_decay`` on ``"all"``), a bool pytree with
        ``params``' structure (e.g. :func:`weight_mask`), or a callable
        ``params -> bool pytree``.

    Returns:
      A float32 scalar (sums in float32 even for bf16 leaves); 0 when nothing is
      selected. Its gradient is ``2 W`` on selected leaves and 0 elsewhere, so
      ``loss + lam / 2 * l2_regularizer(params, mask)`` adds ``lam * W`` to the
      gradient: the coupled weight decay of ``make_optimizer(weight_decay=lam)``
      with the same mask.

    Raises:
      ValueError: a mask whose tree structure differs from ``params``', a
        non-bool mask leaf, or a non-floating parameter.
    """
    if isinstance(mask, Callable):
        mask = mask(params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if mask is None:
        selected = [True] * len(leaves)
    else:
        mask_leaves, mask_def = jax.tree_util.tree_flatten(mask)
        if mask_def != treedef:
            raise ValueError(
                f"l2_regularizer: mask must have the structure of params; got {mask_def} for params {treedef}"
            )
        if not all(isinstance(m, bool) for m in mask_leaves):
            raise ValueError("l2_regularizer: mask leaves must be Python bools (True: penalise this leaf)")
        selected = mask_leaves
    total = jnp.zeros((), jnp.float32)
    for leaf, use in zip(leaves, selected):
        leaf = jnp.asarray(leaf)
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise ValueError(f"l2_regularizer: parameters must be floating, got a leaf of dtype {leaf.dtype}")
        if use:
            total = total + jnp.sum(jnp.square(leaf.astype(jnp.float32)))
    return total

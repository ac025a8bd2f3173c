"""One row per layer of a Flax model: output shape, params, MACs, receptive field.

The model is never run and no parameter is materialised: ``module.init`` is
traced once with ``jax.make_jaxpr`` on a shape-only input, under a
``flax.linen.intercept_methods`` interceptor that records every layer call
(module, input and output shapes) and marks the layer's input and output in the
trace, so receptive fields can follow the real data flow (see
:mod:`jaxcnn.summary.receptive_field`). Tracing ResNet-50 takes about a second.
Layers are recognised by the protocol in :mod:`jaxcnn.summary.protocol`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import meta
from jax.ad_checkpoint import checkpoint_name

from jaxcnn.summary.protocol import (
    FIELD_KINDS,
    LayerCall,
    connections,
    display_name,
    multiply_adds,
    output_field,
    summary_kind_of,
)
from jaxcnn.summary.receptive_field import INPUT_MARKER, OUTPUT_MARKER, Field, trace_fields

# Kind of the first row, which describes the model input (as the slides' tables do).
INPUT_KIND = "input"
# Kind of the row given to a module outside the protocol that owns parameters
# no protocol layer accounts for (e.g. a flax.linen.Dense used directly).
OTHER_KIND = "other"


@dataclasses.dataclass(frozen=True)
class Row:
    """One layer call of a summarised model.

    Attributes:
      name: dotted module path (``"layer1.block0.conv1"``); a repeated call of
        the same module gets `` (call 2)`` and so on, and no parameters.
      kind: the module's ``summary_kind``; ``"input"`` for the first row, which
        describes the model input; ``"other"`` for a module outside the
        protocol that owns parameters (see :func:`summarize`).
      module_type: the module's class name ("" for the input row).
      depth: how many rows enclose this one (0 for top-level layers; the layers
        inside a residual block have depth 1).
      input_shape: shape of the first array argument, with batch; None if none.
      output_shape: shape of the output, with batch (the first array when the
        layer returns several).
      activation_elements: number of output elements (all output arrays),
        i.e. the activation memory in elements for the whole batch.
      activation_bytes: the same in bytes, from the output dtypes.
      params: number of elements of the ``params`` collection owned by this
        layer (its own variables and those of any non-protocol helper modules
        inside it; a block's inner layers have their own rows, so a block
        usually owns 0). Summing over rows counts every parameter once.
      param_bytes: the same in bytes.
      param_shapes: ``{"kernel": (5, 5, 1, 20), "bias": (20,)}``, names relative
        to this layer.
      weight_shape: shape of the ``kernel`` parameter (HWIO for conv), or None.
      macs: multiply-adds for the whole batch. conv: N·H'·W'·O·KH·KW·C/groups
        (output positions times kernel elements, so a sparse connection-table
        kernel counts only its connections); local: N·H'·W'·O·KH·KW·C; dense:
        (output elements)·in_features. Bias
        additions, pooling, normalisation, activations and the adds of residual
        blocks are not counted (0), as in the slides' tables.
      receptive_field: for conv/pool/local/block rows, the input pixels seen by
        one output unit per spatial dim (e.g. ``(5, 5)``), composed along the
        data flow (see :mod:`jaxcnn.summary.receptive_field`; where branches
        meet, the largest); None for other kinds.
      connections: LeCun's connection count for ONE example (every output unit's
        inputs plus its bias: LeNet-5's C1 has ``(5*5 + 1) * 6 * 28 * 28 =
        122,304``), see :func:`jaxcnn.summary.protocol.connections`; 0 for
        activations, norms and blocks themselves.
      total_params, total_macs, total_connections: this row's ``params`` /
        ``macs`` / ``connections`` plus those of every row nested inside it (the
        rows after it whose module path extends its path): a block's totals
        are its module's, e.g. one inception module of GoogLeNet; for other
        rows equal to their own. Sum ``params``, not ``total_params``, over
        rows to count each parameter once.
    """

    name: str
    kind: str
    module_type: str
    depth: int
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...]
    activation_elements: int
    activation_bytes: int
    params: int
    param_bytes: int
    param_shapes: dict[str, tuple[int, ...]]
    weight_shape: tuple[int, ...] | None
    macs: int
    receptive_field: tuple[int, ...] | None
    connections: int = 0
    total_params: int = 0
    total_macs: int = 0
    total_connections: int = 0


def summarize(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    input_dtype=jnp.float32,
    **call_kwargs,
) -> list[Row]:
    """Rows describing every layer of ``module`` applied to an input of ``input_shape``.

    Args:
      module: an unbound Flax module; ``module.init(rngs, x, **call_kwargs)``
        is traced (never executed). ``rngs`` holds ``"params"`` and ``"dropout"``.
        An NNX model of :mod:`jaxcnn.nnx.models` is summarised through its
        linen definition (``model.linen_module``): the same table as the linen model.
      input_shape: the full input shape with batch, e.g. ``(1, 224, 224, 3)``
        (NHWC; NLC / NDHWC for 1-D / 3-D models).
      input_dtype: dtype of the traced input.
      **call_kwargs: passed to the module call, e.g. ``train=False``.

    Returns:
      A first row of kind ``"input"`` (the input's shape and memory), then one
      :class:`Row` per layer call in call order (a block before the layers
      inside it). Modules without ``summary_kind`` (the model itself,
      ``nn.Sequential``) get no row, unless they declare parameters that no
      protocol layer encloses: then a row of kind ``"other"``.
      ``sum(r.params for r in rows)`` is the model's parameter count.

    Raises:
      ValueError: for a malformed ``input_shape``, a ``summary_kind`` outside
        :data:`jaxcnn.summary.protocol.KINDS`, or a conv/pool module lacking a protocol attribute.
    """
    module = _linen_definition(module)
    shape = _check_input_shape(input_shape)
    calls: list[LayerCall] = []

    def record_layer(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        layer = context.module
        kind = summary_kind_of(layer)
        call = LayerCall(
            index=len(calls),
            path=tuple(layer.path),
            module=layer,
            kind=kind,
            input_shape=_first_array_shape(args),
        )
        calls.append(call)
        if kind is None:
            out = next_fun(*args, **kwargs)
        else:
            if args:
                args = (_mark(args[0], f"{INPUT_MARKER}{call.index}"),) + tuple(args[1:])
            out = _mark(next_fun(*args, **kwargs), f"{OUTPUT_MARKER}{call.index}")
        call.outputs = [
            jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
            for leaf in jax.tree.leaves(out)
            if isinstance(leaf, jax.Array)
        ]
        return out

    def init(x):
        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        return module.init(rngs, x, **call_kwargs)

    with nn.intercept_methods(record_layer):
        closed_jaxpr, variables = jax.make_jaxpr(init, return_shape=True)(
            jax.ShapeDtypeStruct(shape, input_dtype)
        )

    def on_layer_input(index: int, field: Field | None) -> None:
        calls[index].input_field = field

    def layer_output_rule(index: int, propagated: Field | None) -> Field | None:
        call = calls[index]
        call.output_field = output_field(call, propagated)
        return call.output_field

    trace_fields(
        closed_jaxpr,
        [Field.of_input(len(shape) - 2)],
        on_layer_input=on_layer_input,
        layer_output_rule=layer_output_rule,
    )
    input_row = Row(
        name="input",
        kind=INPUT_KIND,
        module_type="",
        depth=0,
        input_shape=None,
        output_shape=shape,
        activation_elements=math.prod(shape),
        activation_bytes=math.prod(shape) * jnp.dtype(input_dtype).itemsize,
        params=0,
        param_bytes=0,
        param_shapes={},
        weight_shape=None,
        macs=0,
        receptive_field=None,
    )
    return [input_row, *_rows(calls, meta.unbox(variables).get("params", {}))]


def _linen_definition(module) -> nn.Module:
    """``module``, or the linen definition an NNX zoo model computes (its ``linen_module``)."""
    if isinstance(module, nn.Module):
        return module
    definition = getattr(module, "linen_module", None)
    if isinstance(definition, nn.Module):
        return definition
    raise ValueError(
        f"summarize expects a flax.linen Module or an NNX model from jaxcnn.nnx.models, got "
        f"{type(module).__name__}"
    )


def _check_input_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise ValueError(
            f"input_shape must be a sequence of ints with the batch first, e.g. (1, 28, 28, 1); "
            f"got {input_shape!r}"
        )
    shape = tuple(input_shape)
    if len(shape) < 2 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    ):
        raise ValueError(
            f"input_shape must hold at least 2 positive ints (batch first, e.g. (1, 28, 28, 1)); "
            f"got {input_shape!r}"
        )
    return shape


def _first_array_shape(args) -> tuple[int, ...] | None:
    for leaf in jax.tree.leaves(args):
        if isinstance(leaf, jax.Array):
            return tuple(leaf.shape)
    return None


def _mark(tree, name: str):
    return jax.tree.map(
        lambda leaf: checkpoint_name(leaf, name) if isinstance(leaf, jax.Array) else leaf, tree
    )


def _rows(calls: list[LayerCall], params) -> list[Row]:
    first_call_at: dict[tuple[str, ...], LayerCall] = {}
    for call in calls:
        first_call_at.setdefault(call.path, call)
    leaves = {
        tuple(str(getattr(key, "key", key)) for key in key_path): leaf
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    owned: dict[int, dict[str, jax.ShapeDtypeStruct]] = {}  # call index -> its parameters
    for path, leaf in leaves.items():
        owner = _owner(path[:-1], first_call_at)
        owned.setdefault(owner.index, {})[".".join(path[len(owner.path):])] = leaf

    row_calls = [c for c in calls if c.kind is not None or c.index in owned]
    row_paths = {c.path for c in row_calls}
    repeats: dict[tuple[str, ...], int] = {}
    rows = []
    for call in row_calls:
        repeats[call.path] = repeats.get(call.path, 0) + 1
        name = display_name(call)
        if repeats[call.path] > 1:
            name += f" (call {repeats[call.path]})"
        mine = owned.get(call.index, {})  # a repeated call owns nothing: keyed by first call
        param_shapes = {k: tuple(v.shape) for k, v in sorted(mine.items())}
        output = call.outputs[0] if call.outputs else jax.ShapeDtypeStruct((), jnp.float32)
        kernel_shape = param_shapes.get("kernel")
        macs = multiply_adds(call, output, kernel_shape) if call.kind else 0
        rows.append(
            Row(
                name=name,
                kind=call.kind or OTHER_KIND,
                module_type=type(call.module).__name__,
                depth=sum(
                    1 for p in row_paths if len(p) < len(call.path) and call.path[: len(p)] == p
                ),
                input_shape=call.input_shape,
                output_shape=tuple(output.shape),
                activation_elements=sum(math.prod(o.shape) for o in call.outputs),
                activation_bytes=sum(math.prod(o.shape) * o.dtype.itemsize for o in call.outputs),
                params=sum(math.prod(v.shape) for v in mine.values()),
                param_bytes=sum(math.prod(v.shape) * v.dtype.itemsize for v in mine.values()),
                param_shapes=param_shapes,
                weight_shape=kernel_shape,
                macs=macs,
                receptive_field=(
                    call.output_field.size
                    if call.kind in FIELD_KINDS and call.output_field is not None
                    else None
                ),
                connections=connections(call, output, macs, "bias" in param_shapes) if call.kind else 0,
            )
        )
    return _with_totals(rows, [c.path for c in row_calls])


def _with_totals(rows: list[Row], paths: list[tuple[str, ...]]) -> list[Row]:
    """``rows`` with ``total_*`` = own + every following row whose path extends this row's.

    Calls are recorded in call order, so the layers of a block follow the
    block's row contiguously (also for a repeated call of the block).
    """
    result = []
    for i, (row, path) in enumerate(zip(rows, paths)):
        nested = [row]
        for other, other_path in zip(rows[i + 1:], paths[i + 1:]):
            if len(other_path) <= len(path) or other_path[: len(path)] != path:
                break
            nested.append(other)
        result.append(
            dataclasses.replace(
                row,
                total_params=sum(r.params for r in nested),
                total_macs=sum(r.macs for r in nested),
                total_connections=sum(r.connections for r in nested),
            )
        )
    return result


def _owner(module_path: tuple[str, ...], first_call_at: dict) -> LayerCall:
    """The call whose row counts a parameter declared by the module at ``module_path``.

    The declaring module's own row if it is a protocol layer; else the nearest
    enclosing protocol layer unless that is a block (a helper inside a conv
    belongs to the conv); else the declaring module gets an ``"other"`` row.
    """
    declaring = None
    for cut in range(len(module_path), -1, -1):
        call = first_call_at.get(module_path[:cut])
        if call is None:
            continue
        if declaring is None:
            declaring = call
        if call.kind is not None:
            return call if call is declaring or call.kind != "block" else declaring
    if declaring is None:
        raise ValueError(f"parameter under {'.'.join(module_path)!r} belongs to no called module")
    return declaring

"""Receptive fields, composed along the data flow of a traced model.

A unit of a layer's output sees a window of the model's input: its receptive
field. Along one path it composes layer by layer (Araujo et al., "Computing
receptive fields of convolutional neural networks", Distill 2019):

    size_out = size_in + (K - 1) * D * jump_in
    jump_out = jump_in * S

where K is the window (kernel) size, D the dilation, S the stride, and ``jump``
the distance in input pixels between two adjacent units of a feature map.
Padding shifts the window but does not change its size. Two stacked 3x3 stride-1
convolutions see 5x5 input pixels, three see 7x7.

The path is not read from the order of the layers but from the traced program:
:func:`trace_fields` walks the jaxpr of the model and carries a
:class:`Field` on every value. Layer boundaries are marked in the jaxpr by
identity ``name`` equations (``jax.ad_checkpoint.checkpoint_name``) that
:mod:`jaxcnn.summary.rows` places around every layer call; at the end of a layer
a caller-supplied rule decides the field of its output. Any other equation
(activation functions, reshapes, the ``add`` of a residual block, the
``concatenate`` of an inception block) gives its outputs the elementwise maximum
of its inputs' fields: where branches meet, the receptive field is the largest
over the branches (the union of centred windows) and the jump is that of the
coarsest branch.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from jax.extend import core as jex_core

# Marker names put on layer inputs/outputs by rows.py; the call index follows.
INPUT_MARKER = "jaxcnn.summary:in:"
OUTPUT_MARKER = "jaxcnn.summary:out:"


@dataclasses.dataclass(frozen=True)
class Field:
    """Receptive field of one feature map, per spatial dim (H, W for NHWC).

    ``size``: input pixels seen by one unit; ``jump``: input pixels between two
    adjacent units (the product of the strides along the path).
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]

    @classmethod
    def of_input(cls, num_spatial_dims: int) -> "Field":
        """The model input: every pixel sees itself, neighbours are 1 pixel apart."""
        return cls((1,) * num_spatial_dims, (1,) * num_spatial_dims)


def compose(
    field: Field,
    *,
    window: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Field:
    """The field after a conv/pool with this window, stride and dilation (one per spatial dim)."""
    if not len(window) == len(stride) == len(dilation) == len(field.size):
        raise ValueError(
            f"window {tuple(window)}, stride {tuple(stride)} and dilation {tuple(dilation)} "
            f"must each have one entry per spatial dim of the field {field.size}"
        )
    size = tuple(
        r + (k - 1) * d * j for r, k, d, j in zip(field.size, window, dilation, field.jump)
    )
    jump = tuple(j * s for j, s in zip(field.jump, stride))
    return Field(size, jump)


def merge(fields: Sequence[Field | None]) -> Field | None:
    """Elementwise maximum of the known fields (None where no input carries one)."""
    known = [f for f in fields if f is not None]
    if not known:
        return None
    rank = len(known[0].size)
    known = [f for f in known if len(f.size) == rank]
    return Field(
        tuple(max(sizes) for sizes in zip(*(f.size for f in known))),
        tuple(max(jumps) for jumps in zip(*(f.jump for f in known))),
    )


LayerInputHook = Callable[[int, "Field | None"], None]
LayerOutputRule = Callable[[int, "Field | None"], "Field | None"]


def trace_fields(
    closed_jaxpr: jex_core.ClosedJaxpr,
    input_fields: Sequence[Field | None],
    *,
    on_layer_input: LayerInputHook,
    layer_output_rule: LayerOutputRule,
) -> None:
    """Propagate fields through ``closed_jaxpr``, reporting at every layer marker.

    ``input_fields[i]`` is the field of the jaxpr's i-th input. At an input
    marker of layer ``k``, ``on_layer_input(k, field)`` is called with the field
    of the value entering the layer. At its output marker,
    ``layer_output_rule(k, field)`` receives the field propagated through the
    layer's own equations and returns the field of the layer's output.
    Markers inside ``jit``/``custom_jvp``/``custom_vjp``/``checkpoint`` bodies
    are followed; markers inside control flow (``scan``, ``cond``) are not.
    """
    env = dict(zip(closed_jaxpr.jaxpr.invars, input_fields))
    _Walker(on_layer_input, layer_output_rule).run(closed_jaxpr.jaxpr, env)


class _Walker:
    def __init__(self, on_layer_input: LayerInputHook, layer_output_rule: LayerOutputRule):
        self.on_layer_input = on_layer_input
        self.layer_output_rule = layer_output_rule
        self._has_markers: dict[int, bool] = {}

    def run(self, jaxpr: jex_core.Jaxpr, env: dict) -> None:
        for eqn in jaxpr.eqns:
            fields_in = [
                None if isinstance(v, jex_core.Literal) else env.get(v) for v in eqn.invars
            ]
            marker = _marker(eqn)
            body = None if marker else self._call_body(eqn)
            if marker is not None:
                role, index = marker
                if role == "in":
                    self.on_layer_input(index, fields_in[0])
                    fields_out = fields_in
                else:
                    fields_out = [self.layer_output_rule(index, fields_in[0])]
            elif body is not None:
                body_env = dict(zip(body.invars, fields_in))
                self.run(body, body_env)
                fields_out = [
                    None if isinstance(v, jex_core.Literal) else body_env.get(v)
                    for v in body.outvars
                ]
            else:
                fields_out = [merge(fields_in)] * len(eqn.outvars)
            for var, field in zip(eqn.outvars, fields_out):
                if field is not None and not isinstance(var, jex_core.DropVar):
                    env[var] = field

    def _call_body(self, eqn) -> jex_core.Jaxpr | None:
        """The body of a call-like equation whose operands map 1:1 onto it, if it holds markers."""
        for value in eqn.params.values():
            body = value.jaxpr if isinstance(value, jex_core.ClosedJaxpr) else value
            if (
                isinstance(body, jex_core.Jaxpr)
                and len(body.invars) == len(eqn.invars)
                and len(body.outvars) == len(eqn.outvars)
                and self._contains_markers(body)
            ):
                return body
        return None

    def _contains_markers(self, jaxpr: jex_core.Jaxpr) -> bool:
        key = id(jaxpr)
        if key not in self._has_markers:
            self._has_markers[key] = any(
                _marker(eqn) is not None
                or any(
                    self._contains_markers(sub) for sub in jex_core.jaxprs_in_params(eqn.params)
                )
                for eqn in jaxpr.eqns
            )
        return self._has_markers[key]


def _marker(eqn) -> tuple[str, int] | None:
    if eqn.primitive.name != "name":
        return None
    name = eqn.params.get("name")
    if not isinstance(name, str):
        return None
    for role, prefix in (("in", INPUT_MARKER), ("out", OUTPUT_MARKER)):
        if name.startswith(prefix):
            return role, int(name[len(prefix):])
    return None

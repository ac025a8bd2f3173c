"""The slides' layer tables, printed from :func:`jaxcnn.summary.summarize` rows."""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from jaxcnn.summary.rows import Row, summarize

# The CS231n VGG table's convention: activation memory is that of the input and
# of the outputs of the layers that compute something new (conv/pool/fc), not of
# ReLUs or norms applied on top of them (those are usually fused or in place).
DEFAULT_MEMORY_KINDS = ("input", "conv", "pool", "dense", "local")

_COLUMNS = ("layer", "kind", "output", "weights", "activations", "params", "MACs", "connections", "RF")
_RIGHT_ALIGNED = {"activations", "params", "MACs", "connections", "RF"}


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _weights(row: Row) -> str:
    if row.weight_shape is not None:
        return _dims(row.weight_shape)
    return "+".join(_dims(s) for s in row.param_shapes.values()) or "-"


def _receptive_field(row: Row) -> str:
    if row.receptive_field is None:
        return "-"
    sizes = set(row.receptive_field)
    return str(row.receptive_field[0]) if len(sizes) == 1 else _dims(row.receptive_field)


def _megabytes(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:,.2f} MB"


def format_table(
    rows: Sequence[Row],
    *,
    memory_kinds: Iterable[str] = DEFAULT_MEMORY_KINDS,
    depth: int | None = None,
) -> str:
    """A text table of ``rows``, one line per layer, with totals.

    Columns: layer (dotted name, indented by ``row.depth``), kind, output size
    (H'xW'xC', the batch dim left out), weights (kernel shape HWIO, or the
    shapes of the layer's other parameters), activations (output elements),
    params, MACs (multiply-adds), connections (LeCun's count, per example) and
    RF (receptive field in input pixels; one number when square). Activations
    and MACs are for the whole batch, which the first line states. A block row
    (a residual block, an inception module) shows the totals of the layers
    inside it (``Row.total_params`` ...), so a table cut at ``depth=1`` reads
    as a per-module table.

    ``depth``: show only rows nested fewer than ``depth`` levels deep (1: the
    top-level layers and blocks; None, the default: every row); an int >= 1.

    The totals line sums params, MACs and connections over ALL rows (each
    layer once, whatever ``depth`` shows), and activations over the rows
    whose kind is in ``memory_kinds`` (default: the input and the conv, pool,
    dense and local outputs, as in CS231n's VGG-16 table); the footer gives
    the same in bytes from the actual dtypes.
    """
    memory_kinds = tuple(memory_kinds)
    rows = list(rows)
    if not rows:
        raise ValueError("format_table needs at least one row (summarize returns an input row)")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be an int >= 1 (1: top-level rows only) or None (all rows), got {depth!r}")
    batch = rows[0].output_shape[0] if rows[0].output_shape else 1

    lines: list[tuple[str, ...]] = [_COLUMNS]
    for row in rows:
        if depth is not None and row.depth >= depth:
            continue
        block = row.kind == "block"
        lines.append(
            (
                "  " * row.depth + row.name,
                row.kind,
                _dims(row.output_shape[1:]),
                _weights(row),
                f"{row.activation_elements:,}",
                f"{row.total_params if block else row.params:,}",
                f"{row.total_macs if block else row.macs:,}",
                f"{row.total_connections if block else row.connections:,}",
                _receptive_field(row),
            )
        )
    counted = [r for r in rows if r.kind in memory_kinds]
    total_params = sum(r.params for r in rows)
    total_macs = sum(r.macs for r in rows)
    total_connections = sum(r.connections for r in rows)
    total_activations = sum(r.activation_elements for r in counted)
    lines.append(
        ("total", "", "", "", f"{total_activations:,}", f"{total_params:,}", f"{total_macs:,}",
         f"{total_connections:,}", "")
    )

    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]

    def render(line: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(width) if column in _RIGHT_ALIGNED else cell.ljust(width)
            for cell, width, column in zip(line, widths, _COLUMNS)
        )
        return "  ".join(cells).rstrip()

    rule = "-" * len(render(tuple("x" * w for w in widths)))
    body = [render(line) for line in lines]
    return "\n".join(
        [
            f"batch {batch}: activations and MACs are for the whole batch, connections for one example",
            body[0],
            rule,
            *body[1:-1],
            rule,
            body[-1],
            "",
            f"params: {total_params:,} ({_megabytes(sum(r.param_bytes for r in rows))})",
            f"multiply-adds: {total_macs:,}",
            f"activation memory of {'/'.join(memory_kinds)} outputs: {total_activations:,} "
            f"elements ({_megabytes(sum(r.activation_bytes for r in counted))})",
        ]
    )


def print_summary(
    model_name: str,
    input_shape: Sequence[int] | None = None,
    *,
    file=None,
    depth: int | None = None,
) -> list[Row]:
    """Print the layer table of the zoo model ``model_name``; return its rows.

    ``input_shape`` is the full NHWC input shape with batch, e.g. ``(1, 32, 32, 3)``;
    by default the model's own (``(1, *models.input_shape(model_name))``). The model
    is summarised in inference mode (``train=False``). Prints to ``file``
    (default stdout); ``depth`` as in :func:`format_table` (``depth=1``: top-level
    rows, blocks with their totals). Unknown names raise the registry's error; an
    ``input_shape`` that is not 4 ints raises ValueError.
    """
    from jaxcnn import models

    module = models.get(model_name)
    if input_shape is None:
        shape = (1, *models.input_shape(model_name))
    else:
        shape = tuple(input_shape)
        if len(shape) != 4:  # e.g. (H, W, C) without the batch: 28 would become the batch
            raise ValueError(
                f"input_shape must be (batch, H, W, C), e.g. (1, 28, 28, 1); got {input_shape!r}"
            )
    rows = summarize(module, shape, train=False)
    print(f"{model_name} on input {_dims(shape)}", file=file or sys.stdout)
    print(format_table(rows, depth=depth), file=file or sys.stdout)
    return rows

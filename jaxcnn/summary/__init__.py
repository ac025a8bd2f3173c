"""Layer tables of Flax models, computed: shapes, params, MACs, receptive fields.

    rows = summarize(models.get("lenet5"), (1, 28, 28, 1), train=False)
    print(format_table(rows))
    print_summary("resnet50")          # what `jaxcnn summary resnet50` prints

The model is traced, never run (shape evaluation only): see
:mod:`jaxcnn.summary.protocol` for how layers are recognised and
:mod:`jaxcnn.summary.receptive_field` for how receptive fields compose.
"""
from jaxcnn.summary.receptive_field import Field
from jaxcnn.summary.protocol import KINDS
from jaxcnn.summary.rows import Row, summarize
from jaxcnn.summary.table import (
    DEFAULT_MEMORY_KINDS,
    default_input_shape,
    format_table,
    print_summary,
)

__all__ = [
    "DEFAULT_MEMORY_KINDS",
    "Field",
    "KINDS",
    "Row",
    "default_input_shape",
    "format_table",
    "print_summary",
    "summarize",
]

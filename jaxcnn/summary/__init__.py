"""Layer tables of Flax models, computed: shapes, params, MACs, receptive fields.

    rows = summarize(models.get("lenet5"), (1, 28, 28, 1), train=False)
    print(format_table(rows))
    print_summary("resnet50")          # what `jaxcnn summary resnet50` prints
    conv_layers(models.get("resnet20"), (128, 32, 32, 3))   # each conv's geometry

The model is traced, never run (shape evaluation only): see
:mod:`jaxcnn.summary.protocol` for how layers are recognised and
:mod:`jaxcnn.summary.receptive_field` for how receptive fields compose.
"""
from jaxcnn.summary.convolutions import ConvLayer, conv_layers
from jaxcnn.summary.receptive_field import Field
from jaxcnn.summary.protocol import KINDS
from jaxcnn.summary.rows import Row, summarize
from jaxcnn.summary.table import (
    DEFAULT_MEMORY_KINDS,
    format_table,
    print_summary,
)

__all__ = [
    "ConvLayer",
    "DEFAULT_MEMORY_KINDS",
    "Field",
    "KINDS",
    "Row",
    "conv_layers",
    "format_table",
    "print_summary",
    "summarize",
]

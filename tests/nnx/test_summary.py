"""``jaxcnn.summary`` on NNX zoo models: the same rows as the linen model's."""
import jax
import pytest
from flax import nnx

from jaxcnn import models
from jaxcnn.nnx import models as zoo
from jaxcnn.summary import format_table, summarize


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "googlenet"])
def test_nnx_model_has_the_linen_table(name):
    shape = (1, *models.input_shape(name))
    model = nnx.eval_shape(lambda: zoo.get(name, rngs=nnx.Rngs(0)))
    rows = summarize(model, shape, train=False)
    linen_rows = summarize(models.get(name), shape, train=False)
    assert rows == linen_rows
    assert format_table(rows) == format_table(linen_rows)
    params = sum(r.params for r in rows)
    assert params == sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_other_objects_are_rejected():
    with pytest.raises(ValueError, match="jaxcnn.nnx.models"):
        summarize(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), (1, 2))

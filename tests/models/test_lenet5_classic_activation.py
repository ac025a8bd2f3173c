"""lenet5_classic(activation=...): the slides' sigmoid, the paper's scaled tanh, same parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models


@pytest.mark.parametrize(
    "activation,reference",
    [
        ("sigmoid", lambda a: 1 / (1 + np.exp(-a))),
        ("scaled_tanh", lambda a: 1.7159 * np.tanh(2 / 3 * a)),
        ("tanh", np.tanh),
        ("relu", lambda a: np.maximum(a, 0)),
    ],
)
def test_every_hidden_layer_uses_the_chosen_activation(activation, reference):
    """Slide "LeNet-5": sigmoid by default on the slides; the paper's 1.7159 tanh(2a/3) stays the library default."""
    model = models.get("lenet5_classic", activation=activation)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 1))
    variables = model.init(jax.random.PRNGKey(1), x)
    _, state = model.apply(variables, x, capture_intermediates=True)
    inter = state["intermediates"]
    for pre, post in [("c1", "c1_act"), ("s2", "s2_act"), ("c5", "c5_act"), ("f6", "f6_act")]:
        np.testing.assert_allclose(inter[post]["__call__"][0], reference(np.asarray(inter[pre]["__call__"][0], np.float64)),
                                   rtol=1e-5, atol=1e-6)
    assert sum(p.size for p in jax.tree.leaves(variables["params"])) == 60_850
    assert models.get("lenet5_classic").activation == "scaled_tanh"


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="activation must be one of 'scaled_tanh', 'sigmoid', 'tanh', 'relu', got 'gelu'"):
        models.get("lenet5_classic", activation="gelu").init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))

"""Group/layer/instance norm and LRN modules: parameters, and equality with the functional ops / PyTorch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import norm as norm_ops
from jaxcnn.nn import GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm

X = jax.random.normal(jax.random.key(0), (2, 3, 4, 6)) * 3.0 + 0.5
PARAMS = {"scale": jnp.linspace(0.5, 2.0, 6), "bias": jnp.linspace(-1.0, 1.0, 6)}


@pytest.mark.parametrize(
    "module, functional",
    [
        (GroupNorm(num_groups=3), lambda x, p: norm_ops.group_norm(x, p, 3)),
        (LayerNorm(eps=1e-3), lambda x, p: norm_ops.layer_norm(x, p, 1e-3)),
        (InstanceNorm(), lambda x, p: norm_ops.instance_norm(x, p)),
    ],
)
def test_affine_norms_have_channel_params_and_equal_the_functional_op(module, functional):
    variables = module.init(jax.random.key(1), X)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"scale": (6,), "bias": (6,)}}
    np.testing.assert_allclose(module.apply({"params": PARAMS}, X), functional(X, PARAMS), rtol=1e-6, atol=1e-6)


def test_group_norm_matches_torch():
    torch = pytest.importorskip("torch")
    layer = torch.nn.GroupNorm(2, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.asarray(PARAMS["scale"])))
        layer.bias.copy_(torch.tensor(np.asarray(PARAMS["bias"])))
    expected = layer(torch.tensor(np.asarray(X)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    y = GroupNorm(num_groups=2).apply({"params": PARAMS}, X)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_use_affine_false_has_no_params():
    module = LayerNorm(use_affine=False)
    assert module.init(jax.random.key(1), X) == {}
    np.testing.assert_allclose(module.apply({}, X), norm_ops.layer_norm(X, None), rtol=1e-6)


def test_group_norm_error_names_groups_and_channels():
    with pytest.raises(ValueError, match="num_groups=4 must divide the 6 channels"):
        GroupNorm(num_groups=4).init(jax.random.key(1), X)


def test_local_response_norm_hand_computed():
    # One pixel, channels (1, 2, 3), size 3, alpha 0.3, beta 1, k 1:
    # c0: 1 / (1 + 0.1 * (1 + 4)) ; c1: 2 / (1 + 0.1 * 14) ; c2: 3 / (1 + 0.1 * 13).
    x = jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    y = LocalResponseNorm(size=3, alpha=0.3, beta=1.0, k=1.0).apply({}, x)
    np.testing.assert_allclose(y.ravel(), [1 / 1.5, 2 / 2.4, 3 / 2.3], rtol=1e-6)
    assert LocalResponseNorm.summary_kind == "norm"

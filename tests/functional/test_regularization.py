"""F.l2_regularizer and F.weight_mask, and make_optimizer(weight_decay_mask=) against torch's param groups."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcnn import functional as F
from jaxcnn import models
from jaxcnn.train import make_optimizer

PARAMS = {
    "conv1": {"kernel": jnp.arange(6.0).reshape(1, 1, 2, 3), "bias": jnp.array([1.0, -2.0, 3.0])},
    "bn1": {"scale": jnp.array([2.0, 2.0, 2.0]), "bias": jnp.array([0.5, 0.5, 0.5])},
    "fc": {"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.array([4.0, 0.0])},
}


def test_l2_regularizer_by_hand_with_and_without_mask():
    """Slide "Regularization": R(W) = sum_k sum_l W_kl^2 over the weights."""
    kernels = sum(v**2 for v in range(6)) + 1 + 1  # 55 + 2
    everything = kernels + (1 + 4 + 9) + 3 * 4 + 3 * 0.25 + 16
    assert F.l2_regularizer(PARAMS, F.weight_mask) == pytest.approx(kernels)
    assert F.l2_regularizer(PARAMS, F.weight_mask(PARAMS)) == pytest.approx(kernels)
    assert F.l2_regularizer(PARAMS) == pytest.approx(everything)
    mask = F.weight_mask(PARAMS)
    assert mask == {"conv1": {"kernel": True, "bias": False}, "bn1": {"scale": False, "bias": False},
                    "fc": {"kernel": True, "bias": False}}
    # Gradient: 2W on the selected leaves, 0 elsewhere.
    grads = jax.grad(lambda p: F.l2_regularizer(p, F.weight_mask))(PARAMS)
    np.testing.assert_array_equal(grads["conv1"]["kernel"], 2 * PARAMS["conv1"]["kernel"])
    np.testing.assert_array_equal(grads["bn1"]["scale"], 0)
    assert jax.jit(lambda p: F.l2_regularizer(p, F.weight_mask))(PARAMS) == pytest.approx(kernels)


def test_weight_mask_of_a_model_selects_exactly_the_kernels():
    variables = jax.eval_shape(models.get("resnet20").init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    mask = F.weight_mask(variables["params"])
    flat = jax.tree_util.tree_flatten_with_path(mask)[0]
    kernels = [m for path, m in flat if path[-1].key == "kernel"]
    assert all(kernels) and len(kernels) == 19 + 1  # 19 convs + the fc
    assert not any(m for path, m in flat if path[-1].key != "kernel")


def test_bad_masks_raise():
    with pytest.raises(ValueError, match="structure of params"):
        F.l2_regularizer(PARAMS, {"conv1": True})
    with pytest.raises(ValueError, match="Python bools"):
        F.l2_regularizer({"w": jnp.ones(2)}, {"w": 1})
    with pytest.raises(ValueError, match="floating"):
        F.l2_regularizer({"w": jnp.ones(2, jnp.int32)})


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_masked_weight_decay_matches_torch_param_groups(name):
    """weight_decay only on the kernels = PyTorch with a no-decay param group for the rest."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), PARAMS)
    grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), PARAMS)
    tx = make_optimizer(name, 0.1, momentum=0.9, weight_decay=0.05, weight_decay_mask=F.weight_mask)
    state = tx.init(params)
    ours = params
    for _ in range(3):
        updates, state = tx.update(grads, state, ours)
        ours = optax.apply_updates(ours, updates)

    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    tensors = {jax.tree_util.keystr(p): torch.tensor(np.asarray(v), requires_grad=True) for p, v in leaves}
    decay = [t for k, t in tensors.items() if k.endswith("['kernel']")]
    rest = [t for k, t in tensors.items() if not k.endswith("['kernel']")]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9) if name == "sgd" else torch.optim.AdamW(groups, lr=0.1)
    grad_leaves = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(grads)[0]}
    for _ in range(3):
        for k, t in tensors.items():
            t.grad = torch.tensor(np.asarray(grad_leaves[k]))
        opt.step()
    for p, v in jax.tree_util.tree_flatten_with_path(ours)[0]:
        np.testing.assert_allclose(v, tensors[jax.tree_util.keystr(p)].detach().numpy(), rtol=1e-5, atol=1e-5)
    # Unmasked decay moves the biases too: the mask matters.
    plain = make_optimizer(name, 0.1, momentum=0.9, weight_decay=0.05)
    updates, _ = plain.update(grads, plain.init(params), params)
    masked_updates, _ = tx.update(grads, tx.init(params), params)
    assert not np.allclose(updates["bn1"]["scale"], masked_updates["bn1"]["scale"])
    np.testing.assert_allclose(updates["conv1"]["kernel"], masked_updates["conv1"]["kernel"], rtol=1e-6)

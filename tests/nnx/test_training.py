"""jaxcnn.nnx training: train_step under nnx.jit, the mesh version against one device, checkpoints."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxcnn import nnx as jnnx
from jaxcnn.models import CifarResNet
from jaxcnn.nnx.models import LinenModel, to_linen_variables
from jaxcnn.train import create_train_state, make_mesh, shard_batch, train_step as linen_train_step


def tiny_resnet(seed=0):
    """CIFAR ResNet-8, 4 filters: batch norm in every block, cheap to compile."""
    return LinenModel(CifarResNet(depth=8, num_filters=4), input_shape=(8, 8, 3), rngs=nnx.Rngs(seed))


def batch(n=8, seed=1):
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(kx, (n, 8, 8, 3)), jax.random.randint(ky, (n,), 0, 10)


def flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_train_step_matches_the_linen_train_step():
    # Same initial variables, same SGD: the NNX step and jaxcnn.train.train_step
    # give the same metrics, parameters and running statistics.
    model = tiny_resnet()
    # Copies: the linen step donates its state's buffers.
    variables = jax.tree.map(jnp.copy, to_linen_variables(model))
    start = jax.tree.map(jnp.copy, variables)
    tx = optax.sgd(0.1, momentum=0.9)
    state = create_train_state(model.linen_module, tx, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
    state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    images, labels = batch()
    for _ in range(2):
        metrics = jnnx.train_step(model, optimizer, images, labels)
        state, linen_metrics = linen_train_step(state, images, labels)
        np.testing.assert_allclose(metrics["loss"], linen_metrics["loss"], rtol=1e-5)
    after = to_linen_variables(model)
    np.testing.assert_allclose(flat(after["params"]), flat(state.params), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(flat(after["batch_stats"]), flat(state.batch_stats), rtol=1e-4, atol=1e-6)
    assert int(optimizer.step[...]) == 2
    # The step changed the model: parameters moved and running means left zero.
    assert not np.allclose(flat(after["params"]), flat(start["params"]))
    assert np.abs(np.asarray(after["batch_stats"]["bn1"]["mean"])).max() > 0


def test_eval_step_uses_running_statistics_and_leaves_the_model_unchanged():
    model = tiny_resnet()
    images, labels = batch()
    before = to_linen_variables(model)
    metrics = jnnx.eval_step(model, images, labels)
    logits = model.linen_module.apply(before, images, train=False)
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], jnp.mean(jnp.argmax(logits, -1) == labels))
    assert model.training is False
    np.testing.assert_array_equal(flat(to_linen_variables(model)), flat(before))


def test_train_step_rejects_mismatched_labels():
    model = tiny_resnet()
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    images, labels = batch()
    with pytest.raises(ValueError, match="same batch size"):
        jnnx.train_step(model, optimizer, images, labels[:4])


def test_sharded_step_on_four_devices_equals_one_device():
    assert jax.device_count() >= 4
    images, labels = batch(8)
    single, multi = tiny_resnet(), tiny_resnet()
    tx = optax.adam(1e-2)
    opt_single = nnx.Optimizer(single, tx, wrt=nnx.Param)
    opt_multi = nnx.Optimizer(multi, tx, wrt=nnx.Param)
    start = to_linen_variables(single)

    mesh = make_mesh(4)
    jnnx.replicate(mesh, multi, opt_multi)
    metrics_multi = jnnx.sharded_train_step(multi, opt_multi, shard_batch(mesh, images), shard_batch(mesh, labels))
    metrics_single = jnnx.train_step(single, opt_single, images, labels)

    np.testing.assert_allclose(metrics_multi["loss"], metrics_single["loss"], rtol=1e-5)
    after_single, after_multi = to_linen_variables(single), to_linen_variables(multi)
    update_single = flat(after_single["params"]) - flat(start["params"])
    update_multi = flat(after_multi["params"]) - flat(start["params"])
    rel = jnp.linalg.norm(update_multi - update_single) / jnp.linalg.norm(update_single)
    assert rel < 1e-2, rel
    # Synchronised batch norm: every device's running statistics are those of the
    # global batch (a per-shard BN would give different means).
    np.testing.assert_allclose(
        flat(after_multi["batch_stats"]), flat(after_single["batch_stats"]), rtol=1e-4, atol=1e-6
    )
    leaf = after_multi["params"]["fc"]["kernel"]
    assert len(leaf.sharding.device_set) == 4
    eval_multi = jnnx.sharded_eval_step(multi, shard_batch(mesh, images), shard_batch(mesh, labels))
    np.testing.assert_allclose(eval_multi["loss"], jnnx.eval_step(single, images, labels)["loss"], rtol=1e-4)


def test_sharded_step_needs_a_replicated_model():
    model = tiny_resnet()
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    mesh = make_mesh(4)
    images, labels = batch(8)
    with pytest.raises(ValueError, match="replicate"):
        jnnx.sharded_train_step(model, optimizer, shard_batch(mesh, images), shard_batch(mesh, labels))
    with pytest.raises(ValueError, match="shard_batch"):
        jnnx.sharded_train_step(model, optimizer, images, labels)


def test_checkpoint_round_trip_resumes_the_same_run(tmp_path):
    images, labels = batch()
    tx = optax.adam(1e-2)
    model = tiny_resnet()
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    jnnx.train_step(model, optimizer, images, labels)
    with jnnx.NNXCheckpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, model, optimizer, {"epoch": 0})
    reference = jnnx.train_step(model, optimizer, images, labels)

    # A fresh model with other initial values, restored, continues identically.
    restored = tiny_resnet(seed=5)
    restored_opt = nnx.Optimizer(restored, tx, wrt=nnx.Param)
    with jnnx.NNXCheckpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.steps() == [1]
        meta = ckpt.restore_latest(restored, restored_opt)
    assert meta == {"epoch": 0, "step": 1}
    assert int(restored_opt.step[...]) == 1
    resumed = jnnx.train_step(restored, restored_opt, images, labels)
    np.testing.assert_allclose(resumed["loss"], reference["loss"], rtol=1e-6)
    np.testing.assert_allclose(flat(to_linen_variables(restored)), flat(to_linen_variables(model)), rtol=1e-6)
    with jnnx.NNXCheckpointer(tmp_path / "empty") as ckpt:
        assert ckpt.restore_latest(restored) is None

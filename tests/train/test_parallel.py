"""Data parallelism on the 4 forced CPU devices: pmap and jit + NamedSharding.

The spec (issue 4): on the same global batch, one update on 4 devices equals
one update on 1 device: the relative L2 difference of the parameter update is
below 1e-2 and of the batch-stat update below 1e-3. Norms, not elements: float
reordering flips ReLU kinks. A correct implementation measures ~1e-6; the
negative control (BatchNorm not synchronised) measures ~0.6, so the thresholds
separate the two.

The model is the zoo's CIFAR ResNet at its smallest depth (8 = 6n + 2, n = 1)
and width 4, on 8x8 images, to keep compilation short.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxcnn import models
from jaxcnn.models import resnet
from jaxcnn.train import parallel
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.parallel import (
    BATCH_AXIS,
    pmap_eval_step,
    pmap_train_step,
    replicate,
    shard,
    synchronize_batch_norm,
    unreplicate,
)
from jaxcnn.train.sharded import (
    partitionable,
    make_mesh,
    replicate_state,
    shard_batch,
    sharded_eval_step,
    sharded_train_step,
)
from jaxcnn.train.state import create_train_state
from jaxcnn.train.steps import eval_step, train_step

DEVICES = 4
GLOBAL_BATCH = 16


def _model(bn_axis_name=None):
    return resnet.CifarResNet(depth=8, num_filters=4, num_classes=10, bn_axis_name=bn_axis_name)


def _copy(state):
    return jax.tree.map(jnp.array, state)


def _relative_l2(got, expected) -> float:
    """||got - expected|| / ||expected|| over all leaves of two pytrees."""
    got, expected = jax.tree.leaves(got), jax.tree.leaves(expected)
    diff = sum(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2) for a, b in zip(got, expected))
    norm = sum(np.sum(np.asarray(b, np.float64) ** 2) for b in expected)
    return float(np.sqrt(diff / norm))


def _update(new, old):
    return jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), new, old)


@pytest.fixture(scope="module")
def setup():
    assert jax.local_device_count() == DEVICES, "tests/conftest.py forces 4 CPU devices"
    images = jax.random.normal(jax.random.PRNGKey(1), (GLOBAL_BATCH, 8, 8, 3), jnp.float32)
    # Different classes on different shards, so per-shard statistics differ.
    labels = jnp.repeat(jnp.arange(DEVICES, dtype=jnp.int32), GLOBAL_BATCH // DEVICES)
    images = images + labels[:, None, None, None].astype(jnp.float32)
    tx = make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=1e-4)
    state0 = create_train_state(_model(), tx, jax.random.PRNGKey(0), images[:1])
    single, single_metrics = train_step(_copy(state0), images, labels)
    return dict(state0=state0, images=images, labels=labels, single=single,
                single_metrics=single_metrics)


@pytest.fixture(scope="module")
def pmap_result(setup):
    # The state exactly as create_train_state builds it (bn_axis_name=None): pmap_train_step
    # synchronises batch norm by itself.
    replicated, metrics = pmap_train_step(
        replicate(_copy(setup["state0"])), shard(setup["images"]), shard(setup["labels"])
    )
    return replicated, metrics


@pytest.fixture(scope="module")
def sharded_result(setup):
    mesh = make_mesh()
    state0 = _copy(setup["state0"]).replace(apply_fn=partitionable(_model()).apply)
    state, metrics = sharded_train_step(
        replicate_state(mesh, state0),
        shard_batch(mesh, setup["images"]),
        shard_batch(mesh, setup["labels"]),
    )
    return mesh, state, metrics


def _assert_equivalent(setup, state, metrics):
    state0, single = setup["state0"], setup["single"]
    params_gap = _relative_l2(_update(state.params, state0.params), _update(single.params, state0.params))
    stats_gap = _relative_l2(
        _update(state.batch_stats, state0.batch_stats), _update(single.batch_stats, state0.batch_stats)
    )
    assert params_gap < 1e-2, params_gap
    assert stats_gap < 1e-3, stats_gap
    assert _relative_l2(state.batch_stats, single.batch_stats) < 1e-3
    assert int(np.asarray(state.step).reshape(-1)[0]) == 1
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(
            np.asarray(metrics[name]).reshape(-1), float(setup["single_metrics"][name]), rtol=1e-5
        )


# ------------------------------------------------------------------------ pmap
def test_pmap_step_on_4_devices_equals_the_1_device_step(setup, pmap_result):
    replicated, metrics = pmap_result
    assert metrics["loss"].shape == (DEVICES,)
    # Every replica holds the same parameters after the pmean-averaged update.
    for leaf in jax.tree.leaves(replicated.params):
        np.testing.assert_array_equal(np.asarray(leaf), np.broadcast_to(np.asarray(leaf)[0], leaf.shape))
    _assert_equivalent(setup, unreplicate(replicated), metrics)


def test_pmap_step_returns_the_callers_apply_fn_and_does_not_retrace(setup, pmap_result):
    replicated, _ = pmap_result
    assert replicated.apply_fn is setup["state0"].apply_fn  # one-device eval/train still work
    # The synchronised clone is cached: a second step hits pmap's cache instead of retracing.
    # (The second call may compile once more: its state comes out of pmap, not replicate().)
    second, _ = pmap_train_step(_copy(replicated), shard(setup["images"]), shard(setup["labels"]))
    compiles = []

    def listener(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        again, _ = pmap_train_step(second, shard(setup["images"]), shard(setup["labels"]))
        jax.block_until_ready(again)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    assert int(np.asarray(again.step)[0]) == 3


def test_pmap_without_synchronised_batch_norm_fails_the_equivalence(setup):
    """Negative control: the same check must catch per-device batch statistics (the raw pmap,
    bypassing the synchronisation that pmap_train_step applies)."""
    replicated, _ = parallel._pmap_train_step(
        replicate(_copy(setup["state0"])), shard(setup["images"]), shard(setup["labels"])
    )
    state0, single = setup["state0"], setup["single"]
    gap = _relative_l2(
        _update(unreplicate(replicated).params, state0.params), _update(single.params, state0.params)
    )
    assert gap > 0.1, gap


def test_pmap_eval_step_equals_eval_step(setup, pmap_result):
    replicated, _ = pmap_result
    expected = eval_step(setup["single"], setup["images"], setup["labels"])
    got = pmap_eval_step(replicated, shard(setup["images"]), shard(setup["labels"]))
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(np.asarray(got[name]), float(expected[name]), rtol=1e-5)


def test_replicate_unreplicate_round_trip(setup):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.asarray(3, jnp.int32)}
    replicated = replicate(tree)
    assert replicated["w"].shape == (DEVICES, 2, 3) and replicated["step"].shape == (DEVICES,)
    assert {shard.device for shard in replicated["w"].addressable_shards} == set(jax.local_devices())
    back = unreplicate(replicated)
    np.testing.assert_array_equal(back["w"], tree["w"])
    assert back["step"].shape == () and int(back["step"]) == 3
    assert replicate(tree, num_devices=2)["w"].shape == (2, 2, 3)


def test_shard_splits_the_batch_axis():
    x = np.arange(16 * 3).reshape(16, 3)
    sharded = shard(x)
    assert sharded.shape == (DEVICES, 4, 3)
    np.testing.assert_array_equal(sharded[1], x[4:8])
    assert shard(x, num_devices=2).shape == (2, 8, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shard(np.zeros((10, 3))), "batch size 10 is not divisible by the number of devices 4"),
        (lambda: shard(np.zeros(8), num_devices=5), r"num_devices must be an int in \[1, 4\]"),
        (lambda: replicate({"w": 1.0}, num_devices=0), r"num_devices must be an int in \[1, 4\]"),
        (lambda: unreplicate({"w": jnp.asarray(1.0)}), "unreplicate expects leaves with a leading device axis"),
    ],
)
def test_pmap_helpers_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_pmap_step_rejects_unsharded_or_mismatched_batches(setup, pmap_result):
    replicated, _ = pmap_result
    with pytest.raises(ValueError, match=r"labels must be sharded to \(devices, per_device_batch, \.\.\.\) with shard\(\)"):
        pmap_train_step(replicated, shard(setup["images"]), setup["labels"])
    with pytest.raises(ValueError, match="replicated on 4 devices but images are sharded over 2"):
        pmap_eval_step(replicated, shard(setup["images"], 2), shard(setup["labels"], 2))


# --------------------------------------------------------------- jit + sharding
def test_sharded_step_on_4_devices_equals_the_1_device_step(setup, sharded_result):
    mesh, state, metrics = sharded_result
    assert metrics["loss"].shape == ()
    # The new state stays replicated on the mesh (the declared out_shardings).
    for leaf in jax.tree.leaves(state):
        assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec()), leaf.ndim)
    _assert_equivalent(setup, state, metrics)


def test_sharded_eval_step_equals_eval_step(setup, sharded_result):
    mesh, state, _ = sharded_result
    expected = eval_step(setup["single"], setup["images"], setup["labels"])
    got = sharded_eval_step(state, shard_batch(mesh, setup["images"]), shard_batch(mesh, setup["labels"]))
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(float(got[name]), float(expected[name]), rtol=1e-5)


def test_sharded_step_rejects_a_state_not_on_the_mesh(setup):
    mesh = make_mesh()
    with pytest.raises(ValueError, match=r"state must be replicated on the batch's mesh \(4 devices\) with replicate_state"):
        sharded_eval_step(setup["state0"], shard_batch(mesh, setup["images"]), shard_batch(mesh, setup["labels"]))


def test_shard_batch_places_rows_on_devices():
    mesh = make_mesh()
    x = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
    placed = shard_batch(mesh, x)
    assert placed.shape == (8, 2)
    rows = {shard.device: np.asarray(shard.data) for shard in placed.addressable_shards}
    np.testing.assert_array_equal(rows[jax.devices()[1]], x[2:4])
    assert make_mesh(2).devices.size == 2


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shard_batch(make_mesh(), np.zeros((6, 2))), "batch size 6 is not divisible by the number of devices 4"),
        (lambda: make_mesh(5), r"num_devices must be an int in \[1, 4\]"),
        (lambda: sharded_train_step(None, np.zeros((4, 2)), np.zeros(4, np.int32)),
         r"images must be placed on a mesh with shard_batch\(mesh, images\)"),
    ],
)
def test_sharding_helpers_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------- checkpoints from many devices
def test_checkpoints_saved_from_pmap_and_sharded_restore_on_one_device(
    setup, pmap_result, sharded_result, tmp_path
):
    """Both multi-device states save; restoring into a 1-device template gives 1-device arrays."""
    template = setup["state0"]
    one_device = jax.devices()[0]
    expected = eval_step(setup["single"], setup["images"], setup["labels"])
    pmap_state = unreplicate(pmap_result[0]).replace(apply_fn=template.apply_fn)
    for name, state in (("pmap", pmap_state), ("sharded", sharded_result[1])):
        with Checkpointer(tmp_path / name) as checkpointer:
            checkpointer.save(1, state, {"data_seed": 7})
        with Checkpointer(tmp_path / name) as checkpointer:
            restored, metadata = checkpointer.restore_latest(template)
        assert metadata == {"data_seed": 7, "epoch": 1, "step": 1}
        for leaf in jax.tree.leaves(restored):
            assert leaf.sharding.device_set == {one_device}
        jax.tree.map(np.testing.assert_array_equal, restored.params, jax.device_get(state.params))
        got = eval_step(restored, setup["images"], setup["labels"])
        np.testing.assert_allclose(float(got["loss"]), float(expected["loss"]), rtol=1e-5)


def test_sharded_step_keeps_convolutions_partitionable(setup):
    # XLA cannot partition the oneDNN custom call: traced with it, every device would
    # all-gather the whole batch and convolve all of it. The sharded executor runs the
    # model cloned by partitionable() (conv_impl "auto" -> "auto_xla"); the one-device step
    # and pmap (per-device shapes) keep oneDNN.
    from jaxcnn import native
    from jaxcnn.train import executors, sharded
    from jaxcnn.train.config import TrainConfig

    model = _model()
    assert model.conv_impl == "auto" and partitionable(model).conv_impl == "auto_xla"
    assert partitionable(_model()) is partitionable(model)  # one clone: a warm jit cache
    executor = executors.make_executor(TrainConfig(devices=DEVICES, batch_size=GLOBAL_BATCH,
                                                   eval_batch_size=GLOBAL_BATCH), model)
    assert isinstance(executor, executors.Sharded)
    placed = executor.place(_copy(setup["state0"]))
    assert placed.apply_fn == partitionable(model).apply
    assert executor.to_host(placed).apply_fn == model.apply
    mesh = executor.mesh
    args = (placed, shard_batch(mesh, setup["images"]), shard_batch(mesh, setup["labels"]))
    for step in sharded._compiled(mesh):
        hlo = step.lower(*args).compile().as_text()
        assert "jaxcnn_onednn" not in hlo
        assert "all-gather(" not in hlo
    single = train_step.lower(setup["state0"], setup["images"], setup["labels"]).compile().as_text()
    assert ("jaxcnn_onednn_conv_bwd_weights" in single) == native.available()


# ------------------------------------------------------- batch norm by construction
def test_every_zoo_model_with_batch_norm_can_be_synchronised():
    """What pmap_train_step relies on: a model with batch statistics has a bn_axis_name field."""
    with_batch_norm = []
    for name in models.names():
        model = models.get(name, num_classes=10)
        sample = jnp.zeros((1, *models.input_shape(name)), jnp.float32)
        variables = jax.eval_shape(lambda x, model=model: model.init(jax.random.PRNGKey(0), x), sample)
        if variables.get("batch_stats"):
            with_batch_norm.append(name)
            assert getattr(model, "bn_axis_name", "missing") is None, name
    assert "resnet20" in with_batch_norm and "resnet50" in with_batch_norm


def test_synchronize_batch_norm_clones_only_when_needed(setup):
    state = setup["state0"]
    synced = synchronize_batch_norm(state)
    assert synced.apply_fn.__self__.bn_axis_name == BATCH_AXIS
    assert synchronize_batch_norm(synced).apply_fn is synced.apply_fn
    assert synchronize_batch_norm(state).apply_fn is synced.apply_fn  # cached clone
    other = state.replace(apply_fn=_model("devices").apply)
    with pytest.raises(ValueError, match="bn_axis_name='devices', but pmap's axis is 'batch'"):
        synchronize_batch_norm(other)


def test_pmap_refuses_a_model_whose_batch_norm_cannot_be_synchronised():
    import flax.linen as nn

    class NoAxisField(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.BatchNorm(use_running_average=not train)(x)
            return nn.Dense(4)(x.reshape((x.shape[0], -1)))

    images = jnp.ones((DEVICES * 2, 4, 4, 1), jnp.float32)
    labels = jnp.zeros((DEVICES * 2,), jnp.int32)
    state = create_train_state(NoAxisField(), make_optimizer("sgd", 0.1), jax.random.PRNGKey(0), images[:1])
    with pytest.raises(ValueError, match="NoAxisField.* has batch norm but no bn_axis_name field"):
        pmap_train_step(replicate(state), shard(images), shard(labels))

"""Checkpointer: round trip, exact continuation, keep-last-N, corrupt and half-written checkpoints.

(Checkpoints saved from pmap and from a device mesh and restored on one device
are tested in test_parallel.py, next to the multi-device states they need.)
"""
import gc
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.train.checkpoint import CheckpointWarning, Checkpointer
from jaxcnn.train.optim import Plateau, make_optimizer
from jaxcnn.train.parallel import replicate
from jaxcnn.train.state import create_train_state
from jaxcnn.train.steps import train_step


class SmallNet(nn.Module):
    features: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(5)(x.reshape((x.shape[0], -1)))
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.Dropout(0.25, deterministic=not train)(nn.relu(x))
        return nn.Dense(self.features)(x)


IMAGES = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 1), jnp.float32)
LABELS = jnp.arange(8, dtype=jnp.int32) % 3
PLATEAU = Plateau(factor=0.5, patience=1)


# One optimizer object for every state: train_step's jit cache is keyed on it.
TX = make_optimizer("adam", 1e-2, weight_decay=1e-4, plateau=PLATEAU)


def _fresh_state(features=3):
    return create_train_state(SmallNet(features), TX, jax.random.PRNGKey(0), IMAGES[:1])


@pytest.fixture(scope="module")
def trained():
    """A state whose every part moved: params, batch_stats, Adam moments, plateau scale, step."""
    state = _fresh_state()
    for _ in range(2):
        state, _ = train_step(state, IMAGES, LABELS)
    state = PLATEAU.observe(PLATEAU.observe(state, 0.5), 0.4)  # one bad epoch -> scale 0.5
    return state


def _assert_same_arrays(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_restores_every_array_and_the_metadata(trained, tmp_path):
    metadata = {"data_seed": 5, "position": {"epoch": 2, "batch": 0, "history": [{"test_accuracy": 0.5}]}}
    with Checkpointer(tmp_path, max_to_keep=3) as checkpointer:
        assert checkpointer.save(2, trained, metadata) == 2
    template = _fresh_state()
    with Checkpointer(tmp_path) as checkpointer:
        restored, restored_metadata = checkpointer.restore_latest(template)
    assert restored_metadata == {**metadata, "epoch": 2, "step": 2}
    for field in ("params", "batch_stats", "opt_state", "step", "dropout_key"):
        _assert_same_arrays(getattr(restored, field), getattr(trained, field))
    assert restored.apply_fn == template.apply_fn and restored.tx is template.tx


def test_training_continues_exactly_from_a_restored_checkpoint(trained, tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, trained)
        restored, _ = checkpointer.restore_latest(_fresh_state())
    continued, continued_metrics = train_step(jax.tree.map(jnp.array, trained), IMAGES, LABELS)
    resumed, resumed_metrics = train_step(restored, IMAGES, LABELS)
    _assert_same_arrays(resumed.params, continued.params)
    _assert_same_arrays(resumed.opt_state, continued.opt_state)
    _assert_same_arrays(resumed_metrics, continued_metrics)


def test_keeps_the_last_n_checkpoints(trained, tmp_path):
    with Checkpointer(tmp_path, max_to_keep=2) as checkpointer:
        for step in range(1, 5):
            checkpointer.save(step, trained.replace(step=jnp.asarray(step, jnp.int32)))
        assert checkpointer.steps() == [3, 4]
        restored, metadata = checkpointer.restore_latest(_fresh_state())
    assert int(restored.step) == 4 and metadata["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("_")) == ["3", "4"]


def test_saving_the_same_step_twice_replaces_the_checkpoint(trained, tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, trained, {"where": "mid-epoch"})
        checkpointer.save(2, trained, {"where": "end of epoch"})
        assert checkpointer.steps() == [2]
        _, metadata = checkpointer.restore_latest(_fresh_state())
    assert metadata["where"] == "end of epoch" and metadata["epoch"] == 2


# When one array read of a restore fails, Orbax (0.12.8) abandons the other
# pending reads; their coroutines raise "Exception ignored in ..." when they are
# garbage-collected. Collect what can be collected inside the test that caused
# it, so pytest does not pin the Orbax-internal noise on an unrelated later test
# (a few survive until interpreter exit, where Python prints them to stderr).
orbax_failed_reads = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _collect_abandoned_reads():
    gc.collect()


def _corrupt(step_dir):
    """Overwrite every array file of a checkpoint with garbage of the same size."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.name != "commit_success.txt"]
    assert files
    for path in files:
        path.write_bytes(b"\x00garbage" * max(1, path.stat().st_size // 8))


@orbax_failed_reads
def test_a_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(trained, tmp_path):
    older = trained.replace(step=jnp.asarray(10, jnp.int32))
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, older, {"data_seed": 1})
        checkpointer.save(2, trained.replace(step=jnp.asarray(20, jnp.int32)), {"data_seed": 1})
    _corrupt(tmp_path / "20")
    with Checkpointer(tmp_path) as checkpointer:
        with pytest.warns(CheckpointWarning, match=r"checkpoint .*20 could not be restored .*trying the previous one"):
            restored, metadata = checkpointer.restore_latest(_fresh_state())
    assert metadata["epoch"] == 1 and int(restored.step) == 10
    _assert_same_arrays(restored.params, older.params)
    _collect_abandoned_reads()


@orbax_failed_reads
def test_no_readable_checkpoint_raises(trained, tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, trained)
    _corrupt(tmp_path / "2")
    with Checkpointer(tmp_path) as checkpointer:
        with pytest.warns(CheckpointWarning):
            with pytest.raises(ValueError, match=r"no checkpoint in .* could be restored .*step 2: "):
                checkpointer.restore_latest(_fresh_state())


@orbax_failed_reads
def test_a_template_of_another_model_is_rejected(trained, tmp_path):
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, trained)
        with pytest.warns(CheckpointWarning):
            with pytest.raises(ValueError, match=r"could be restored into the given template state: step 2: .*shape"):
                checkpointer.restore_latest(_fresh_state(features=7))
    _collect_abandoned_reads()


def test_a_half_written_checkpoint_is_ignored(trained, tmp_path):
    """A process killed while saving leaves only Orbax's temporary directory behind."""
    with Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, trained)
    half_written = tmp_path / "9.orbax-checkpoint-tmp-1234" / "state"
    half_written.mkdir(parents=True)
    (half_written / "manifest.ocdbt").write_bytes(b"partial")
    with Checkpointer(tmp_path) as checkpointer:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)
            restored, _ = checkpointer.restore_latest(_fresh_state())
        assert checkpointer.steps() == [2]
    assert int(restored.step) == 2


def test_empty_directory_restores_nothing(tmp_path):
    with Checkpointer(tmp_path / "new") as checkpointer:
        assert checkpointer.restore_latest(_fresh_state()) is None
        assert checkpointer.steps() == []


@pytest.mark.parametrize(
    "save_args, message",
    [
        (lambda state: (0, replicate(state)),
         r"looks like a pmap-replicated state. Pass jaxcnn.train.unreplicate\(state\)"),
        (lambda state: (0, state, {"seed": np.int64(3)}), "checkpoint metadata must be JSON-serialisable"),
    ],
)
def test_save_rejects_bad_arguments(trained, tmp_path, save_args, message):
    with Checkpointer(tmp_path) as checkpointer:
        with pytest.raises(ValueError, match=message):
            checkpointer.save(*save_args(trained))
        assert checkpointer.steps() == []


def test_max_to_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_to_keep must be an int >= 1, got 0"):
        Checkpointer(tmp_path, max_to_keep=0)

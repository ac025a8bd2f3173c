"""A small run end to end: --recompute-batch-stats (before/after, saved in the final checkpoint),
test_top5_accuracy in metrics.jsonl, and weight_decay_on reaching the optimizer."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.cli import main
from jaxcnn.train import metrics as metrics_io
from jaxcnn.train.config import TrainConfig


def small_bn_config(**changes) -> TrainConfig:
    # ResNet-20 (batch norm) on 256 of the 8x8 digits: 4 steps of 64, one epoch.
    values = dict(model="resnet20", dataset="digits", epochs=1, batch_size=64, eval_batch_size=500,
                  train_examples=256, optimizer="sgd", lr=0.05, weight_decay=5e-4,
                  recompute_batch_stats=3, checkpoint_every_steps=0)
    values.update(changes)
    return TrainConfig(**values)


def test_recompute_batch_stats_after_training_reports_saves_and_top5(tmp_path):
    from jaxcnn.train.checkpoint import Checkpointer
    from jaxcnn.train.loop import build_state, evaluate_workdir, train_and_evaluate

    config = small_bn_config()
    final = train_and_evaluate(config, tmp_path, progress=False)
    record = metrics_io.read_metrics(tmp_path)[-1]
    report = json.loads((tmp_path / "batch_stats_recomputed.json").read_text())
    assert report["batches"] == 3
    assert report["before"] == {"loss": record["test_loss"], "accuracy": record["test_accuracy"]}
    assert final["recomputed_test_accuracy"] == report["after"]["accuracy"]
    # The final checkpoint holds the recomputed statistics: evaluating it gives the "after" numbers.
    evaluated = evaluate_workdir(tmp_path)
    assert evaluated["test_accuracy"] == pytest.approx(report["after"]["accuracy"], abs=1e-6)
    assert evaluated["step"] == 4
    # Top-5 over the test split, against NumPy on the restored model's logits.
    template, _ = build_state(config, 10, (8, 8, 1), 4)
    with Checkpointer(tmp_path / "checkpoints") as checkpointer:
        state, _ = checkpointer.restore_latest(template)
    test = data.load("digits", "test")
    mean, std = data.stats_for("digits")  # what the loop normalises digits with
    logits = np.asarray(state.apply_fn(state.variables(), data.normalize(test.images, mean, std), train=False))
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    expected_top5 = np.mean([label in row for label, row in zip(test.labels, top5)])
    assert report["after"]["top5_accuracy"] == pytest.approx(expected_top5, abs=1e-6)
    assert record["test_accuracy"] <= record["test_top5_accuracy"] <= 1


def test_weight_decay_on_chooses_the_decayed_parameters():
    from jaxcnn.train.loop import build_state

    updates = {}
    for target in ("weights", "all"):
        state, _ = build_state(small_bn_config(weight_decay_on=target, model="lenet5"), 10, (8, 8, 1), 8)
        params = jax.tree.map(jnp.ones_like, state.params)  # non-zero biases, so their decay shows
        grads_zero = jax.tree.map(jnp.zeros_like, params)
        updates[target], _ = state.tx.update(grads_zero, state.tx.init(params), params)
    # With a zero gradient only the decay moves parameters (sgd, first step: -lr * wd * w):
    # kernels in both, biases only with "all".
    np.testing.assert_allclose(updates["weights"]["conv1"]["kernel"], -0.05 * 5e-4, rtol=1e-5)
    np.testing.assert_array_equal(updates["weights"]["conv1"]["bias"], 0)
    np.testing.assert_allclose(updates["all"]["conv1"]["bias"], -0.05 * 5e-4, rtol=1e-5)
    np.testing.assert_allclose(updates["all"]["conv1"]["kernel"], updates["weights"]["conv1"]["kernel"])


def test_config_and_cli_options(capsys):
    assert TrainConfig().weight_decay_on == "weights" and TrainConfig().recompute_batch_stats == 0
    with pytest.raises(ValueError, match="unknown weight_decay_on 'bias'; choose one of: weights, all"):
        TrainConfig(weight_decay_on="bias")
    with pytest.raises(ValueError, match="recompute_batch_stats must be >= 0"):
        TrainConfig(recompute_batch_stats=-1)
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--weight-decay-on {weights,all}" in out and "default: weights" in out
    assert "--recompute-batch-stats BATCHES" in out and "population estimates" in out

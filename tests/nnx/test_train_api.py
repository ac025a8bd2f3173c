"""``jaxcnn train --api nnx``: the main job's loop with the NNX front end: same metrics, resume works.

LeNet-5 on scikit-learn's 8x8 digits, batch 64 (22 steps per epoch), as in
tests/train/test_loop.py. LeNet-5 has no dropout, so the NNX run computes
what the linen run computes, and a resumed NNX run what an uninterrupted one does.
"""
import pytest

from jaxcnn.cli import main
from jaxcnn.train import metrics as metrics_io
from jaxcnn.train.config import TrainConfig
from jaxcnn.train.loop import train_and_evaluate

LOSS_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def digits_config(**changes) -> TrainConfig:
    values = dict(dataset="digits", epochs=2, batch_size=64, eval_batch_size=500,
                  checkpoint_every_steps=10, keep_checkpoints=3)
    values.update(changes)
    return TrainConfig(**values)


def test_nnx_run_resumed_from_the_cli_matches_the_linen_run(tmp_path, capsys, monkeypatch):
    linen_final = train_and_evaluate(digits_config(), tmp_path / "linen", progress=False)
    linen_records = metrics_io.read_metrics(tmp_path / "linen")

    # The NNX run is interrupted (Ctrl-C) at its 31st step: the step-30 checkpoint remains.
    import jaxcnn.train.nnx_executor as executor

    real_step, calls = executor.train_step, []

    def step_or_interrupt(*args):
        calls.append(1)
        if len(calls) == 31:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(executor, "train_step", step_or_interrupt)
    workdir = tmp_path / "nnx"
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(digits_config(api="nnx"), workdir, progress=False)
    assert "NNX front end, 1 device" in capsys.readouterr().out
    monkeypatch.setattr(executor, "train_step", real_step)
    # Resume through the command line.
    assert main(["train", "--workdir", str(workdir), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming at epoch 2, batch 8 (step 30)" in out and "NNX front end" in out
    records = metrics_io.read_metrics(workdir)
    assert [r["epoch"] for r in records] == [1, 2]
    for got, want in zip(records, linen_records):
        for key in LOSS_KEYS:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), (got["epoch"], key)
    assert records[-1]["test_accuracy"] == pytest.approx(linen_final["test_accuracy"], abs=1e-6)
    assert records[-1]["test_accuracy"] > 0.6
    assert TrainConfig.load(workdir).api == "nnx"


def test_api_is_validated():
    with pytest.raises(ValueError, match="api"):
        TrainConfig(api="haiku")
    with pytest.raises(ValueError, match="parallel 'sharded'"):
        train_and_evaluate(digits_config(api="nnx", devices=2, parallel="pmap"), "/nonexistent/x",
                           progress=False)

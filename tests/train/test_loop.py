"""TrainConfig, metrics files and the training loop (exact resume, kill -9, divergence).

The loop runs LeNet-5 on scikit-learn's 8x8 digits (1,442 train / 355 test
images): 22 steps of 64 per epoch, a second or so per run after compilation.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import numpy as np
import pytest

from jaxcnn.train import metrics as metrics_io
from jaxcnn.train.config import TrainConfig

LOSS_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


# --------------------------------------------------------------------- config
def test_default_config_is_the_main_job():
    config = TrainConfig()
    assert (config.model, config.dataset, config.batch_size) == ("lenet5", "mnist", 128)
    assert (config.optimizer, config.lr, config.schedule) == ("adam", 1e-3, "cosine")
    assert config.devices == "auto" and config.data_dir is None
    # "auto" is one device on the CPU (several are only simulated there), every device elsewhere.
    import jax

    expected = 1 if jax.default_backend() == "cpu" else jax.local_device_count()
    assert config.resolved().devices == expected
    assert config.replace(devices="all").resolved().devices == jax.local_device_count()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"eval_batch_size": -1}, "eval_batch_size must be >= 1"),
        ({"lr": 0.0}, r"lr must be in \(0"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"momentum": 1.0}, r"momentum must be in \[0.0, 1.0\)"),
        ({"weight_decay": -1e-4}, "weight_decay must be in"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; choose one of: sgd, adam"),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        ({"parallel": "dp"}, "unknown parallel 'dp'; choose one of: pmap, sharded"),
        ({"schedule": "step"}, 'schedule "step" needs decay_epochs'),
        ({"schedule": "step", "decay_epochs": (5, 3)}, "strictly increasing"),
        ({"schedule": "step", "decay_epochs": (3, 8)}, r"decay_epochs must be < epochs \(8\)"),
        ({"decay_epochs": (3,)}, 'decay_epochs applies to schedule "step" only'),
        ({"schedule": "warmup_cosine"}, "needs warmup_epochs > 0"),
        ({"warmup_epochs": 8}, r"warmup_epochs \(8\) must be < epochs \(8\)"),
        ({"plateau_factor": 1.0}, "plateau_factor must be in"),
        ({"plateau_patience": 0}, "plateau_patience must be >= 1"),
        ({"devices": 3}, r"must be divisible by devices \(3\)"),
        ({"devices": 0}, "devices must be >= 1"),
        ({"optimizer": "sgd", "nesterov": True, "momentum": 0.0},
         "nesterov=True needs momentum > 0"),
        ({"augment": "yes"}, "augment must be true, false or null"),
        ({"train_examples": 0}, "train_examples must be >= 1"),
        ({"model_kwargs": {"num_classes": 3}}, "must not set num_classes"),
        ({"checkpoint_every_steps": -1}, "checkpoint_every_steps must be >= 0"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_config_check_names_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'lenet6'; choose one of: .*lenet5"):
        TrainConfig(model="lenet6").check_names()
    with pytest.raises(ValueError, match=r"unknown dataset 'svhn'; choose one of: .*mnist"):
        TrainConfig(dataset="svhn").check_names()


def test_config_json_round_trip(tmp_path):
    config = TrainConfig(schedule="step", decay_epochs=(2, 5.5), epochs=7, augment=True,
                         model_kwargs={"dropout_rate": 0.3}, data_dir="somewhere")
    path = config.save(tmp_path / "run")
    assert json.loads(path.read_text())["decay_epochs"] == [2, 5.5]
    assert TrainConfig.load(tmp_path / "run") == config


def test_config_load_reports_unknown_keys_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json in"):
        TrainConfig.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3, "learning_rate": 0.1}))
    with pytest.raises(ValueError, match=r"unknown config keys \['learning_rate'\]"):
        TrainConfig.load(tmp_path)


# -------------------------------------------------------------------- metrics
def _record(epoch, loss=0.5):
    return {"epoch": epoch, "train_loss": loss, "train_accuracy": 0.8, "test_loss": loss / 2,
            "test_accuracy": 0.9, "epoch_seconds": 1.5, "images_per_second": 1000.0}


def test_metrics_file_round_trip_and_key_check(tmp_path):
    records = [_record(1, 0.5), _record(2, 0.25)]
    metrics_io.write_metrics(tmp_path, records)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert metrics_io.read_metrics(tmp_path) == records
    with pytest.raises(ValueError, match=r"missing \['epoch_seconds'\], unexpected \['lr'\]"):
        bad = dict(_record(3), lr=0.1)
        del bad["epoch_seconds"]
        metrics_io.write_metrics(tmp_path, [bad])
    assert metrics_io.read_metrics(tmp_path) == records  # a failed write leaves the file


def test_format_record_is_one_line_with_percentages():
    line = metrics_io.format_record(_record(2), total_epochs=8)
    assert line == ("epoch 2/8: train loss 0.5000 acc 80.00% | test loss 0.2500 acc 90.00% | "
                    "1.5s, 1000 img/s")


def test_plot_curves_writes_a_png(tmp_path):
    path = metrics_io.plot_curves(tmp_path, [_record(e, 1.0 / e) for e in range(1, 5)])
    data = path.read_bytes()
    assert path.name == "curves.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1000, 400)


# ----------------------------------------------------------------------- loop
# LeNet-5 on digits: 1,442 // 64 = 22 steps per epoch; checkpoints every 10 steps
# and at epoch ends: 10, 20, 22, 30, 40, 44.
STEPS_PER_EPOCH = 22


def digits_config(**changes) -> TrainConfig:
    values = dict(dataset="digits", epochs=2, batch_size=64, eval_batch_size=500,
                  checkpoint_every_steps=10, keep_checkpoints=3)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-epoch run: (workdir, returned record, metrics.jsonl records)."""
    from jaxcnn.train.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp("reference")
    final = train_and_evaluate(digits_config(), workdir, progress=False)
    return workdir, final, metrics_io.read_metrics(workdir)


def assert_same_metrics(records, expected):
    assert [r["epoch"] for r in records] == [r["epoch"] for r in expected]
    for got, want in zip(records, expected):
        for key in LOSS_KEYS:
            assert got[key] == pytest.approx(want[key], abs=1e-6, rel=0), (got["epoch"], key)


def interrupt_at_step(monkeypatch, step: int, signal_number: int | None = None):
    """Make the `step`-th call of the jit train step raise KeyboardInterrupt (Ctrl-C)."""
    import jaxcnn.train.steps as steps

    real_step, calls = steps.train_step, []

    def step_or_interrupt(state, images, labels):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real_step(state, images, labels)

    monkeypatch.setattr(steps, "train_step", step_or_interrupt)
    return monkeypatch


def test_run_writes_metrics_curves_config_and_checkpoints(reference):
    from jaxcnn.train.checkpoint import Checkpointer
    from jaxcnn.train.run_setup import build_state

    workdir, final, records = reference
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        # digits has 10 classes, so evaluation also reports top-5 accuracy.
        assert tuple(record) == metrics_io.RECORD_KEYS + ("test_top5_accuracy",)
        assert record["test_accuracy"] <= record["test_top5_accuracy"] <= 1
        assert 0 <= record["train_accuracy"] <= 1 and 0 <= record["test_accuracy"] <= 1
        assert record["epoch_seconds"] > 0 and record["images_per_second"] > 0
    assert final == records[-1]
    # It learned: 10 classes start at ~10%; two short epochs reach well above.
    assert records[1]["test_accuracy"] > 0.6
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert (workdir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert TrainConfig.load(workdir) == digits_config()
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=3)
    assert checkpointer.steps() == [30, 40, 44]
    template, _ = build_state(digits_config(), 10, (8, 8, 1), STEPS_PER_EPOCH)
    state, metadata = checkpointer.restore(40, template)
    checkpointer.close()
    # Mid-epoch checkpoint: data seed, position (epoch index 1, next batch 18 =
    # 40 - 22), running sums of the epoch so far, and the finished epoch.
    assert int(state.step) == 40 and metadata["data_seed"] == 0
    position = metadata["position"]
    assert (position["epoch"], position["batch"], position["images"]) == (1, 18, 18 * 64)
    assert position["history"] == records[:1]
    assert 0 < position["loss_sum"] / position["images"] < records[0]["train_loss"]


def test_evaluate_workdir_reproduces_the_last_test_metrics(reference):
    from jaxcnn.train.loop import evaluate_workdir

    workdir, final, _ = reference
    result = evaluate_workdir(workdir)
    assert result["step"] == 2 * STEPS_PER_EPOCH and result["test_images"] == 355
    assert result["test_accuracy"] == pytest.approx(final["test_accuracy"], abs=1e-6)
    assert result["test_loss"] == pytest.approx(final["test_loss"], abs=1e-6)


@pytest.mark.parametrize(
    "stop_at_step, resumes_at",
    [(STEPS_PER_EPOCH + 1, "epoch 2, batch 0"),  # 1 epoch + resume
     (13, "epoch 1, batch 10")],                 # mid-epoch: steps 11-12 are redone
)
def test_resume_reproduces_the_uninterrupted_run(
        reference, tmp_path, monkeypatch, capsys, stop_at_step, resumes_at):
    from jaxcnn.train.loop import train_and_evaluate

    with monkeypatch.context() as patch:
        interrupt_at_step(patch, stop_at_step)
        with pytest.raises(KeyboardInterrupt):
            train_and_evaluate(digits_config(), tmp_path, progress=False)
    finished = len(metrics_io.read_metrics(tmp_path))
    assert finished == (1 if stop_at_step > STEPS_PER_EPOCH else 0)
    capsys.readouterr()
    final = train_and_evaluate(digits_config(), tmp_path, resume=True, progress=False)
    assert f"resuming at {resumes_at}" in capsys.readouterr().out
    assert_same_metrics(metrics_io.read_metrics(tmp_path), reference[2])
    assert final["test_accuracy"] == pytest.approx(reference[1]["test_accuracy"], abs=1e-6)


KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, time
    import jaxcnn.train.steps as steps
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.loop import train_and_evaluate

    workdir, config, kill_at, wait_for = sys.argv[1], json.loads(sys.argv[2]), *sys.argv[3:]
    real_step, calls = steps.train_step, []

    def step_then_die(state, images, labels):
        calls.append(1)
        if len(calls) == int(kill_at):
            # Die only once the mid-epoch checkpoint is on disk (Orbax renames
            # its temporary directory to the step number when complete).
            deadline = time.time() + 120
            while not os.path.isdir(os.path.join(workdir, "checkpoints", wait_for)):
                if time.time() > deadline:
                    sys.exit("checkpoint " + wait_for + " never appeared")
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup, no final save
        return real_step(state, images, labels)

    steps.train_step = step_then_die
    train_and_evaluate(TrainConfig(**config), workdir, progress=False)
""")


def test_kill_9_mid_epoch_then_resume_gives_the_same_metrics(reference, tmp_path):
    config = digits_config()
    # Killed during step 33, in the middle of epoch 2, after the checkpoint of
    # step 30 is complete: the resumed run redoes steps 31-33 and must match.
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path), json.dumps(config.to_dict()),
         "33", "30"], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(metrics_io.read_metrics(tmp_path)) == 1
    resumed = subprocess.run(
        [sys.executable, "-m", "jaxcnn", "train", "--workdir", str(tmp_path), "--resume",
         "--no-progress"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at epoch 2, batch 8 (step 30)" in resumed.stdout
    assert_same_metrics(metrics_io.read_metrics(tmp_path), reference[2])


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    import jax

    from jaxcnn.train.checkpoint import Checkpointer
    from jaxcnn.train.loop import TrainingDivergedError, train_and_evaluate
    from jaxcnn.train.run_setup import build_state

    # Warm-up starts at lr 0, so step 1 is a finite update that gets saved
    # (checkpoint every step); then the rate climbs towards 1e5 and blows up.
    config = digits_config(optimizer="sgd", lr=1e5, schedule="warmup_cosine", warmup_epochs=1,
                           checkpoint_every_steps=1)
    with pytest.raises(TrainingDivergedError) as caught:
        train_and_evaluate(config, tmp_path, progress=False)
    message = str(caught.value)
    found = re.search(r"training diverged at step (\d+) \(epoch 1, batch \d+\): "
                      r"(the training loss is (nan|inf)|the updated parameters are not finite)",
                      message)
    assert found, message
    step = int(found.group(1))
    assert step >= 2
    checkpointer = Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
    saved = checkpointer.steps()
    assert saved and saved[-1] < step
    assert f"the last good checkpoint (step {saved[-1]}) is kept" in message
    template, _ = build_state(config, 10, (8, 8, 1), STEPS_PER_EPOCH)
    state, _ = checkpointer.restore_latest(template)
    checkpointer.close()
    assert all(bool(jax.numpy.isfinite(leaf).all()) for leaf in jax.tree.leaves(state.params))
    assert metrics_io.read_metrics(tmp_path) == []


def test_workdir_guards(reference, tmp_path):
    from jaxcnn.train.loop import train_and_evaluate

    workdir = reference[0]
    with pytest.raises(ValueError, match="already holds checkpoints of a run; resume it"):
        train_and_evaluate(digits_config(), workdir, progress=False)
    with pytest.raises(ValueError, match=r"cannot change lr \(saved 0.001, given 0.1\)"):
        train_and_evaluate(digits_config(lr=0.1), workdir, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="data directory .*missing does not exist"):
        train_and_evaluate(digits_config(data_dir=str(tmp_path / "missing")), tmp_path / "run",
                           progress=False)
    with pytest.raises(ValueError, match=r"batch_size \(2000\) is larger than the training set"):
        train_and_evaluate(digits_config(batch_size=2000), tmp_path / "run", progress=False)


@pytest.mark.parametrize("parallel", ["pmap", "sharded"])
def test_data_parallel_run_matches_one_device(reference, tmp_path, parallel):
    from jaxcnn.train.loop import train_and_evaluate

    # Same global batches on 4 devices: only the float summation order differs.
    train_and_evaluate(digits_config(devices=4, parallel=parallel), tmp_path, progress=False)
    records, expected = metrics_io.read_metrics(tmp_path), reference[2]
    for got, want in zip(records, expected, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-3)
        assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-3)
        # At most two of the 355 test predictions flip (float32 accuracies: + slack).
        assert abs(got["test_accuracy"] - want["test_accuracy"]) <= 2.5 / 355


def _plateau_scales(accuracies, *, patience, factor, min_delta=1e-4):
    """Reduce-on-plateau by hand: scale after each epoch for the given test accuracies."""
    best, count, scale, scales = -np.inf, 0, 1.0, []
    for accuracy in np.asarray(accuracies, np.float32):
        if accuracy > best + min_delta:
            best, count = accuracy, 0
        else:
            count += 1
        if count == patience:
            scale, count = scale * factor, 0
        scales.append(scale)
    return scales


def test_plateau_schedule_follows_the_test_accuracy(tmp_path):
    from jaxcnn.train import learning_rate_scale
    from jaxcnn.train.checkpoint import Checkpointer
    from jaxcnn.train.loop import train_and_evaluate
    from jaxcnn.train.run_setup import build_state

    # SGD with a vanishing learning rate leaves the predictions unchanged, so the
    # test accuracy is flat and the plateau must fire (after epochs 2 and 3).
    config = digits_config(optimizer="sgd", epochs=3, lr=1e-12, schedule="plateau",
                           plateau_patience=1, plateau_factor=0.5, checkpoint_every_steps=0)
    train_and_evaluate(config, tmp_path, progress=False)
    accuracies = [r["test_accuracy"] for r in metrics_io.read_metrics(tmp_path)]
    expected = _plateau_scales(accuracies, patience=1, factor=0.5)
    assert expected == [1.0, 0.5, 0.25]
    checkpointer = Checkpointer(tmp_path / "checkpoints", max_to_keep=3)
    template, _ = build_state(config, 10, (8, 8, 1), STEPS_PER_EPOCH)
    for step, scale in zip(checkpointer.steps(), expected):
        state, _ = checkpointer.restore(step, template)
        assert learning_rate_scale(state.opt_state) == pytest.approx(scale)
    checkpointer.close()


@pytest.mark.slow
def test_mnist_smoke_run_reaches_97_percent(tmp_path):
    from jaxcnn.train.loop import train_and_evaluate

    # 300 steps of 128 real MNIST images, evaluated on the full 10,000-image test set.
    # Without the default shift augmentation, which pays off over several epochs.
    config = TrainConfig(epochs=1, train_examples=300 * 128, checkpoint_every_steps=0,
                         augment=False)
    final = train_and_evaluate(config, tmp_path, progress=False)
    assert final["test_accuracy"] >= 0.97, final


def test_the_loop_reads_step_metrics_only_every_few_steps(tmp_path, monkeypatch, count_host_reads):
    """Between two reads of the buffered metrics the loop transfers nothing to the host
    (issue 10: the device never waits on the host); 22 steps are read at 10, 20 and 22."""
    from jaxcnn.train import loop
    from jaxcnn.train.step_metrics import StepMetricsBuffer

    counting = {"reads": None}
    gaps, flushed_steps, last_end = [], [], [0]

    class Recording(StepMetricsBuffer):
        def flush(self):
            reads = counting["reads"]
            if reads is None:
                return super().flush()
            gaps.append(reads.count - last_end[0])  # host reads since the previous flush
            result = super().flush()
            flushed_steps.append(result.steps)
            last_end[0] = reads.count
            return result

    monkeypatch.setattr(loop, "StepMetricsBuffer", Recording)
    config = digits_config(epochs=1, checkpoint_every_steps=0)
    loop.train_and_evaluate(config, tmp_path / "warm", progress=False)  # compile outside the count
    with count_host_reads() as reads:
        counting["reads"] = reads
        loop.train_and_evaluate(config, tmp_path / "counted", progress=False)
    nonempty = [i for i, steps in enumerate(flushed_steps) if steps]
    assert [len(flushed_steps[i]) for i in nonempty] == [10, 10, 2]
    assert flushed_steps[nonempty[0]][0] == 1 and flushed_steps[nonempty[-1]][-1] == STEPS_PER_EPOCH
    # Reads before the first flush belong to setup (init, checks); from one flush to the
    # next the 10 steps ran without a single host read.
    assert [gaps[i] for i in nonempty[1:]] == [0, 0]


def test_eval_every_records_test_metrics_at_those_steps_and_survives_a_resume(
        reference, tmp_path, monkeypatch):
    """--eval-every 8: steps 8, 16, 24, 32, 40 inside the epochs and 22, 44 at their ends."""
    from jaxcnn.train.loop import train_and_evaluate

    config = digits_config(eval_every_steps=8)
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, 35)  # after the checkpoint at step 30
        with pytest.raises(KeyboardInterrupt):
            train_and_evaluate(config, tmp_path, progress=False)
    assert [r["step"] for r in metrics_io.read_step_evals(tmp_path)] == [8, 16, 22, 24, 32]
    train_and_evaluate(config, tmp_path, resume=True, progress=False)
    records = metrics_io.read_step_evals(tmp_path)
    assert [r["step"] for r in records] == [8, 16, 22, 24, 32, 40, 44]
    assert [r["epoch"] for r in records] == pytest.approx(
        [8 / 22, 16 / 22, 1.0, 1 + 2 / 22, 1 + 10 / 22, 1 + 18 / 22, 2.0])
    elapsed = [r["elapsed_seconds"] for r in records]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    # The epoch-end records are the epochs' own metrics; evaluating does not change training.
    for record, epoch in zip([records[2], records[-1]], reference[2]):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert record[key] == pytest.approx(epoch[key], abs=1e-6)
    assert_same_metrics(metrics_io.read_metrics(tmp_path), reference[2])
    with pytest.raises(ValueError, match="eval_every_steps must be"):
        digits_config(eval_every_steps=-1)

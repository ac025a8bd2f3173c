"""The `jaxcnn` command: help, one-line errors, train -> eval, divergence exit, summary."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from jaxcnn.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

# The same model/optimizer settings as tests/train/test_loop.py, so the
# compiled steps are shared when both files run in one process.
DIGITS_RUN = ["--dataset", "digits", "--epochs", "2", "--batch-size", "64",
              "--eval-batch-size", "500", "--checkpoint-every", "10", "--no-progress"]


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, pattern):
    assert status == EXIT_USAGE
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), err


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["train", "--model", "lenet6"], r"unknown model 'lenet6'; choose one of: .*lenet5"),
        (["train", "--dataset", "svhn"], r"unknown dataset 'svhn'; choose one of: .*mnist"),
        (["train", "--epochs", "0"], r"--epochs must be >= 1, got 0"),
        (["train", "--batch-size", "0"], r"--batch-size must be >= 1, got 0"),
        (["train", "--data-dir", "missing-dir"], r"data directory missing-dir does not exist"),
        (["train", "--lr", "-1"], r"--lr must be in \(0.0, inf\), got -1"),
        (["train", "--optimizer", "rmsprop"], r"invalid choice: 'rmsprop'"),
        (["train", "--epochs", "two"], r"argument --epochs: invalid int value: 'two'"),
        (["train", "--decay-epochs", "a,b"], r"expected comma-separated epochs"),
        (["train", "--frobnicate"], r"unrecognized arguments: --frobnicate"),
        (["train", "--resume", "--workdir", "no-run-here"], r"no config.json in no-run-here"),
        (["eval"], r"the following arguments are required: --workdir"),
        (["eval", "--workdir", "."], r"no config.json in \."),
        (["summary", "lenet6"], r"unknown model 'lenet6'"),
        (["summary", "lenet5", "--input-shape", "28,28"], r"expected three positive ints H,W,C"),
        ([], r"the following arguments are required: COMMAND"),
        (["fly"], r"invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, err, pattern)
    assert out == ""


def test_real_entry_point_help_and_error():
    command = [sys.executable, "-m", "jaxcnn", "train"]
    helped = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0
    for option, default in [("--model", "default: lenet5"), ("--dataset", "default: mnist"),
                            ("--epochs", "default: 8"), ("--batch-size", "default: 128"),
                            ("--optimizer", "default: adam"), ("--lr", "default: 0.001"),
                            ("--schedule", "default: cosine"), ("--seed", "default: 0"),
                            ("--devices", "default: 1"), ("--plateau-patience", "default: 2"),
                            ("--weight-decay", "default: 0.0"), ("--workdir", "default:"),
                            ("--resume", "latest checkpoint"), ("--data-dir", "JAXCNN_DATA_DIR")]:
        assert option in helped.stdout and default in " ".join(helped.stdout.split()), option
    failed = subprocess.run(command + ["--epochs", "0"], capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == EXIT_USAGE
    assert failed.stderr.strip() == "jaxcnn train: error: --epochs must be >= 1, got 0"


def test_top_level_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("train", "eval", "summary"))


def test_train_then_eval_then_guards(capsys, tmp_path):
    workdir = str(tmp_path / "run")
    status, out, err = run(capsys, "train", *DIGITS_RUN, "--workdir", workdir)
    assert status == EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].startswith("training lenet5 on digits (1442 train / 355 test images)")
    assert [line.split(":")[0] for line in lines[1:3]] == ["epoch 1/2", "epoch 2/2"]
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    accuracy = f"{100 * records[-1]['test_accuracy']:.2f}%"
    assert lines[3] == (f"final test accuracy {accuracy} (loss {records[-1]['test_loss']:.4f}); "
                        f"outputs in {workdir}")

    status, out, err = run(capsys, "eval", "--workdir", workdir)
    assert status == EXIT_OK, err
    assert out.strip() == (f"digits test: loss {records[-1]['test_loss']:.4f}, accuracy "
                           f"{accuracy} (355 images, checkpoint step 44)")

    status, _, err = run(capsys, "train", *DIGITS_RUN, "--workdir", workdir)
    assert_one_line_error(status, err, r"already holds checkpoints of a run; resume it")
    status, _, err = run(capsys, "train", "--workdir", workdir, "--resume", "--lr", "0.1")
    assert_one_line_error(status, err, r"cannot change --lr \(saved 0.001, given 0.1\)")
    # A finished run resumes to its final record without training.
    status, out, err = run(capsys, "train", "--workdir", workdir, "--resume", "--no-progress")
    assert status == EXIT_OK, err
    assert f"final test accuracy {accuracy}" in out


def test_divergence_exits_1_with_the_step(capsys, tmp_path):
    status, out, err = run(
        capsys, "train", *DIGITS_RUN, "--optimizer", "sgd", "--lr", "1e5",
        "--schedule", "warmup_cosine",
        "--warmup-epochs", "1", "--checkpoint-every", "1", "--workdir", str(tmp_path))
    assert status == EXIT_FAILED
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.search(
        r"^jaxcnn train: error: training diverged at step \d+ \(epoch 1, batch \d+\): .*"
        r"the last good checkpoint \(step \d+\) is kept in .*; try a smaller learning rate$",
        err.strip()), err


def test_summary_prints_the_layer_table(capsys):
    status, out, _ = run(capsys, "summary", "lenet5")
    assert status == EXIT_OK
    assert "lenet5 on input" in out and "conv1" in out and "1,256,080" in out
    status, out, _ = run(capsys, "summary", "lenet5", "--input-shape", "8,8,1")
    assert status == EXIT_OK
    # fc3 sees 2x2x50 = 200 features on 8x8 input: 200*500 + 500 params.
    assert "100,500" in out


def test_devices_flag_simulates_host_devices_on_cpu(tmp_path):
    # Without XLA_FLAGS in the environment, --devices 2 must still find two devices.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-m", "jaxcnn", "train", "--dataset", "digits", "--epochs", "1",
         "--batch-size", "64", "--train-examples", "256", "--devices", "2", "--no-progress",
         "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 devices (jax.jit over a sharded mesh)" in done.stdout

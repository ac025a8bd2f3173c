"""TrainConfig, metrics files and the training loop (exact resume, kill -9, divergence).

The loop runs LeNet-5 on scikit-learn's 8x8 digits (1,442 train / 355 test
images): 22 steps of 64 per epoch, a second or so per run after compilation.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jaxcnn.train import metrics as metrics_io
from jaxcnn.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
LOSS_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


# --------------------------------------------------------------------- config
def test_default_config_is_the_main_job():
    config = TrainConfig()
    assert (config.model, config.dataset, config.batch_size) == ("lenet5", "mnist", 128)
    assert config.devices == 1 and config.data_dir is None


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
        ({"nesterov": True, "momentum": 0.0}, "nesterov=True needs momentum > 0"),
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

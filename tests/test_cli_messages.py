"""The command line's messages: config fields written as flags, multi-line
explanations kept, --version, --debug, and a model/input mismatch that names the
model, the input it needs and the dataset's."""
from __future__ import annotations

import pytest

from jaxcnn.cli import EXIT_OK, EXIT_USAGE, _command_flags, build_parser, main
from jaxcnn.cli_messages import format_error, in_flag_terms


@pytest.fixture(scope="module")
def train_flags():
    return _command_flags(build_parser(), "train")


@pytest.mark.parametrize("message, expected", [
    ('schedule "step" needs decay_epochs, e.g. decay_epochs=(30, 60)',
     'schedule "step" needs --decay-epochs, e.g. --decay-epochs 30,60'),
    ("lr must be in (0.0, inf), got -1.0", "--lr must be in (0.0, inf), got -1.0"),
    ("nesterov=True needs momentum > 0, got momentum=0",
     "--nesterov needs --momentum > 0, got --momentum 0"),
    ("warmup_epochs (3.0) must be < epochs (2)", "--warmup-epochs (3.0) must be < --epochs (2)"),
    ("batch_size (128) and eval_batch_size (1000) must be divisible by devices (3)",
     "--batch-size (128) and --eval-batch-size (1000) must be divisible by --devices (3)"),
    ("cannot change model (saved 'lenet5', given 'vgg11') when resuming runs/x",
     "cannot change --model (saved 'lenet5', given 'vgg11') when resuming runs/x"),
    # Words that are not settings, paths and quoted calls stay as they are.
    ("unknown model 'lenet6'; choose one of: lenet5", "unknown model 'lenet6'; choose one of: lenet5"),
    ("TFDS tfds.data_source('mnist', split='test', data_dir=None): failed",
     "TFDS tfds.data_source('mnist', split='test', data_dir=None): failed"),
    ("no config.json in runs/lenet5_mnist/epochs_dir", "no config.json in runs/lenet5_mnist/epochs_dir"),
    ("training diverged at step 12 (epoch 1, batch 12): the training loss is nan",
     "training diverged at step 12 (epoch 1, batch 12): the training loss is nan"),
])
def test_config_fields_become_the_flags_that_set_them(train_flags, message, expected):
    assert in_flag_terms(message, train_flags) == expected


def test_the_field_to_flag_table_comes_from_the_parser(train_flags):
    assert train_flags["decay_epochs"] == "--decay-epochs"
    assert train_flags["checkpoint_every_steps"].startswith("--checkpoint-every")
    assert train_flags["nesterov"] == "--nesterov"


def test_a_multi_line_explanation_keeps_its_lines():
    error = FileNotFoundError("not found. Looked in:\n  /a (x): no such directory\n  /b (y): none\nTo get it: z")
    assert format_error("train", error).splitlines() == [
        "jaxcnn train: error: not found. Looked in:",
        "  /a (x): no such directory",
        "  /b (y): none",
        "  To get it: z",
    ]


def test_version(capsys):
    from jaxcnn import __version__

    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"jaxcnn {__version__}"


def test_debug_prints_the_traceback_and_the_message(capsys):
    assert main(["train", "--epochs", "0", "--debug"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)")
    assert err.strip().splitlines()[-1] == "jaxcnn train: error: --epochs must be >= 1, got 0"
    assert main(["train", "--epochs", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err == "jaxcnn train: error: --epochs must be >= 1, got 0\n"


def test_a_named_data_dir_without_the_files_keeps_its_lines(capsys, tmp_path):
    status = main(["train", "--data-dir", str(tmp_path), "--workdir", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == EXIT_USAGE
    assert lines[0] == (f"jaxcnn train: error: --data-dir {tmp_path} does not hold the train split "
                        f"of 'mnist': looked in {tmp_path / 'mnist'} and {tmp_path} for "
                        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz].")
    assert len(lines) == 2 and lines[1].startswith("  To get it: download the four IDX .gz files")


def test_a_model_input_mismatch_names_the_model_and_both_sizes(capsys, tmp_path):
    status = main(["train", "--model", "alexnet", "--dataset", "digits",
                   "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("jaxcnn train: error: model 'alexnet' cannot run on digits images of "
                          "8x8x1: it was built for 227x227x3 images (H x W x C); ")
    assert "the layer said: kernel (11, 11)" in err
